"""Chinchilla's approach 3: L(N, D) = E + A/N^α + B/D^β fitted to every run, and the published constants.

As in Hoffmann et al. 2022 (appendix D.2) and Besiroglu et al. 2024's replication: with a = log A,
b = log B, e = log E, minimise the Huber loss (δ = 1e-3) of log L − LSE(a − α·log N, b − β·log D, e)
with L-BFGS from a grid of starting points, keeping the best. The grid spans the exponents; the linear
constants of each grid point come from a least-squares solve, and the best few points are refined. The log form weighs every run's relative
error alike and the Huber loss keeps one bad run from dragging the fit.

Minimising the fitted loss under C = 6·N·D gives the compute-optimal split
N_opt(C) = G·(C/6)^(β/(α+β)), D_opt(C) = G⁻¹·(C/6)^(α/(α+β)), G = (αA / βB)^(1/(α+β)).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import minimize, nnls

HUBER_DELTA = 1e-3


@dataclass(frozen=True)
class Parametric:
    """L(N, D) = E + A/N^alpha + B/D^beta."""

    E: float  # noqa: N815 - the papers' names
    A: float  # noqa: N815
    B: float  # noqa: N815
    alpha: float
    beta: float

    def loss(self, n: float | np.ndarray, d: float | np.ndarray) -> float | np.ndarray:
        return self.E + self.A / np.asarray(n, dtype=float) ** self.alpha + self.B / np.asarray(d, dtype=float) ** self.beta

    def compute_optimal(self, compute: float) -> tuple[float, float]:
        """(N_opt, D_opt) minimising the fitted loss at C = 6·N·D FLOPs (a fit with α or β ≤ 0 has none)."""
        if self.alpha <= 0 or self.beta <= 0:
            raise ValueError(f"no compute-optimal split: alpha {self.alpha:.3g}, beta {self.beta:.3g}")
        g = (self.alpha * self.A / (self.beta * self.B)) ** (1 / (self.alpha + self.beta))
        n = g * (compute / 6) ** (self.beta / (self.alpha + self.beta))
        return n, compute / (6 * n)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


# Published fits (parameters counted with embeddings, tokens of MassiveText).
HOFFMANN_2022 = Parametric(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)
BESIROGLU_2024 = Parametric(E=1.8172, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658)
# Kaplan et al. 2020: L(N, D) = [(N_c/N)^(α_N/α_D) + D_c/D]^α_D, non-embedding parameters, WebText2 tokens.
KAPLAN_2020 = {"alpha_N": 0.076, "alpha_D": 0.095, "N_c": 8.8e13, "D_c": 5.4e13}


def kaplan_loss(n: float, d: float) -> float:
    k = KAPLAN_2020
    return float(((k["N_c"] / n) ** (k["alpha_N"] / k["alpha_D"]) + k["D_c"] / d) ** k["alpha_D"])


def _objective(theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_l: np.ndarray,
               delta: float) -> tuple[float, np.ndarray]:
    """Summed Huber loss of the log-space residuals and its gradient in (a, b, e, alpha, beta)."""
    a, b, e, alpha, beta = theta
    terms = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])
    top = terms.max(axis=0)
    lse = top + np.log(np.exp(terms - top).sum(axis=0))  # numpy's own: scipy's logsumexp costs 20x more here
    r = lse - log_l
    huber = np.where(np.abs(r) <= delta, 0.5 * r**2, delta * (np.abs(r) - 0.5 * delta))
    dr = np.clip(r, -delta, delta)  # dHuber/dr
    w = np.exp(terms - lse)  # softmax weights: d lse / d term
    grad = np.array([
        np.sum(dr * w[0]), np.sum(dr * w[1]), np.sum(dr * w[2]),
        np.sum(dr * w[0] * -log_n), np.sum(dr * w[1] * -log_d),
    ])
    return float(np.sum(huber)), grad


# The starting grid over the exponents (Hoffmann et al.'s range); at each grid point the linear constants
# E, A, B are set by non-negative least squares, which is exact when the exponents are right.
EXPONENT_GRID = np.linspace(0.05, 1.5, 30)
REFINED_STARTS = 4


def grid_starts(log_n: np.ndarray, log_d: np.ndarray, log_l: np.ndarray, delta: float) -> list[np.ndarray]:
    """The `REFINED_STARTS` best starting points (a, b, e, alpha, beta) of the exponent grid."""
    loss = np.exp(log_l)
    scored = []
    for alpha, beta in itertools.product(EXPONENT_GRID, EXPONENT_GRID):
        design = np.stack([np.ones_like(log_n), np.exp(-alpha * log_n), np.exp(-beta * log_d)], axis=1)
        scale = design.max(axis=0)
        (e, a, b), _ = nnls(design / scale, loss)
        e, a, b = (max(v / s, 1e-12) for v, s in zip((e, a, b), scale, strict=True))
        theta = np.log([a, b, e]).tolist() + [alpha, beta]
        scored.append((_objective(np.asarray(theta), log_n, log_d, log_l, delta)[0], theta))
    scored.sort(key=lambda item: item[0])
    return [np.asarray(theta) for _, theta in scored[:REFINED_STARTS]]


def fit_parametric(n: Sequence[float], d: Sequence[float], loss: Sequence[float], *, delta: float = HUBER_DELTA,
                   starts: Sequence[Sequence[float]] | None = None) -> tuple[Parametric, float]:
    """The approach-3 fit (and its Huber objective): L-BFGS from the best grid starts, or from `starts`."""
    log_n, log_d, log_l = (np.log(np.asarray(v, dtype=float)) for v in (n, d, loss))
    if len(log_l) < 5:
        raise ValueError("the parametric fit has five constants: it needs at least five runs")
    best: tuple[float, np.ndarray] = (np.inf, np.zeros(5))
    for start in starts if starts is not None else grid_starts(log_n, log_d, log_l, delta):
        result = minimize(_objective, np.asarray(start, dtype=float), args=(log_n, log_d, log_l, delta), jac=True,
                          method="L-BFGS-B", options={"maxiter": 5000, "ftol": 1e-16, "gtol": 1e-14})
        if np.all(np.isfinite(result.x)) and result.fun < best[0]:
            best = (float(result.fun), result.x)
    if not np.isfinite(best[0]):
        raise ValueError("the parametric fit did not converge from any start")
    a, b, e, alpha, beta = best[1]
    return Parametric(E=float(np.exp(e)), A=float(np.exp(a)), B=float(np.exp(b)), alpha=float(alpha),
                      beta=float(beta)), best[0]


def as_start(fit: Parametric) -> list[float]:
    """A fit as a starting point (a, b, e, alpha, beta), e.g. for bootstrap refits."""
    return [np.log(fit.A), np.log(fit.B), np.log(fit.E), fit.alpha, fit.beta]
