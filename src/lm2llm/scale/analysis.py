"""Every fit of a sweep, under every parameter convention, and the prediction test.

From the runs (budget C, parameters N under a convention, tokens D, final loss L):
- L(N): each size's lowest loss over the budgets, as (N_c/N)^α_N (Kaplan's form, no irreducible term);
- L(D): the largest size's runs (the least limited by parameters; at least two token counts), as (D_c/D)^α_D;
- approach 2: iso-FLOP minima, N*(C) ∝ C^a, D*(C) ∝ C^b and the frontier L*(C);
- approach 3: the parametric L(N, D) and the compute-optimal split it implies;
each with bootstrap intervals. Under the `non_embedding` and `blocks` conventions the same runs have smaller
N and so larger C = 6ND-per-convention ratios: the tokens-per-parameter answer moves with the convention.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from lm2llm.scale.chinchilla import Parametric, as_start, fit_parametric
from lm2llm.scale.isoflop import approach2
from lm2llm.scale.powerlaw import PowerLaw, bootstrap, fit_power_law

BOOTSTRAP_SAMPLES = 100


def points_of(runs: Sequence[dict], convention: str) -> list[tuple[float, float, float, float]]:
    """(budget, N, D, loss) per run."""
    return [(r["budget"], float(r["params"][convention]), float(r["tokens"]), float(r["val_loss"])) for r in runs]


def _kaplan_laws(points: Sequence[tuple[float, float, float, float]]) -> dict[str, float]:
    best_per_size: dict[float, float] = {}
    for _, n, _, loss in points:
        best_per_size[n] = min(loss, best_per_size.get(n, np.inf))
    sizes = sorted(best_per_size)
    law_n = fit_power_law(sizes, [best_per_size[n] for n in sizes])
    # the largest size whose runs saw at least two different token counts
    per_size = {n: [(d, loss) for _, n_, d, loss in points if n_ == n] for n in sizes}
    largest = next((runs for n, runs in reversed(per_size.items()) if len({d for d, _ in runs}) > 1), [])
    law_d = fit_power_law([d for d, _ in largest], [loss for _, loss in largest])
    return {"alpha_N": -law_n.exponent, "N_c": _critical_scale(law_n), "alpha_D": -law_d.exponent,
            "D_c": _critical_scale(law_d)}


def _critical_scale(law: PowerLaw) -> float:
    """Kaplan's N_c (or D_c) of a fitted k·x^p: (x_c/x)^-p = k·x^p  →  x_c = k^(-1/p), computed in logs (a
    nearly flat law puts x_c beyond any float: inf, which the bootstrap leaves out)."""
    with np.errstate(over="ignore", divide="ignore"):
        return float(np.exp(-math.log(law.coefficient) / law.exponent))


def _kaplan_or_nan(points: Sequence[tuple[float, float, float, float]]) -> dict[str, float]:
    """Kaplan's laws, or NaN where the runs cannot give them (every size trained on one token count)."""
    try:
        return _kaplan_laws(points)
    except ValueError:
        return dict.fromkeys(("alpha_N", "N_c", "alpha_D", "D_c"), math.nan)


def _approach2_values(points: Sequence[tuple[float, float, float, float]], reference_compute: float) -> dict[str, float]:
    fit = approach2([(c, n, loss) for c, n, _, loss in points])
    return {"a": fit.params_law.exponent, "b": fit.tokens_law.exponent,
            "tokens_per_param": fit.tokens_per_param(reference_compute), "frontier_exponent": fit.loss_law.exponent}


def parametric_fit(points: Sequence[tuple[float, float, float, float]], start: Parametric | None = None) -> Parametric:
    n, d, loss = ([p[i] for p in points] for i in (1, 2, 3))
    return fit_parametric(n, d, loss, starts=[as_start(start)] if start else None)[0]


def _optimum(fit: Parametric, compute: float) -> tuple[float, float]:
    try:
        return fit.compute_optimal(compute)
    except ValueError:
        return math.nan, math.nan


def analyse(runs: Sequence[dict], convention: str, *, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> dict[str, Any]:
    """All fits of `runs` with N counted under `convention`, with 90 % bootstrap intervals."""
    points = points_of(runs, convention)
    budgets = sorted({p[0] for p in points})
    reference = budgets[-1]
    a2 = approach2([(c, n, loss) for c, n, _, loss in points])
    parametric = parametric_fit(points)
    n_opt, d_opt = _optimum(parametric, reference)

    def resampled(statistic):
        # resample runs within each budget, so every budget keeps its iso-FLOP curve
        by_budget = [[p for p in points if p[0] == c] for c in budgets]
        rng = np.random.default_rng(seed)

        def draw(_: list) -> dict[str, float]:
            drawn = [group[i] for group in by_budget for i in rng.integers(0, len(group), len(group))]
            return statistic(drawn)
        return bootstrap(list(range(samples)), draw, samples=samples, seed=seed)

    def parametric_values(drawn) -> dict[str, float]:
        fit = parametric_fit(drawn, parametric)
        n, d = _optimum(fit, reference)
        return {"alpha": fit.alpha, "beta": fit.beta, "E": fit.E, "tokens_per_param": d / n}

    return {
        "convention": convention,
        "kaplan": _kaplan_or_nan(points),
        "kaplan_interval": resampled(_kaplan_laws),
        "approach2": {"minima": [vars(m) for m in a2.minima], **_approach2_values(points, reference),
                      "params_law": vars(a2.params_law), "tokens_law": vars(a2.tokens_law),
                      "loss_law": vars(a2.loss_law)},
        "approach2_interval": resampled(lambda drawn: _approach2_values(drawn, reference)),
        "approach3": {**parametric.to_dict(), "a": parametric.beta / (parametric.alpha + parametric.beta),
                      "b": parametric.alpha / (parametric.alpha + parametric.beta),
                      "tokens_per_param": d_opt / n_opt},  # NaN when the fit has no optimum (α or β ≤ 0)
        "approach3_interval": resampled(parametric_values),
        "reference_compute": reference,
    }


def backtest(runs: Sequence[dict], convention: str = "all") -> dict[str, float]:
    """Each approach's error (measured / predicted − 1) on the largest fitted budget's best run, predicted from
    the smaller budgets alone: the prediction test picks its approach by this, before the held-out run exists.
    Approach 2 predicts the frontier L*(C), approach 3 the run's own L(N, D); empty with fewer than 3 budgets."""
    budgets = sorted({r["budget"] for r in runs})
    if len(budgets) < 3:
        return {}
    inner = points_of([r for r in runs if r["budget"] < budgets[-1]], convention)
    best = min((r for r in runs if r["budget"] == budgets[-1]), key=lambda r: r["val_loss"])
    frontier = approach2([(c, n, loss) for c, n, _, loss in inner]).loss_law(budgets[-1])
    errors = {"approach 2": best["val_loss"] / float(frontier) - 1}
    try:
        fit = parametric_fit(inner)
    except ValueError:  # fewer than five runs
        return errors
    errors["approach 3"] = best["val_loss"] / float(fit.loss(best["params"][convention], best["tokens"])) - 1
    return errors


def predict_optimum(runs: Sequence[dict], compute: float, convention: str = "all") -> dict[str, Any]:
    """Before training: the compute-optimal size at `compute` and its loss, by approach 2 (iso-FLOP minima and
    the frontier L*(C)) and approach 3 (the parametric fit); `optimum_from` names the one whose `backtest` error
    is smaller (approach 3 when there is no back-test, approach 2 when the parametric fit has no optimum)."""
    points = points_of(runs, convention)
    fit = parametric_fit(points)
    a2 = approach2([(c, n_, loss) for c, n_, _, loss in points])
    n3, d3 = _optimum(fit, compute)
    errors = {k: v for k, v in backtest(runs, convention).items() if math.isfinite(v)}
    if not math.isfinite(n3):
        source = "approach 2"
    elif errors:
        source = min(errors, key=lambda approach: abs(errors[approach]))
    else:
        source = "approach 3"
    n2 = float(a2.params_law(compute))
    n = n2 if source == "approach 2" else n3
    return {"params": n, "tokens": compute / (6 * n), "optimum_from": source, "backtest": errors,
            "approach2_params": n2, "approach2_loss": float(a2.loss_law(compute)),
            "approach3_params": n3, "approach3_loss": float(fit.loss(n3, d3)) if math.isfinite(n3) else math.nan,
            **{f"fit_{k}": v for k, v in fit.to_dict().items()}}
