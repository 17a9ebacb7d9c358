"""Chinchilla's approach 2: for each compute budget, the model size at the bottom of its iso-FLOP curve.

Every run of one budget spent the same compute on a different split between parameters and tokens; a
parabola in log N through their final losses has its minimum at the compute-optimal N*(C), and
D*(C) = C / 6N*. Power laws through those minima give N* ∝ C^a and D* ∝ C^b (Hoffmann et al.: a ≈ b ≈ 0.5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lm2llm.scale.powerlaw import PowerLaw, fit_power_law


@dataclass(frozen=True)
class IsoFlopMinimum:
    compute: float
    params: float
    tokens: float
    loss: float
    interior: bool  # the minimum lies between the smallest and largest size tried (not extrapolated)


def isoflop_minimum(compute: float, params: Sequence[float], losses: Sequence[float]) -> IsoFlopMinimum:
    """The vertex of the parabola L = c2·(log N)² + c1·log N + c0 through one budget's runs."""
    log_n, loss = np.log(np.asarray(params, dtype=float)), np.asarray(losses, dtype=float)
    c2, c1, c0 = np.polyfit(log_n, loss, 2) if len(set(log_n.tolist())) >= 3 else (0.0, 0.0, 0.0)
    vertex = -c1 / (2 * c2) if c2 > 0 else np.nan  # fewer than three sizes (a bootstrap draw): no parabola
    if not log_n.min() <= vertex <= log_n.max():  # no bowl, or its bottom outside the sizes tried: never
        i = int(np.argmin(loss))                   # extrapolate, the best run is the best estimate
        return IsoFlopMinimum(compute, float(np.exp(log_n[i])), compute / (6 * np.exp(log_n[i])), float(loss[i]), False)
    n = float(np.exp(vertex))
    return IsoFlopMinimum(compute, n, compute / (6 * n), float(c0 - c1**2 / (4 * c2)), True)


@dataclass(frozen=True)
class Approach2:
    minima: list[IsoFlopMinimum]
    params_law: PowerLaw  # N*(C)
    tokens_law: PowerLaw  # D*(C)
    loss_law: PowerLaw  # L*(C), the compute frontier

    def tokens_per_param(self, compute: float) -> float:
        return float(self.tokens_law(compute) / self.params_law(compute))


def approach2(runs: Sequence[tuple[float, float, float]]) -> Approach2:
    """`runs`: (budget C, parameters N, final loss) for every run; the minima and their power laws."""
    minima = []
    for compute in sorted({c for c, _, _ in runs}):
        mine = [(n, loss) for c, n, loss in runs if c == compute]
        minima.append(isoflop_minimum(compute, [n for n, _ in mine], [loss for _, loss in mine]))
    if len(minima) < 2:
        raise ValueError("approach 2 needs at least two budgets")
    computes = [m.compute for m in minima]
    return Approach2(minima, fit_power_law(computes, [m.params for m in minima]),
                     fit_power_law(computes, [m.tokens for m in minima]),
                     fit_power_law(computes, [m.loss for m in minima]))
