"""Power laws y = k·x^p fitted as straight lines in log-log space, and bootstrap intervals for any fit.

A power law is a line after taking logs, so ordinary least squares on (log x, log y) gives the exponent
and the prefactor; the bootstrap refits on rows drawn with replacement and reports percentile intervals.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PowerLaw:
    """y = coefficient · x^exponent."""

    coefficient: float
    exponent: float

    def __call__(self, x: float | np.ndarray) -> float | np.ndarray:
        return self.coefficient * np.asarray(x, dtype=float) ** self.exponent


def fit_power_law(x: Sequence[float], y: Sequence[float]) -> PowerLaw:
    """Least squares on log y = log k + p·log x (needs two distinct positive x)."""
    lx, ly = np.log(np.asarray(x, dtype=float)), np.log(np.asarray(y, dtype=float))
    if len(lx) < 2 or np.ptp(lx) == 0:
        raise ValueError("a power law needs at least two distinct x values")
    slope, intercept = np.polyfit(lx, ly, 1)
    return PowerLaw(float(np.exp(intercept)), float(slope))


def bootstrap(rows: Sequence, statistic: Callable[[list], dict[str, float]], *, samples: int = 200,
              seed: int = 0, level: float = 0.9) -> dict[str, tuple[float, float]]:
    """Percentile intervals of each value `statistic` returns, over `samples` resamples of `rows`.

    Resamples on which the statistic cannot be computed (raises ValueError) are skipped, as is usual.
    """
    rng = np.random.default_rng(seed)
    values: dict[str, list[float]] = {}
    for _ in range(samples):
        drawn = [rows[i] for i in rng.integers(0, len(rows), len(rows))]
        try:
            result = statistic(drawn)
        except (ValueError, np.linalg.LinAlgError):
            continue
        for key, value in result.items():
            if np.isfinite(value):
                values.setdefault(key, []).append(value)
    tail = (1 - level) / 2 * 100
    return {key: (float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail))) for key, v in values.items()}
