"""The smallest honest training loop the tour chapters share until `lm2llm.training.Trainer` lands.

Chapters that need a briefly trained model (1.2's recall task, 2.1's positional-encoding ablation) call
`train_briefly` and nothing else, so swapping in the project's Trainer later touches one function.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def train_briefly(
    model: nn.Module,
    next_batch: Callable[[], tuple[torch.Tensor, torch.Tensor]],
    steps: int,
    lr: float = 3e-3,
    weight_decay: float = 0.0,
    clip: float = 1.0,
) -> list[float]:
    """AdamW on `model(ids, targets)` losses for `steps` batches; returns the loss of every step."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    model.train()
    losses = []
    for _ in range(steps):
        ids, targets = next_batch()
        _, loss = model(ids, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    return losses
