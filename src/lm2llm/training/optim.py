"""Optimizers: AdamW with two weight-decay groups, or Muon for the hidden matrices with AdamW for the rest.

Decay pulls weights toward zero; that regularises the big projection matrices but only hurts gains,
biases and embedding rows (a rare token's row would shrink every step it is not seen). A parameter
shared by two modules (tied input/output embeddings) is counted once and follows its embedding.

Muon (Keller Jordan, 2024; written here, checked against `torch.optim.Muon`) replaces each hidden
matrix's momentum update by about the nearest semi-orthogonal matrix (a few Newton–Schulz iterations),
so every direction of the update moves at a similar rate instead of the few that dominate the gradient.
It is for matrices inside the network only: embeddings, output heads, biases and norm gains stay on
AdamW, as in modded-nanogpt.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from lm2llm.errors import UserError
from lm2llm.models.lora import TrainableTokens


def embedding_param_ids(model: nn.Module) -> set[int]:
    """Parameters looked up by token id (LoRA's trainable token rows included)."""
    return {id(p) for m in model.modules() if isinstance(m, (nn.Embedding, TrainableTokens)) for p in m.parameters()}


def decay_groups(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(decayed, not decayed): matrices decay; vectors (biases, norm gains) and embeddings do not."""
    embedding_ids = embedding_param_ids(model)
    decay, no_decay, seen = [], [], set()
    for param in model.parameters():
        if not param.requires_grad or id(param) in seen:
            continue
        seen.add(id(param))
        (no_decay if param.ndim < 2 or id(param) in embedding_ids else decay).append(param)
    return decay, no_decay


def hidden_matrices(model: nn.Module) -> list[nn.Parameter]:
    """Weights of the linear layers inside the network: not heads, not tied embeddings, not LoRA's low rank."""
    embedding_ids = embedding_param_ids(model)
    found, seen = [], set()
    for name, module in model.named_modules():
        last = name.rsplit(".", 1)[-1]
        if not isinstance(module, nn.Linear) or "head" in last or last.startswith("lora_"):
            continue
        weight = module.weight
        if weight.requires_grad and id(weight) not in embedding_ids and id(weight) not in seen:
            seen.add(id(weight))
            found.append(weight)
    return found


def newton_schulz(updates: torch.Tensor, steps: int = 5, eps: float = 1e-7,
                  coefficients: tuple[float, float, float] = (3.4445, -4.7750, 2.0315)) -> torch.Tensor:
    """Approximately orthogonalise a stack of matrices (n, rows, cols): U S Vᵀ becomes about U Vᵀ.

    Each matrix is scaled to spectral norm ≤ 1 (its Frobenius norm bounds that), then the quintic
    X ← aX + (bA + cA²)X with A = XXᵀ pushes every singular value toward 1. The coefficients favour speed
    over exact convergence: per the reference's notes, singular values end roughly between 0.5 and 1.5,
    which trains as well as exact U Vᵀ. Runs in bf16 like the reference; wide side last, so A is the
    small Gram matrix.
    """
    a, b, c = coefficients
    tall = updates.size(-2) > updates.size(-1)
    x = updates.bfloat16()
    x = x.mT if tall else x
    x = x / x.norm(dim=(-2, -1), keepdim=True).clamp(min=eps)
    for _ in range(steps):
        gram = x @ x.mT
        x = torch.baddbmm(x, torch.baddbmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.mT if tall else x


class Muon(torch.optim.Optimizer):
    """Muon: SGD-momentum (Nesterov) whose update is orthogonalised by Newton–Schulz before it is applied.

    The same update as `torch.optim.Muon` (Keller Jordan's learning-rate scaling, decoupled weight decay),
    but matrices of one shape are stacked and orthogonalised in one batched product: a small model has
    dozens of small matrices, and on a CPU one call per matrix costs more than the arithmetic.
    """

    def __init__(self, params, lr: float = 0.02, momentum: float = 0.95, weight_decay: float = 0.0,
                 nesterov: bool = True, ns_steps: int = 5, eps: float = 1e-7):
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay,
                                  "nesterov": nesterov, "ns_steps": ns_steps, "eps": eps})
        for group in self.param_groups:
            if any(p.ndim != 2 for p in group["params"]):
                raise ValueError("Muon takes matrices only; give vectors and embeddings to AdamW")

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            buffers = [self.state[p].setdefault("momentum_buffer", torch.zeros_like(p)) for p in params]
            momentum, lr = group["momentum"], group["lr"]
            torch._foreach_lerp_(buffers, grads, 1 - momentum)
            updates = torch._foreach_lerp(grads, buffers, momentum) if group["nesterov"] else buffers
            if group["weight_decay"]:
                torch._foreach_mul_(params, 1 - lr * group["weight_decay"])
            by_shape: dict[torch.Size, list[int]] = {}
            for i, p in enumerate(params):
                by_shape.setdefault(p.shape, []).append(i)
            for shape, members in by_shape.items():
                stacked = torch.stack([updates[i] for i in members])
                orthogonal = newton_schulz(stacked, group["ns_steps"], group["eps"]).to(params[members[0]].dtype)
                scale = math.sqrt(max(1.0, shape[0] / shape[1]))  # Jordan's lr scale for tall matrices
                torch._foreach_add_([params[i] for i in members], list(orthogonal.unbind(0)), alpha=-lr * scale)
        return loss


class MuonAdamW:
    """Muon on the hidden matrices and AdamW on every other parameter, stepped as one optimizer.

    `param_groups` lists both optimizers' groups; a group's `lr_scale` is its learning rate relative to
    the schedule's (Muon's 0.02 against AdamW's 1e-3 scale together through warm-up and decay). The
    state dict is torch's format with the AdamW groups and parameter indices following Muon's, so
    checkpoints store and resume it as they do a plain optimizer.
    """

    def __init__(self, muon: Muon, adamw: torch.optim.AdamW):
        self.muon, self.adamw = muon, adamw

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.muon.param_groups + self.adamw.param_groups

    def step(self) -> None:
        self.muon.step()
        self.adamw.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.muon.zero_grad(set_to_none=set_to_none)
        self.adamw.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        first, second = self.muon.state_dict(), self.adamw.state_dict()
        offset = sum(len(g["params"]) for g in first["param_groups"])
        groups = first["param_groups"] + [{**g, "params": [i + offset for i in g["params"]]}
                                          for g in second["param_groups"]]
        state = {**first["state"], **{i + offset: s for i, s in second["state"].items()}}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        count = len(self.muon.param_groups)
        first_groups, second_groups = state_dict["param_groups"][:count], state_dict["param_groups"][count:]
        offset = sum(len(g["params"]) for g in first_groups)
        state = state_dict["state"]
        self.muon.load_state_dict({"param_groups": first_groups,
                                   "state": {i: s for i, s in state.items() if i < offset}})
        self.adamw.load_state_dict({"param_groups": [{**g, "params": [i - offset for i in g["params"]]}
                                                     for g in second_groups],
                                    "state": {i - offset: s for i, s in state.items() if i >= offset}})


Optimizer = torch.optim.AdamW | MuonAdamW


def build_optimizer(model: nn.Module, *, lr: float, weight_decay: float, betas: tuple[float, float],
                    eps: float, device_type: str, name: str = "adamw", muon_lr: float = 0.02,
                    muon_momentum: float = 0.95) -> Optimizer:
    matrices = hidden_matrices(model) if name == "muon" else []
    if name == "muon" and not matrices:
        raise UserError("optimizer 'muon' found no trainable hidden linear layer in this model (recurrent cells, "
                        "LoRA adapters and heads stay on AdamW)", where="optimizer", hint="use optimizer=adamw")
    in_muon = {id(p) for p in matrices}
    decay, no_decay = (
        [p for p in group if id(p) not in in_muon] for group in decay_groups(model))
    groups = [{"params": decay, "weight_decay": weight_decay, "lr_scale": 1.0},
              {"params": no_decay, "weight_decay": 0.0, "lr_scale": 1.0}]
    # The fused kernel is one launch per step instead of one per tensor; CUDA has it, and so does CPU now.
    adamw = torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=betas, eps=eps,
                              fused=device_type in ("cuda", "cpu"))
    if name != "muon":
        return adamw
    muon = Muon([{"params": matrices, "lr_scale": muon_lr / lr if lr else 1.0}], lr=muon_lr,
                weight_decay=weight_decay, momentum=muon_momentum)
    return MuonAdamW(muon, adamw)
