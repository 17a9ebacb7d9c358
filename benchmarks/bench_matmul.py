"""Matmul throughput of this machine in fp32 and bf16 (the peak behind every MFU figure), torch vs numpy."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
from harness import best_of, write_result  # noqa: E402

from lm2llm.env import MATMUL_SIZE, measure_matmul  # noqa: E402

SIZE = MATMUL_SIZE["cpu"]  # the size MFU's peak is measured at


def main() -> None:
    ours = {m.dtype: m.gflops for m in (measure_matmul(dt, SIZE, 2.0) for dt in (torch.float32, torch.bfloat16))}
    a = np.random.rand(SIZE, SIZE).astype(np.float32)
    b = np.random.rand(SIZE, SIZE).astype(np.float32)
    numpy_gflops = 2 * SIZE**3 / best_of(lambda: a @ b, repeats=20) / 1e9
    write_result(
        "matmul",
        figures={"torch_fp32_gflops": ours["float32"], "torch_bf16_gflops": ours["bfloat16"], "size": SIZE},
        peers={"numpy_fp32_gflops": numpy_gflops},
        ratios={"bf16_over_fp32": ours["bfloat16"] / ours["float32"], "torch_fp32_over_numpy": ours["float32"] / numpy_gflops},
    )


if __name__ == "__main__":
    main()
