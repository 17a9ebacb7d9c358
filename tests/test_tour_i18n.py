"""The `--lang ko` report leaves nothing English-only: table headers, row labels, figure text, the last line."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from lm2llm.tour.framework import ChapterContext, T
from lm2llm.tour.i18n import _fill as fill
from lm2llm.tour.i18n import english_only, translate
from lm2llm.tour.plots import localise_figure, plt
from lm2llm.tour.report import _cell, closing_line, render_markdown


def test_glossary_translates_headers_and_leaves_english_reports_alone():
    assert translate("order", "ko") == "차수" and translate("order", "en") == "order"
    assert translate("tokens for 12,345 chars", "ko") == "글자 12,345자의 토큰 수"  # a template: "tokens for {} chars"
    assert translate("LSTM (held-out)\nrope (val 2.697)", "ko") == "LSTM (검증)\nRoPE (검증 2.697)"  # parts translated too
    assert translate("yes · no", "ko") == "예 · 아니오" and fill("{1}의 {0}", ["a", "b"]) == "b의 a"
    assert not english_only("Kneser-Ney") and not english_only("SmolLM2") and not english_only("TTFT ms")
    assert not english_only("gpt2-small") and not english_only("245 too_short")  # identifiers as code spells them
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


def _drawn_words(png: Path) -> list[str] | None:
    """The words a tour figure shows, as `ChapterContext.save_figure` lists them in the PNG's Description
    (None: the PNG was saved some other way)."""
    description = Image.open(png).text.get("Description")
    return None if description is None else [line for line in description.split("\n") if line]


def test_a_korean_tour_draws_its_figures_in_korean(tmp_path):
    """Titles, axis labels, legends, annotations and named ticks go through the glossary; numbers, names and
    the tokens of a heat map stay as drawn; an English tour's figures are left alone."""

    def figure() -> object:
        fig, (bars, heat) = plt.subplots(1, 2)
        bars.bar(["English", "Korean"], [1, 2], label="chance")
        bars.set_xlabel("order N")
        bars.set_ylabel("held-out perplexity")
        bars.set_title("tokens for 1,234 chars")
        bars.annotate("perfect head (0.912)", (0, 1))
        bars.legend()
        heat.imshow([[0, 1], [1, 0]])
        heat.set_xticks([0, 1], ["the", "order"])
        heat.set_title("rope (val 2.697)")
        fig.suptitle("LSTM (held-out)")
        return fig

    words = {}
    for lang in ("en", "ko"):
        (tmp_path / lang).mkdir()
        ctx = ChapterContext(tmp_path / lang, quick=True, lang=lang)
        words[lang] = _drawn_words(tmp_path / lang / ctx.save_figure(figure(), "f", T("f", "f")).path)
    assert sorted(words["ko"]) == sorted(["LSTM (검증)", "글자 1,234자의 토큰 수", "RoPE (검증 2.697)", "차수 N",
                                          "검증 퍼플렉서티", "완벽한 헤드 (0.912)", "우연 수준", "영어", "한국어"])
    assert sorted(translate(w, "ko") for w in words["en"]) == sorted(words["ko"]) and "order N" in words["en"]
    fig = figure()
    localise_figure(fig, "ko")
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == ["the", "order"]  # tokens shown as data


def test_korean_report_figures_have_no_english_only_text(quick_tour):
    """Every word of every figure of the tour (run in English: the same figures) reads in Korean through the
    glossary, or is a name, unit, symbol or number read the same (`i18n.NAMES`)."""
    missing = set()
    for chapter, result, _ in quick_tour.chapters:
        for figure in result.figures:
            words = _drawn_words(quick_tour.out_dir / chapter.slug / figure.path)
            assert words is not None, f"{chapter.id} {figure.path} was not saved through ctx.save_figure"
            missing |= {(chapter.id, word) for word in words if english_only(translate(word, "ko"))}
    assert not missing, f"add Korean for these figure texts to lm2llm/tour/glossary_ko.json: {sorted(missing)}"
