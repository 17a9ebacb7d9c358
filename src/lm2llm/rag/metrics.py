"""Retrieval and hallucination-detection scores for chapter 7.1 and `lm2llm rag eval` (no NaN).

- `recall_at_k`: 1 if the gold passage is among the first k retrieved, else 0; `reciprocal_rank`: 1/rank
  of the gold passage (0 if absent); their means are recall@k and MRR.
- `auroc`: the chance that a random positive scores above a random negative (ties count one half), 0.5
  when either class is empty.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def recall_at_k(retrieved: Sequence[str], gold: str, k: int) -> float:
    return float(gold in retrieved[:k])


def reciprocal_rank(retrieved: Sequence[str], gold: str) -> float:
    return next((1.0 / rank for rank, item in enumerate(retrieved, start=1) if item == gold), 0.0)


def auroc(scores: Sequence[float], positives: Sequence[bool]) -> float:
    """Area under the ROC curve by the Mann–Whitney statistic, ties counted as one half."""
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(positives, dtype=bool)
    pos, neg = s[y], s[~y]
    if len(pos) == 0 or len(neg) == 0:
        return 0.5
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))
