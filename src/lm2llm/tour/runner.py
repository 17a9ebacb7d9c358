"""Runs the selected chapters in order, reusing finished ones, and writes the report."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from lm2llm.tour import registry, report
from lm2llm.tour.framework import Chapter, ChapterContext, ChapterResult, load_result, save_result

LANGS = ("en", "ko")


@dataclass
class TourOutcome:
    out_dir: Path
    html: Path
    markdown: Path
    chapters: list[tuple[Chapter, ChapterResult, bool]]  # (chapter, result, reused)


def run_tour(
    out_dir: Path,
    *,
    quick: bool = False,
    lang: str = "en",
    only: list[str] | None = None,
    force: bool = False,
    show_progress: bool = True,
) -> TourOutcome:
    if lang not in LANGS:
        from lm2llm.errors import UserError

        raise UserError(f"unknown language '{lang}'", where="--lang", hint="use en or ko")
    chapters = registry.select(only)
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, ChapterResult] = {}
    done: list[tuple[Chapter, ChapterResult, bool]] = []
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        disable=not show_progress,
    ) as progress:
        for chapter in chapters:
            chapter_dir = out_dir / chapter.slug
            chapter_dir.mkdir(parents=True, exist_ok=True)
            result_path = chapter_dir / "result.json"
            title = f"{chapter.id} {chapter.title.get(lang)}"
            task = progress.add_task(title, total=1.0)
            cached = None if force else load_result(result_path, quick)
            if cached is not None:
                results[chapter.id] = cached
                done.append((chapter, cached, True))
                progress.update(task, completed=1.0, description=f"{title} (reused)")
                continue

            def report_progress(finished: float, total: float, task=task) -> None:
                progress.update(task, completed=min(finished / total, 1.0) if total else 0.0)

            ctx = ChapterContext(chapter_dir, quick, lang, report_progress, results)
            start = time.perf_counter()
            result = chapter.run(ctx)
            result.seconds = round(time.perf_counter() - start, 2)
            save_result(result_path, result, quick)
            results[chapter.id] = result
            done.append((chapter, result, False))
            progress.update(task, completed=1.0)
    html, markdown = report.write(out_dir, done, lang=lang, quick=quick)
    return TourOutcome(out_dir, html, markdown, done)
