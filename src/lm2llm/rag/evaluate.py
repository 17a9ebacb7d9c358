"""Measure retrieval and grounded answering on a question set with gold answers and gold passages.

A question set is `encyclopedia-en` / `encyclopedia-ko` (the fictional encyclopedia, whose gold article
is known) or a JSON Lines / JSON file of `{"question", "answer", "gold_origin"?}` records (`gold_origin`
names the document a correct passage comes from, as the index's chunks name it).

- retrieval: recall@k and MRR (within the first 10) per mode;
- answers: accuracy (`answer_match`) closed-book and with retrieval; the share of answer sentences not
  supported by the passages (closed-book sentences are checked against the same retrieved passages, so
  both rates ask the same thing: could the text have come from the corpus?); ALCE citation recall and
  precision; how often the answer cites the gold passage; and the AUROC with which the groundedness
  score separates right from wrong RAG answers (hallucination detection).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lm2llm.errors import UserError
from lm2llm.prompting.scoring import answer_match, proportion_interval
from lm2llm.rag import encyclopedia
from lm2llm.rag.grounding import OVERLAP_THRESHOLD, check_answer
from lm2llm.rag.index import MODES, RagIndex
from lm2llm.rag.metrics import auroc, recall_at_k, reciprocal_rank

KS = (1, 3, 5, 10)


@dataclass(frozen=True)
class QAItem:
    question: str
    answer: str
    gold_origin: str | None = None


def load_task(task: str, limit: int | None = None) -> list[QAItem]:
    """The questions of a task name or file, at most `limit` (spread evenly over the set when cut)."""
    if task in encyclopedia.SOURCES:
        items = [QAItem(q.question, q.answer, q.gold_origin) for q in encyclopedia.questions(encyclopedia.SOURCES[task])]
    else:
        items = _read_items(Path(task))
    if limit is not None and 0 < limit < len(items):
        step = len(items) / limit
        items = [items[int(i * step)] for i in range(limit)]
    return items


def _read_items(path: Path) -> list[QAItem]:
    from lm2llm.records import read_records

    known = ", ".join(encyclopedia.SOURCES)
    if not path.is_file():
        raise UserError("no such task or file", where=str(path), hint=f"a JSONL file of questions, or one of: {known}")
    items = []
    for line, record in read_records(path, "question file"):
        if not isinstance(record, dict) or not isinstance(record.get("question"), str) or "answer" not in record:
            raise UserError("each record needs a 'question' string and an 'answer'", where=f"{path}:{line}")
        items.append(QAItem(record["question"], str(record["answer"]), record.get("gold_origin")))
    if not items:
        raise UserError("the question file is empty", where=str(path))
    return items


def evaluate_retrieval(index: RagIndex, items: Sequence[QAItem], modes: Sequence[str] = MODES) -> dict:
    """{mode: {"recall@k": ..., "mrr": ..., "n": ...}} over the items that name a gold passage."""
    gold = [item for item in items if item.gold_origin]
    if not gold:
        raise UserError("no question names its gold passage (gold_origin): retrieval cannot be scored")
    if index.embeddings is None:
        modes = [m for m in modes if m == "bm25"]
    report = {}
    for mode in modes:
        ranked = [[h.chunk.origin for h in index.search(item.question, max(KS), mode)] for item in gold]
        scores = {f"recall@{k}": sum(recall_at_k(r, i.gold_origin, k) for r, i in zip(ranked, gold, strict=True))
                  / len(gold) for k in KS}
        scores["mrr"] = sum(reciprocal_rank(r, i.gold_origin) for r, i in zip(ranked, gold, strict=True)) / len(gold)
        report[mode] = {**scores, "n": len(gold)}
    return report


def _rate(hits: Sequence[bool]) -> dict:
    n, s = len(hits), sum(hits)
    low, high = proportion_interval(s, n)
    return {"rate": s / n if n else 0.0, "low": low, "high": high, "n": n}


def evaluate_answers(generator, index: RagIndex, items: Sequence[QAItem], *, k: int = 5, mode: str = "hybrid",
                     max_new_tokens: int = 48, examples: int = 6) -> dict:
    """Closed-book against RAG on the same questions (greedy decoding), with example rows of both kinds."""
    from lm2llm.inference.sampling import SamplingConfig
    from lm2llm.rag.answer import answer_closed_book, answer_with_retrieval

    config = SamplingConfig(max_new_tokens=max_new_tokens, temperature=0)
    questions = [item.question for item in items]
    rag = answer_with_retrieval(generator, index, questions, k=k, mode=mode, config=config)
    closed = answer_closed_book(generator, questions, config)
    rag_right = [answer_match(r.answer, i.answer) for r, i in zip(rag, items, strict=True)]
    closed_right = [answer_match(text, i.answer) for (text, *_), i in zip(closed, items, strict=True)]
    closed_checks = [check_answer(text, [h.chunk.text for h in r.hits]) for (text, *_), r in zip(closed, rag, strict=True)]
    rag_sentences = [s.context_support >= OVERLAP_THRESHOLD for r in rag for s in r.groundedness.sentences]
    closed_sentences = [s.context_support >= OVERLAP_THRESHOLD for c in closed_checks for s in c.sentences]
    gold_cited = [i.gold_origin in {r.hits[n - 1].chunk.origin for n in r.cited}
                  for r, i in zip(rag, items, strict=True) if i.gold_origin]
    rows = [{"question": i.question, "gold": i.answer, "closed_book": text, "closed_book_right": cr,
             "rag": r.answer, "rag_right": rr, "cited": [r.hits[n - 1].chunk.origin for n in r.cited],
             "gold_origin": i.gold_origin, "groundedness": r.groundedness.score}
            for i, (text, *_), r, cr, rr in zip(items, closed, rag, closed_right, rag_right, strict=True)]
    invented_then_fixed = [row for row in rows if not row["closed_book_right"] and row["rag_right"]]
    rag_failed = [row for row in rows if not row["rag_right"]]
    return {
        "n": len(items), "k": k, "mode": mode,
        "accuracy": {"closed_book": _rate(closed_right), "rag": _rate(rag_right)},
        "unsupported_sentences": {"closed_book": _rate([not s for s in closed_sentences]),
                                  "rag": _rate([not s for s in rag_sentences])},
        "citation_recall": sum(r.groundedness.citation_recall for r in rag) / len(rag),
        "citation_precision": sum(r.groundedness.citation_precision for r in rag) / len(rag),
        "answers_with_citations": _rate([bool(r.cited) for r in rag]),
        "gold_passage_cited": _rate(gold_cited),
        "hallucination_auroc": {"citation_support": auroc([r.groundedness.score for r in rag], rag_right),
                                "faithfulness": auroc([r.groundedness.faithfulness for r in rag], rag_right)},
        "prompt_tokens": {"closed_book": sum(c[1] for c in closed) / len(closed),
                          "rag": sum(r.prompt_tokens for r in rag) / len(rag)},
        "examples": {"fixed_by_rag": invented_then_fixed[:examples], "rag_failed": rag_failed[:examples]},
    }
