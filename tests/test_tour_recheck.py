"""Sensitivity re-checks: a re-checkable chapter runs again at half its step budget (and, in full mode, at
twice it where the chapter affords that), and a measured verdict that changes is marked unstable in both
report languages and in the headline counts (a fake chapter)."""

import pytest

from lm2llm.tour import runner
from lm2llm.tour.framework import Chapter, ChapterResult, Claim, T, demonstration, headline, recheck_claims


def fake_chapter(budgets: list[float], rechecks: bool = True, double: bool = False, timed: bool = False) -> Chapter:
    """One claim that holds at any budget, one that needs more than 60 of its 100 steps, one demonstration.
    (In full mode, re-checks of a chapter that is not `timed` run in a spawned process, where `budgets` is not seen.)"""

    def run(ctx):
        budgets.append(ctx.budget)
        steps = ctx.steps(100)
        return ChapterResult(T("fake", "가짜"), claims=[
            Claim(T("always", "항상"), T(f"{steps} steps", f"{steps}단계"), True),
            Claim(T("needs 60 steps", "60단계 필요"), T(f"{steps} steps", f"{steps}단계"), steps > 60),
            demonstration(T("by construction", "구성상"), T("-", "-"), True)])

    return Chapter("0", T("Fake", "가짜"), run, rechecks=rechecks, recheck_double=double, timed=timed)


@pytest.fixture
def only(monkeypatch):
    def use(chapter: Chapter) -> None:
        monkeypatch.setattr(runner.registry, "select", lambda ids: [chapter])
    return use


def test_a_verdict_that_flips_at_half_budget_is_unstable(tmp_path, only):
    budgets: list[float] = []
    only(fake_chapter(budgets))
    outcome = runner.run_tour(tmp_path, quick=True, recheck=True, show_progress=False)
    assert budgets == [1.0, 0.5]
    claims = outcome.chapters[0][1].claims
    assert claims[0].rechecks == [{"budget": 0.5, "holds": True}] and not claims[0].unstable
    assert claims[1].holds is True and claims[1].rechecks[0]["holds"] is False and claims[1].unstable
    assert claims[2].rechecks == [] and not claims[2].unstable  # demonstrations are not re-checked
    assert headline(claims)["unstable"] == 1 and headline(claims)["rechecked"] == 2
    assert (tmp_path / "ch00_recheck_0.5x").is_dir()
    text = outcome.markdown.read_text(encoding="utf-8")
    assert "1 of 2 re-checked unstable" in text and "⚠ unstable (0.5× budget: ✗ does not hold)" in text
    assert "same at 0.5× budget" in text

    korean = runner.run_tour(tmp_path, quick=True, lang="ko", recheck=True, show_progress=False)
    assert budgets == [1.0, 0.5]  # the re-check is saved with the result: nothing runs again
    text = korean.html.read_text(encoding="utf-8")
    assert "재확인한 2개 중 1개 불안정" in text and "⚠ 불안정 (0.5배 예산: ✗ 불성립)" in text


def test_recheck_is_opt_in_in_quick_mode_and_later_checks_a_cached_result(tmp_path, only):
    budgets: list[float] = []
    only(fake_chapter(budgets))
    first = runner.run_tour(tmp_path, quick=True, show_progress=False)
    assert budgets == [1.0] and headline(first.chapters[0][1].claims)["rechecked"] == 0
    assert "re-checked" not in first.markdown.read_text(encoding="utf-8")
    again = runner.run_tour(tmp_path, quick=True, recheck=True, show_progress=False)
    assert budgets == [1.0, 0.5]  # only the re-check ran
    assert again.chapters[0][2] is True and headline(again.chapters[0][1].claims)["unstable"] == 1


def test_chapters_that_do_not_follow_a_step_budget_are_not_rechecked(tmp_path, only):
    budgets: list[float] = []
    only(fake_chapter(budgets, rechecks=False))
    runner.run_tour(tmp_path, quick=True, recheck=True, show_progress=False)
    assert budgets == [1.0]


def test_a_recheck_must_make_the_same_claims():
    claims = [Claim(T("a", "a"), T("m", "m"), True)]
    with pytest.raises(ValueError, match="claims"):
        recheck_claims(claims, [], 0.5)


def test_full_mode_rechecks_by_default_at_half_and_double_where_affordable(tmp_path, only):
    budgets: list[float] = []
    only(fake_chapter(budgets, double=True, timed=True))
    outcome = runner.run_tour(tmp_path, show_progress=False)  # full mode
    assert budgets == [1.0, 0.5, 2.0]
    claims = outcome.chapters[0][1].claims
    assert [r["budget"] for r in claims[1].rechecks] == [0.5, 2.0] and claims[1].unstable
    assert "same at 0.5×, 2× budget" in outcome.markdown.read_text(encoding="utf-8")
    # a chapter that cannot afford twice its budget is re-checked at half; --no-recheck turns it off
    budgets.clear()
    only(fake_chapter(budgets, timed=True))
    runner.run_tour(tmp_path / "half", show_progress=False)
    assert budgets == [1.0, 0.5]
    budgets.clear()
    runner.run_tour(tmp_path / "none", recheck=False, show_progress=False)
    assert budgets == [1.0]


def test_the_cli_turns_rechecks_on_and_off(cli, tmp_path, only):
    budgets: list[float] = []
    only(fake_chapter(budgets))
    assert cli("tour", "--quick", "--recheck", "--out", tmp_path / "on", "--json").code == 0
    assert budgets == [1.0, 0.5]
    budgets.clear()
    data = cli("tour", "--no-recheck", "--out", tmp_path / "off", "--json").out
    assert budgets == [1.0] and '"recheck_seconds": 0.0' in data


def threads_and_budget(ctx):
    """A module-level chapter (a spawned process must find it): its claim records its budget and torch threads."""
    import torch

    return ChapterResult(T("fake", "가짜"), claims=[
        Claim(T("budget", "예산"), T(f"{ctx.budget} × {torch.get_num_threads()}", "-"), ctx.budget == 1.0)])


def test_a_recheck_alongside_runs_beside_the_main_run_in_its_own_process(tmp_path, only):
    import os

    only(Chapter("0", T("Fake", "가짜"), threads_and_budget, rechecks=True, recheck_alongside=True))
    outcome = runner.run_tour(tmp_path, show_progress=False)  # full mode
    claim = outcome.chapters[0][1].claims[0]
    assert claim.measurement.en == "1.0 × 1"  # the main run on one thread: the re-check has the other core
    assert claim.rechecks == [{"budget": 0.5, "holds": False}] and claim.unstable
    assert (tmp_path / "ch00_recheck_0.5x").is_dir() and os.listdir(tmp_path / "ch00")


def policy_and_budget(ctx):
    """A module-level chapter: it writes down its budget, torch threads and CPU scheduling policy."""
    import os

    import torch

    (ctx.out_dir / "ran.txt").write_text(f"{ctx.budget} {torch.get_num_threads()} {os.sched_getscheduler(0)}")
    return ChapterResult(T("fake", "가짜"), claims=[Claim(T("budget", "예산"), T("-", "-"), ctx.budget == 1.0)])


@pytest.mark.skipif(not hasattr(__import__("os"), "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")
def test_full_mode_rechecks_in_the_background_on_idle_cores_and_finishes_them_before_a_timed_chapter(tmp_path,
                                                                                                      monkeypatch):
    import json
    import os

    seen_before_timing = []

    def timed(ctx):
        saved = json.loads((ctx.chapter_dir("1") / "result.json").read_text(encoding="utf-8"))
        seen_before_timing.append(saved["claims"][0]["rechecks"])
        return ChapterResult(T("timed", "시간 잼"), claims=[Claim(T("t", "t"), T("-", "-"), True)])

    chapters = [Chapter("1", T("Trains", "학습"), policy_and_budget, rechecks=True),
                Chapter("2", T("Times", "시간"), timed, timed=True)]
    monkeypatch.setattr(runner.registry, "select", lambda ids: chapters)
    outcome = runner.run_tour(tmp_path, show_progress=False)  # full mode
    # the re-check ran in the background at the lowest priority on one thread, and was recorded before chapter 2 ran
    budget, threads, policy = (tmp_path / "ch01_recheck_0.5x" / "ran.txt").read_text().split()
    assert (budget, threads, int(policy)) == ("0.5", "1", os.SCHED_IDLE)
    assert seen_before_timing == [[{"budget": 0.5, "holds": False}]]
    assert outcome.chapters[0][1].claims[0].unstable
    assert (tmp_path / "ch01" / "ran.txt").read_text().split()[2] == str(os.sched_getscheduler(0))
