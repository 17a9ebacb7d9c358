"""Tour chapters 7.2 (bias) and 7.3 (interpretability), from the session's quick tour, on SmolLM2."""

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
    assert len(result.figures) == 5 and all((quick_tour.out_dir / "ch07_03" / f.path).is_file() for f in result.figures)


@pytest.mark.slow
def test_bias_chapter(quick_tour, smollm2_run):
    result = chapter_result(quick_tour, "7.2")
    crows = result.metrics["crows"]
    assert set(crows) == {"en", "ko"}
    for score in crows.values():
        low, high = score["interval"]
        assert 0 <= low <= score["pct_stereotype"] <= high <= 1
    assert len(result.metrics["templates"]) == 8
    assert len(result.claims) == 3 and (quick_tour.out_dir / "ch07_02" / "template_gaps.png").is_file()
