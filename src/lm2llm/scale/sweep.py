"""`lm2llm scale sweep`: every compute budget × model size, each an ordinary, resumable training run.

For a budget C and a size of N parameters (counted under the `--count` convention, `all` by default) the run
trains on D = C / 6N tokens: steps = D / (batch · block), rounded, so the FLOPs actually spent are recorded
beside the nominal budget. Each run has its own cosine schedule that reaches min_lr at its last step, so
every run is a finished run at its budget, not a snapshot of a longer one (Hoffmann et al.'s correction to
Kaplan et al.). Runs live in `<out>/runs/<budget>_<shape>/`; a finished one is read back instead of
retrained, an interrupted one resumes from its checkpoint. `parallel` runs independent runs side by side,
one torch thread each. An optional tokens-per-parameter window leaves out the runs far from any budget's
optimum (a tiny model given thousands of tokens per parameter, the costliest run of a sweep because small
models are overhead-bound; a large one given a few dozen steps, still in its first transient).
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lm2llm.data.shards import TokenShards
from lm2llm.errors import UserError
from lm2llm.runs import RunDir, atomic_write_json
from lm2llm.scale.shapes import CONVENTIONS, Shape, param_counts, shape_for_width


@dataclass(frozen=True)
class SweepSettings:
    """What every run of a sweep shares."""

    data: str
    context: int = 64
    batch_size: int = 16
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    eval_batches: int = 16
    seed: int = 0
    count: str = "all"  # the convention N is counted in when D = C / 6N is planned


@dataclass(frozen=True)
class RunPlan:
    budget: float
    shape: Shape
    params: dict[str, int]
    steps: int
    out: str

    @property
    def tokens(self) -> int:
        return self.steps * self.tokens_per_step

    tokens_per_step: int = 0


@dataclass
class RunOutcome:
    budget: float
    shape: str
    width: int
    n_layer: int
    params: dict[str, int]
    steps: int
    tokens: int
    flops: float  # 6·N·D actually spent, N under the sweep's convention
    val_loss: float
    seconds: float  # wall time of the training (0 when reused)
    cpu_seconds: float  # CPU time of the training process, all its threads (fair on a shared machine)
    reused: bool
    run: str
    extra: dict[str, Any] = field(default_factory=dict)


def budget_label(budget: float) -> str:
    return f"{budget:.3g}".replace("+", "")  # 1e11, 1.2e11, 3e12


def plan_run(budget: float, shape: Shape, settings: SweepSettings, vocab_size: int, out: Path) -> RunPlan:
    params = param_counts(shape, vocab_size, settings.context)
    tokens_per_step = settings.batch_size * settings.context
    steps = max(1, round(budget / (6 * params[settings.count]) / tokens_per_step))
    return RunPlan(budget, shape, params, steps, str(out / "runs" / f"{budget_label(budget)}_{shape.name}"),
                   tokens_per_step)


def plan_sweep(budgets: Sequence[float], widths: Sequence[int], settings: SweepSettings, out: Path,
               tokens_per_param: tuple[float, float] | None = None) -> list[RunPlan]:
    """Every budget × width, less the runs whose D/N (N under the sweep's convention) lies outside
    `tokens_per_param` when it is given."""
    if settings.count not in CONVENTIONS:
        raise UserError(f"unknown parameter convention {settings.count!r}", where="--count",
                        hint=f"choose from {', '.join(CONVENTIONS)}")
    if not budgets or any(b <= 0 for b in budgets):
        raise UserError("budgets must be positive FLOP counts", where="--budgets")
    vocab = TokenShards(settings.data).vocab_size
    plans = [plan_run(b, shape_for_width(w), settings, vocab, out) for b in budgets for w in widths]
    if tokens_per_param is None:
        return plans
    low, high = tokens_per_param
    return [p for p in plans if low <= p.tokens / p.params[settings.count] <= high]


def _config(plan: RunPlan, settings: SweepSettings, threads: int) -> Any:
    from lm2llm.training import build_config

    return build_config({
        "model": "gpt", **{f"model.{k}": v for k, v in plan.shape.overrides(settings.context).items()},
        "data": settings.data, "out": plan.out, "block_size": settings.context, "batch_size": settings.batch_size,
        "max_steps": plan.steps, "lr": settings.lr, "min_lr": settings.lr * settings.min_lr_ratio,
        "warmup_steps": max(1, min(50, plan.steps // 10)), "schedule": "cosine", "weight_decay": 0.1,
        "eval_every": plan.steps, "eval_batches": settings.eval_batches, "log_every": max(1, plan.steps // 20),
        "checkpoint_every": max(100, plan.steps // 4), "progress": False, "device": "cpu", "dtype": "float32",
        "seed": settings.seed, "sample_tokens": 0, "threads": threads,
    })


def finished_loss(run: RunDir, steps: int) -> float | None:
    """The final validation loss of a run that already finished `steps` steps, else None."""
    records = run.read_metrics()
    done = any(r.get("event") == "finished" and r.get("step") == steps for r in records)
    evals = [r for r in records if "val_loss" in r and r.get("step") == steps]
    return float(evals[-1]["val_loss"]) if done and evals else None


def run_planned(plan: RunPlan, settings: SweepSettings, threads: int = 1) -> RunOutcome:
    """Train one planned run (or read it back when it finished before, or resume it)."""
    from lm2llm.training.checkpoint import find_checkpoint
    from lm2llm.training.run import resume_config, train

    run = RunDir(plan.out)
    if (run / RunDir.CONFIG).is_file():
        saved = resume_config(run.path)
        if saved.trainer.max_steps != plan.steps or saved.data != settings.data:
            raise UserError(f"this run was started with other settings ({saved.trainer.max_steps} steps on "
                            f"{saved.data})", where=plan.out, hint="use another --out, or delete this run")
    outcome = RunOutcome(plan.budget, plan.shape.name, plan.shape.width, plan.shape.n_layer, plan.params, plan.steps,
                         plan.tokens, 6 * plan.params[settings.count] * plan.tokens, 0.0, 0.0, 0.0, True, plan.out)
    loss = finished_loss(run, plan.steps)
    if loss is None:
        start, cpu_start = time.perf_counter(), time.process_time()
        result, _ = train(_config(plan, settings, threads), resume=find_checkpoint(Path(plan.out)) is not None)
        loss = float(result.evals[-1]["val_loss"])
        outcome.seconds, outcome.cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        outcome.reused = False
    outcome.val_loss = loss
    return outcome


def _run_then(plan: RunPlan, settings: SweepSettings, threads: int,
              after: Callable[[RunOutcome], dict[str, Any]] | None) -> RunOutcome:
    """One run, then `after` on it in the same process (its result kept in `extra`)."""
    outcome = run_planned(plan, settings, threads)
    if after is not None:
        if threads:
            import torch

            torch.set_num_threads(threads)  # a reused run never started the trainer, which sets them
        outcome.extra = after(outcome)
    return outcome


def run_plans(plans: Sequence[RunPlan], settings: SweepSettings, *, parallel: int = 1,
              progress: Callable[[int, int], None] | None = None,
              after: Callable[[RunOutcome], dict[str, Any]] | None = None) -> list[RunOutcome]:
    """Every plan, the costliest first; `parallel` > 1 runs them in that many processes of one thread each.
    `after` (picklable when parallel) runs on each finished run in its worker, e.g. to score the model there
    while the other worker still trains."""
    order = sorted(plans, key=lambda p: -p.budget)
    done: list[RunOutcome] = []
    report = progress or (lambda done, total: None)
    if parallel <= 1:
        for plan in order:
            done.append(_run_then(plan, settings, 0, after))
            report(len(done), len(order))
    else:
        context = multiprocessing.get_context("spawn")  # torch and fork do not mix
        with concurrent.futures.ProcessPoolExecutor(parallel, mp_context=context) as pool:
            futures = [pool.submit(_run_then, plan, settings, 1, after) for plan in order]
            for future in concurrent.futures.as_completed(futures):
                done.append(future.result())
                report(len(done), len(order))
    return sorted(done, key=lambda o: (o.budget, o.params["all"]))


def sweep(budgets: Sequence[float], widths: Sequence[int], settings: SweepSettings, out: str | Path, *,
          parallel: int = 1, progress: Callable[[int, int], None] | None = None,
          tokens_per_param: tuple[float, float] | None = None) -> dict[str, Any]:
    """Run (or reuse) the grid (within the `tokens_per_param` window) and write `<out>/sweep.json`."""
    out = Path(out)
    plans = plan_sweep(budgets, widths, settings, out, tokens_per_param)
    start = time.perf_counter()
    outcomes = run_plans(plans, settings, parallel=parallel, progress=progress)
    record = {"settings": asdict(settings), "budgets": list(budgets), "widths": list(widths), "parallel": parallel,
              "tokens_per_param": tokens_per_param, "seconds": round(time.perf_counter() - start, 2), "runs": [asdict(o) for o in outcomes]}
    atomic_write_json(out / "sweep.json", record)
    return record
