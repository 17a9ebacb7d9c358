"""Facts about this machine, and the peak matmul throughput that MFU is read against.

MFU (model FLOPs utilisation) divides the FLOP/s a training run achieves by the device's peak. The peak is
per device *and* dtype: measured with large square matmuls (small ones measure kernel-launch overhead, not
the arithmetic units: a 1024² matmul reads a GPU's peak several times too low), and for GPUs also taken
from the vendor's data sheet (`DATASHEET_GFLOPS`, dense figures). MFU uses the larger of the two and shows
both. Measurements are cached per device and dtype in `~/.cache/lm2llm/peaks.json` (override the folder
with `LM2LLM_CACHE`); a CPU's key includes the thread count, since its peak depends on it.
"""

from __future__ import annotations

import json
import os
import platform
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from lm2llm.runs import atomic_write_json

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}  # names the CLI takes
MATMUL_SIZE = {"cpu": 2048, "mps": 4096, "cuda": 8192}  # large enough to reach the arithmetic peak

# Dense (no sparsity) peak GFLOP/s from NVIDIA's data sheets, by a substring of torch.cuda.get_device_name();
# the first match wins, so more specific names come first. "tfloat32" is fp32 matmul on tensor cores
# (torch.set_float32_matmul_precision("high")); "float32" is plain fp32 on the CUDA cores.
DATASHEET_GFLOPS: list[tuple[str, dict[str, float]]] = [
    ("H200", {"bfloat16": 989_000, "float16": 989_000, "tfloat32": 494_000, "float32": 67_000}),
    ("H100 PCIe", {"bfloat16": 756_000, "float16": 756_000, "tfloat32": 378_000, "float32": 51_000}),
    ("H100", {"bfloat16": 989_000, "float16": 989_000, "tfloat32": 494_000, "float32": 67_000}),
    ("A100", {"bfloat16": 312_000, "float16": 312_000, "tfloat32": 156_000, "float32": 19_500}),
    ("L4", {"bfloat16": 121_000, "float16": 121_000, "tfloat32": 60_000, "float32": 30_300}),
    ("V100", {"float16": 125_000, "float32": 15_700}),
]


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


def device_name(device: str | torch.device = "cpu") -> str:
    """The cache key of a device's peak: the GPU's name, or the CPU's name with the torch thread count."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        return f"{_cpu_name()} ({torch.get_num_threads()} threads)"
    return device.type


def matmul_dtype_name(dtype: torch.dtype, device: str | torch.device = "cpu") -> str:
    """The dtype as the peak tables name it: fp32 on a CUDA GPU that allows TF32 matmuls is "tfloat32"."""
    name = str(dtype).removeprefix("torch.")
    tf32 = torch.get_float32_matmul_precision() != "highest" or torch.backends.cuda.matmul.allow_tf32
    return "tfloat32" if name == "float32" and torch.device(device).type == "cuda" and tf32 else name


def datasheet_gflops(name: str, dtype: str) -> float | None:
    """The data-sheet peak of a device named `name` (e.g. "NVIDIA H200") for `dtype`, or None if not listed."""
    return next((peaks.get(dtype) for key, peaks in DATASHEET_GFLOPS if key in name), None)


@dataclass
class MatmulResult:
    dtype: str
    size: int
    gflops: float  # the best single matmul's rate: a busy machine slows the average, not the peak
    seconds: float


def measure_matmul(dtype: torch.dtype, size: int | None = None, seconds: float = 1.0,
                   device: str = "cpu") -> MatmulResult:
    """Time square matmuls for about `seconds`; the best one's GFLOP/s (2·n³ FLOPs per matmul)."""
    size = size or MATMUL_SIZE.get(torch.device(device).type, 2048)
    # A private generator: measuring must not move the global RNG (exact resume depends on it).
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    a @ b  # warm-up: the first call picks kernels and allocates
    sync()
    best, start = float("inf"), time.perf_counter()
    while time.perf_counter() - start < seconds or best == float("inf"):
        t0 = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - t0)
    return MatmulResult(matmul_dtype_name(dtype, device), size, 2 * size**3 / best / 1e9,
                        time.perf_counter() - start)


@dataclass
class Peak:
    """One device's peak for one dtype: measured here and, where the device is listed, from its data sheet."""

    device: str
    dtype: str
    measured_gflops: float
    datasheet_gflops: float | None = None

    @property
    def gflops(self) -> float:
        """The peak MFU divides by: the data sheet's, unless this machine measured more."""
        return max(self.measured_gflops, self.datasheet_gflops or 0.0)


def _peaks_path() -> Path:
    return cache_dir() / "peaks.json"


def _read_peaks() -> dict:
    try:
        return json.loads(_peaks_path().read_text())
    except (OSError, ValueError):
        return {}


def _remember(name: str, result: MatmulResult) -> None:
    peaks = _read_peaks()
    peaks.setdefault(name, {})[result.dtype] = asdict(result)
    atomic_write_json(_peaks_path(), peaks)


def peak(dtype: torch.dtype | str = "float32", device: str | torch.device = "cpu", seconds: float = 1.0) -> Peak:
    """The peak for MFU on `device` in `dtype`: cached for this device and dtype, else measured now (about
    `seconds`). `lm2llm env` re-measures; do that on an idle machine, since a busy one lowers the peak."""
    torch_dtype = DTYPES[dtype] if isinstance(dtype, str) else dtype
    name, key = device_name(device), matmul_dtype_name(torch_dtype, device)
    cached = _read_peaks().get(name, {}).get(key)
    if cached is None:
        result = measure_matmul(torch_dtype, seconds=seconds, device=str(device))
        _remember(name, result)
        cached = asdict(result)
    return Peak(name, key, float(cached["gflops"]), datasheet_gflops(name, key))


def peak_gflops(dtype: str = "float32", device: str = "cpu") -> float:
    return peak(dtype, device).gflops


def mfu(achieved_flops: float, peak_flops: float) -> float:
    """Model FLOPs utilisation, at most 1: a rate above the peak means the peak was measured too low (on a
    busy machine), so the achieved rate is then the best known peak; a warning says so (once per session)."""
    if peak_flops <= 0:
        return 0.0
    if achieved_flops > peak_flops:
        warnings.warn("MFU: the achieved FLOP/s exceed the cached peak, which was measured too low; "
                      "re-measure it with `lm2llm env` on an idle machine", RuntimeWarning, stacklevel=2)
        return 1.0
    return achieved_flops / peak_flops


@dataclass
class EnvReport:
    python: str
    torch: str
    platform: str
    cpu: str
    cores: int
    threads: int
    device: str
    device_name: str
    bf16_supported: bool
    matmul: list[MatmulResult] = field(default_factory=list)
    datasheet: dict[str, float] = field(default_factory=dict)  # dtype -> GFLOP/s, for listed GPUs

    def peak_gflops(self, dtype: str) -> float | None:
        return next((m.gflops for m in self.matmul if m.dtype == dtype), None)


def collect(measure_seconds: float = 1.0, device: str | None = None) -> EnvReport:
    device = device or best_device()
    bf16 = cpu_supports_bf16() if device == "cpu" else device == "cuda" and torch.cuda.is_bf16_supported()
    name = device_name(device)
    report = EnvReport(
        python=platform.python_version(),
        torch=torch.__version__,
        platform=platform.platform(),
        cpu=_cpu_name(),
        cores=os.cpu_count() or 1,
        threads=torch.get_num_threads(),
        device=device,
        device_name=name,
        bf16_supported=bf16,
    )
    dtypes = [torch.float32] + ([torch.bfloat16] if bf16 else [])
    for dt in dtypes:
        key = matmul_dtype_name(dt, device)
        if (sheet := datasheet_gflops(name, key)) is not None:
            report.datasheet[key] = sheet
    if measure_seconds > 0:
        report.matmul = [measure_matmul(dt, seconds=measure_seconds, device=device) for dt in dtypes]
        for result in report.matmul:
            _remember(name, result)
        atomic_write_json(cache_dir() / "env.json", report)
    return report


def as_dict(report: EnvReport) -> dict:
    return asdict(report)
