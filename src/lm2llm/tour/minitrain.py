"""Brief training for tour chapters, through the project's one Trainer.

Chapters that need a briefly trained model (1.2's recall task, 2.1's positional-encoding ablation) draw
their batches from a function rather than token shards; `train_briefly` adapts that to the `Trainer`
(the same optimiser groups, schedule and clipping as `lm2llm train`), in fp32 and without run files.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from lm2llm.training import CausalLM, Trainer
from lm2llm.training.config import fine_tuning
from lm2llm.training.objectives import Batch

BatchFn = Callable[[], tuple[torch.Tensor, torch.Tensor]]


class FunctionBatches:
    """The Trainer's data interface over a function returning (ids, targets); no validation windows."""

    def __init__(self, next_batch: BatchFn):
        self._next_batch = next_batch
        ids, _ = next_batch()
        self.batch_size, self.block_size = ids.shape
        self.eval_bytes = 0

    def next_batch(self) -> Batch:
        ids, targets = self._next_batch()
        return {"ids": ids, "targets": targets}

    def eval_set(self) -> list[Batch]:
        return []

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {}


def brief_trainer(model: nn.Module, next_batch: BatchFn, steps: int, lr: float = 3e-3,
                  weight_decay: float = 0.0) -> Trainer:
    """A Trainer for `steps` batches of `next_batch()` (fp32, CPU, no run directory); call `train_step()`."""
    data = FunctionBatches(next_batch)
    cfg = fine_tuning(steps, lr, batch_size=data.batch_size, warmup_steps=max(1, steps // 20),
                      weight_decay=weight_decay)
    return Trainer(model, CausalLM(), data, cfg)


def train_briefly(model: nn.Module, next_batch: BatchFn, steps: int, lr: float = 3e-3,
                  weight_decay: float = 0.0) -> list[float]:
    """Train `model` for `steps` batches of `next_batch()`; returns every step's mean loss."""
    trainer = brief_trainer(model, next_batch, steps, lr, weight_decay)
    losses = [trainer.train_step().item() for _ in range(steps)]
    model.eval()
    return losses


def steps_until(model: nn.Module, next_batch: BatchFn, learned: Callable[[], bool], max_steps: int,
                check_every: int, lr: float = 3e-3) -> int | None:
    """Train until `learned()` holds (checked every `check_every` steps); the step it first held, or None."""
    trainer = brief_trainer(model, next_batch, max_steps, lr)
    for step in range(1, max_steps + 1):
        trainer.train_step()
        if step % check_every == 0 or step == max_steps:
            model.eval()
            if learned():
                return step
    model.eval()
    return None
