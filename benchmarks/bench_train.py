"""nanoGPT's CPU "baby GPT" on tinyshakespeare (character level): our Trainer vs nanoGPT's published figure,
with a transformers GPT2LMHeadModel of the same configuration trained by a plain loop as the same-run peer.

Setting (nanoGPT README, CPU): 4 layers, 4 heads, 128-dim, context 64, batch 12, lr 1e-3 cosine to 1e-4
over 2,000 iterations, 100 warm-up iterations, no dropout, AdamW(0.9, 0.99), weight decay 0.1, clip 1.0.
nanoGPT measured on this kind of 2-core machine: val loss 1.886 in 77.5 s, 31.7 ms/iteration, 24.2k tok/s.

Runs (all in this process except 4):
1. `baby`: the setting above in nanoGPT's style (no biases, exact GELU) with our defaults (bf16 autocast
   where the CPU has it);
2. `baby_fp32`: the same for a few hundred iterations in fp32 — the end-to-end bf16 speed-up;
3. `baby_gpt2_style`: GPT-2 style (biases, tanh GELU) for a few hundred iterations — the same model as
   the peer: `transformers.GPT2LMHeadModel` (same shape) with torch AdamW in a plain loop, same dtype;
4. `baby_gpt_ddp_2x1_thread`: run 1 for a few hundred iterations as two single-thread DDP processes
   (`torchrun`, gloo) sharing the global batch of 12: on two cores, two independent matmul streams can beat
   one stream split over two threads, whose per-op synchronisation costs more than these tiny ops take;
5. `budget`: settings of ours, stopped at 77.5 s of wall time (evaluations included), for val loss <= 1.75:
   with AdamW, and with Muon (hidden matrices orthogonalised) + AdamW, the same batch, schedule and time;
6. `speedrun` (time to quality, as modded-nanogpt measures it): nanoGPT's own training of this setting,
   re-created in `nanogpt_peer.py`, runs its 2,000 iterations in this process; its val loss on a fixed set
   of validation windows is the target, and our recipe's time is the training time (evaluations excluded,
   for the peer too) until its first evaluation at or below that loss, as a ratio to the peer's. The recipe
   runs three times (the median counts; this machine's step times drift by tens of percent between runs),
   then once without each of its changes and once with each change tried and not kept: the ablation.
Skips when ../shared/data/tinyshakespeare.txt is absent. Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
from harness import RESULTS, ROOT, SHARED_DATA, skip, write_result  # noqa: E402
from nanogpt_peer import train_nanogpt  # noqa: E402

from lm2llm import env  # noqa: E402
from lm2llm.data.shards import ShardWriter, TokenShards  # noqa: E402
from lm2llm.tokenizer import CharTokenizer  # noqa: E402
from lm2llm.training.config import build_config  # noqa: E402
from lm2llm.training.data import ShardBatches  # noqa: E402
from lm2llm.training.run import train  # noqa: E402
from lm2llm.training.schedule import learning_rate  # noqa: E402
from lm2llm.training.trainer import flops_per_token, resolve_dtype  # noqa: E402

NANOGPT = {"val_loss": 1.886, "wall_s": 77.5, "ms_per_iter": 31.7, "tokens_per_s": 24_200}
SHAPE = {"model.n_layer": 4, "model.n_head": 4, "model.d_model": 128, "model.context_length": 64, "model.dropout": 0.0}
NANOGPT_STYLE = {"model.bias": False, "model.mlp": "gelu"}  # nanoGPT's train.py: bias=False, nn.GELU() (exact)
GPT2_STYLE = {"model.bias": True, "model.mlp": "gelu_tanh"}  # transformers' GPT2LMHeadModel: biases, gelu_new
BABY = {"batch_size": 12, "block_size": 64, "lr": 1e-3, "min_lr": 1e-4, "max_steps": 2000, "warmup_steps": 100,
        "beta2": 0.99, "weight_decay": 0.1, "grad_clip": 1.0, "eval_every": 250, "eval_batches": 20,
        "log_every": 50, "progress": False, "sample_tokens": 0}


def make_shards(text_path: Path, out: Path) -> Path:
    """nanoGPT's shakespeare_char split: first 90% of the characters train, last 10% validate."""
    text = text_path.read_text(encoding="utf-8")
    tok = CharTokenizer.train([text])
    ids = tok.encode(text)
    cut = int(0.9 * len(ids))
    writer = ShardWriter(out, tok.vocab_size)
    writer.write("train", ids[:cut])
    writer.write("val", ids[cut:])
    writer.close(tokenizer="char")
    tok.save(out / "tokenizer")
    return out


def ours(data: Path, out: Path, **settings) -> dict:
    cfg = build_config({"model": "gpt", "data": str(data), "out": str(out), **SHAPE, **BABY, **settings})
    result, _ = train(cfg)
    final = result.evals[-1]
    return {"ms_per_iter": result.ms_per_step, "tokens_per_s": result.tokens_per_second, "mfu": result.mfu,
            "val_loss": final["val_loss"], "wall_s": result.seconds, "steps": result.steps,
            "dtype": cfg.trainer.dtype, "lr": cfg.trainer.lr, "batch_size": cfg.trainer.batch_size,
            "max_steps": cfg.trainer.max_steps, "optimizer": cfg.trainer.optimizer}


def ours_ddp(data: Path, out: Path, processes: int, **settings) -> dict:
    """The same run as `ours` through `torchrun` with one single-thread process per core (DDP over gloo)."""
    settings = {"model": "gpt", "data": str(data), "out": str(out), **SHAPE, **BABY, **settings}
    config = out.with_suffix(".json")
    config.write_text(json.dumps(settings))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               "-m", "lm2llm", "train", "--config", str(config), "--json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    summary = json.loads(done.stdout[done.stdout.index("{"):])
    return {"ms_per_iter": summary["ms_per_step"], "tokens_per_s": summary["tokens_per_s"], "mfu": summary["mfu"],
            "val_loss": summary["val_loss"], "wall_s": summary["seconds"], "steps": summary["steps"],
            "processes": processes, "threads_per_process": 1}


def within_budget(data: Path, out: Path, common: dict, **optimizer) -> dict:
    """Batch 16, lr 8e-3, cosine driven by the clock (`time_schedule`): whatever this optimizer's step costs,
    the decay ends when the time does. Training stops 1.5 s early, so the final evaluation and checkpoint
    finish within nanoGPT's 77.5 s too."""
    return ours(data, out, **common, **NANOGPT_STYLE, **optimizer, batch_size=16, lr=8e-3, min_lr=8e-4,
                max_steps=10_000, warmup_steps=150, eval_every=500, max_seconds=NANOGPT["wall_s"] - 1.5,
                time_schedule=True)


# The speedrun's validation set: 1,600 windows of 64 characters drawn once (seed 1338), the same for the peer
# and for every run of ours whatever its batch size. Ours evaluates every 10 steps; the crossing it reports is
# late by at most that much.
SPEEDRUN_EVAL = {"eval_batches": 50, "eval_batch_size": 32, "eval_every": 10, "checkpoint_every": 1_000_000}
# Our recipe for the same task: each entry is one change from nanoGPT's setting (SHAPE, BABY, NANOGPT_STYLE),
# and WITHOUT says what the ablation puts back when that change is left out (the batch row keeps the schedule
# over the same number of sequences). TRIED: changes that were measured on top of the recipe and not kept,
# because they did not move the time (the rule of the modded-nanogpt records); the benchmark re-measures them.
RECIPE = {
    "Muon (lr 0.03, momentum 0.85) on the hidden matrices": {
        "optimizer": "muon", "muon_lr": 0.03, "muon_momentum": 0.85},
    "AdamW lr 1.6e-2 to 1.6e-3 (16x nanoGPT's)": {"lr": 1.6e-2, "min_lr": 1.6e-3},
    "batch 16 (nanoGPT: 12)": {"batch_size": 16},
    "warm-up 10 steps, cosine over 350 (nanoGPT: 100, 2,000)": {"warmup_steps": 10, "max_steps": 350},
    "RoPE instead of learned positions": {"model.positional": "rope"},
    "1 layer instead of 4": {"model.n_layer": 1},
}
WITHOUT = {"batch 16 (nanoGPT: 12)": {"batch_size": 12, "max_steps": 467}}
TRIED = {
    "ReLU² MLP instead of GELU": {"model.mlp": "relu2"},
    "RMSNorm instead of LayerNorm": {"model.norm": "rmsnorm"},
    "residual projections initialised to zero": {"model.zero_init_residual": True},
    "2 layers instead of 1": {"model.n_layer": 2},
}


def recipe_settings(leave_out: str | None = None, add: str | None = None) -> dict:
    settings = {}
    for change, values in RECIPE.items():
        if change != leave_out:
            settings.update(values)
    return {**settings, **WITHOUT.get(leave_out, {}), **TRIED.get(add, {})}


def time_to_target(data: Path, out: Path, target: float, peer_s: float, settings: dict) -> dict:
    """Our trainer with `settings` (on nanoGPT's), stopped at the first evaluation at or below `target`."""
    cfg = build_config({"model": "gpt", "data": str(data), "out": str(out), **SHAPE, **BABY, **NANOGPT_STYLE,
                        **SPEEDRUN_EVAL, **settings, "target_loss": target})
    result, _ = train(cfg)
    hit = next((e for e in result.evals if e["val_loss"] <= target), None)
    return {"reached": hit is not None, "steps": hit["step"] if hit else result.steps,
            "train_s": hit["train_s"] if hit else None, "ratio_to_nanogpt": hit["train_s"] / peer_s if hit else None,
            "val_loss": result.evals[-1]["val_loss"], "ms_per_step": result.ms_per_step, "settings": settings}


def speedrun(data: Path, tmp: Path) -> dict:
    shards = TokenShards(data)
    windows = ShardBatches(shards, block_size=64, batch_size=12, seed=1337,
                           eval_batches=SPEEDRUN_EVAL["eval_batches"],
                           eval_batch_size=SPEEDRUN_EVAL["eval_batch_size"]).eval_set()
    nanogpt = train_nanogpt(shards.arrays["train"], shards.vocab_size, [(w["ids"], w["targets"]) for w in windows])
    target, peer_s = nanogpt["val_loss"], nanogpt["train_s"]
    # nanoGPT's own setting in our trainer (bf16 autocast where the CPU has it): the engine alone
    baseline = time_to_target(data, tmp / "baseline", target, peer_s, {"eval_every": 50})
    runs = [time_to_target(data, tmp / f"recipe{i}", target, peer_s, recipe_settings()) for i in range(3)]
    times = sorted(r["train_s"] if r["reached"] else float("inf") for r in runs)
    median = times[len(times) // 2] if math.isfinite(times[len(times) // 2]) else None  # None: two never got there
    variants = ([(f"without: {change}", recipe_settings(leave_out=change)) for change in RECIPE]
                + [(f"with: {change}", recipe_settings(add=change)) for change in TRIED])
    ablation = {name: time_to_target(data, tmp / f"variant{i}", target, peer_s, settings)
                for i, (name, settings) in enumerate(variants)}
    return {
        "nanogpt": nanogpt, "target_val_loss": target, "nanogpt_setting_in_our_trainer": baseline,
        "recipe": list(RECIPE), "recipe_runs": runs, "recipe_median_train_s": median,
        "ratio_to_nanogpt": median / peer_s if median else None, "ablation": ablation,
    }


def peer(data: Path, dtype: torch.dtype, iters: int) -> dict:
    """transformers' GPT-2 of the same shape in a plain loop: same batches, schedule, optimizer settings."""
    from transformers import GPT2Config, GPT2LMHeadModel

    shards = TokenShards(data)
    torch.manual_seed(1337)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=shards.vocab_size, n_positions=64, n_embd=128, n_layer=4, n_head=4,
                                       resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0))
    decay = [p for p in model.parameters() if p.ndim >= 2]
    other = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.99))
    batches = ShardBatches(shards, block_size=64, batch_size=12, seed=1337, eval_batches=1)
    autocast = torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32)
    times = []
    for step in range(iters):
        t0 = time.perf_counter()
        for group in opt.param_groups:
            group["lr"] = learning_rate(step, lr=1e-3, min_lr=1e-4, warmup_steps=100, max_steps=2000)
        batch = batches.next_batch()
        with autocast:
            loss = model(input_ids=batch["ids"], labels=batch["ids"]).loss  # HF shifts labels itself
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    steady = sorted(times[1:])[len(times[1:]) // 2]  # median, first (warm-up) iteration excluded
    return {"ms_per_iter": 1000 * steady, "tokens_per_s": 12 * 64 / steady, "iters": iters,
            "dtype": str(dtype).removeprefix("torch."), "final_train_loss": loss.item(),
            "flops_per_token": flops_per_token(model, 64)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--compile", action="store_true", help="torch.compile our model")
    parser.add_argument("--short-iters", type=int, default=300, help="iterations of the fp32 and peer speed runs")
    parser.add_argument("--speedrun-only", action="store_true", help="only the time-to-quality speedrun (6.)")
    args = parser.parse_args()
    text = SHARED_DATA / "tinyshakespeare.txt"
    if not text.is_file():
        skip("train", f"{text} is absent")
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    env.collect(measure_seconds=1.0)  # refresh the measured peak behind MFU, at this thread count
    common = {"threads": args.threads, "compile": args.compile}
    with tempfile.TemporaryDirectory() as tmp:
        data = make_shards(text, Path(tmp) / "shards")
        quality = speedrun(data, Path(tmp))
        if args.speedrun_only:  # the other figures stay as the last full run wrote them
            previous = json.loads((RESULTS / "train.json").read_text(encoding="utf-8"))
            later = " The speedrun alone was re-run later (its own timestamp is `when`; the other figures are older)."
            write_result("train", figures={**previous["figures"], "speedrun": quality}, peers=previous["peers"],
                         ratios={**previous["ratios"], "speedrun_time_over_nanogpt": quality["ratio_to_nanogpt"]},
                         notes=previous["notes"].removesuffix(later) + later)
            return
        short = dict(max_steps=args.short_iters, eval_every=args.short_iters, eval_batches=1)
        baby = ours(data, Path(tmp) / "baby", **common, **NANOGPT_STYLE)
        fp32 = ours(data, Path(tmp) / "fp32", dtype="float32", **common, **NANOGPT_STYLE, **short)
        gpt2_style = ours(data, Path(tmp) / "gpt2", **common, **GPT2_STYLE, **short)
        ddp = ours_ddp(data, Path(tmp) / "ddp", 2, **NANOGPT_STYLE, **short)
        # 5. val loss within nanoGPT's wall time, a third more batch (a 0.8M-parameter model takes it), once
        #    with AdamW at 8x nanoGPT's peak lr and once with Muon on the hidden matrices (AdamW on the rest).
        budget_adamw = within_budget(data, Path(tmp) / "budget_adamw", common)
        budget_muon = within_budget(data, Path(tmp) / "budget_muon", common, optimizer="muon", muon_lr=0.02)
        dtype = resolve_dtype("auto", torch.device("cpu"))
        hf = peer(data, dtype, args.short_iters)
    write_result(
        "train",
        figures={"baby_gpt": baby, "baby_gpt_fp32": fp32, "baby_gpt2_style": gpt2_style,
                 "baby_gpt_ddp_2x1_thread": ddp, "val_loss_within_77_5s_adamw": budget_adamw,
                 "val_loss_within_77_5s_muon": budget_muon, "speedrun": quality,
                 "threads": torch.get_num_threads(), "compile": args.compile},
        peers={"nanogpt_published": NANOGPT, "transformers_gpt2_plain_loop": hf},
        ratios={
            "tokens_per_s_over_nanogpt": baby["tokens_per_s"] / NANOGPT["tokens_per_s"],
            "ddp_2x1_thread_tokens_per_s_over_nanogpt": ddp["tokens_per_s"] / NANOGPT["tokens_per_s"],
            "tokens_per_s_over_transformers_same_model": gpt2_style["tokens_per_s"] / hf["tokens_per_s"],
            "bf16_speedup_end_to_end": baby["tokens_per_s"] / fp32["tokens_per_s"],
            "val_loss_budget_adamw_minus_goal_1_75": budget_adamw["val_loss"] - 1.75,
            "val_loss_budget_muon_minus_goal_1_75": budget_muon["val_loss"] - 1.75,
            "val_loss_muon_over_adamw_same_wall_time": budget_muon["val_loss"] / budget_adamw["val_loss"],
            "speedrun_time_over_nanogpt": quality["ratio_to_nanogpt"],
        },
        notes="nanoGPT figures are the published ones for this machine type (not re-run here); `baby_gpt` uses "
              "nanoGPT's own choices (no biases, exact GELU), `baby_gpt2_style` the transformers peer's. The char "
              "vocabulary has one extra <unk> id (66 vs 65). Timings on a shared VM vary by tens of percent.",
    )


if __name__ == "__main__":
    main()
