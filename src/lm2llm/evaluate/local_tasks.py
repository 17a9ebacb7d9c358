"""Korean classification as zero/few-shot multiple choice, built from data the user has (never shipped).

- `nsmc`: Naver movie reviews, negative/positive (chance 0.5): 500 test reviews, few-shot examples from the
  training file, alternating labels. From `--data-dir DIR/nsmc/{train,test}.tsv` or the cache of
  `lm2llm data download nsmc`.
- `korean-hate-speech`: comments labelled none/offensive/hate (kocohub's dev set, 471 rows; chance 1/3 for
  a uniform guess, the majority class is more): the first row of each label are the few-shot examples,
  the rest the test set. From `--data-dir DIR/korean-hate-speech/dev.tsv` only (no download).

The task files are written into the cache (`$LM2LLM_CACHE/eval-tasks/NAME/`) in the shipped tasks' format,
so `lm_eval` can read them too.
"""

from __future__ import annotations

from pathlib import Path

from lm2llm.classify.data import nsmc_files, read_labelled
from lm2llm.env import cache_dir
from lm2llm.errors import UserError
from lm2llm.evaluate.tasks import write_jsonl

NSMC_TEST = 500
SPECS = {
    "nsmc": ("리뷰: {{text}}\n감정:", ["부정", "긍정"], 0.5),
    "korean-hate-speech": ("댓글: {{text}}\n혐오 표현:", ["없음", "공격적", "혐오"], 1 / 3),
}
LABELS = {"nsmc": {"0": 0, "1": 1}, "korean-hate-speech": {"none": 0, "offensive": 1, "hate": 2}}


def _rows(path: Path, text_column: str, label_column: str, task: str) -> list[dict]:
    data = read_labelled(path, text_column, label_column)
    mapping = LABELS[task]
    return [{"text": text, "label": mapping[data.names[label]]} for text, label in zip(data.texts, data.labels, strict=True)
            if data.names[label] in mapping]


def _interleaved(rows: list[dict], labels: int, count: int) -> list[dict]:
    """Up to `count` rows taking each label in turn, so the first k few-shot examples are balanced."""
    by_label = [[r for r in rows if r["label"] == label] for label in range(labels)]
    out = []
    for group in zip(*by_label, strict=False):
        out.extend(group)
    return out[:count]


def build_local_task(name: str, data_dir: str | Path | None = None) -> Path:
    """Write the task's YAML and data into the cache; return the YAML path."""
    directory = Path(data_dir) if data_dir else None
    if name == "nsmc":
        files = nsmc_files(directory / "nsmc" if directory else None)
        if files is None:
            raise UserError("NSMC is not available locally", where=str(directory or "nsmc"),
                            hint="pass --data-dir with nsmc/train.tsv and nsmc/test.tsv, or run 'lm2llm data download nsmc'")
        train, test = (_rows(path, "document", "label", name) for path in files)
        shots, tests = _interleaved(train, 2, 10), test[:NSMC_TEST]
    else:
        path = directory / "korean-hate-speech" / "dev.tsv" if directory else None
        if path is None or not path.is_file():
            raise UserError("the Korean hate-speech dev set is not available", where=str(path or name),
                            hint="pass --data-dir with korean-hate-speech/dev.tsv")
        rows = _rows(path, "comments", "hate", name)
        shots = _interleaved(rows, 3, 3)
        tests = [r for r in rows if r not in shots]
    template, choices, chance = SPECS[name]
    out = cache_dir() / "eval-tasks" / name
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "test.jsonl", tests)
    write_jsonl(out / "train.jsonl", shots)
    choice_list = "[" + ", ".join(f'"{c}"' for c in choices) + "]"
    text = template.replace("\n", "\\n")  # YAML's escape inside a double-quoted string
    (out / f"{name}.yaml").write_text(
        f"task: {name}\noutput_type: multiple_choice\ndataset_path: json\n"
        f"dataset_kwargs:\n  data_files: {{test: test.jsonl, train: train.jsonl}}\n"
        f"test_split: test\nfewshot_split: train\nfewshot_config: {{sampler: first_n}}\n"
        f'doc_to_text: "{text}"\ndoc_to_choice: \'{choice_list}\'\ndoc_to_target: label\n'
        f"metric_list:\n  - metric: acc\n  - metric: acc_norm\n"
        f"metadata:\n  version: 1\n  size: {len(tests)} test rows, {len(shots)} few-shot rows\n  chance: {chance}\n",
        encoding="utf-8")
    return out / f"{name}.yaml"
