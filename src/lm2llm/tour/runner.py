"""Runs the selected chapters in order, reusing finished ones, and writes the report.

Thread policy: the tour's models are tiny (≤ a few million parameters), and their matmuls are too
small for a second torch thread to pay for its synchronisation; on a machine that is also busy with
other work, OpenMP threads that spin waiting for a descheduled sibling cost several times the CPU of
one thread (measured in docs/architecture.md). So each chapter runs on `chapter_threads(quick)` torch
threads (1 in quick mode), and measurements *of* parallelism opt back in with `ctx.all_cores()`. In full
mode a chapter that trains several models on their own uses every core another way:
`ctx.in_parallel` runs them side by side in one-thread processes, whose CPU time counts in the chapter's
(`cpu_time`). A chapter that declares `recheck_alongside` (its main run leaves a core idle, and it times
nothing the other run could disturb) has its half-budget re-check run at the same time, in a process of its own; both then use one thread.

The other re-checks of full mode run in the background: one worker process on one torch thread at the
lowest CPU priority (`SCHED_IDLE`), so it computes only on cores the chapters leave idle (a chapter waiting
on its slower model, a one-thread phase) and never slows them down for more than an instant. A re-check
changes no later chapter (it only marks verdicts), so it can finish late: before a chapter that declares
`timed` (its claims rest on wall-clock timings, which nothing else may disturb) and before the report, the
runner waits for the re-checks still queued. A timed chapter's own re-checks run in the foreground.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from lm2llm.runs import claim_out
from lm2llm.tour import registry, report
from lm2llm.tour.framework import (
    MEASURED,
    Chapter,
    ChapterContext,
    ChapterResult,
    load_result,
    one_thread,
    recheck_claims,
    save_result,
    torch_threads,
)

LANGS = ("en", "ko")


def chapter_threads(quick: bool, requested: int | None = None) -> int | None:
    """Torch threads for a chapter: `requested` if given, 1 in quick mode, else torch's default (None)."""
    if requested is not None:
        return requested
    return 1 if quick else None


def measure_chapter(chapter: Chapter, folder: Path, quick: bool, lang: str, results: dict[str, ChapterResult],
                    budget: float, threads: int | None, progress=None) -> ChapterResult:
    """One run of `chapter` at `budget` in `folder`, with its wall and CPU seconds (in a spawned process too:
    a chapter pickles by its module-level `run`)."""
    folder.mkdir(parents=True, exist_ok=True)
    ctx = ChapterContext(folder, quick, lang, progress, results, budget=budget)
    start, cpu_start = time.perf_counter(), cpu_time()
    with torch_threads(threads):
        result = chapter.run(ctx)
    result.seconds = round(time.perf_counter() - start, 2)
    result.cpu_seconds = round(cpu_time() - cpu_start, 2)
    return result


def lowest_priority() -> None:
    """A background worker's start: run only where a core is idle (`SCHED_IDLE`, else the largest nice), on
    one torch thread (two threads of which one waits for an idle core would spin on each other)."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        os.nice(19)
    one_thread()


def cpu_time() -> float:
    """CPU seconds of this process and of its finished child processes (`ChapterContext.in_parallel`'s jobs)."""
    times = os.times()
    return time.process_time() + times.children_user + times.children_system


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
    threads: int | None = None,
    recheck: bool | None = None,
) -> TourOutcome:
    """Run the chapters; `threads` overrides the torch threads per chapter (see `chapter_threads`);
    `recheck` (default: in full mode only) re-runs the re-checkable ones at other budgets
    (`Chapter.recheck_budgets`) and marks the verdicts that change."""
    from lm2llm.allocator import keep_freed_memory
    from lm2llm.errors import UserError

    keep_freed_memory()  # the chapters allocate and free the same large activations again and again
    if lang not in LANGS:
        raise UserError(f"unknown language '{lang}'", where="--lang", hint="use en or ko")
    if threads is not None and threads < 1:
        raise UserError(f"--threads must be at least 1, got {threads}", where="--threads",
                        hint="leave it out for the default (1 in quick mode, all cores otherwise)")
    chapters = registry.select(only)
    if recheck is None:
        recheck = not quick  # quick mode is CI's: its time stays as it is
    claim_out(out_dir, "tour", reuse=True)  # finished chapters are reused; nothing else is ever replaced
    results: dict[str, ChapterResult] = {}
    done: list[tuple[Chapter, ChapterResult, bool]] = []
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        disable=not show_progress,
    ) as progress:
        tour_start = time.perf_counter()
        # bars redraw in place, which logs and CI cannot show: there each chapter gets a start and an end line
        plain = show_progress and not progress.console.is_terminal

        def log(text: str) -> None:
            if plain:
                progress.console.print(f"[{time.perf_counter() - tour_start:7.1f} s] {text}", highlight=False)

        background: ProcessPoolExecutor | None = None  # started at the first re-check it runs
        # re-checks queued there: (chapter, its result, where it is saved, budget, the re-check's future)
        queued: list[tuple[Chapter, ChapterResult, Path, float, Future]] = []

        def record_recheck(chapter: Chapter, result: ChapterResult, result_path: Path, budget: float,
                           again: ChapterResult) -> None:
            recheck_claims(result.claims, again.claims, budget)
            result.recheck_seconds = round(result.recheck_seconds + again.seconds, 2)
            result.recheck_cpu_seconds = round(result.recheck_cpu_seconds + again.cpu_seconds, 2)
            save_result(result_path, result, quick)
            flipped = sum(c.kind == MEASURED and any(r["budget"] == budget and r["holds"] != c.holds
                                                     for r in c.rechecks) for c in result.claims)
            log(f"{chapter.id} {chapter.title.get(lang)}: re-check at {budget:g}× finished in {again.seconds:.1f} s, "
                f"{flipped} verdicts changed")

        def settle(wait: bool) -> None:
            """Record the background re-checks that have finished (`wait`: all of them, waiting as needed)."""
            if wait and any(not future.done() for *_, future in queued):
                log(f"waiting for {sum(not future.done() for *_, future in queued)} background re-checks")
            for entry in [entry for entry in queued if wait or entry[-1].done()]:
                queued.remove(entry)
                *where, future = entry
                record_recheck(*where, future.result())

        with ExitStack() as stack:  # on an error too, the background worker is shut down
            for chapter in chapters:
                if chapter.timed:
                    settle(wait=True)  # its timings get the machine to themselves
                chapter_dir = out_dir / chapter.slug
                chapter_dir.mkdir(parents=True, exist_ok=True)
                result_path = chapter_dir / "result.json"
                title = f"{chapter.id} {chapter.title.get(lang)}"
                task = progress.add_task(title, total=1.0)

                def report_progress(finished: float, total: float, task=task) -> None:
                    progress.update(task, completed=min(finished / total, 1.0) if total else 0.0)

                def recheck_dir(budget: float, chapter=chapter) -> Path:
                    return out_dir / f"{chapter.slug}_recheck_{budget:g}x"

                budgets = chapter.recheck_budgets(quick) if recheck else ()
                pending: dict[float, ChapterResult] = {}  # re-checks already run beside the main run
                result = None if force else load_result(result_path, quick)
                reused = result is not None
                if reused:
                    log(f"{title}: reused")
                elif chapter.recheck_alongside and not quick and budgets:
                    log(f"{title}: started, with its re-check at {budgets[0]:g}× its budget alongside (one thread each)")
                    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                        beside = pool.submit(measure_chapter, chapter, recheck_dir(budgets[0]), quick, lang, results,
                                             budgets[0], 1)
                        result = measure_chapter(chapter, chapter_dir, quick, lang, results, 1.0, 1, report_progress)
                        pending[budgets[0]] = beside.result()
                    save_result(result_path, result, quick)
                    log(f"{title}: finished in {result.seconds:.1f} s")
                else:
                    log(f"{title}: started")
                    result = measure_chapter(chapter, chapter_dir, quick, lang, results, 1.0,
                                             chapter_threads(quick, threads), report_progress)
                    save_result(result_path, result, quick)
                    log(f"{title}: finished in {result.seconds:.1f} s")
                for budget in budgets:
                    if not any(c.kind == MEASURED and budget not in {r["budget"] for r in c.rechecks}
                               for c in result.claims):
                        continue  # re-checked at this budget by an earlier run
                    if budget in pending:
                        record_recheck(chapter, result, result_path, budget, pending[budget])
                    elif not quick and not chapter.timed:
                        if background is None:
                            background = stack.enter_context(ProcessPoolExecutor(
                                1, mp_context=multiprocessing.get_context("spawn"), initializer=lowest_priority))
                        queued.append((chapter, result, result_path, budget, background.submit(
                            measure_chapter, chapter, recheck_dir(budget), quick, lang, results, budget, 1)))
                        log(f"{title}: re-check at {budget:g}× its budget queued in the background (idle cores only)")
                    else:
                        progress.update(task, completed=0.0, description=f"{title} (re-check at {budget:g}× budget)")
                        log(f"{title}: re-check at {budget:g}× its budget started")
                        record_recheck(chapter, result, result_path, budget,
                                       measure_chapter(chapter, recheck_dir(budget), quick, lang, results, budget,
                                                       chapter_threads(quick, threads), report_progress))
                settle(wait=False)
                results[chapter.id] = result
                done.append((chapter, result, reused))
                progress.update(task, completed=1.0, description=f"{title} (reused)" if reused else title)
            settle(wait=True)
        log(f"tour: {len(done)} chapters in {time.perf_counter() - tour_start:.1f} s")
    html, markdown = report.write(out_dir, done, lang=lang, quick=quick)
    return TourOutcome(out_dir, html, markdown, done)
