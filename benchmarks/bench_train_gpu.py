"""Loss parity with nanoGPT on its own GPU setting: nanoGPT's loop (re-created, `nanogpt_peer.py`) and our
Trainer on the same split, the same validation windows and the same number of steps, in one run.

Setting (`config/train_shakespeare_char.py`): 6 layers, 6 heads, 384 wide, context 256, batch 64, dropout 0.2,
lr 1e-3 cosine to 1e-4 after 100 warm-up iterations, AdamW(0.9, 0.99), weight decay 0.1, clip 1.0, bf16
autocast, `torch.compile`; 2,000 iterations here (the goal: our val loss at most nanoGPT's, and our ms per
iteration at most its). Ours runs compiled and eager. Without CUDA it skips, unless `--device cpu` asks for
a small smoke run of the same code (`--iters`, `--layers`).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
from bench_train import NANOGPT_STYLE, make_shards, ours  # noqa: E402
from harness import SHARED_DATA, skip, write_result  # noqa: E402
from nanogpt_peer import GPU_SETTING, train_nanogpt  # noqa: E402

from lm2llm.data.shards import TokenShards  # noqa: E402
from lm2llm.training.data import ShardBatches  # noqa: E402

EVAL_WINDOWS = {"eval_batches": 50, "eval_batch_size": 64}  # 3,200 windows of 256 characters, drawn once


def gpu_settings(setting: dict, compile_model: bool) -> dict:
    """nanoGPT's GPU setting as our trainer's keys (on top of `bench_train.ours`'s baby defaults)."""
    return {**NANOGPT_STYLE, "model.n_layer": setting["n_layer"], "model.n_head": setting["n_head"],
            "model.d_model": setting["n_embd"], "model.context_length": setting["block_size"],
            "model.dropout": setting["dropout"], "block_size": setting["block_size"], "batch_size": setting["batch_size"],
            "lr": setting["learning_rate"], "min_lr": setting["min_lr"], "max_steps": setting["max_iters"],
            "warmup_steps": setting["warmup_iters"], "beta2": setting["beta2"],
            "weight_decay": setting["weight_decay"], "grad_clip": setting["grad_clip"], "dtype": setting["dtype"],
            "device": setting["device"], "compile": compile_model, "eval_every": setting["max_iters"],
            "log_every": 100, **EVAL_WINDOWS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (the benchmark) or cpu (a smoke run)")
    parser.add_argument("--iters", type=int, default=2000)
    parser.add_argument("--layers", type=int, default=6)
    args = parser.parse_args()
    text = SHARED_DATA / "tinyshakespeare.txt"
    if not text.is_file():
        skip("train_gpu", f"{text} is absent")
        return
    if args.device == "cuda" and not torch.cuda.is_available():
        skip("train_gpu", "no CUDA device")
        return
    setting = {**GPU_SETTING, "max_iters": args.iters, "n_layer": args.layers, "device": args.device}
    if args.device == "cpu":  # nanoGPT compiles on a GPU; the smoke run checks the code, not the speed
        setting.update(compile=False, dtype="float32")
    with tempfile.TemporaryDirectory() as tmp:
        data = make_shards(text, Path(tmp) / "shards")
        shards = TokenShards(data)
        windows = ShardBatches(shards, block_size=setting["block_size"], batch_size=setting["batch_size"],
                               seed=1337, **EVAL_WINDOWS).eval_set()
        peer = train_nanogpt(shards.arrays["train"], shards.vocab_size, [(w["ids"], w["targets"]) for w in windows],
                             **setting)
        compiled = ours(data, Path(tmp) / "compiled", **gpu_settings(setting, setting["compile"]))
        eager = ours(data, Path(tmp) / "eager", **gpu_settings(setting, False))
    figures = {"ours_compiled": compiled, "ours_eager": eager, "setting": setting,
               "device_name": torch.cuda.get_device_name() if args.device == "cuda" else "cpu"}
    ratios = {"val_loss_ours_minus_nanogpt": compiled["val_loss"] - peer["val_loss"],
              "ms_per_iter_ours_over_nanogpt": compiled["ms_per_iter"] / peer["ms_per_iter"],
              "eager_ms_per_iter_over_compiled": eager["ms_per_iter"] / compiled["ms_per_iter"]}
    if args.device != "cuda":  # a smoke run is not a result
        print(json.dumps({"figures": figures, "peers": {"nanogpt_loop": peer}, "ratios": ratios}, indent=2))
        return
    write_result("train_gpu", figures, peers={"nanogpt_loop": peer}, ratios=ratios,
                 notes="Both scored on the same 3,200 validation windows of 256 characters; goal: val loss "
                       "difference <= 0 and ms per iteration ratio <= 1.")


if __name__ == "__main__":
    main()
