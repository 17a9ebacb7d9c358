"""AdamW with two parameter groups: weight decay on matrices, none on biases, norms and embeddings.

Decay pulls weights toward zero; that regularises the big projection matrices but only hurts gains,
biases and embedding rows (a rare token's row would shrink every step it is not seen). A parameter
shared by two modules (tied input/output embeddings) is counted once and follows its embedding.
"""

from __future__ import annotations

import torch
from torch import nn

from lm2llm.models.lora import TrainableTokens


def decay_groups(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(decayed, not decayed): matrices decay; vectors (biases, norm gains) and embeddings do not.

    LoRA's trainable token rows are embedding rows too, so they do not decay either.
    """
    embedding_ids = {id(p) for m in model.modules() if isinstance(m, (nn.Embedding, TrainableTokens))
                     for p in m.parameters()}
    decay, no_decay, seen = [], [], set()
    for param in model.parameters():
        if not param.requires_grad or id(param) in seen:
            continue
        seen.add(id(param))
        (no_decay if param.ndim < 2 or id(param) in embedding_ids else decay).append(param)
    return decay, no_decay


def build_optimizer(model: nn.Module, *, lr: float, weight_decay: float, betas: tuple[float, float],
                    eps: float, device_type: str) -> torch.optim.AdamW:
    decay, no_decay = decay_groups(model)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # The fused kernel is one launch per step instead of one per tensor; CUDA has it, and so does CPU now.
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, fused=device_type in ("cuda", "cpu"))
