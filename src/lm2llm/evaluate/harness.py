"""lm-evaluation-harness, the real one, scoring lm2llm models on lm2llm's task files.

`LM2LLM` is an `lm_eval.api.model.LM` registered as "lm2llm": lm_eval builds the requests from the task
YAMLs and computes the metrics itself; this class only answers the requests, through the same scorers as
our own harness. So equal numbers from both (tests/test_evaluate_harness.py) show that our harness reads
the task files the way lm-eval does and computes its metrics the same way.

lm_eval finds model classes only in its own registry (it has no plug-in entry point), and `dataset_path:
json` resolves data files against the working directory. `run_lm_eval(argv)` does both things: it
registers the model, writes lm-eval-ready copies of our task files (absolute data paths) and runs lm_eval's
own command line with them on its `--include_path`:

    lm2llm lm-eval --model lm2llm --model_args run=RUN --tasks python-cloze,pydocs-bpb

Needs the `lm-eval` package (`pip install lm-eval`, in lm2llm's dev extras).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import yaml
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

from lm2llm.evaluate.loading import load_scorer
from lm2llm.evaluate.requests import Generation
from lm2llm.evaluate.tasks import TASK_DIR, FunctionRef, TaskLoader


@register_model("lm2llm")
class LM2LLM(LM):
    """`--model lm2llm --model_args run=DIR[,dtype=bfloat16,max_length=N]`; `--batch_size` is honoured."""

    def __init__(self, run: str, dtype: str = "float32", max_length: int | None = None,
                 batch_size: int | str | None = 8, **_ignored):  # lm_eval also passes device, max_batch_size
        super().__init__()
        size = int(batch_size) if str(batch_size).isdigit() else 8
        self.scorer = load_scorer(run, dtype=dtype, batch_size=size,
                                  max_length=int(max_length) if max_length else None)

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        return self.scorer.loglikelihood([tuple(r.args[:2]) for r in requests])

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        return self.scorer.loglikelihood_rolling([r.args[0] for r in requests])

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        generations = []
        for request in requests:
            context, kwargs = request.args[:2]
            until = kwargs.get("until") or []
            generations.append(Generation(context, tuple([until] if isinstance(until, str) else until),
                                          int(kwargs.get("max_gen_toks", 256))))
        return self.scorer.generate_until(generations)


class _TaskDumper(yaml.SafeDumper):
    pass


_TaskDumper.add_representer(FunctionRef, lambda dumper, ref: dumper.represent_scalar("!function", ref.spec))


def lm_eval_task_dir(out: Path, task_files: Sequence[Path] | None = None) -> Path:
    """Copies of task files whose data paths are absolute (lm_eval reads them relative to the working
    directory), with the Python files they reference; returns `out`, ready for `--include_path`."""
    out.mkdir(parents=True, exist_ok=True)
    for path in task_files if task_files is not None else sorted(TASK_DIR.glob("*.yaml")):
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=TaskLoader)
        files = raw["dataset_kwargs"]["data_files"]
        raw["dataset_kwargs"]["data_files"] = {split: str((path.parent / f).resolve()) for split, f in files.items()}
        (out / path.name).write_text(yaml.dump(raw, Dumper=_TaskDumper, allow_unicode=True, sort_keys=False),
                                     encoding="utf-8")
        for module in path.parent.glob("*.py"):
            shutil.copy(module, out / module.name)
    return out


def run_lm_eval(argv: Sequence[str]) -> None:
    """lm_eval's command line with the lm2llm model registered and the shipped tasks included."""
    from lm_eval.__main__ import cli_evaluate

    with tempfile.TemporaryDirectory(prefix="lm2llm-tasks-") as tmp:
        saved = sys.argv
        sys.argv = ["lm-eval", *argv, "--include_path", str(lm_eval_task_dir(Path(tmp)))]
        try:
            cli_evaluate()
        finally:
            sys.argv = saved
