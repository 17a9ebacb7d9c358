"""Is an answer supported by the passages it cites? A deterministic check, no network, no NaN.

RAGAS and ALCE judge support with an LLM or an NLI model; users' most frequent complaints about such
scores are that they change between runs, need a remote model, and return NaN (no statements, a failed
call). Here support is measured, not judged:

- **token overlap** (the default): the share of a sentence's content terms (`lm2llm.rag.terms.content_terms`:
  less a short stop list and the citation marks) found in the passages. A sentence is *supported* when the share
  is at least `OVERLAP_THRESHOLD` = 0.75 and every number in it occurs in the passages: a changed year or
  count is the commonest invented fact, and one wrong number among many right words must not pass.
- **embedding similarity** (`embedding_support`): the best cosine between the sentence and a passage
  sentence under all-MiniLM-L6-v2, supported at `EMBEDDING_THRESHOLD` = 0.7.

On top of one `support` function, three scores (each in [0, 1], defined for every input):

- `faithfulness` as RAGAS defines it (supported claims / all claims), with the answer's sentences as the
  claims and all retrieved passages as the context. An answer without claims (empty, "I don't know")
  invents nothing: 1.0, with `claims = 0` reported beside it.
- ALCE **citation recall**: the share of sentences whose cited passages, together, support them (a
  sentence without citations: 0).
- ALCE **citation precision**: the share of citations that are not irrelevant, where a citation is
  irrelevant if it does not support its sentence alone and removing it leaves the sentence as supported as
  before; citations on an unsupported sentence or to a passage that does not exist count as imprecise.
  No citations: 0.

Limitations, stated: overlap cannot see negation ("was not founded in 1630" passes) or a wrong pairing of
right words; the thresholds were set on the fictional encyclopedia, where they separate correct from
invented answers (chapter 7.1 measures the AUROC), not tuned per corpus.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import regex

from lm2llm.rag.chunking import split_sentences
from lm2llm.rag.terms import content_terms, terms

OVERLAP_THRESHOLD = 0.75
EMBEDDING_THRESHOLD = 0.7
_CITATION = regex.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")
_NUMBER = regex.compile(r"\d+(?:[.,]\d+)*")

# support(sentence, passages) -> a degree of support in [0, 1]; `supported` decides with a threshold.
Support = Callable[[str, Sequence[str]], float]


@dataclass(frozen=True)
class AnswerSentence:
    text: str  # without its citation marks
    citations: tuple[int, ...]  # 1-based passage numbers, in the order written


def split_answer(answer: str) -> list[AnswerSentence]:
    """The answer's sentences with the [n] / [n, m] marks each carries. A mark that opens the next sentence
    (`… 1630. [1]`) belongs to the sentence before it."""
    out: list[AnswerSentence] = []
    for span in split_sentences(answer):
        marks = tuple(int(n) for m in _CITATION.findall(span.text) for n in regex.split(r"\s*[,;]\s*", m))
        text = regex.sub(r"\s+([.,;:!?])", r"\1", _CITATION.sub("", span.text)).strip()
        if not regex.search(r"\w", text) and out:  # only citation marks: they belong to the previous sentence
            out[-1] = AnswerSentence(out[-1].text, out[-1].citations + marks)
        elif regex.search(r"\w", text):
            out.append(AnswerSentence(" ".join(text.split()), marks))
    return out




def _numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in _NUMBER.findall(text)}


def overlap_support(sentence: str, passages: Sequence[str]) -> float:
    """Share of the sentence's content terms found in the passages; 0 if a number of the sentence is absent."""
    wanted = content_terms(_CITATION.sub(" ", sentence))
    if not wanted:
        return 1.0  # nothing to check (a bare "Yes."): no content is claimed
    context = " ".join(passages)
    if not _numbers(sentence) <= _numbers(context):
        return 0.0
    have = set(terms(context))
    return sum(t in have for t in wanted) / len(wanted)


def embedding_support(sentence: str, passages: Sequence[str]) -> float:
    """Best cosine (clipped to [0, 1]) between the sentence and any sentence of the passages (MiniLM)."""
    from lm2llm.rag.dense import embed

    pieces = [s.text for p in passages for s in split_sentences(p)]
    if not pieces:
        return 0.0
    vectors = embed([sentence, *pieces])
    return float(np.clip((vectors[1:] @ vectors[0]).max(), 0.0, 1.0))


THRESHOLDS = {overlap_support: OVERLAP_THRESHOLD, embedding_support: EMBEDDING_THRESHOLD}


@dataclass
class SentenceCheck:
    text: str
    citations: tuple[int, ...]
    support: float  # against its cited passages together
    supported: bool
    context_support: float  # against every retrieved passage (RAGAS-style faithfulness)


@dataclass
class Groundedness:
    sentences: list[SentenceCheck] = field(default_factory=list)
    faithfulness: float = 1.0
    citation_recall: float = 0.0
    citation_precision: float = 0.0
    claims: int = 0
    citations: int = 0

    @property
    def unsupported(self) -> list[str]:
        return [s.text for s in self.sentences if not s.supported]

    @property
    def score(self) -> float:
        """One number per answer: the weakest sentence's support against its citations (0 for no sentence)."""
        return min((s.support for s in self.sentences), default=0.0)

    @property
    def context_score(self) -> float:
        """The weakest sentence's support against all retrieved passages (1 for no sentence: nothing claimed);
        unlike `score` it does not depend on the model writing citation marks."""
        return min((s.context_support for s in self.sentences), default=1.0)


def check_answer(answer: str, passages: Sequence[str], support: Support = overlap_support,
                 threshold: float | None = None) -> Groundedness:
    """Score an answer that cites `passages` as [1]..[n] (see the module docstring for the definitions)."""
    threshold = THRESHOLDS.get(support, OVERLAP_THRESHOLD) if threshold is None else threshold

    def cited(numbers: Sequence[int]) -> list[str]:
        return [passages[n - 1] for n in numbers if 1 <= n <= len(passages)]

    def holds(text: str, numbers: Sequence[int]) -> bool:
        return bool(cited(numbers)) and support(text, cited(numbers)) >= threshold

    result = Groundedness()
    precise = 0
    for sentence in split_answer(answer):
        numbers = tuple(dict.fromkeys(sentence.citations))  # a repeated mark is one citation
        degree = support(sentence.text, cited(numbers)) if cited(numbers) else 0.0
        together = bool(cited(numbers)) and degree >= threshold
        context = support(sentence.text, list(passages)) if passages else 0.0
        result.sentences.append(SentenceCheck(sentence.text, numbers, degree, together, context))
        result.citations += len(numbers)
        if together:
            precise += sum(holds(sentence.text, [n]) or not holds(sentence.text, [m for m in numbers if m != n])
                           for n in numbers)
    result.claims = len(result.sentences)
    if result.claims:
        result.faithfulness = sum(s.context_support >= threshold for s in result.sentences) / result.claims
        result.citation_recall = sum(s.supported for s in result.sentences) / result.claims
    result.citation_precision = precise / result.citations if result.citations else 0.0
    return result


def attribute(answer: str, passages: Sequence[str], support: Support = overlap_support,
              threshold: float | None = None) -> tuple[str, list[int]]:
    """Post-hoc citation (ALCE's "post-hoc" baseline): every sentence that carries no valid mark is given
    the passage that supports it best, if that passage passes the threshold. Returns the answer rewritten
    with the marks and the passage numbers added; sentences no passage supports stay uncited."""
    threshold = THRESHOLDS.get(support, OVERLAP_THRESHOLD) if threshold is None else threshold
    out, added = [], []
    for sentence in split_answer(answer):
        marks = [n for n in sentence.citations if 1 <= n <= len(passages)]
        if not marks and passages:
            degrees = [support(sentence.text, [p]) for p in passages]
            best = max(range(len(passages)), key=lambda i: (degrees[i], -i))
            if degrees[best] >= threshold:
                marks = [best + 1]
                added.append(best + 1)
        text = sentence.text
        if marks:
            mark = "".join(f"[{n}]" for n in marks)
            text = f"{text[:-1]} {mark}{text[-1]}" if text[-1] in ".!?" else f"{text} {mark}"
        out.append(text)
    return " ".join(out), added
