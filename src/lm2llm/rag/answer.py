"""Grounded answering: retrieve, number the passages in the prompt, ask for [n] citations, check support.

The prompt lists the k retrieved passages as [1] … [k] and asks for a short answer that cites them; the
answer's marks are resolved back to the passages' origins, and `grounding.check_answer` scores every
sentence against the passages it cites. A small model often leaves the marks out (SmolLM2-135M does,
measured in chapter 7.1): then `grounding.attribute` cites, after the fact, the passage that supports each
sentence best, and the result says so (`cited_by`: "model", "post-hoc" or "none"); the groundedness
scores are always those of the model's own text. A closed-book prompt (the question alone) is the baseline that
shows what the model invents without retrieval. Questions with Hangul get the Korean instructions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import regex

from lm2llm.inference.sampling import SamplingConfig
from lm2llm.inference.text import TextGenerator
from lm2llm.prompting.render import Messages, complete
from lm2llm.rag.grounding import Groundedness, attribute, check_answer, split_answer
from lm2llm.rag.index import Hit, RagIndex

INSTRUCTIONS = {
    "en": ("Answer the question in one short sentence using only the numbered passages. Cite the passages "
           "you used as [1], [2] at the end of the sentence. If the passages do not contain the answer, say you "
           "do not know."),
    "ko": ("번호가 붙은 자료만 사용해 질문에 한 문장으로 짧게 답하세요. 문장 끝에 사용한 자료를 [1], [2]처럼 "
           "표시하세요. 자료에 답이 없으면 모른다고 답하세요."),
}
CLOSED_BOOK = {"en": "Answer the question in one short sentence.", "ko": "질문에 한 문장으로 짧게 답하세요."}
LABELS = {"en": ("Passages", "Question"), "ko": ("자료", "질문")}


def language(text: str) -> str:
    return "ko" if regex.search(r"\p{Hangul}", text) else "en"


def rag_messages(question: str, passages: Sequence[str]) -> Messages:
    lang = language(question)
    numbered = "\n".join(f"[{i}] {' '.join(p.split())}" for i, p in enumerate(passages, start=1))
    heading, asked = LABELS[lang]
    return [{"role": "system", "content": INSTRUCTIONS[lang]},
            {"role": "user", "content": f"{heading}:\n{numbered}\n\n{asked}: {question}"}]


def closed_book_messages(question: str) -> Messages:
    return [{"role": "system", "content": CLOSED_BOOK[language(question)]}, {"role": "user", "content": question}]


@dataclass
class RagAnswer:
    question: str
    answer: str
    hits: list[Hit]
    groundedness: Groundedness
    prompt_tokens: int
    cited: list[int] = field(default_factory=list)  # passage numbers cited (1-based, valid ones)
    cited_by: str = "none"  # "model" (its own marks), "post-hoc" (attributed by the check) or "none"
    with_citations: str = ""  # the answer with the post-hoc marks added (the answer itself when the model cited)

    def to_dict(self) -> dict:
        g = self.groundedness
        return {"question": self.question, "answer": self.answer, "answer_with_citations": self.with_citations,
                "cited_by": self.cited_by, "prompt_tokens": self.prompt_tokens,
                "citations": [{"number": n, "origin": self.hits[n - 1].chunk.origin, "text": self.hits[n - 1].chunk.text}
                              for n in self.cited],
                "passages": [{"number": i, "origin": h.chunk.origin, "score": h.score}
                             for i, h in enumerate(self.hits, start=1)],
                "groundedness": {"faithfulness": g.faithfulness, "citation_recall": g.citation_recall,
                                 "citation_precision": g.citation_precision, "score": g.score,
                                 "unsupported_sentences": g.unsupported}}


def answer_with_retrieval(generator: TextGenerator, index: RagIndex, questions: Sequence[str], *, k: int = 5,
                          mode: str = "hybrid", config: SamplingConfig | None = None) -> list[RagAnswer]:
    """Retrieve k passages per question, answer with citations, check each answer against its passages."""
    config = config or SamplingConfig(max_new_tokens=64, temperature=0)
    retrieved = [index.search(q, k, mode) for q in questions]
    passages = [[h.chunk.text for h in hits] for hits in retrieved]
    replies = complete(generator, [rag_messages(q, p) for q, p in zip(questions, passages, strict=True)], config)
    out = []
    for question, hits, texts, (answer, tokens, _) in zip(questions, retrieved, passages, replies, strict=True):
        cited = sorted({n for s in split_answer(answer) for n in s.citations if 1 <= n <= len(hits)})
        with_citations, cited_by = answer, "model"
        if not cited:
            with_citations, added = attribute(answer, texts)
            cited, cited_by = sorted(set(added)), "post-hoc" if added else "none"
        out.append(RagAnswer(question, answer, hits, check_answer(answer, texts), tokens, cited, cited_by,
                             with_citations))
    return out


def answer_closed_book(generator: TextGenerator, questions: Sequence[str],
                       config: SamplingConfig | None = None) -> list[tuple[str, int, int]]:
    """(answer, prompt tokens, generated tokens) with no passages: what the model says from its weights alone."""
    config = config or SamplingConfig(max_new_tokens=64, temperature=0)
    return complete(generator, [closed_book_messages(q) for q in questions], config)
