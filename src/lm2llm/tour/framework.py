"""The tour's building blocks: chapters return results, never prose verdicts typed by hand.

A chapter is a module in `lm2llm.tour.chapters` that defines `CHAPTER = Chapter(...)`. Its `run(ctx)`
measures things and returns a `ChapterResult` of tables, figures, samples and `Claim`s. A claim pairs a
statement of the guide (in our own words) with the measurement behind it; `holds` must be computed from
that measurement. Results are saved as JSON so a later tour reuses finished chapters.

Budgets are counted in steps, never in seconds, so the same machine gives the same verdicts run after run.
A chapter whose budgets follow `ctx.steps(...)` declares `rechecks=True`; a re-check (on by default in full
mode, `lm2llm tour --recheck/--no-recheck`) runs it again at `HALF_BUDGET` of its budget, and in full mode
also at `DOUBLE_BUDGET` where the chapter declares `recheck_double=True` (where twice its budget is
affordable), and marks every measured claim whose verdict changes in any of them as *unstable*
(`recheck_claims`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lm2llm.runs import atomic_write_json


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Set torch's intra-op thread count for the block (None: leave it), then restore it."""
    if count is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def parallel_jobs(function: Callable[..., Any], calls: list[tuple], workers: int | None = None) -> list[Any]:
    """`[function(*args) for args in calls]` in fresh processes (spawned: no forked torch state), each on one
    torch thread, `workers` at a time (default: one per core); results in the order of `calls`."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    workers = workers or min(len(calls), os.cpu_count() or 1)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=one_thread) as pool:
        futures = [pool.submit(function, *args) for args in calls]
        return [future.result() for future in futures]


@dataclass
class Text:
    """A string in both report languages."""

    en: str
    ko: str

    def get(self, lang: str) -> str:
        return self.ko if lang == "ko" else self.en


def T(en: str, ko: str) -> Text:  # noqa: N802 - short constructor used throughout the chapters
    return Text(en, ko)


MEASURED = "measured"  # could have come out either way on this model and data: counted in the headline
DEMONSTRATION = "demonstration"  # true by construction or by definition: shown, never counted as checked
CLAIM_KINDS = (MEASURED, DEMONSTRATION)
HALF_BUDGET = 0.5  # the fractions of its step budgets a chapter is re-run with to test its verdicts:
DOUBLE_BUDGET = 2.0  # half always, twice in full mode where the chapter can afford it (`recheck_double`)


@dataclass
class Claim:
    """A statement of the guide, the measurement behind it and its verdict.

    `holds` is True or False, or None when the measurement cannot decide (a difference inside its
    interval, scores at their floor): inconclusive, reported as such rather than as ✓ or ✗. A score
    states its `chance` level and its 95 % `interval` (a pair for one score; the measurement text carries
    the others' when several are compared).
    """

    statement: Text
    measurement: Text
    holds: bool | None
    kind: str = MEASURED
    chance: float | None = None
    interval: tuple[float, float] | None = None
    rechecks: list[dict[str, Any]] = field(default_factory=list)  # [{"budget": 0.5, "holds": verdict there}, ...]

    @property
    def unstable(self) -> bool:
        """A measured claim whose verdict changed (to another verdict, or to or from inconclusive) in a re-check."""
        return self.kind == MEASURED and any(again["holds"] != self.holds for again in self.rechecks)

    def __post_init__(self) -> None:
        if self.kind not in CLAIM_KINDS:
            raise ValueError(f"claim kind must be one of {CLAIM_KINDS}, not {self.kind!r}")
        if self.interval is not None:
            self.interval = (float(self.interval[0]), float(self.interval[1]))


def demonstration(statement: Text, measurement: Text, holds: bool) -> Claim:
    """A claim true by construction (our code refuses it, a split guarantees it): shown, not counted."""
    return Claim(statement, measurement, holds, kind=DEMONSTRATION)


def compare_intervals(better: tuple[float, float], worse: tuple[float, float]) -> bool | None:
    """True when `better` lies wholly above `worse`, False when wholly below, None (inconclusive) when the
    two 95 % intervals overlap."""
    if better[0] > worse[1]:
        return True
    if better[1] < worse[0]:
        return False
    return None


def headline(claims: list[Claim]) -> dict[str, int]:
    """What a report's headline counts: measured claims only, split by verdict, and the demonstrations."""
    measured = [c for c in claims if c.kind == MEASURED]
    return {"measured": len(measured), "hold": sum(c.holds is True for c in measured),
            "fail": sum(c.holds is False for c in measured), "inconclusive": sum(c.holds is None for c in measured),
            "demonstrations": len(claims) - len(measured),
            "rechecked": sum(bool(c.rechecks) for c in measured), "unstable": sum(c.unstable for c in measured)}


def recheck_claims(claims: list[Claim], rechecked: list[Claim], budget: float) -> None:
    """Record on each measured claim its verdict in a re-run at `budget` (`rechecked`: the same chapter's
    claims, in order)."""
    if [c.kind for c in claims] != [c.kind for c in rechecked]:
        raise ValueError(f"the re-check made {len(rechecked)} claims, the run {len(claims)}: a chapter's claims "
                         "must not depend on its budget")
    for claim, again in zip(claims, rechecked, strict=True):
        if claim.kind == MEASURED:
            claim.rechecks = [r for r in claim.rechecks if r["budget"] != budget] + [{"budget": budget, "holds": again.holds}]


@dataclass
class Table:
    title: Text
    columns: list[str]
    rows: list[list[Any]]


@dataclass
class Figure:
    title: Text
    path: str  # relative to the chapter directory


@dataclass
class Sample:
    title: Text
    text: str


@dataclass
class ChapterResult:
    summary: Text
    claims: list[Claim] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0  # wall clock
    cpu_seconds: float = 0.0  # CPU time of the whole process (all threads) while the chapter ran
    recheck_seconds: float = 0.0  # wall clock of the re-checks at other budgets, all together
    recheck_cpu_seconds: float = 0.0  # and their CPU time (all threads): their cost on a busy machine

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ChapterResult:
        return cls(
            summary=Text(**data["summary"]),
            claims=[Claim(Text(**c["statement"]), Text(**c["measurement"]), c["holds"] if c["holds"] is None else bool(c["holds"]),
                          c.get("kind", MEASURED), c.get("chance"), c.get("interval"), c.get("rechecks", []))
                    for c in data["claims"]],
            tables=[Table(Text(**t["title"]), t["columns"], t["rows"]) for t in data["tables"]],
            figures=[Figure(Text(**f["title"]), f["path"]) for f in data["figures"]],
            samples=[Sample(Text(**s["title"]), s["text"]) for s in data["samples"]],
            metrics=data.get("metrics", {}),
            seconds=data.get("seconds", 0.0),
            cpu_seconds=data.get("cpu_seconds", 0.0),
            recheck_seconds=data.get("recheck_seconds", 0.0),
            recheck_cpu_seconds=data.get("recheck_cpu_seconds", 0.0),
        )


class ChapterContext:
    """What a chapter gets: its output directory, the quick flag, progress reporting, earlier results."""

    def __init__(
        self,
        out_dir: Path,
        quick: bool,
        lang: str,
        progress: Callable[[float, float], None] | None = None,
        results: dict[str, ChapterResult] | None = None,
        budget: float = 1.0,
    ):
        self.out_dir = out_dir
        self.quick = quick
        self.lang = lang
        self.budget = budget  # the fraction of its step budgets the chapter runs with (a re-check: 0.5 or 2)
        self._progress = progress or (lambda done, total: None)
        self._results = results if results is not None else {}

    def all_cores(self) -> AbstractContextManager[None]:
        """Run a measurement *of* parallelism (matmul peak, training throughput) on every core.

        The runner gives chapters few torch threads (`runner.chapter_threads`); a claim about what
        parallel hardware buys must still be measured with all of it.
        """
        return torch_threads(os.cpu_count() or 1)

    def progress(self, done: float, total: float) -> None:
        self._progress(done, total)

    def in_parallel(self, function: Callable[..., Any], calls: list[tuple]) -> list[Any]:
        """`[function(*args) for args in calls]`: independent jobs, e.g. models trained on their own.

        In full mode each job runs in its own process on one torch thread, as many at once as there are
        cores (`parallel_jobs`): the tour's models are too small for a second thread to speed one up, but
        two models training side by side use two cores fully. Quick mode runs them here, one after another
        (starting a process costs more than its jobs save). `function` must be importable by name (a
        module-level function) and its arguments and result picklable; the jobs' CPU time is counted in
        the chapter's (`runner`: children's time).
        """
        if self.quick or len(calls) < 2:
            return [function(*args) for args in calls]
        return parallel_jobs(function, calls)

    @contextmanager
    def alongside(self, function: Callable[..., Any], *args: Any) -> Iterator[Future]:
        """`function(*args)` while the chapter goes on with the block: in full mode in a one-thread process of
        its own (started on entry, waited for on exit), so a long job such as one more training run keeps one
        core busy while the chapter's own work takes the other; in quick mode here, at once (starting a process
        costs more than it saves). The block gets its future; `function` must be importable by name, its
        arguments and result picklable, and its CPU time counts in the chapter's (`runner`: children's time).
        """
        if self.quick:
            done: Future = Future()
            done.set_result(function(*args))
            yield done
            return
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=one_thread) as pool:
            yield pool.submit(function, *args)

    def steps(self, full: int) -> int:
        """A step budget scaled by this run's `budget` (at least 1): what a re-checkable chapter trains for."""
        return max(1, round(full * self.budget))

    def steps_in(self, settings: dict[str, Any]) -> dict[str, Any]:
        """A copy of a chapter's settings with every key that ends in "steps" scaled by `steps`."""
        return {key: self.steps(value) if key.endswith("steps") else value for key, value in settings.items()}

    def result_of(self, chapter_id: str) -> ChapterResult | None:
        return self._results.get(chapter_id)

    def chapter_dir(self, chapter_id: str) -> Path:
        """The output folder of another chapter of this tour, e.g. to load a run it saved (name it in `needs`)."""
        return self.out_dir.parent / slug_of(chapter_id)

    def save_figure(self, fig: Any, name: str, title: Text) -> Figure:
        """Save a matplotlib figure as PNG in the chapter directory and close it.

        Its words are first put into the report's language (`plots.localise_figure`); the PNG's Description
        lists them as drawn, one per line, for readers without the image and for the test of Korean figures.
        """
        from lm2llm.tour.plots import figure_words, localise_figure, plt

        localise_figure(fig, self.lang)
        path = self.out_dir / f"{name}.png"
        tmp = path.with_suffix(".tmp.png")
        fig.savefig(tmp, dpi=110, bbox_inches="tight", metadata={"Description": "\n".join(figure_words(fig))})
        plt.close(fig)
        tmp.replace(path)
        return Figure(title, path.name)


@dataclass
class Chapter:
    id: str  # the guide's section number: "0", "1.1", "4.2", ...
    title: Text
    run: Callable[[ChapterContext], ChapterResult]
    needs: tuple[str, ...] = ()  # chapters whose results this one reads
    rechecks: bool = False  # its measured claims follow `ctx.steps`: a re-check re-runs it at half its budget
    recheck_double: bool = False  # ... and, in full mode, at twice its budget (where that is affordable)
    # full mode runs the half-budget re-check beside the main run, one thread each (`runner`): for a chapter whose
    # main run leaves a core idle and that times nothing the other run could disturb
    recheck_alongside: bool = False
    # its claims rest on wall-clock timings: the runner finishes the background re-checks before it starts, and runs
    # its own re-checks in the foreground
    timed: bool = False

    def recheck_budgets(self, quick: bool) -> tuple[float, ...]:
        """The budgets a re-check runs this chapter at: none, half, or (full mode) half and double."""
        if not self.rechecks:
            return ()
        return (HALF_BUDGET,) if quick or not self.recheck_double else (HALF_BUDGET, DOUBLE_BUDGET)

    @property
    def sort_key(self) -> tuple[int, ...]:
        return tuple(int(part) for part in self.id.split("."))

    @property
    def slug(self) -> str:
        return slug_of(self.id)


def slug_of(chapter_id: str) -> str:
    """A chapter's folder name: "4.3" → "ch04_03"."""
    return "ch" + "_".join(f"{int(p):02d}" for p in chapter_id.split("."))


def save_result(path: Path, result: ChapterResult, quick: bool) -> None:
    atomic_write_json(path, {"quick": quick, "finished": time.time(), **result.to_dict()})


def load_result(path: Path, quick: bool) -> ChapterResult | None:
    """A finished chapter's result, if it was run in the same mode (a quick result never stands in for a full one)."""
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("quick") != quick:
            return None
        return ChapterResult.from_dict(data)
    except (ValueError, KeyError, TypeError):
        return None

