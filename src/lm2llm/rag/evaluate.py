"""Measure retrieval and grounded answering on a question set with gold answers and gold passages.

A question set is `encyclopedia-en` / `encyclopedia-ko` (the fictional encyclopedia, whose gold article
is known), `korean-law-qa` (12 hand-written Korean questions about the constitution in `korean-law`, each
with the sentence that answers it as `evidence`), a question-answer task shipped with the evaluation
harness (`stdlib-qa`: questions about Python's standard library, answers with aliases), or a JSON Lines /
JSON file of `{"question", "answer", "aliases"?, "gold_origin"?, "evidence"?}` records (`gold_origin`
names the document a correct passage comes from, as the index's chunks name it).

- retrieval: recall@k and MRR (within the first 10) per mode; a passage is relevant when it comes from
  the gold document, else when it contains the evidence text, else when it contains the answer (or an
  alias) as a whole word (the "top-k retrieval accuracy" of open-domain QA, e.g. DPR);
- answers: accuracy (`answer_match`) closed-book and with retrieval; the share of answer sentences not
  supported by the passages (closed-book sentences are checked against the same retrieved passages, so
  both rates ask the same thing: could the text have come from the corpus?); ALCE citation recall and
  precision on the model's own marks; how often an answer cites (itself or post hoc) a relevant passage;
  and the AUROC with which the groundedness scores (against the cited passages; against all retrieved
  passages) separate right from wrong RAG answers (hallucination detection).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lm2llm.errors import UserError
from lm2llm.prompting.scoring import answer_match
from lm2llm.rag import encyclopedia
from lm2llm.rag.grounding import OVERLAP_THRESHOLD, check_answer
from lm2llm.rag.index import MODES, RagIndex
from lm2llm.rag.metrics import auroc, recall_at_k, reciprocal_rank
from lm2llm.stats import wilson_interval

KS = (1, 3, 5, 10)
KOREAN_LAW_QA = Path(__file__).with_name("korean_law_qa.jsonl")


@dataclass(frozen=True)
class QAItem:
    question: str
    answer: str
    gold_origin: str | None = None
    aliases: tuple[str, ...] = ()
    evidence: str | None = None

    def is_right(self, text: str) -> bool:
        return any(answer_match(text, gold) for gold in (self.answer, *self.aliases))

    def is_relevant(self, chunk) -> bool:
        if self.gold_origin:
            return chunk.origin == self.gold_origin
        if self.evidence:
            return " ".join(self.evidence.split()) in " ".join(chunk.text.split())
        return self.is_right(chunk.text)


def load_task(task: str, limit: int | None = None) -> list[QAItem]:
    """The questions of a task name or file, at most `limit` (a seeded sample, in the set's order, when cut)."""
    if task in encyclopedia.SOURCES:
        items = [QAItem(q.question, q.answer, q.gold_origin) for q in encyclopedia.questions(encyclopedia.SOURCES[task])]
    elif task == "korean-law-qa":
        items = _read_items(KOREAN_LAW_QA)
    elif task in _harness_tasks():
        from lm2llm.evaluate.tasks import find_task

        items = [_item(doc, f"task {task}") for doc in find_task(task).docs()]
    else:
        items = _read_items(Path(task))
    if limit is not None and 0 < limit < len(items):
        import random

        keep = sorted(random.Random(0).sample(range(len(items)), limit))  # seeded, every kind of question
        items = [items[i] for i in keep]
    return items


def _harness_tasks() -> list[str]:
    """Shipped harness tasks whose documents are question/answer pairs."""
    from lm2llm.evaluate.tasks import find_task, shipped_tasks

    return [name for name in shipped_tasks() if "question" in (find_task(name).docs()[:1] or [{}])[0]]


def _item(record: object, where: str) -> QAItem:
    if not isinstance(record, dict) or not isinstance(record.get("question"), str) or "answer" not in record:
        raise UserError("each record needs a 'question' string and an 'answer'", where=where)
    return QAItem(record["question"], str(record["answer"]), record.get("gold_origin"),
                  tuple(str(a) for a in record.get("aliases", ())), record.get("evidence"))


def _read_items(path: Path) -> list[QAItem]:
    from lm2llm.records import read_records

    known = ", ".join([*encyclopedia.SOURCES, "korean-law-qa", *_harness_tasks()])
    if not path.is_file():
        raise UserError("no such task or file", where=str(path), hint=f"a JSONL file of questions, or one of: {known}")
    items = [_item(record, f"{path}:{line}") for line, record in read_records(path, "question file")]
    if not items:
        raise UserError("the question file is empty", where=str(path))
    return items


def evaluate_retrieval(index: RagIndex, items: Sequence[QAItem], modes: Sequence[str] = MODES) -> dict:
    """{mode: {"recall@k": ..., "mrr": ..., "n": ...}}; modes the index cannot run (no vectors) are left out."""
    if index.embeddings is None:
        modes = [m for m in modes if m == "bm25"]
    report = {}
    for mode in modes:
        relevant = [[item.is_relevant(h.chunk) for h in index.search(item.question, max(KS), mode)] for item in items]
        scores = {f"recall@{k}": sum(recall_at_k(r, k) for r in relevant) / len(items) for k in KS}
        scores["mrr"] = sum(reciprocal_rank(r) for r in relevant) / len(items)
        report[mode] = {**scores, "n": len(items)}
    return report


def _rate(hits: Sequence[bool]) -> dict:
    n, s = len(hits), sum(hits)
    low, high = wilson_interval(s, n)
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
    rag_right = [i.is_right(r.answer) for r, i in zip(rag, items, strict=True)]
    closed_right = [i.is_right(text) for (text, *_), i in zip(closed, items, strict=True)]
    closed_checks = [check_answer(text, [h.chunk.text for h in r.hits]) for (text, *_), r in zip(closed, rag, strict=True)]
    rag_sentences = [s.context_support >= OVERLAP_THRESHOLD for r in rag for s in r.groundedness.sentences]
    closed_sentences = [s.context_support >= OVERLAP_THRESHOLD for c in closed_checks for s in c.sentences]
    gold_cited = [any(i.is_relevant(r.hits[n - 1].chunk) for n in r.cited) for r, i in zip(rag, items, strict=True)]
    post_hoc = [r.cited_by == "post-hoc" for r in rag]
    rows = [{"question": i.question, "gold": i.answer, "closed_book": text, "closed_book_right": cr,
             "rag": r.answer, "rag_right": rr, "cited": [r.hits[n - 1].chunk.origin for n in r.cited],
             "gold_origin": i.gold_origin, "cited_by": r.cited_by, "groundedness": r.groundedness.score,
             "context_support": r.groundedness.context_score}
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
        "answers_with_model_citations": _rate([r.cited_by == "model" for r in rag]),
        "answers_cited_post_hoc": _rate(post_hoc),
        "relevant_passage_cited": _rate(gold_cited),
        "hallucination_auroc": {"citation_support": auroc([r.groundedness.score for r in rag], rag_right),
                                "context_support": auroc([r.groundedness.context_score for r in rag], rag_right)},
        "prompt_tokens": {"closed_book": sum(c[1] for c in closed) / len(closed),
                          "rag": sum(r.prompt_tokens for r in rag) / len(rag)},
        "examples": {"fixed_by_rag": invented_then_fixed[:examples], "rag_failed": rag_failed[:examples]},
        "rows": rows,
    }
