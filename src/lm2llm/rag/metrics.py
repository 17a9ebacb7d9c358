"""Retrieval and hallucination-detection scores for chapter 7.1 and `lm2llm rag eval` (no NaN).

- `recall_at_k`: 1 if a relevant passage is among the first k retrieved, else 0; `reciprocal_rank`:
  1/rank of the first relevant passage (0 if none); their means are recall@k and MRR. Both take the
  ranking as relevance flags, best first.
- `auroc`: the chance that a random positive scores above a random negative (ties count one half), 0.5
  when either class is empty; `auroc_interval`: its 95 % percentile-bootstrap interval (seeded).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def recall_at_k(relevant: Sequence[bool], k: int) -> float:
    return float(any(relevant[:k]))


def reciprocal_rank(relevant: Sequence[bool]) -> float:
    return next((1.0 / rank for rank, hit in enumerate(relevant, start=1) if hit), 0.0)


def auroc(scores: Sequence[float], positives: Sequence[bool]) -> float:
    """Area under the ROC curve by the Mann–Whitney statistic, ties counted as one half."""
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(positives, dtype=bool)
    pos, neg = s[y], s[~y]
    if len(pos) == 0 or len(neg) == 0:
        return 0.5
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def auroc_interval(scores: Sequence[float], positives: Sequence[bool], resamples: int = 1000,
                   seed: int = 0) -> tuple[float, float]:
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(positives, dtype=bool)
    if len(s) == 0:
        return 0.0, 1.0
    rng = np.random.default_rng(seed)
    draws = [auroc(s[i], y[i]) for i in (rng.integers(0, len(s), len(s)) for _ in range(resamples))]
    return float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))
