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


def bottom_parabola(log_n: np.ndarray, loss: np.ndarray) -> tuple[tuple[float, float, float], np.ndarray]:
    """(c2, c1, c0) of the parabola in log N through the best size and its neighbours, and which runs it used
    (zeros when the best size is the smallest or largest tried: no bowl to fit)."""
    sizes = np.unique(log_n)
    best = int(np.searchsorted(sizes, log_n[np.argmin(loss)]))
    near = np.isin(log_n, sizes[max(0, best - 1):best + 2])
    inside = 0 < best < len(sizes) - 1  # a neighbour on each side
    coefficients = tuple(np.polyfit(log_n[near], loss[near], 2)) if inside else (0.0, 0.0, 0.0)
    return coefficients, near


def isoflop_minimum(compute: float, params: Sequence[float], losses: Sequence[float]) -> IsoFlopMinimum:
    """The vertex of the parabola L = c2·(log N)² + c1·log N + c0 through the bottom of one budget's curve.

    The parabola goes through the best size and its neighbour on each side: far from the bottom an iso-FLOP
    curve is no parabola (a model given a few dozen steps sits near the unigram loss however large it is), and
    a parabola through every size lets those flat arms pull the vertex away from the bowl.
    """
    log_n, loss = np.log(np.asarray(params, dtype=float)), np.asarray(losses, dtype=float)
    (c2, c1, c0), _ = bottom_parabola(log_n, loss)
    vertex = -c1 / (2 * c2) if c2 > 0 else np.nan
    if not log_n.min() <= vertex <= log_n.max():  # no bowl, or its bottom at an edge of the sizes tried: never
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
