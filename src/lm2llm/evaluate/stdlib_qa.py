"""A hand-made factual-QA set about Python's standard library, with reference answers from its docs.

40 questions ("Which module provides ...?", "What does os.getcwd() return?"), each with a short answer,
accepted aliases (`json.loads` or `loads`) and the page of docs.python.org/3/library it comes from. The
first 5 are few-shot examples (`split="train"`), the other 35 the test set. The evaluation task
`stdlib-qa` scores generated answers by exact match and SQuAD F1 against the best alias; the RAG stage
reuses the set (retrieve the docs, then answer) through `load_stdlib_qa`.
"""

from __future__ import annotations

from dataclasses import dataclass

from lm2llm.evaluate import metrics
from lm2llm.evaluate.tasks import TASK_DIR, read_jsonl

FILES = {"test": TASK_DIR / "stdlib-qa.jsonl", "train": TASK_DIR / "stdlib-qa-train.jsonl"}


@dataclass(frozen=True)
class QAItem:
    question: str
    answer: str
    aliases: tuple[str, ...]
    source: str  # the docs page the answer is taken from

    @property
    def references(self) -> tuple[str, ...]:
        return (self.answer, *self.aliases)


def load_stdlib_qa(split: str = "test") -> list[QAItem]:
    """The questions of `split` ("test": 35, "train": 5), in file order."""
    return [QAItem(d["question"], d["answer"], tuple(d["aliases"]), d["source"]) for d in read_jsonl(FILES[split])]


def score_answer(prediction: str, references: tuple[str, ...] | list[str]) -> dict[str, float]:
    """exact_match and f1 of a generated answer: the best over the references, after stripping the answer."""
    answer = prediction.strip()
    return {"exact_match": max(metrics.exact_match(answer, r) for r in references),
            "f1": max(metrics.f1(answer, r) for r in references)}
