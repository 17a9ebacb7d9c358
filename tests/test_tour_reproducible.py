"""Quick-mode budgets are steps, not seconds: the same machine gives the same chapter twice (#27 item 5)."""

from lm2llm.tour.runner import run_tour


def test_chapter_6_2_twice_gives_the_same_claims(tmp_path):
    first, second = (run_tour(tmp_path / name, quick=True, only=["6.2"], show_progress=False).chapters[0][1]
                     for name in ("a", "b"))
    assert [c.holds for c in first.claims] == [c.holds for c in second.claims]
    # everything but the timed KV-cache claim is the same number, not just the same verdict
    timed = [i for i, c in enumerate(first.claims) if "KV cache" in c.statement.en]
    assert len(timed) == 1
    assert [c.measurement.en for i, c in enumerate(first.claims) if i not in timed] == \
        [c.measurement.en for i, c in enumerate(second.claims) if i not in timed]

    def untimed(result):
        return {name: {k: v for k, v in scores.items() if k != "tokens_per_s"}
                for name, scores in result.metrics["settings"].items()}

    assert untimed(first) == untimed(second)  # the same trained model sampled the same way
