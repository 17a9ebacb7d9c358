"""Pruning: zero the weights that matter least. Magnitude, Wanda and SparseGPT, unstructured or N:M.

- **Magnitude**: drop the smallest |w| of a layer (one threshold for the whole matrix). Cheap, and on
  large LLMs poor: a few input features carry activations 100x larger than the rest (Dettmers et al.
  2022), so a small weight on such a feature still matters.
- **Wanda** (Sun et al. 2023, "pruning by weights and activations"): score |w_ij| · ‖x_j‖₂, the weight
  times the norm of its input feature over calibration tokens, and drop the lowest scores *within each
  output row* (a row is one output's sum; comparing within it keeps every output's budget equal). No
  weight update, one forward pass of calibration data.
- **SparseGPT** (Frantar & Alistarh 2023): prune column by column and update the remaining weights to
  cancel the error, using the inverse Hessian H⁻¹ of the layer's squared error (H = 2XXᵀ/n).
- **N:M** (2:4): in every group of M consecutive inputs of a row keep the M−N largest scores; the only
  sparsity pattern GPUs run faster (sparse tensor cores). Unstructured zeros save nothing on their own:
  a pruned dense matrix has the same bytes and speed; the report counts what a sparse format would take.

The scores and updates follow the reference implementation exactly (llmcompressor's `wanda_sparsify` and
`sgpt_sparsify`: running means over calibration *sequences*, stable sort, ties, damping 1 % of the mean
diagonal, blocks of 128 columns); the tests compare with it on random layers. Calibration is sequential,
as in the papers: block l is calibrated on the outputs of the already pruned blocks before it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from lm2llm.errors import UserError
from lm2llm.models.positions import rope_cos_sin
from lm2llm.models.transformer import Transformer

METHODS = ("magnitude", "wanda", "sparsegpt")


@dataclass
class Sparsity:
    """What to prune: `fraction` of each row (unstructured), or `n` of every `m` (N:M; fraction = n/m)."""

    fraction: float
    n: int = 0
    m: int = 0

    @classmethod
    def parse(cls, text: str) -> Sparsity:
        """"0.5": unstructured, half of each row zero; "2:4": 2 of every 4 consecutive weights zero."""
        if ":" in text:
            n, m = (int(part) for part in text.split(":"))
            if not 0 < n < m:
                raise UserError(f"N:M needs 0 < N < M, got {text}", where="sparsity")
            return cls(n / m, n, m)
        fraction = float(text)
        if not 0 <= fraction < 1:
            raise UserError(f"sparsity must be in [0, 1), got {text}", where="sparsity")
        return cls(fraction)


class Calibration:
    """Running statistics of one linear layer's inputs: per-column mean squared norm (Wanda's ‖x_j‖²) and,
    when asked, the Hessian 2XXᵀ/n (SparseGPT). n counts sequences, not tokens, as the reference does."""

    def __init__(self, in_features: int, hessian: bool):
        self.samples = 0
        self.row_scalars = torch.zeros(in_features)
        self.hessian = torch.zeros(in_features, in_features) if hessian else None

    def add(self, inputs: torch.Tensor) -> None:
        inputs = inputs.detach()
        if inputs.dim() == 2:
            inputs = inputs.unsqueeze(0)
        added = inputs.shape[0]
        columns = inputs.reshape(-1, inputs.shape[-1]).t().float()
        keep = self.samples / (self.samples + added)
        self.samples += added
        self.row_scalars *= keep
        self.row_scalars += torch.norm(columns, p=2, dim=1) ** 2 / self.samples
        if self.hessian is not None:
            self.hessian *= keep
            scaled = math.sqrt(2 / self.samples) * columns
            self.hessian += scaled @ scaled.t()


def _nm_mask(scores: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """True where a weight is pruned: the n lowest scores of every m consecutive columns."""
    if scores.shape[1] % m:
        raise UserError(f"{n}:{m} sparsity needs a multiple of {m} inputs, got {scores.shape[1]}")
    groups = scores.reshape(scores.shape[0], -1, m)
    lowest = torch.topk(groups, n, dim=-1, largest=False).indices
    return torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, lowest, True).reshape(scores.shape)


def prune_mask(scores: torch.Tensor, sparsity: Sparsity, per_row: bool) -> torch.Tensor:
    """True where a weight is pruned: N:M groups, the lowest `fraction` of each row (stable sort), or every
    score at or below the layer's `fraction` quantile."""
    if sparsity.n:
        return _nm_mask(scores, sparsity.n, sparsity.m)
    if per_row:
        lowest = torch.sort(scores, dim=-1, stable=True).indices[:, :int(scores.shape[1] * sparsity.fraction)]
        return torch.zeros_like(scores, dtype=torch.bool).scatter_(1, lowest, True)
    if sparsity.fraction == 0:
        return torch.zeros_like(scores, dtype=torch.bool)
    # the value a full sort would put at position int(numel · fraction), found by selection instead (same value)
    threshold = torch.kthvalue(scores.flatten(), int(scores.numel() * sparsity.fraction) + 1).values
    return scores <= threshold


def magnitude(weight: torch.Tensor, sparsity: Sparsity) -> torch.Tensor:
    w = weight.detach().float()
    return w.masked_fill(prune_mask(w.abs(), sparsity, per_row=False), 0.0)


def wanda(weight: torch.Tensor, row_scalars: torch.Tensor, sparsity: Sparsity) -> torch.Tensor:
    w = weight.detach().float()
    scores = w.abs() * torch.sqrt(row_scalars.reshape(1, -1))
    return w.masked_fill(prune_mask(scores, sparsity, per_row=True), 0.0)


def sparsegpt(weight: torch.Tensor, hessian: torch.Tensor, sparsity: Sparsity, block_size: int = 128,
              damping: float = 0.01) -> torch.Tensor:
    """Prune with optimal-brain-surgeon updates of the weights not pruned (SparseGPT's algorithm 1)."""
    w = weight.detach().float().clone()
    h = hessian.clone()
    dead = torch.diag(h) == 0  # inputs that were always zero: their weights go, their Hessian row is neutral
    h[dead, dead] = 1
    w[:, dead] = 0
    diagonal = torch.arange(h.shape[0])
    h[diagonal, diagonal] += damping * torch.mean(torch.diag(h))
    h_inv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    columns = w.shape[1]
    for start in range(0, columns, block_size):
        end = min(start + block_size, columns)
        block, h_block = w[:, start:end].clone(), h_inv[start:end, start:end]
        errors = torch.zeros_like(block)
        scale = torch.diag(h_block).reshape(1, -1) ** 2
        mask = (torch.zeros_like(block, dtype=torch.bool) if sparsity.n
                else prune_mask(block ** 2 / scale, sparsity, per_row=False))
        for i in range(end - start):
            if sparsity.n and i % sparsity.m == 0:
                scores = block[:, i:i + sparsity.m] ** 2 / scale[:, i:i + sparsity.m]
                mask.scatter_(1, i + torch.topk(scores, sparsity.n, dim=1, largest=False).indices, True)
            column = block[:, i]
            kept = column.masked_fill(mask[:, i], 0.0)
            error = (column - kept) / h_block[i, i]
            block[:, i:] -= error.unsqueeze(1) @ h_block[i, i:].unsqueeze(0)
            block[:, i] = kept
            errors[:, i] = error
        w[:, start:end] = block
        w[:, end:] -= errors @ h_inv[start:end, end:]
    return w


def _linears(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


def _prune_layer(linear: nn.Linear, method: str, sparsity: Sparsity, stats: Calibration | None) -> None:
    if method == "magnitude":
        pruned = magnitude(linear.weight, sparsity)
    elif method == "wanda":
        pruned = wanda(linear.weight, stats.row_scalars, sparsity)
    else:
        pruned = sparsegpt(linear.weight, stats.hessian, sparsity)
    linear.weight.data.copy_(pruned.to(linear.weight.dtype))


@torch.no_grad()
def prune_model(model: Transformer, method: str, sparsity: Sparsity,
                calibration: Iterable[torch.Tensor] = ()) -> dict[str, float]:
    """Prune every linear layer inside the blocks of `model` in place (embedding and output layer stay
    dense, as the papers do); `calibration`: batches of token ids (B, T) for Wanda and SparseGPT.

    Sequential, block by block: the calibration hidden states enter block 0, its layers are scored and
    pruned, then the states are pushed through the pruned block to calibrate the next. Returns the
    fraction of zeros in the pruned layers."""
    if method not in METHODS:
        raise UserError(f"unknown pruning method {method!r}", where="--method", hint=", ".join(METHODS))
    if method == "magnitude":
        for block in model.blocks:
            for linear in _linears(block):
                _prune_layer(linear, method, sparsity, None)
        return {"sparsity": measured_sparsity(model)}
    batches = list(calibration)
    if not batches:
        raise UserError(f"{method} needs calibration text", where="calibration")
    c = model.config
    hidden, extras = [], []
    for ids in batches:
        positions = torch.arange(ids.shape[1]).expand(ids.shape)
        x = model.tok_emb(ids)
        if model.pos_emb is not None:
            x = x + model.pos_emb(positions)
        hidden.append(x)
        extras.append({"rope": rope_cos_sin(positions, c.head_dim, c.rope_theta) if c.positional == "rope" else None})
    for layer, block in enumerate(model.blocks):
        linears = _linears(block)
        stats = {linear: Calibration(linear.in_features, hessian=method == "sparsegpt") for linear in linears}
        hooks = [linear.register_forward_pre_hook(lambda mod, args, stats=stats: stats[mod].add(args[0])) for linear in linears]
        try:
            for x, extra in zip(hidden, extras, strict=True):
                block(x, layer, allowed=None, causal=True, **extra)
        finally:
            for hook in hooks:
                hook.remove()
        for linear in linears:
            _prune_layer(linear, method, sparsity, stats[linear])
        hidden = [block(x, layer, allowed=None, causal=True, **extra) for x, extra in zip(hidden, extras, strict=True)]
    return {"sparsity": measured_sparsity(model)}


def measured_sparsity(model: Transformer) -> float:
    """Fraction of exact zeros in the linear layers of the blocks."""
    weights = [linear.weight for block in model.blocks for linear in _linears(block)]
    return float(sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights))


def sparse_bytes(model: Transformer, bits: int = 16) -> dict[str, int]:
    """Bytes the blocks' linear weights take dense, in CSR (values + 32-bit column indices + row pointers),
    and packed 2:4 (half the values + 2 bits of position each), all at `bits` per value: what sparsity
    could save, which a dense file of zeros does not."""
    dense = csr = packed = 0
    for block in model.blocks:
        for linear in _linears(block):
            w = linear.weight
            nonzero = int((w != 0).sum())
            dense += w.numel() * bits // 8
            csr += nonzero * (bits // 8 + 4) + (w.shape[0] + 1) * 4
            packed += w.numel() // 2 * bits // 8 + w.numel() // 2 * 2 // 8
    return {"dense": dense, "csr": csr, "packed_2_4": packed}
