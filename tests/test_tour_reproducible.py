"""Quick-mode budgets are steps, not seconds: the same machine gives the same chapter twice (#27 item 5).

Chapter 6.2 of the session's quick tour is run once more in a fresh folder (a few seconds on top of the
tour that CI runs anyway) and the two are compared claim by claim."""

from conftest import chapter_result

from lm2llm.tour.runner import run_tour


def test_chapter_6_2_twice_gives_the_same_claims(quick_tour, tmp_path):
    first = chapter_result(quick_tour, "6.2")
    second = run_tour(tmp_path, quick=True, only=["6.2"], show_progress=False).chapters[0][1]
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


def test_a_rechecked_chapter_twice_gives_the_same_verdicts_and_numbers(quick_tour, tmp_path):
    """2.1 follows `ctx.steps`: at the same budget a second run (here with its half-budget re-check, which the
    quick tour leaves out) gives the same losses and verdicts, so a re-check's flips come from the budget."""
    first = chapter_result(quick_tour, "2.1")
    second = run_tour(tmp_path, quick=True, only=["2.1"], recheck=True, show_progress=False).chapters[0][1]
    assert [c.measurement.en for c in first.claims] == [c.measurement.en for c in second.claims]
    assert first.metrics["val_loss"] == second.metrics["val_loss"]
    assert all(c.rechecks == [] for c in first.claims)  # quick mode does not re-check unless asked
    assert [[r["budget"] for r in c.rechecks] for c in second.claims] == [[0.5]] * len(second.claims)
