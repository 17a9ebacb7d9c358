"""How the data files of the shipped tasks were made (`python -m lm2llm.evaluate.task_data`).

Everything comes from sources every install has, so the files are reproducible and need no download:

- `*-bpb.jsonl`: held-out passages of python-docs, python-code and korean-law. Documents are cut into
  passages of at most ~1,200 characters at line breaks; a passage is held out when the data pipeline's
  content-hash split (`data.prepare.split_of`, 10 %) puts it in "val", so a model trained through
  `lm2llm data prepare` never saw it.
- `python-cloze.jsonl`: sentences from held-out python-docs passages with their last words removed; the
  true ending and three endings of other sentences are the choices (HellaSwag/LAMBADA in form).
- `instructions.jsonl`: the synthetic instruction suite's held-out prompts (`finetune.tasks.make_suite`).

The hand-written `stdlib-qa.jsonl` is not generated (see `evaluate.stdlib_qa`).
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from lm2llm.data import load_documents
from lm2llm.data.prepare import split_of
from lm2llm.evaluate.tasks import TASK_DIR
from lm2llm.finetune.tasks import make_suite

PASSAGE_CHARS = 1200
BPB_PASSAGES = 40
CLOZE_TEST, CLOZE_SHOTS, CLOZE_CHOICES = 200, 5, 4
SUITE_TEST, SUITE_SHOTS = 20, 1  # per task of the suite (seven tasks)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def passages(text: str, limit: int = PASSAGE_CHARS) -> list[str]:
    """Consecutive lines grouped into passages of at most `limit` characters (a longer line is its own)."""
    out, current = [], ""
    for line in text.splitlines():
        if current and len(current) + 1 + len(line) > limit:
            out.append(current)
            current = ""
        current = f"{current}\n{line}" if current else line
    if current.strip():
        out.append(current)
    return [p for p in out if len(p.strip()) >= 200]


def held_out_passages(source: str, count: int) -> list[str]:
    chosen = []
    for document in load_documents(source):
        for passage in passages(document):
            if split_of(passage, 0.1) == "val":
                chosen.append(passage[:PASSAGE_CHARS * 2])
    return random.Random(f"lm2llm-eval/{source}").sample(chosen, min(count, len(chosen)))


def cloze_items(count: int) -> list[dict]:
    """Sentences of 12–40 words: the context keeps all but the last 4–6 words, which are the gold ending."""
    rng = random.Random("lm2llm-eval/python-cloze")
    sentences = []
    for passage in held_out_passages("python-docs", 10_000):
        for sentence in _SENTENCE.split(" ".join(passage.split())):
            words = sentence.split()
            if 12 <= len(words) <= 40 and sentence[-1] in ".!?" and not re.search(r"[>{}|=_]{2}", sentence):
                sentences.append(words)
    rng.shuffle(sentences)
    items, endings = [], []
    for words in sentences:
        cut = len(words) - rng.randint(4, 6)
        items.append(" ".join(words[:cut]))
        endings.append(" ".join(words[cut:]))
    out = []
    for index in range(min(count, len(items))):
        others = rng.sample([e for e in endings if e != endings[index]], CLOZE_CHOICES - 1)
        gold = rng.randrange(CLOZE_CHOICES)
        out.append({"context": items[index], "choices": others[:gold] + [endings[index]] + others[gold:],
                    "label": gold})
    return out


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


def build(directory: Path = TASK_DIR) -> None:
    for source, name in (("python-docs", "pydocs"), ("python-code", "pycode"), ("korean-law", "korean-law")):
        write_jsonl(directory / f"{name}-bpb.jsonl", [{"text": t} for t in held_out_passages(source, BPB_PASSAGES)])
    cloze = cloze_items(CLOZE_TEST + CLOZE_SHOTS)
    write_jsonl(directory / "python-cloze-train.jsonl", cloze[:CLOZE_SHOTS])
    write_jsonl(directory / "python-cloze.jsonl", cloze[CLOZE_SHOTS:])
    _, test = make_suite(0, SUITE_TEST + SUITE_SHOTS, seed=0)
    rows = [{"task": r.task, "prompt": r.prompt, "answer": r.answer} for r in test]
    shots = [row for i, row in enumerate(rows) if i % (SUITE_TEST + SUITE_SHOTS) < SUITE_SHOTS]
    write_jsonl(directory / "instructions-train.jsonl", shots)
    write_jsonl(directory / "instructions.jsonl", [row for row in rows if row not in shots])


if __name__ == "__main__":
    build()
