import json
import re
from html.parser import HTMLParser

from lm2llm.tour.registry import all_chapters

SCORE = re.compile(r"accuracy|exact match|win rate", re.IGNORECASE)  # a share of items a model gets right
INTERVAL_IN_TEXT = re.compile(r"\[[-+]?\d")  # "[0.47, 0.63]": a text comparing several scores carries each interval
# Chapters whose accuracy claims still miss a chance level or an interval (#26 item 2), with the helper who owns
# them this session; the test fails when another chapter joins them.
ACCURACY_RULE_GAPS = {
    "9.1": "the ranking claim compares the models' accuracy intervals without printing them",
}


def accuracy_rule_gaps(claims) -> list[str]:
    """The issue's rule: every measured claim that reports an accuracy states its chance level (the `chance`
    field, or in its text) and a 95 % interval (the `interval` field, or in its text when it compares several
    scores). Returns the statements of the claims that break it."""
    gaps = []
    for claim in claims:
        text = claim.measurement.en
        if claim.kind != "measured" or not SCORE.search(text):
            continue
        chance = claim.chance is not None or "chance" in text
        interval = claim.interval is not None or INTERVAL_IN_TEXT.search(text) is not None
        if not (chance and interval):
            gaps.append(claim.statement.en)
    return gaps


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.headings: list[str] = []
        self.text: list[str] = []
        self._in_heading = False

    def handle_starttag(self, tag, attrs):
        self._in_heading = tag in ("h1", "h2", "h3")

    def handle_endtag(self, tag):
        self._in_heading = False

    def handle_data(self, data):
        self.text.append(data)
        if self._in_heading:
            self.headings.append(data)


def _parse(path):
    parser = _Collect()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    return parser


def test_chapters_are_numbered_like_the_guide():
    ids = [c.id for c in all_chapters()]
    assert ids[0] == "0"
    assert ids == sorted(ids, key=lambda i: tuple(int(p) for p in i.split(".")))


def test_tour_chapter_0_writes_report_with_measured_numbers(cli, tmp_path):
    result = cli("tour", "--quick", "--only", "0", "--out", tmp_path, "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    gflops = data["chapters"][0]["metrics"]["matmul"][0]["gflops"]
    report = _parse(tmp_path / "report.html")
    assert any("Your machine" in h for h in report.headings)
    assert f"{gflops:,.0f} GFLOP/s" in "".join(report.text)  # the summary quotes the measured figure
    assert (tmp_path / "report.md").read_text().startswith("# ")
    # finished chapters are reused unless --force
    again = json.loads(cli("tour", "--quick", "--only", "0", "--out", tmp_path, "--json").out)
    assert again["chapters"][0]["reused"] is True
    forced = json.loads(cli("tour", "--quick", "--only", "0", "--out", tmp_path, "--json", "--force").out)
    assert forced["chapters"][0]["reused"] is False


def test_korean_report_has_bilingual_headings(cli, tmp_path):
    assert cli("tour", "--quick", "--only", "0", "--lang", "ko", "--out", tmp_path, "--json").code == 0
    headings = " ".join(_parse(tmp_path / "report.html").headings)
    assert "내 컴퓨터" in headings and "Your machine" in headings


def test_claim_verdicts_are_recorded(cli, tmp_path):
    data = json.loads(cli("tour", "--quick", "--only", "0", "--out", tmp_path, "--json").out)
    for claim in data["chapters"][0]["claims"]:
        assert claim["holds"] in (True, False, None)
        assert claim["kind"] in ("measured", "demonstration") and claim["measurement"]["en"]


def test_whole_quick_tour_reports_every_chapter(quick_tour):
    """The quick tour runs end to end; its time per chapter is recorded for the budget, never asserted."""
    chapters = all_chapters()
    assert [c.id for c, _, _ in quick_tour.chapters] == [c.id for c in chapters]
    text = "".join(_parse(quick_tour.html).text)
    for chapter, result, _ in quick_tour.chapters:
        assert chapter.title.en in text
        assert all(claim.holds in (True, False, None) for claim in result.claims)
        # a score claim states its chance level and its interval, and the interval holds its score
        assert all(claim.kind in ("measured", "demonstration") for claim in result.claims)
        assert all(claim.chance is not None for claim in result.claims if claim.interval is not None)
        assert chapter.id in ACCURACY_RULE_GAPS or accuracy_rule_gaps(result.claims) == [], chapter.id
    print({c.id: (r.seconds, r.cpu_seconds) for c, r, _ in quick_tour.chapters})  # (wall, CPU) seconds


def test_chapters_run_on_the_chosen_threads_and_all_cores_on_request(tmp_path, monkeypatch):
    """Quick chapters run on one torch thread; `ctx.all_cores()` gives a measurement every core; both restore."""
    import os

    import torch

    from lm2llm.tour import runner
    from lm2llm.tour.framework import Chapter, ChapterResult, T

    seen = {}

    def run(ctx):
        seen["chapter"] = torch.get_num_threads()
        with ctx.all_cores():
            seen["all_cores"] = torch.get_num_threads()
        seen["after"] = torch.get_num_threads()
        return ChapterResult(T("s", "s"))

    chapter = Chapter("9", T("threads", "스레드"), run)
    monkeypatch.setattr(runner.registry, "select", lambda only: [chapter])
    before = torch.get_num_threads()
    outcome = runner.run_tour(tmp_path, quick=True, show_progress=False)
    assert seen == {"chapter": 1, "all_cores": os.cpu_count(), "after": 1}
    assert torch.get_num_threads() == before
    assert outcome.chapters[0][1].cpu_seconds >= 0
    runner.run_tour(tmp_path / "two", quick=True, show_progress=False, threads=2)
    assert seen["chapter"] == 2
    assert runner.chapter_threads(quick=False) is None  # full mode keeps torch's default


def test_independent_jobs_run_in_one_thread_processes_in_full_mode(tmp_path):
    """`ctx.in_parallel` and `ctx.alongside`: full mode runs each job in a process of its own on one torch thread,
    in order, and the runner counts the jobs' CPU time; quick mode runs them here."""
    import torch

    from lm2llm.tour.framework import ChapterContext
    from lm2llm.tour.runner import cpu_time

    full, quick = ChapterContext(tmp_path, quick=False, lang="en"), ChapterContext(tmp_path, quick=True, lang="en")
    threads = torch.get_num_threads()
    before = cpu_time()
    assert full.in_parallel(torch.get_num_threads, [(), ()]) == [1, 1]
    assert cpu_time() - before > 0.1  # the workers' time (importing torch) is counted
    assert quick.in_parallel(torch.get_num_threads, [(), ()]) == [torch.get_num_threads()] * 2
    assert full.in_parallel(max, [(3, 4)]) == [4]  # one job runs here
    # `ctx.alongside`: one job in a one-thread process while the chapter goes on; quick mode runs it at once, here
    before = cpu_time()
    with full.alongside(torch.get_num_threads) as pending:
        assert torch.get_num_threads() == threads
    assert pending.result() == 1 and cpu_time() - before > 0.1
    with quick.alongside(max, 3, 4) as done:
        assert done.done() and done.result() == 4


def test_threads_must_be_positive(cli, tmp_path):
    result = cli("tour", "--quick", "--only", "0", "--threads", "0", "--out", tmp_path)
    assert result.code == 2
    assert "--threads" in result.err


def test_headline_counts_measured_claims_and_labels_the_rest():
    from lm2llm.stats import wilson_interval
    from lm2llm.tour.framework import Claim, T, compare_intervals, demonstration, headline
    from lm2llm.tour.report import headline_text

    claims = [Claim(T("a", "a"), T("m", "m"), True), Claim(T("b", "b"), T("m", "m"), False),
              Claim(T("c", "c"), T("m", "m"), None), demonstration(T("d", "d"), T("m", "m"), True)]
    assert headline(claims) == {"measured": 3, "hold": 1, "fail": 1, "inconclusive": 1, "demonstrations": 1,
                                "rechecked": 0, "unstable": 0}
    assert headline_text(claims, "en").startswith("1/3 measured claims hold")
    assert "판단 보류" in headline_text(claims, "ko")
    # overlapping intervals decide nothing; 0 of 16 against 0 of 16 sits at the floor
    assert compare_intervals(wilson_interval(0, 16), wilson_interval(0, 16)) is None
    assert compare_intervals(wilson_interval(12, 16), wilson_interval(1, 16)) is True
    assert compare_intervals(wilson_interval(1, 16), wilson_interval(12, 16)) is False
    low, high = wilson_interval(0, 16)
    assert low == 0.0 and 0.15 < high < 0.25


def test_the_accuracy_rule_needs_a_chance_level_and_an_interval():
    from lm2llm.tour.framework import Claim, T, demonstration

    def claim(text, **fields):
        return Claim(T("s", "s"), T(text, text), True, **fields)

    assert accuracy_rule_gaps([
        claim("accuracy 0.55", chance=0.25, interval=(0.47, 0.63)),
        claim("accuracy BERT 0.55 [0.47, 0.63] vs GPT 0.65 [0.57, 0.72] (chance 0.25)"),
        claim("bits per byte 1.29"),  # not an accuracy
        demonstration(T("s", "s"), T("accuracy 1.00", "accuracy 1.00"), True),
    ]) == []
    assert len(accuracy_rule_gaps([claim("exact match 0.15 → 0.10"), claim("accuracy 0.55", chance=0.25),
                                   claim("win rate 0.55 [0.34, 0.74]")])) == 3


def test_markdown_cells_escape_pipes(tmp_path):
    from lm2llm.tour.framework import Chapter, ChapterResult, Claim, T, Table
    from lm2llm.tour.report import render_markdown

    result = ChapterResult(T("s", "s"), claims=[Claim(T("x | y", "x | y"), T("a|b", "a|b"), None)],
                           tables=[Table(T("t", "t"), ["c|1"], [["v|2\nnext"]])])
    text = render_markdown([(Chapter("0", T("t", "t"), lambda ctx: result), result, False)], "en", True)
    assert "x \\| y" in text and "v\\|2<br>next" in text and "? inconclusive" in text


def test_plain_progress_lines_when_output_is_not_a_terminal(tmp_path, capsys):
    from lm2llm.tour.runner import run_tour

    run_tour(tmp_path, quick=True, only=["0"], show_progress=True)
    out = capsys.readouterr().out
    assert "0 Your machine: started" in out and "0 Your machine: finished in" in out and "tour: 1 chapters in" in out
