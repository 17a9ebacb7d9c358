"""Brief training for tour chapters, through the project's one Trainer.

Chapters that need a briefly trained model (1.2's recall task, 2.1's positional-encoding ablation) draw
their batches from a function rather than token shards; `train_briefly` adapts that to the `Trainer`
(the same optimiser groups, schedule and clipping as `lm2llm train`), in fp32 and without run files.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from lm2llm.training import CausalLM, TrainConfig, Trainer
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


def train_briefly(model: nn.Module, next_batch: BatchFn, steps: int, lr: float = 3e-3,
                  weight_decay: float = 0.0) -> list[float]:
    """Train `model` for `steps` batches of `next_batch()`; returns every step's mean loss."""
    data = FunctionBatches(next_batch)
    cfg = TrainConfig(batch_size=data.batch_size, max_steps=steps, lr=lr, min_lr=lr / 10,
                      warmup_steps=max(1, steps // 20), weight_decay=weight_decay, dtype="float32", device="cpu",
                      progress=False)
    trainer = Trainer(model, CausalLM(), data, cfg)
    losses = [trainer.train_step().item() for _ in range(steps)]
    model.eval()
    return losses
