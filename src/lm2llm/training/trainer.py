"""The training loop every objective runs on: one plain loop, the objective a small pluggable piece.

One step: draw the global batch, keep this process's slice, run its micro-batches forward and backward
(gradients synchronised across processes only on the last one), scale so the step's loss is the mean
over the whole global batch, clip, step AdamW at the scheduled learning rate. Every `eval_every` steps:
validation loss, perplexity and bits per byte, then a checkpoint. Only process 0 logs and writes.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lm2llm import env
from lm2llm.errors import UserError
from lm2llm.runs import RunDir
from lm2llm.training import checkpoint as ckpt
from lm2llm.training import sharded
from lm2llm.training.config import TrainerConfig
from lm2llm.training.data import BatchSource
from lm2llm.training.distributed import World
from lm2llm.training.objectives import Batch, Objective
from lm2llm.training.optim import build_optimizer
from lm2llm.training.schedule import learning_rate


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str, world: World) -> torch.device:
    device = env.best_device() if name == "auto" else name
    if device == "cuda":
        if not torch.cuda.is_available():
            raise UserError("device 'cuda' requested but no CUDA GPU is visible", where="device")
        return torch.device("cuda", world.local_rank)
    return torch.device(device)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """`auto`: bf16 where the hardware computes it natively (CUDA bf16 GPUs, AVX512-BF16/AMX CPUs), else fp32."""
    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if device.type == "cpu" and env.cpu_supports_bf16() else torch.float32
    if name == "float16" and device.type != "cuda":
        raise UserError("float16 training needs a CUDA GPU", where="dtype", hint="use bfloat16 or float32 on CPU")
    return env.DTYPES[name]


def split_batch(batch: Batch, parts: int) -> list[Batch]:
    size = next(iter(batch.values())).shape[0]
    step = size // parts
    return [{k: v[i * step:(i + 1) * step] for k, v in batch.items()} for i in range(parts)]


def matmul_params(model: nn.Module) -> int:
    """Parameters that take part in a matmul per token: all matrices except lookup-only embeddings."""
    linear = {id(p) for m in model.modules() if isinstance(m, nn.Linear) for p in m.parameters()}
    lookup_only = {id(p) for m in model.modules() if isinstance(m, nn.Embedding)
                   for p in m.parameters()} - linear
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) not in seen and p.ndim >= 2 and id(p) not in lookup_only:
            total += p.numel()
        seen.add(id(p))
    return total


def flops_per_token(model: nn.Module, block_size: int) -> float:
    """Training FLOPs per token, nanoGPT/PaLM style: 6·N for the matmuls plus 12·layers·width·T for attention."""
    config = getattr(model, "config", None)
    layers = getattr(config, "n_layer", 0) or 0
    width = getattr(config, "d_model", 0) or getattr(config, "n_embd", 0) or 0
    return 6 * matmul_params(model) + 12 * layers * width * block_size


@dataclass
class TrainResult:
    steps: int
    seconds: float
    tokens: int
    tokens_per_second: float
    ms_per_step: float
    mfu: float
    losses: list[tuple[int, float]] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False
    sample: str = ""


class Trainer:
    """Train `model` on `data` with `objective`; `run` (a RunDir) receives metrics and checkpoints."""

    def __init__(self, model: nn.Module, objective: Objective, data: BatchSource, cfg: TrainerConfig, *,
                 run: RunDir | None = None, world: World | None = None, device: torch.device | None = None,
                 write_weights: ckpt.WeightsWriter = ckpt.save_weights):
        self.cfg = cfg
        self.world = world or World()
        self.device = device or resolve_device(cfg.device, self.world)
        self.dtype = resolve_dtype(cfg.dtype, self.device)
        self.model = model.to(self.device)
        self.objective = objective
        self.data = data
        self.run = run
        self.write_weights = write_weights
        per_process, rest = divmod(cfg.batch_size, self.world.size)
        micro = cfg.micro_batch_size or per_process
        if rest or per_process % micro:
            raise UserError(f"batch_size {cfg.batch_size} does not split into {self.world.size} process(es) × "
                            f"micro-batches of {micro}", where="batch_size",
                            hint="make batch_size a multiple of processes × micro_batch_size")
        self.micro_steps = per_process // micro
        self.flops_per_token = flops_per_token(self.model, data.block_size)
        if cfg.fsdp:
            if cfg.optimizer != "adamw":
                raise UserError(f"fsdp shards each matrix over processes; {cfg.optimizer} needs whole matrices",
                                where="optimizer", hint="use optimizer=adamw with fsdp=true")
            sharded.shard_model(self.model, self.world, self.device)  # before the optimizer sees the parameters
        self.optimizer = build_optimizer(self.model, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                         betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, device_type=self.device.type,
                                         name=cfg.optimizer, muon_lr=cfg.muon_lr, muon_momentum=cfg.muon_momentum)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)
        self.step = 0
        self.lr = cfg.lr
        self.time_fraction = 0.0  # of max_seconds spent in this fit() call
        # every process measures its own device (a CPU process: at its own thread count); the peaks add up
        peak = env.peak_gflops(str(self.dtype).removeprefix("torch."), device=str(self.device))
        self.peak_flops = peak * 1e9 * self.world.size
        forward_model: nn.Module = torch.compile(self.model) if cfg.compile else self.model
        if self.world.distributed and not cfg.fsdp:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            forward_model = DistributedDataParallel(forward_model, device_ids=ids)
        self.train_model = forward_model

    # -- mixed precision -------------------------------------------------------------------------------
    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def _to_device(self, batch: Batch) -> Batch:
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    # -- one optimizer step ----------------------------------------------------------------------------
    def train_step(self) -> torch.Tensor:
        """One optimizer step on the next global batch; returns the step's mean loss (a 0-d tensor)."""
        cfg = self.cfg
        position: float = self.step
        if cfg.time_schedule and cfg.max_seconds > 0 and self.step >= cfg.warmup_steps:
            position = max(position, self.time_fraction * cfg.max_steps)  # time runs out first: decay by time
        lr = learning_rate(position, lr=cfg.lr, min_lr=cfg.min_lr, warmup_steps=cfg.warmup_steps,
                           max_steps=cfg.max_steps, schedule=cfg.schedule, decay_fraction=cfg.decay_fraction)
        self.lr = lr
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)  # Muon's: muon_lr / lr (a pre-Muon checkpoint has none)
        mine = split_batch(self.data.next_batch(), self.world.size)[self.world.rank]
        micro_batches = [self._to_device(b) for b in split_batch(mine, self.micro_steps)]
        weight = self.world.all_sum(torch.tensor(float(sum(self.objective.weight(b) for b in micro_batches))))
        # DDP and FSDP average gradients over processes; multiplying by the process count turns that into a sum,
        # and dividing by the global weight makes the step's gradient the mean over the global batch.
        if weight.item() == 0:
            raise UserError(f"step {self.step + 1}: the batch has no target tokens (every target is masked)",
                            where="data", hint="check the loss mask of the training examples")
        scale = self.world.size / weight.item()
        total = torch.zeros((), device=self.device)
        self.train_model.train()
        for i, batch in enumerate(micro_batches):
            last = i == len(micro_batches) - 1
            if self.cfg.fsdp:
                sync = sharded.gradient_sync(self.model, last)
            else:
                sync = contextlib.nullcontext() if last or not self.world.distributed else self.train_model.no_sync()
            with sync:
                with self.autocast():
                    loss_sum = self.objective.loss_sum(self.train_model, batch)
                self.scaler.scale(loss_sum * scale).backward()
            total += loss_sum.detach()
        if cfg.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return total / weight.to(total.device)  # this process's share of the step's mean loss

    # -- evaluation ------------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Mean loss over the fixed validation windows, split over processes; plus perplexity and bits/byte."""
        self.model.eval()
        sums = torch.zeros(2, dtype=torch.float64)
        for i, batch in enumerate(self.data.eval_set()):
            if self.cfg.fsdp:  # every process takes part in every forward (it gathers the shards): a slice each
                batch = {k: v.tensor_split(self.world.size)[self.world.rank] for k, v in batch.items()}
            elif i % self.world.size != self.world.rank:
                continue
            batch = self._to_device(batch)
            with self.autocast():
                loss_sum = self.objective.loss_sum(self.model, batch)
            sums += torch.tensor([loss_sum.item(), float(self.objective.weight(batch))], dtype=torch.float64)
        self.world.all_sum(sums)
        loss, tokens = sums[0].item() / sums[1].item(), int(sums[1].item())
        return self.objective.eval_metrics(loss, tokens, self.data.eval_bytes)

    # -- checkpoints -----------------------------------------------------------------------------------
    def save_checkpoint(self) -> Path | None:
        """Process 0 writes the checkpoint; with fsdp every process writes its shards (DCP)."""
        if self.run is None or not (self.world.is_main or self.cfg.fsdp):
            return None
        state = {"step": self.step, "scaler": self.scaler.state_dict(), "config": self.cfg.to_dict()}
        if self.cfg.fsdp:
            return sharded.save_checkpoint(self.run.path, model=self.model, optimizer=self.optimizer,
                                           world=self.world, extra_tensors=self.data.state_tensors(), state=state)
        return ckpt.write_checkpoint(self.run.path, model=self.model, write_weights=self.write_weights,
                                     optimizer=self.optimizer, extra_tensors=self.data.state_tensors(),
                                     state=state)

    def resume(self) -> int:
        """Load the run's newest checkpoint (every process reads it); returns the step it continues from."""
        if self.run is None or (found := ckpt.find_checkpoint(self.run.path)) is None:
            raise UserError("no checkpoint to resume from", where=str(self.run.path if self.run else "run"),
                            hint="train without --resume first")
        if sharded.is_sharded_checkpoint(found) != self.cfg.fsdp:
            raise UserError(f"the checkpoint was written {'with' if not self.cfg.fsdp else 'without'} fsdp",
                            where=str(found), hint=f"resume with --set fsdp={str(not self.cfg.fsdp).lower()}")
        if self.cfg.fsdp:
            state, tensors = ckpt.read_state(found)
            sharded.load_checkpoint(found, model=self.model, optimizer=self.optimizer)
        else:
            state, opt_tensors, tensors = ckpt.read_checkpoint(found)
            ckpt.load_checkpoint_weights(self.model, found)
            ckpt.load_optimizer_state(self.optimizer, opt_tensors, state["optimizer"])
        ckpt.set_rng_state(tensors, state["rng"])
        self.data.load_state_tensors(tensors)
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        return self.step

    # -- the loop --------------------------------------------------------------------------------------
    def _log(self, record: dict[str, Any]) -> None:
        if self.run is not None and self.world.is_main:
            self.run.log_metrics(record)

    def fit(self, stop_at: int | None = None) -> TrainResult:
        """Train until `max_steps` (or `stop_at`, or `max_seconds` on `clock`), evaluating and checkpointing on schedule.

        Evaluation records `elapsed_s` in wall time, `train_s` (the time in training steps alone, the first
        included: time-to-quality, as speedruns count it) and, with `clock="cpu"`, `cpu_s` in this process's
        CPU time. With `target_loss`, the first evaluation at or below it ends the run.
        """
        cfg = self.cfg
        end = min(cfg.max_steps, stop_at or cfg.max_steps)
        tokens_per_step = cfg.batch_size * self.data.block_size
        result = TrainResult(0, 0.0, 0, 0.0, 0.0, 0.0)
        checkpoint_every = cfg.checkpoint_every or cfg.eval_every
        progress = _Progress(self.world.is_main and cfg.progress, self.step, end)
        start = time.perf_counter()
        budget_clock = time.process_time if cfg.clock == "cpu" else time.perf_counter
        budget_start = budget_clock()
        train_seconds, steps_timed, step_seconds = 0.0, 0, 0.0
        self.time_fraction = 0.0
        first = self.step
        try:
            while self.step < end:
                t0 = time.perf_counter()
                loss = self.train_step()
                if (self.step % cfg.log_every == 0) or self.step == end:
                    loss_value = self.world.all_sum(loss.detach().float().cpu()).item()
                    if not math.isfinite(loss_value):
                        raise UserError(f"the loss became {loss_value} at step {self.step}", where="training",
                                        hint="lower lr, or use float32")
                else:
                    loss_value = None
                dt = time.perf_counter() - t0
                step_seconds += dt
                if self.step - first > 1 or self.step == end:  # the first step pays for warm-up (compile, allocation)
                    train_seconds += dt
                    steps_timed += 1
                tok_s = tokens_per_step * steps_timed / train_seconds if train_seconds else 0.0
                mfu = env.mfu(self.flops_per_token * tok_s, self.peak_flops)
                if loss_value is not None:
                    result.losses.append((self.step, loss_value))
                    self._log({"step": self.step, "loss": loss_value, "lr": self.lr,
                               "tokens_per_s": round(tok_s, 1), "mfu": round(mfu, 5),
                               "ms_per_step": round(1000 * dt, 2)})
                spent = budget_clock() - budget_start
                if cfg.max_seconds > 0:  # one fraction that every process agrees on, so all stop at one step
                    self.time_fraction = self.world.all_sum(torch.tensor([spent / cfg.max_seconds])).item()
                    self.time_fraction /= self.world.size
                stop = self.time_fraction >= 1  # out of time (or, below, at the target loss)
                if self.step % cfg.eval_every == 0 or self.step == end or stop:
                    metrics = {"step": self.step, **self.evaluate(), "elapsed_s": round(time.perf_counter() - start, 3),
                               "train_s": round(step_seconds, 3)}
                    if cfg.clock == "cpu":
                        metrics["cpu_s"] = round(spent, 3)
                    result.evals.append(metrics)
                    self._log(metrics)
                    progress.note(metrics)
                    stop = stop or metrics["val_loss"] <= cfg.target_loss
                progress.update(self.step, loss_value, tok_s, mfu)
                if self.step % checkpoint_every == 0 or self.step == end or stop:
                    self.save_checkpoint()
                if stop:
                    result.stopped_early = self.step < end
                    break
        finally:
            progress.close()
        result.steps = self.step - first
        result.seconds = time.perf_counter() - start
        result.tokens = result.steps * tokens_per_step
        result.tokens_per_second = tokens_per_step * steps_timed / train_seconds if train_seconds else 0.0
        result.ms_per_step = 1000 * train_seconds / steps_timed if steps_timed else 0.0
        result.mfu = env.mfu(self.flops_per_token * result.tokens_per_second, self.peak_flops)
        return result


class _Progress:
    """A rich progress bar with loss, tokens/s, MFU and ETA (only on process 0, only when asked)."""

    def __init__(self, enabled: bool, start: int, total: int):
        self.progress = None
        if not enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[info]}"), TimeRemainingColumn(), transient=False)
        self.task = self.progress.add_task("train", total=total, completed=start, info="")
        self.val = ""
        self.progress.start()

    def update(self, step: int, loss: float | None, tok_s: float, mfu: float) -> None:
        if self.progress is None:
            return
        loss_text = f"loss {loss:.4f} " if loss is not None else ""
        self.progress.update(self.task, completed=step,
                             info=f"{loss_text}{self.val}{tok_s:,.0f} tok/s MFU {100 * mfu:.1f}%")

    def note(self, metrics: dict[str, Any]) -> None:
        if self.progress is not None:
            self.val = f"val {metrics['val_loss']:.4f} "

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
