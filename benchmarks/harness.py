"""Shared plumbing for benchmarks: machine info, timing, peak memory, and the JSON result file.

Each benchmark script measures lm2llm and its peer *in the same run* and writes
`benchmarks/results/<name>.json` with machine facts, the command, our figures, the peer's figures and
their ratios. Benchmarks are not tests: nothing here asserts a speed.
"""

from __future__ import annotations

import functools
import json
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SHARED_DATA = ROOT.parent / "shared" / "data"


def machine() -> dict[str, Any]:
    import torch

    from lm2llm import env

    report = env.collect(measure_seconds=0)
    return {
        "cpu": report.cpu,
        "cores": report.cores,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "bf16_supported": report.bf16_supported,
        "device": report.device,
    }


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def timer() -> Any:
    box = {"seconds": 0.0}
    start = time.perf_counter()
    try:
        yield box
    finally:
        box["seconds"] = time.perf_counter() - start


def measure_in_subprocess(code: str, timeout: float = 1800) -> dict[str, Any]:
    """Run Python code in a fresh process (for a clean peak-memory figure); it must print one JSON object last."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def write_result(name: str, figures: dict[str, Any], peers: dict[str, Any] | None = None,
                 ratios: dict[str, float] | None = None, notes: str = "") -> Path:
    from lm2llm.runs import atomic_write_json

    payload = {
        "name": name,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "figures": figures,
        "peers": peers or {},
        "ratios": ratios or {},
        "notes": notes,
    }
    path = atomic_write_json(RESULTS / f"{name}.json", payload)
    print(json.dumps(payload, indent=2, ensure_ascii=False))
    return path


def skip(name: str, why: str) -> None:
    print(f"[skip] {name}: {why}")


def best_of(fn: Callable[[], Any], repeats: int = 3) -> float:
    """Fastest wall time of `repeats` calls: the least disturbed by other work on the machine."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


@functools.cache
def stream_tensor(gib: float = 1.0) -> Any:
    """A float32 tensor of `gib` GiB of ones, in 2 MB pages where the system has them, as our CPU layouts keep
    the weights (`inference.pages`): a 1 GiB sum there read 70.7 GB/s where a tensor torch allocated read 51.8,
    and a bandwidth bound is the most the machine delivers."""
    import torch

    from lm2llm.inference.pages import huge_page_buffer

    nbytes = int(gib * 2**30)
    buffer = huge_page_buffer(nbytes)
    return torch.ones(nbytes // 4) if buffer is None else buffer.view(torch.float32).fill_(1.0)


def stream_bandwidth(gib: float = 1.0) -> float:
    """Bytes per second read when summing `stream_tensor(gib)` (best of five): this VM's memory switches between
    spells of about 35 and about 70 GB/s within minutes, and decoding speeds follow it."""
    x = stream_tensor(gib)
    seconds = best_of(lambda: x.sum(), repeats=5)
    return x.numel() * 4 / seconds
