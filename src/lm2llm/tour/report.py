"""The tour report: one self-contained HTML file (figures embedded) and a Markdown twin.

With `--lang ko` headings are bilingual (Korean first, English after) and the prose is Korean; table headers
and recurring row labels go through the glossary of `lm2llm.tour.i18n`.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from lm2llm import __version__
from lm2llm.runs import atomic_write_text
from lm2llm.tour.framework import DEMONSTRATION, Chapter, ChapterResult, Claim, Text, headline
from lm2llm.tour.i18n import translate

UI = {
    "title": Text("lm2llm tour: from n-grams to LLMs", "lm2llm 투어: n-gram에서 LLM까지"),
    "claims": Text("Claims of the guide, checked", "가이드의 주장, 측정으로 확인"),
    "claim": Text("Claim", "주장"),
    "measured": Text("Measured", "측정"),
    "verdict": Text("Verdict", "판정"),
    "holds": Text("holds", "성립"),
    "fails": Text("does not hold", "불성립"),
    "inconclusive": Text("inconclusive", "판단 보류"),
    "demonstration": Text("demonstration (true by construction, not counted)", "시연 (구성상 참, 집계 제외)"),
    "kind": Text("Kind", "종류"),
    "tables": Text("Tables", "표"),
    "figures": Text("Figures", "그림"),
    "samples": Text("Samples", "예시"),
    "contents": Text("Contents", "목차"),
    "summary": Text("Verdicts", "판정 요약"),
    "mode_quick": Text("quick mode: small budgets, numbers are indicative", "빠른 모드: 작은 예산, 수치는 참고용"),
    "mode_full": Text("full mode", "전체 모드"),
    "seconds": Text("seconds", "초"),
    "cpu_seconds": Text("CPU seconds", "CPU 초"),
    "reused": Text("reused from an earlier run", "이전 실행 결과 재사용"),
    "report": Text("report", "보고서"),
    "recheck": Text("re-check", "재확인"),
    "unstable": Text("unstable", "불안정"),
    "stable": Text("same at {budgets} budget", "{budgets} 예산에서도 같음"),
    "flipped": Text("{budget:g}× budget: {verdict}", "{budget:g}배 예산: {verdict}"),
}


def heading(text: Text, lang: str) -> str:
    """Korean reports carry both languages in headings so mixed classrooms can follow."""
    return f"{text.ko} · {text.en}" if lang == "ko" else text.en


def _cell(value: object, lang: str = "en") -> str:
    if isinstance(value, bool) and lang == "ko":
        return "예" if value else "아니오"
    if isinstance(value, float):
        return f"{value:,.4g}"
    if isinstance(value, str):
        return translate(value, lang)
    return str(value)


def _plain_verdict(holds: bool | None, lang: str) -> str:
    if holds is None:
        return "? " + UI["inconclusive"].get(lang)
    return ("✓ " + UI["holds"].get(lang)) if holds else ("✗ " + UI["fails"].get(lang))


def _verdict(claim: Claim, lang: str) -> str:
    """The verdict, and where the claim was re-checked at other budgets, whether it held there too."""
    if claim.kind == DEMONSTRATION:
        return "◦ " + UI["demonstration"].get(lang)
    text = _plain_verdict(claim.holds, lang)
    if not claim.rechecks:
        return text
    if claim.unstable:
        flipped = "; ".join(UI["flipped"].get(lang).format(budget=again["budget"],
                                                           verdict=_plain_verdict(again["holds"], lang))
                            for again in claim.rechecks if again["holds"] != claim.holds)
        return f"{text} · ⚠ {UI['unstable'].get(lang)} ({flipped})"
    unit = "배" if lang == "ko" else "×"
    budgets = ", ".join(f"{again['budget']:g}{unit}" for again in claim.rechecks)
    return f"{text} ({UI['stable'].get(lang).format(budgets=budgets)})"


def _css(claim: Claim) -> str:
    if claim.kind == DEMONSTRATION:
        return "demo"
    return "unsure" if claim.unstable else {True: "ok", False: "no", None: "unsure"}[claim.holds]


def headline_text(claims: list[Claim], lang: str) -> str:
    """"7/9 measured claims hold, 1 inconclusive; 3 demonstrations" in the report's language."""
    n = headline(claims)
    if lang == "ko":
        unstable = f", 재확인한 {n['rechecked']}개 중 {n['unstable']}개 불안정" if n["rechecked"] else ""
        return (f"측정한 주장 {n['measured']}개 중 {n['hold']}개 성립, {n['fail']}개 불성립, {n['inconclusive']}개 판단 보류"
                f"{unstable}; 시연 {n['demonstrations']}개")
    unstable = f", {n['unstable']} of {n['rechecked']} re-checked unstable" if n["rechecked"] else ""
    return (f"{n['hold']}/{n['measured']} measured claims hold, {n['fail']} do not, {n['inconclusive']} inconclusive"
            f"{unstable}; {n['demonstrations']} demonstrations")


def closing_line(html_path: Path, claims: list[Claim], lang: str) -> str:
    """The line a tour ends with: where the report is and what it found, in the report's language."""
    return f"{UI['report'].get(lang)}: {html_path}  ({headline_text(claims, lang)})"


def _md(value: object, lang: str = "en") -> str:
    """A Markdown table cell: `|` escaped and line breaks folded, so a cell never splits the row."""
    return _cell(value, lang).replace("|", "\\|").replace("\n", "<br>")


def _chapter_html(out_dir: Path, chapter: Chapter, result: ChapterResult, reused: bool, lang: str) -> str:
    esc = html.escape
    parts = [f'<section id="{chapter.slug}"><h2>{esc(chapter.id)}. {esc(heading(chapter.title, lang))}</h2>']
    note = f" · {UI['reused'].get(lang)}" if reused else ""
    if result.recheck_seconds:
        note += f" · {UI['recheck'].get(lang)} {result.recheck_seconds:.1f} {UI['seconds'].get(lang)}"
    parts.append(f'<p class="meta">{result.seconds:.1f} {UI["seconds"].get(lang)} · '
                 f'{result.cpu_seconds:.1f} {UI["cpu_seconds"].get(lang)}{note}</p>')
    parts.append(f"<p>{esc(result.summary.get(lang))}</p>")
    if result.claims:
        parts.append(f"<h3>{esc(heading(UI['claims'], lang))}</h3><table class='claims'><tr>")
        parts += [f"<th>{esc(UI[k].get(lang))}</th>" for k in ("claim", "measured", "verdict")]
        parts.append("</tr>")
        for claim in result.claims:
            parts.append(
                f"<tr><td>{esc(claim.statement.get(lang))}</td><td>{esc(claim.measurement.get(lang))}</td>"
                f"<td class='{_css(claim)}'>{esc(_verdict(claim, lang))}</td></tr>"
            )
        parts.append("</table>")
    for table in result.tables:
        parts.append(f"<h3>{esc(heading(table.title, lang))}</h3><table><tr>")
        parts += [f"<th>{esc(_cell(c, lang))}</th>" for c in table.columns]
        parts.append("</tr>")
        for row in table.rows:
            parts.append("<tr>" + "".join(f"<td>{esc(_cell(v, lang))}</td>" for v in row) + "</tr>")
        parts.append("</table>")
    for figure in result.figures:
        path = out_dir / chapter.slug / figure.path
        if not path.exists():
            continue
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        caption = esc(heading(figure.title, lang))
        parts.append(
            f"<figure><img alt='{caption}' src='data:image/png;base64,{data}'><figcaption>{caption}</figcaption></figure>"
        )
    for sample in result.samples:
        parts.append(f"<h3>{esc(heading(sample.title, lang))}</h3><pre>{esc(sample.text)}</pre>")
    parts.append("</section>")
    return "\n".join(parts)


CSS = """
body{font-family:system-ui,'Noto Sans KR','Apple SD Gothic Neo',sans-serif;max-width:980px;margin:2em auto;padding:0 1em;line-height:1.5;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.2em;font-size:.92em}
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3} .ok{color:#14713a;font-weight:600} .no{color:#b3261e;font-weight:600}
.unsure{color:#8a6d00;font-weight:600} .demo{color:#666}
.meta{color:#777;font-size:.85em} pre{background:#f7f7f7;padding:.7em;overflow-x:auto;white-space:pre-wrap}
figure img{max-width:100%} figcaption{color:#555;font-size:.9em}
"""


def render_html(out_dir: Path, done: list[tuple[Chapter, ChapterResult, bool]], lang: str, quick: bool) -> str:
    esc = html.escape
    title = heading(UI["title"], lang)
    mode = UI["mode_quick" if quick else "mode_full"].get(lang)
    claims = [(c, claim) for c, r, _ in done for claim in r.claims]
    total_seconds = sum(r.seconds for _, r, _ in done)
    toc = "".join(
        f"<li><a href='#{c.slug}'>{esc(c.id)}. {esc(heading(c.title, lang))}</a></li>" for c, _, _ in done
    )
    summary_rows = "".join(
        f"<tr><td>{esc(c.id)}</td><td>{esc(claim.statement.get(lang))}</td>"
        f"<td class='{_css(claim)}'>{esc(_verdict(claim, lang))}</td></tr>"
        for c, claim in claims
    )
    body = "\n".join(_chapter_html(out_dir, c, r, reused, lang) for c, r, reused in done)
    return f"""<!DOCTYPE html>
<html lang="{lang}"><head><meta charset="utf-8"><title>{esc(title)}</title><style>{CSS}</style></head>
<body><h1>{esc(title)}</h1>
<p class="meta">lm2llm {__version__} · {esc(mode)} · {esc(headline_text([c for _, c in claims], lang))} · {total_seconds:.0f} {esc(UI['seconds'].get(lang))}</p>
<h2>{esc(heading(UI['contents'], lang))}</h2><ol class="toc">{toc}</ol>
<h2>{esc(heading(UI['summary'], lang))}</h2>
<table><tr><th>#</th><th>{esc(UI['claim'].get(lang))}</th><th>{esc(UI['verdict'].get(lang))}</th></tr>{summary_rows}</table>
{body}
</body></html>
"""


def render_markdown(done: list[tuple[Chapter, ChapterResult, bool]], lang: str, quick: bool) -> str:
    claims = [claim for _, r, _ in done for claim in r.claims]
    total_seconds = sum(r.seconds for _, r, _ in done)
    lines = [f"# {heading(UI['title'], lang)}", "",
             f"_{UI['mode_quick' if quick else 'mode_full'].get(lang)} · {headline_text(claims, lang)} · "
             f"{total_seconds:.0f} {UI['seconds'].get(lang)}_", ""]
    for chapter, result, _ in done:
        lines += [f"## {chapter.id}. {heading(chapter.title, lang)}", "", result.summary.get(lang), ""]
        if result.claims:
            lines += [f"| {UI['claim'].get(lang)} | {UI['measured'].get(lang)} | {UI['verdict'].get(lang)} |", "|---|---|---|"]
            lines += [f"| {_md(c.statement.get(lang))} | {_md(c.measurement.get(lang))} | {_verdict(c, lang)} |"
                      for c in result.claims]
            lines.append("")
        for table in result.tables:
            lines += [f"### {heading(table.title, lang)}", "", "| " + " | ".join(_md(c, lang) for c in table.columns) + " |"]
            lines.append("|" + "---|" * len(table.columns))
            lines += ["| " + " | ".join(_md(v, lang) for v in row) + " |" for row in table.rows]
            lines.append("")
        for figure in result.figures:
            lines += [f"![{heading(figure.title, lang)}]({chapter.slug}/{figure.path})", ""]
        for sample in result.samples:
            lines += [f"### {heading(sample.title, lang)}", "", "```", sample.text, "```", ""]
    return "\n".join(lines)


def write(out_dir: Path, done: list[tuple[Chapter, ChapterResult, bool]], lang: str, quick: bool) -> tuple[Path, Path]:
    html_path = atomic_write_text(out_dir / "report.html", render_html(out_dir, done, lang, quick))
    md_path = atomic_write_text(out_dir / "report.md", render_markdown(done, lang, quick))
    return html_path, md_path
