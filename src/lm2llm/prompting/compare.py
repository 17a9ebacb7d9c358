"""Is one technique better than another on the same questions? A paired bootstrap of the accuracy gap.

Both techniques answer the same questions, so the gap is measured per question (1, 0 or −1) and resampled
over questions (seeded): the 95 % percentile interval says whether the gap is distinguishable from 0 at
this sample size. "Helps" means the whole interval is above 0, "hurts" below, otherwise "no measurable
difference" — the honest verdict for most techniques on a 135M model with a few dozen questions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def paired_gap(better: Sequence[bool], baseline: Sequence[bool], resamples: int = 2000,
               seed: int = 0) -> tuple[float, float, float]:
    """(mean gap, 2.5th, 97.5th percentile) of accuracy(better) − accuracy(baseline)."""
    gap = np.asarray(better, dtype=np.float64) - np.asarray(baseline, dtype=np.float64)
    if len(gap) == 0:
        return 0.0, 0.0, 0.0
    rng = np.random.default_rng(seed)
    means = gap[rng.integers(0, len(gap), (resamples, len(gap)))].mean(axis=1)
    return float(gap.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def verdict(low: float, high: float) -> str:
    return "helps" if low > 0 else "hurts" if high < 0 else "no measurable difference"
