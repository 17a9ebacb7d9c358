"""The `--lang ko` report leaves nothing English-only: table headers, row labels, figure text, the last line."""

from __future__ import annotations

from lm2llm.tour.i18n import english_only, translate
from lm2llm.tour.report import _cell, closing_line, render_markdown


def test_glossary_translates_headers_and_leaves_english_reports_alone():
    assert translate("order", "ko") == "차수" and translate("order", "en") == "order"
    assert translate("tokens for 12,345 chars", "ko") == "글자 12,345자의 토큰 수"
    assert not english_only("Kneser-Ney") and not english_only("SmolLM2") and not english_only("TTFT ms")
    assert english_only("held-out perplexity") and not english_only("검증 퍼플렉서티")
    assert _cell(True, "ko") == "예" and _cell(True, "en") == "True" and _cell("order", "ko") == "차수"


def test_korean_report_has_no_english_only_header(quick_tour):
    """Every table header of every chapter reads in Korean (or is a name read the same, e.g. Kneser-Ney)."""
    missing = set()
    for chapter, result, _ in quick_tour.chapters:
        for table in result.tables:
            cells = {cell for row in table.rows for cell in row if isinstance(cell, str)}
            for column in table.columns:
                if column in cells:  # a class name labelling both axes of a confusion matrix
                    continue
                if english_only(translate(column, "ko")):
                    missing.add((chapter.id, column))
    assert not missing, f"add Korean for these headers to lm2llm/tour/i18n.py: {sorted(missing)}"
    report = render_markdown(quick_tour.chapters, "ko", quick=True)
    assert "| order |" not in report and "| 차수 |" in report
    claims = [claim for _, r, _ in quick_tour.chapters for claim in r.claims]
    assert closing_line(quick_tour.html, claims, "ko").startswith("보고서: ")
