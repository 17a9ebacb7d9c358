"""Tour chapter 9.1: the selection table, the Pareto plot and claims computed from the measurements."""

from __future__ import annotations

from conftest import chapter_result


def test_chapter_scores_and_measures_the_tour_models(quick_tour):
    result = chapter_result(quick_tour, "9.1")
    measured = {m["model"]: m for m in result.metrics["measurements"]}
    assert {"GPT (4.3)", "LSTM (4.3)", "KN trigram"} <= set(measured)
    assert all(0 <= m["quality"] <= 1 and m["ttft_ms"] > 0 and m["decode_tps_batch8"] > 0 for m in measured.values())
    assert set(result.metrics["protocols"]) == {"lm-eval rolling", "llama.cpp perplexity", "nanochat bpb"}
    assert len(result.claims) == 2 and all(claim.measurement.en for claim in result.claims)
    assert (quick_tour.out_dir / "ch09_01" / "pareto.png").stat().st_size > 0
