#!/usr/bin/env bash
# The GPU checks in one script, for a lent GPU machine (not yet timed on one): the measured and
# data-sheet peaks behind MFU for this device, then nanoGPT's GPU setting trained by its loop and by ours
# (val loss at equal steps, ms per iteration, MFU). Results go to benchmarks/results/ with the device named.
# PYTHON: an interpreter with torch (CUDA) and this project's dependencies; src/ is put on its path.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
"$PYTHON" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "gpu_check: no CUDA device")'
"$PYTHON" -m lm2llm env --json > benchmarks/results/gpu_env.json
"$PYTHON" benchmarks/bench_train_gpu.py
