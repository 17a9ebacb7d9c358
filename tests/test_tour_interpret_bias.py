"""Tour chapters 7.2 (bias), 7.3 (interpretability) and 7.4 (ethics and safety), from the session's quick
tour: SmolLM2, the sentence encoder, the safety filter and a 2-layer model grown in the chapter."""

from __future__ import annotations

import pytest
from conftest import chapter_result

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.slow
def test_interpretability_chapter(quick_tour, smollm2_run):
    result = chapter_result(quick_tour, "7.3")
    metrics = result.metrics
    # by construction, not by tuning: the last lens point is the model, patching the whole last residual is the clean run
    assert metrics["lens_last_gap"] < 1e-6
    assert metrics["patching_effect"][-1][-1] == pytest.approx(1.0, abs=1e-3)
    assert metrics["lens_rank"]["renorm"][-1] == 0 == metrics["lens_rank"]["cached_scale"][-1]
    assert 0 < metrics["induction_uniform"] < 0.1
    assert len(result.claims) == 4 and all(c.holds in (True, False, None) for c in result.claims)
    assert len(result.figures) == 6 and all((quick_tour.out_dir / "ch07_03" / f.path).is_file() for f in result.figures)
    grown = metrics["induction_training"]  # quick mode trains a few steps: curves, no claim
    assert grown["score_steps"][0] == 0 and 0.5 <= grown["perfect"] < 0.6


@pytest.mark.slow
def test_bias_chapter(quick_tour, smollm2_run):
    result = chapter_result(quick_tour, "7.2")
    crows = result.metrics["crows"]
    assert set(crows) == {"en", "ko"}
    for score in crows.values():
        low, high = score["interval"]
        assert 0 <= low <= score["pct_stereotype"] <= high <= 1
    assert len(result.metrics["templates"]) == 8
    weat = result.metrics["weat"]
    assert set(weat) == {"flowers-insects/pleasant", "male-female/career-family"}
    assert all(0 < w["p_value"] <= 1 and -2 <= w["effect_size"] <= 2 for w in weat.values())
    # 3 LLM claims, 2 WEAT claims, and the hate-speech split's claim where the comments are present
    assert len(result.claims) in (5, 6) and (quick_tour.out_dir / "ch07_02" / "template_gaps.png").is_file()


def test_ethics_and_safety_chapter(quick_tour):
    result = chapter_result(quick_tour, "7.4")
    filters = result.metrics["filters"]
    ours = filters["rules/lm2llm-bilingual"]
    assert ours["examples"] == 48 and ours["unsafe_share"] == 0.5
    assert ours["recall"]["interval"][0] <= ours["recall"]["value"] <= ours["recall"]["interval"][1]
    assert {e["source"] for e in result.metrics["lineage"]} >= {"python-docs", "korean-law"}
    assert all(c.holds in (True, False, None) for c in result.claims)
