import json
from html.parser import HTMLParser

from lm2llm.tour.registry import all_chapters


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
        assert isinstance(claim["holds"], bool)
        assert claim["measurement"]["en"]


def test_whole_quick_tour_reports_every_chapter(quick_tour):
    """The quick tour runs end to end; its time per chapter is recorded for the budget, never asserted."""
    chapters = all_chapters()
    assert [c.id for c, _, _ in quick_tour.chapters] == [c.id for c in chapters]
    text = "".join(_parse(quick_tour.html).text)
    for chapter, result, _ in quick_tour.chapters:
        assert chapter.title.en in text
        assert all(isinstance(claim.holds, bool) for claim in result.claims)
    print({c.id: r.seconds for c, r, _ in quick_tour.chapters})
