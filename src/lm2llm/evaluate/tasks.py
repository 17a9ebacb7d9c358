"""Tasks as lm-evaluation-harness YAML files: one definition read by our harness and by `lm_eval` alike.

A task file uses the part of lm-eval's schema that offline tasks need:

    task: python-cloze                     output_type: multiple_choice | loglikelihood |
    dataset_path: json                                  loglikelihood_rolling | generate_until
    dataset_kwargs: {data_files: {test: python-cloze.jsonl, train: ...}}   # relative to the task file
    test_split: test        fewshot_split: train       fewshot_config: {sampler: first_n}
    doc_to_text / doc_to_target / doc_to_choice: a field name or a Jinja template (lm-eval's rules)
    target_delimiter: " "   fewshot_delimiter: "\\n\\n"   description: ...   num_fewshot: 0
    generation_kwargs: {until: ["\\n"], max_gen_toks: 32}
    metric_list: [{metric: acc}, {metric: exact_match, regexes_to_ignore: [...]}]
    process_results: !function utils.process_results   # a function in a .py file next to the task
    metadata: {version: 1, chance: 0.25, size: "..."}   # every shipped task states its chance level

A mistake in a task file or its data is reported with the file and line (`UserError`).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import yaml

from lm2llm.errors import UserError

OUTPUT_TYPES = ("multiple_choice", "loglikelihood", "loglikelihood_rolling", "generate_until")
METRICS = {"multiple_choice": {"acc", "acc_norm", "acc_mutual_info"}, "loglikelihood": {"perplexity", "acc"},
           "loglikelihood_rolling": {"word_perplexity", "byte_perplexity", "bits_per_byte"},
           "generate_until": {"exact_match"}}
KNOWN_KEYS = {"task", "tag", "output_type", "dataset_path", "dataset_kwargs", "test_split", "fewshot_split",
              "fewshot_config", "doc_to_text", "doc_to_target", "doc_to_choice", "target_delimiter",
              "fewshot_delimiter", "description", "num_fewshot", "generation_kwargs", "metric_list",
              "process_results", "metadata"}
TASK_DIR = Path(__file__).resolve().parent / "task_files"

_jinja = jinja2.Environment(loader=jinja2.BaseLoader(), undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
_jinja.filters["regex_replace"] = lambda text, pattern, repl, count=0: re.sub(pattern, repl, text, count=count)


@dataclass(frozen=True)
class FunctionRef:
    """`!function module.name`: a function in `module.py` next to the task file (lm-eval's tag)."""

    spec: str

    def resolve(self, directory: Path) -> Callable:
        module_name, _, name = self.spec.rpartition(".")
        path = directory / f"{module_name}.py"
        if not path.is_file():
            raise UserError(f"!function {self.spec}: no file {path.name}", where=str(directory))
        spec = importlib.util.spec_from_file_location(f"lm2llm_task_{module_name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return getattr(module, name)


class TaskLoader(yaml.SafeLoader):
    pass


TaskLoader.add_constructor("!function", lambda loader, node: FunctionRef(loader.construct_scalar(node)))


@dataclass
class Task:
    """A parsed task file and its documents."""

    name: str
    path: Path
    output_type: str
    data_files: dict[str, Path]
    test_split: str
    doc_to_text: Any = ""
    doc_to_target: Any = ""
    doc_to_choice: Any = None
    target_delimiter: str = " "
    fewshot_delimiter: str = "\n\n"
    description: str = ""
    num_fewshot: int = 0
    fewshot_split: str | None = None
    generation_kwargs: dict = field(default_factory=dict)
    metric_list: list[dict] = field(default_factory=list)
    process_results: Callable | None = None
    metadata: dict = field(default_factory=dict)

    @property
    def chance(self) -> float | None:
        return self.metadata.get("chance")

    @property
    def metrics(self) -> list[str]:
        return [m["metric"] for m in self.metric_list]

    def docs(self, split: str | None = None) -> list[dict]:
        return read_jsonl(self.data_files[split or self.test_split])

    # -- lm-eval's doc_to_* rules ------------------------------------------------------------------------
    def _field(self, spec: Any, doc: dict) -> Any:
        if not isinstance(spec, str):
            return spec
        if spec in doc:
            return doc[spec]
        try:
            return _jinja.from_string(spec).render(**doc)
        except jinja2.TemplateError as error:
            raise UserError(f"template {spec!r}: {error}", where=str(self.path)) from None

    def text(self, doc: dict) -> str:
        return self._field(self.doc_to_text, doc)

    def target(self, doc: dict) -> Any:
        value = self._field(self.doc_to_target, doc)
        if isinstance(value, str) and value.isdigit() and self.doc_to_choice is not None:
            return ast.literal_eval(value)
        return value

    def choices(self, doc: dict) -> list[str]:
        value = self._field(self.doc_to_choice, doc)
        return ast.literal_eval(value) if isinstance(value, str) else list(value)

    def answer_text(self, doc: dict) -> str:
        """The gold answer as text (what a few-shot example shows)."""
        target = self.target(doc)
        if self.doc_to_choice is not None and isinstance(target, int):
            return self.choices(doc)[target]
        return target[0] if isinstance(target, list) else str(target)

    def context(self, doc: dict, shots: list[dict]) -> str:
        """description + each shot (text, delimiter, answer, few-shot delimiter) + this document's text."""
        parts = [self.description]
        for shot in shots:
            parts.append(self.text(shot) + self.target_delimiter + self.answer_text(shot) + self.fewshot_delimiter)
        return "".join(parts) + self.text(doc)

    def fewshot_docs(self, k: int) -> list[dict]:
        if k == 0:
            return []
        if self.fewshot_split is None:
            raise UserError(f"task {self.name} has no fewshot_split: it is zero-shot only", where="--shots")
        pool = self.docs(self.fewshot_split)
        if k > len(pool):
            raise UserError(f"task {self.name} has {len(pool)} few-shot examples, {k} asked", where="--shots")
        return pool[:k]


def read_jsonl(path: Path) -> list[dict]:
    docs = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except json.JSONDecodeError as error:
                raise UserError(f"not valid JSON: {error.msg}", where=f"{path}:{number}") from None
            if not isinstance(doc, dict):
                raise UserError("each line must be a JSON object", where=f"{path}:{number}")
            docs.append(doc)
    return docs


def _key_lines(text: str) -> dict[str, int]:
    """The line of each top-level key (1-based), to point errors at it."""
    node = yaml.compose(text, Loader=TaskLoader)
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {key.value: key.start_mark.line + 1 for key, _ in node.value if isinstance(key, yaml.ScalarNode)}


def load_task(path: str | Path) -> Task:
    """Read and check a task file (errors name the file and line)."""
    path = Path(path).resolve()
    try:
        text = path.read_text(encoding="utf-8")
        raw = yaml.load(text, Loader=TaskLoader)
        lines = _key_lines(text)
    except OSError as error:
        raise UserError(f"cannot read the task file: {error.strerror}", where=str(path)) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise UserError(f"not valid YAML: {getattr(error, 'problem', None) or error}", where=where) from None
    if not isinstance(raw, dict):
        raise UserError("a task file must be a mapping of keys to values", where=f"{path}:1")

    def fail(key: str, message: str) -> UserError:
        return UserError(message, where=f"{path}:{lines.get(key, 1)}")

    for key in raw:
        if key not in KNOWN_KEYS:
            raise fail(key, f"unknown key {key!r}", ) from None
    for key in ("task", "output_type", "dataset_kwargs", "test_split"):
        if key not in raw:
            raise fail(key, f"missing key {key!r}")
    if raw["output_type"] not in OUTPUT_TYPES:
        raise fail("output_type", f"output_type must be one of {', '.join(OUTPUT_TYPES)}")
    if raw.get("dataset_path", "json") != "json":
        raise fail("dataset_path", "only 'dataset_path: json' (local files) is supported")
    files = (raw["dataset_kwargs"] or {}).get("data_files") if isinstance(raw["dataset_kwargs"], dict) else None
    if not isinstance(files, dict) or not files:
        raise fail("dataset_kwargs", "dataset_kwargs needs data_files: {split: file}")
    data_files = {split: (path.parent / name).resolve() for split, name in files.items()}
    for split, file in data_files.items():
        if not file.is_file():
            raise fail("dataset_kwargs", f"data file for split {split!r} not found: {file}")
    for key in ("test_split", "fewshot_split"):
        if raw.get(key) is not None and raw[key] not in data_files:
            raise fail(key, f"split {raw[key]!r} has no data file")
    metrics = raw.get("metric_list") or []
    if not isinstance(metrics, list) or not all(isinstance(m, dict) and "metric" in m for m in metrics):
        raise fail("metric_list", "metric_list must be a list of {metric: name, ...}")
    process = raw.get("process_results")
    if process is None:
        unknown = [m["metric"] for m in metrics if m["metric"] not in METRICS[raw["output_type"]]]
        if unknown:
            raise fail("metric_list", f"metric {unknown[0]!r} needs process_results for {raw['output_type']}")
    elif not isinstance(process, FunctionRef):
        raise fail("process_results", "process_results must be '!function module.name'")
    if raw.get("fewshot_split") is not None and (raw.get("fewshot_config") or {}).get("sampler") != "first_n":
        raise fail("fewshot_config", "few-shot tasks must use fewshot_config: {sampler: first_n} (same shots everywhere)")
    return Task(
        name=str(raw["task"]), path=path, output_type=raw["output_type"], data_files=data_files,
        test_split=raw["test_split"], doc_to_text=raw.get("doc_to_text", ""),
        doc_to_target=raw.get("doc_to_target", ""), doc_to_choice=raw.get("doc_to_choice"),
        target_delimiter=raw.get("target_delimiter", " "), fewshot_delimiter=raw.get("fewshot_delimiter", "\n\n"),
        description=raw.get("description", ""), num_fewshot=int(raw.get("num_fewshot", 0)),
        fewshot_split=raw.get("fewshot_split"), generation_kwargs=dict(raw.get("generation_kwargs") or {}),
        metric_list=metrics, process_results=process.resolve(path.parent) if process else None,
        metadata=dict(raw.get("metadata") or {}),
    )


@cache
def shipped_tasks() -> dict[str, Path]:
    """Task name → task file, for the tasks in the package."""
    return {yaml.load(p.read_text(encoding="utf-8"), Loader=TaskLoader)["task"]: p
            for p in sorted(TASK_DIR.glob("*.yaml"))}


def find_task(name_or_path: str) -> Task:
    """A shipped task by name, or a task file by path."""
    if name_or_path in shipped_tasks():
        return load_task(shipped_tasks()[name_or_path])
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return load_task(path)
    raise UserError(f"unknown task {name_or_path!r}", where="--task",
                    hint=f"shipped: {', '.join(shipped_tasks())}; or give a task .yaml file")


def shipped_task_table() -> list[dict]:
    """Name, kind, metrics, size and chance level of every shipped task."""
    rows = []
    for name, path in shipped_tasks().items():
        task = load_task(path)
        chance = task.chance if task.chance is not None else task.metadata.get("chance_bits_per_byte")
        rows.append({"task": name, "kind": task.output_type, "metrics": ", ".join(task.metrics),
                     "documents": len(task.docs()), "chance": chance, "size": task.metadata.get("size", "")})
    return rows
