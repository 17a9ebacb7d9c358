"""Model selection (`lm2llm select`): quality, latency, throughput, memory, size and cost, side by side.

Every model is measured on this machine in the same run, each in a fresh Python process, so that its peak
resident memory (`ru_maxrss` of that process: the model, its KV cache and the evaluation) is its own:

- quality: one task's main score (default python-cloze accuracy) with its standard error;
- time to first token: a 64-token prompt, until the first new token (prefill + one step), median of 3;
- decode tokens/s at batch 1 and 8: greedy continuation of 32 tokens, counted after the first token;
- peak RSS, file size (the weights on disk), and cost per million generated tokens at a stated CPU price
  (`price_per_hour` for this machine, default 0.10 USD/hour: a small 2-vCPU cloud instance; pass yours),
  from the batch-8 rate.

`recommend` ranks the models by a weighted sum of criteria scaled to 0..1 across the models (best = 1),
so "quality=2,latency=1" means quality counts twice; it says which criteria decided.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from lm2llm.errors import UserError

PROMPT = ("The Python standard library offers modules for files, text, numbers, dates, networking and "
          "concurrency. A programmer who wants to read a CSV file, parse JSON or start a thread can")
NEW_TOKENS = 32
DEFAULT_PRICE_PER_HOUR = 0.10
CRITERIA = {  # name → (field, higher is better)
    "quality": ("quality", True), "latency": ("ttft_ms", False), "throughput": ("decode_tps_batch8", True),
    "speed": ("decode_tps_batch1", True), "memory": ("peak_rss_mb", False), "size": ("file_mb", False),
    "cost": ("usd_per_million_tokens", False),
}
DEFAULT_WEIGHTS = {"quality": 2.0, "latency": 1.0, "throughput": 1.0, "memory": 0.5, "size": 0.5, "cost": 1.0}


@dataclass
class Measurement:
    model: str
    task: str
    metric: str
    quality: float
    quality_stderr: float
    ttft_ms: float
    decode_tps_batch1: float
    decode_tps_batch8: float
    peak_rss_mb: float
    file_mb: float
    usd_per_million_tokens: float
    price_per_hour: float


def _directory_mb(path: Path) -> float:
    files = [path / "model.safetensors"] if (path / "model.safetensors").is_file() else list(path.iterdir())
    return sum(f.stat().st_size for f in files if f.is_file()) / 2**20


def _neural_speed(scorer) -> tuple[float, float, float]:
    """(time to first token in ms, decode tokens/s at batch 1, at batch 8), through `TextGenerator.stream`."""
    from lm2llm.inference import SamplingConfig

    prompt = scorer.tokenizer.encode(PROMPT * 4)[:64]
    config = SamplingConfig(temperature=0, max_new_tokens=NEW_TOKENS)

    def timed(batch: int) -> tuple[float, float]:
        start = time.perf_counter()
        first = None
        tokens = 0
        for chunk in scorer.generator.stream([prompt] * batch, config):
            tokens += len(chunk.token_ids)
            if first is None and chunk.token_ids:
                first = time.perf_counter()
        end = time.perf_counter()
        return first - start, (tokens - batch) / max(end - first, 1e-9)

    timed(1)  # warm-up: first calls allocate and pick kernels
    ttft = statistics.median(timed(1)[0] for _ in range(3))
    return ttft * 1000, timed(1)[1], timed(8)[1]


def _ngram_speed(scorer) -> tuple[float, float, float]:
    """The n-gram generates word by word and has nothing to batch: the rate is steps (words, and `</s>` when
    a request ends early) over time across eight requests."""
    from lm2llm.evaluate.requests import Generation

    scorer.generate_until([Generation(PROMPT, (), 1)])  # warm-up, as for the neural models
    first = time.perf_counter()
    scorer.generate_until([Generation(PROMPT, (), 1)])
    ttft = time.perf_counter() - first
    start = time.perf_counter()
    texts = scorer.generate_until([Generation(PROMPT, (), NEW_TOKENS)] * 8)
    steps = sum(min(len(text.split()) + 1, NEW_TOKENS) for text in texts)  # an early `</s>` is a step too
    rate = steps / max(time.perf_counter() - start, 1e-9)
    return ttft * 1000, rate, rate


def measure(model: str, task: str = "python-cloze", limit: int | None = 100, dtype: str = "float32",
            price_per_hour: float = DEFAULT_PRICE_PER_HOUR, threads: int | None = None) -> Measurement:
    """Measure one model in this process (call it in a fresh process: peak RSS is the process's), on
    `threads` torch threads (None: torch's default)."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    from lm2llm.evaluate.loading import load_scorer, model_dir
    from lm2llm.evaluate.runner import HIGHER_IS_BETTER, run_task
    from lm2llm.evaluate.tasks import find_task

    definition = find_task(task)
    scorer = load_scorer(model, dtype=dtype)
    result = run_task(scorer, definition, limit=limit)
    metric = definition.metrics[0]
    if not HIGHER_IS_BETTER.get(metric, True):
        raise UserError(f"select ranks by a score where higher is better; {task} reports {metric}",
                        where="--task", hint="use python-cloze, instructions or stdlib-qa")
    speed = _neural_speed(scorer) if hasattr(scorer, "generator") else _ngram_speed(scorer)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    return Measurement(scorer.name, task, metric, result.metrics[metric], result.stderr[metric], speed[0], speed[1],
                       speed[2], rss_mb, _directory_mb(model_dir(model)),
                       price_per_hour / 3600 / speed[2] * 1e6, price_per_hour)


def measure_in_subprocess(model: str, **options) -> Measurement:
    """`measure` in a fresh interpreter, so each model's peak memory is its own."""
    code = ("import json, sys; from dataclasses import asdict; from lm2llm.evaluate.selection import measure; "
            "print(json.dumps(asdict(measure(sys.argv[1], **json.loads(sys.argv[2])))))")
    source = str(Path(__file__).resolve().parents[2])  # this lm2llm, also when run from a source tree
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", code, model, json.dumps(options)], capture_output=True, text=True,
                          env=env)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"measuring failed: {last}", where=model)
    return Measurement(**json.loads(done.stdout.strip().splitlines()[-1]))


def parse_weights(text: str | None) -> dict[str, float]:
    """"quality=2,latency=1" → weights (unnamed criteria keep their defaults)."""
    weights = dict(DEFAULT_WEIGHTS)
    for part in filter(None, (text or "").split(",")):
        name, _, value = part.partition("=")
        name = name.strip()
        if name not in CRITERIA:
            raise UserError(f"unknown criterion {name!r}", where="--weights", hint=", ".join(CRITERIA))
        try:
            weights[name] = float(value)
        except ValueError:
            raise UserError(f"weight of {name} must be a number, got {value!r}", where="--weights") from None
    return weights


def recommend(measurements: list[Measurement], weights: dict[str, float]) -> dict:
    """Weighted sum of criteria scaled to 0..1 across models; the winner and the criteria that decided."""
    scaled: dict[str, dict[str, float]] = {m.model: {} for m in measurements}
    for name, weight in weights.items():
        field, higher = CRITERIA[name]
        values = [getattr(m, field) for m in measurements]
        low, high = min(values), max(values)
        for m, value in zip(measurements, values, strict=True):
            share = 1.0 if high == low else (value - low) / (high - low)
            scaled[m.model][name] = weight * (share if higher else 1 - share)
    totals = {model: sum(parts.values()) for model, parts in scaled.items()}
    best = max(totals, key=totals.get)
    runner_up = max((m for m in totals if m != best), key=totals.get, default=None)
    decided = [] if runner_up is None else sorted(
        (name for name in weights if scaled[best][name] > scaled[runner_up][name]),
        key=lambda name: scaled[runner_up][name] - scaled[best][name])
    return {"model": best, "scores": totals, "weights": weights, "runner_up": runner_up,
            "why": f"{best} scores {totals[best]:.2f} of {sum(weights.values()):.2f}"
                   + (f", ahead of {runner_up} ({totals[runner_up]:.2f}) on {', '.join(decided)}" if decided else "")}


def pareto_front(measurements: list[Measurement], speed: str = "decode_tps_batch1") -> list[str]:
    """Models no other model beats on both quality and speed."""
    return [m.model for m in measurements
            if not any(o.quality >= m.quality and getattr(o, speed) >= getattr(m, speed)
                       and (o.quality > m.quality or getattr(o, speed) > getattr(m, speed)) for o in measurements)]


def pareto_figure(measurements: list[Measurement], title: str = ""):  # noqa: ANN201 - a matplotlib Figure
    """Quality against decode speed, the Pareto front in red."""
    from lm2llm.tour.plots import plt

    front = set(pareto_front(measurements))
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for m in measurements:
        ax.errorbar(m.decode_tps_batch1, m.quality, yerr=1.96 * m.quality_stderr, fmt="o",
                    color="tab:red" if m.model in front else "tab:gray", capsize=3)
        ax.annotate(m.model, (m.decode_tps_batch1, m.quality), textcoords="offset points", xytext=(5, 5), fontsize=8)
    points = sorted((m.decode_tps_batch1, m.quality) for m in measurements if m.model in front)
    ax.plot(*zip(*points, strict=True), color="tab:red", linestyle="--", linewidth=1, label="Pareto front")
    ax.set_xscale("log")
    ax.set_xlabel("decode tokens/s, batch 1 (log scale)")
    ax.set_ylabel(f"{measurements[0].task} {measurements[0].metric} (±95 %)")
    ax.set_title(title or "quality vs. speed")
    ax.legend(loc="lower left")
    return fig


def pareto_plot(measurements: list[Measurement], path: Path, title: str = "") -> Path:
    """`pareto_figure` saved as PNG at `path`."""
    from lm2llm.tour.plots import plt

    fig = pareto_figure(measurements, title)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)
    return path


def selection_report(models: list[str], out: Path, *, task: str = "python-cloze", limit: int | None = 100,
                     dtype: str = "float32", price_per_hour: float = DEFAULT_PRICE_PER_HOUR,
                     weights: dict[str, float] | None = None, force: bool = False) -> dict:
    """Measure every model, write `select.json` and `pareto.png` into `out`, return the report."""
    from lm2llm.runs import atomic_write_json

    ours = {"select.json", "pareto.png"}
    if out.exists() and any(out.iterdir()):
        names = {p.name for p in out.iterdir()}
        if not names <= ours:
            raise UserError("output directory holds other files", where=str(out), hint="choose an empty --out")
        if not force:
            raise UserError("output directory holds an earlier selection", where=str(out), hint="pass --force")
    if len(models) < 2:
        raise UserError("select compares models: give at least two", where="MODEL")
    measurements = [measure_in_subprocess(m, task=task, limit=limit, dtype=dtype, price_per_hour=price_per_hour)
                    for m in models]
    out.mkdir(parents=True, exist_ok=True)
    report = {"measurements": [asdict(m) for m in measurements], "pareto_front": pareto_front(measurements),
              "recommendation": recommend(measurements, weights or dict(DEFAULT_WEIGHTS)),
              "price_per_hour_usd": price_per_hour}
    pareto_plot(measurements, out / "pareto.png")
    atomic_write_json(out / "select.json", report)
    return report
