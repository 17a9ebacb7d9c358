"""`lm2llm tour`: the whole journey, one chapter per section of the guide, into one report."""

from __future__ import annotations

from pathlib import Path

import typer

from lm2llm.cli.output import JSON_OPTION, console, print_json
from lm2llm.tour import registry
from lm2llm.tour.report import heading
from lm2llm.tour.runner import run_tour


def tour_command(
    quick: bool = typer.Option(False, "--quick", help="Small budgets: the whole tour in a few minutes."),
    only: list[str] = typer.Option(None, "--only", help="Run only these chapters (e.g. --only 1.1 --only 4.2)."),
    lang: str = typer.Option("en", "--lang", help="Report language: en or ko."),
    out: Path = typer.Option(Path("runs/tour"), "--out", help="Output directory."),
    force: bool = typer.Option(False, "--force", help="Re-run chapters that already finished."),
    threads: int = typer.Option(None, "--threads", min=1,
                                help="Torch threads per chapter (default: 1 with --quick, all cores otherwise)."),
    recheck: bool = typer.Option(None, "--recheck/--no-recheck",
                                 help="Re-run the re-checkable chapters at half their step budgets (full mode: "
                                      "also twice, where affordable) and mark the verdicts that change as "
                                      "unstable. Default: on in full mode, off with --quick."),
    list_chapters: bool = typer.Option(False, "--list", help="List the chapters and exit."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Run the journey and write report.html and report.md."""
    if list_chapters:
        chapters = registry.all_chapters()
        if json_out:
            print_json([{"id": c.id, "title": c.title} for c in chapters])
        else:
            for c in chapters:
                console.print(f"{c.id:>4}  {heading(c.title, lang)}")
        return
    outcome = run_tour(out, quick=quick, lang=lang, only=only or None, force=force, show_progress=not json_out,
                         threads=threads, recheck=recheck)
    if json_out:
        print_json(
            {
                "report_html": outcome.html,
                "report_md": outcome.markdown,
                "chapters": [
                    {"id": c.id, "reused": reused, "seconds": r.seconds, "cpu_seconds": r.cpu_seconds,
                     "recheck_seconds": r.recheck_seconds, "recheck_cpu_seconds": r.recheck_cpu_seconds, "claims": r.claims, "metrics": r.metrics}
                    for c, r, reused in outcome.chapters
                ],
            }
        )
        return
    print_summary(outcome, lang)


def print_summary(outcome, lang: str) -> None:
    """One screen at the end: each chapter's verdicts and time, then the headline and where the report is."""
    from rich.markup import escape
    from rich.table import Table

    from lm2llm.tour.framework import headline
    from lm2llm.tour.report import closing_line

    table = Table(title="lm2llm tour", show_edge=False, pad_edge=False)
    for column, justify in (("§", "right"), ("chapter", "left"), ("✓", "right"), ("✗", "right"), ("?", "right"),
                            ("◦", "right"), ("seconds", "right")):
        table.add_column(column, justify=justify, no_wrap=column != "chapter")
    for chapter, result, reused in outcome.chapters:
        n = headline(result.claims)
        table.add_row(chapter.id, escape(heading(chapter.title, lang)), str(n["hold"]), str(n["fail"]),
                      str(n["inconclusive"]), str(n["demonstrations"]),
                      "reused" if reused else f"{result.seconds + result.recheck_seconds:.0f}")
    console.print(table)
    claims = [claim for _, r, _ in outcome.chapters for claim in r.claims]
    console.print(closing_line(outcome.html, claims, lang), markup=False)


def register(app: typer.Typer) -> None:
    app.command("tour")(tour_command)
