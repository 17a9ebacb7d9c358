"""Chapter 6.2 runs end to end in quick mode: a trained run, measured settings, computed claims, figures."""

from __future__ import annotations

from conftest import chapter_result


def test_generation_chapter_quick(quick_tour):
    """Read from the session's quick tour (the chapter is not run a second time)."""
    chapter = chapter_result(quick_tour, "6.2")
    assert len(chapter.claims) == 5
    assert all(claim.holds in (True, False, None) for claim in chapter.claims)
    settings = chapter.metrics["settings"]
    assert settings["greedy"]["distinct_2"] <= settings["T=1.5"]["distinct_2"]
    assert all(setting["perplexity"] >= 1 for setting in settings.values())
    folder = quick_tour.out_dir / "ch06_02"
    assert (folder / "sampling.png").is_file() and (folder / "kv_cache.png").is_file()
    assert (folder / "run" / "model.safetensors").is_file()
