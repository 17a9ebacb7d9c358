"""The scores chapter 7.1 and `lm2llm rag eval` report, each defined for every input (no NaN).

Kept in one small module so that it can give way to the evaluation harness's metrics when both exist.
- `recall_at_k`: 1 if the gold passage is among the first k retrieved, else 0; `reciprocal_rank`: 1/rank of
  the gold passage (0 if absent); their means are recall@k and MRR.
- `answer_match`: the gold answer occurs in the prediction after lower-casing, removing punctuation and
  thousands separators and collapsing spaces, as a whole word (a free-form answer "It was founded in 1630
  [1]." is right for gold "1630", "16300" is not); the strict `exact_match` is reported beside it.
- `proportion_interval`: Wilson's 95 % interval of a rate (well-behaved at 0 and 1, where the normal one is
  not); `auroc`: the chance that a random positive scores above a random negative (ties count one half),
  0.5 when either class is empty.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import regex

Z95 = 1.959963984540054


def normalize(text: str) -> str:
    text = regex.sub(r"(?<=\d),(?=\d{3})", "", text.lower())
    return " ".join(regex.sub(r"[\p{P}\p{S}]", " ", text).split())


def answer_match(prediction: str, gold: str) -> bool:
    """The gold answer as a whole word of the prediction; a Korean particle may follow it (`6100명`, `사푸엘에`)."""
    gold_norm = normalize(gold)
    if not gold_norm:
        return False
    left = r"(?<![\p{Latin}\d])" if regex.match(r"[\p{Latin}\d]", gold_norm) else ""
    right = r"(?![\p{Latin}\d])" if regex.match(r"[\p{Latin}\d]", gold_norm[-1]) else ""
    return regex.search(left + regex.escape(gold_norm) + right, normalize(prediction)) is not None


def exact_match(prediction: str, gold: str) -> bool:
    return normalize(prediction) == normalize(gold)


def recall_at_k(retrieved: Sequence[str], gold: str, k: int) -> float:
    return float(gold in retrieved[:k])


def reciprocal_rank(retrieved: Sequence[str], gold: str) -> float:
    return next((1.0 / rank for rank, item in enumerate(retrieved, start=1) if item == gold), 0.0)


def proportion_interval(successes: float, n: int) -> tuple[float, float]:
    """Wilson's 95 % interval for `successes` out of `n` (0, 1 when n = 0)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + Z95**2 / n
    centre = (p + Z95**2 / (2 * n)) / denominator
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def auroc(scores: Sequence[float], positives: Sequence[bool]) -> float:
    """Area under the ROC curve by the Mann–Whitney statistic, ties counted as one half."""
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(positives, dtype=bool)
    pos, neg = s[y], s[~y]
    if len(pos) == 0 or len(neg) == 0:
        return 0.5
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))
