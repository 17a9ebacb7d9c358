"""Facts about this machine, and its measured matmul throughput.

Training reports MFU (model FLOPs utilisation) against the *measured* peak of this machine rather than a
data-sheet number, because a laptop CPU's real peak depends on threads, vector units and bf16 support.
The measurement is cached in `~/.cache/lm2llm/env.json` (override with `LM2LLM_CACHE`).
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from lm2llm.runs import atomic_write_json

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}  # names the CLI takes


def cache_dir() -> Path:
    return Path(os.environ.get("LM2LLM_CACHE", Path.home() / ".cache" / "lm2llm"))


def best_device() -> str:
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def cpu_supports_bf16() -> bool:
    """True when the CPU has native bf16 matmul instructions (AVX512-BF16 or AMX on x86)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@dataclass
class MatmulResult:
    dtype: str
    size: int
    gflops: float
    seconds: float


@dataclass
class EnvReport:
    python: str
    torch: str
    platform: str
    cpu: str
    cores: int
    threads: int
    device: str
    bf16_supported: bool
    matmul: list[MatmulResult] = field(default_factory=list)

    def peak_gflops(self, dtype: str) -> float | None:
        return next((m.gflops for m in self.matmul if m.dtype == dtype), None)


def measure_matmul(dtype: torch.dtype, size: int = 1024, seconds: float = 1.0, device: str = "cpu") -> MatmulResult:
    """Time square matmuls for about `seconds` and return the achieved GFLOP/s (2·n³ FLOPs per matmul)."""
    # A private generator: measuring must not move the global RNG (exact resume depends on it).
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
    for _ in range(3):  # warm-up: first calls pick kernels and allocate
        a @ b
    count, start = 0, time.perf_counter()
    while True:
        a @ b
        count += 1
        if device == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            break
    return MatmulResult(str(dtype).removeprefix("torch."), size, 2 * size**3 * count / elapsed / 1e9, elapsed)


def collect(measure_seconds: float = 1.0, device: str | None = None) -> EnvReport:
    device = device or best_device()
    bf16 = cpu_supports_bf16() if device == "cpu" else device == "cuda" and torch.cuda.is_bf16_supported()
    report = EnvReport(
        python=platform.python_version(),
        torch=torch.__version__,
        platform=platform.platform(),
        cpu=_cpu_name(),
        cores=os.cpu_count() or 1,
        threads=torch.get_num_threads(),
        device=device,
        bf16_supported=bf16,
    )
    if measure_seconds > 0:
        dtypes = [torch.float32] + ([torch.bfloat16] if bf16 else [])
        report.matmul = [measure_matmul(dt, seconds=measure_seconds, device=device) for dt in dtypes]
        atomic_write_json(cache_dir() / "env.json", report)
    return report


def peak_gflops(dtype: str = "float32") -> float:
    """Measured peak for MFU: from the cache when it was measured with this many threads, else measured now
    (about a second). `lm2llm env` re-measures; do that on an idle machine, since a busy one lowers the peak."""
    path = cache_dir() / "env.json"
    if path.exists():
        try:
            data = json.loads(path.read_text())
            same_threads = data.get("threads") == torch.get_num_threads()
            for m in data.get("matmul", []) if same_threads else []:
                if m["dtype"] == dtype:
                    return float(m["gflops"])
        except (ValueError, KeyError):
            pass
    report = collect(measure_seconds=1.0)
    return report.peak_gflops(dtype) or report.peak_gflops("float32") or 1.0


def as_dict(report: EnvReport) -> dict:
    return asdict(report)
