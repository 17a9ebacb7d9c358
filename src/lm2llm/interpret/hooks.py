"""Forward hooks that read (and, for patching, overwrite) a decoder's residual stream and attention.

The residual stream has `n_layer + 1` readable points: `resid[l]` is what enters block `l`, and
`resid[n_layer]` is what enters the final norm (TransformerLens calls them `blocks.l.hook_resid_pre` and
`blocks.{L-1}.hook_resid_post`). Each is caught by a forward *pre*-hook on the module it enters, so a
patch is the same hook returning a changed input.

Attention weights: the model's fast path is PyTorch's fused kernel, which returns no weights. For a
hooked call we switch each layer to the written-out formula (`Attention.keep_weights`), which the model
tests pin equal to the fused path, and read the weights it keeps.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from lm2llm.errors import UserError
from lm2llm.models.transformer import Transformer


@dataclass
class Trace:
    """One forward pass, recorded: ids (B, T), resid (n_layer + 1, B, T, d), attention per layer
    (B, n_head, T, T) or None, and the model's own logits (B, T, vocab)."""

    ids: torch.Tensor
    resid: torch.Tensor
    attention: list[torch.Tensor] | None
    logits: torch.Tensor


def decoder(model: nn.Module) -> Transformer:
    """The model if it is one of our decoders, else a clear error (RNNs and BERT have no residual blocks)."""
    if not isinstance(model, Transformer):
        raise UserError(f"interpretability tools need a decoder-only Transformer, not {type(model).__name__}",
                        hint="use a GPT/LLaMA run or smollm2-135m-instruct")
    return model


def entry_points(model: Transformer) -> list[nn.Module]:
    """The modules whose input is resid[0..n_layer]: every block, then the final norm."""
    return [*model.blocks, model.norm_f]


@contextmanager
def keeping_attention(model: Transformer) -> Iterator[None]:
    for block in model.blocks:
        block.attn.keep_weights = True
    try:
        yield
    finally:
        for block in model.blocks:
            block.attn.keep_weights = False
            block.attn.last_weights = None


@torch.no_grad()
def run_with_cache(model: nn.Module, ids: torch.Tensor, attention: bool = False) -> Trace:
    """Run `model` on ids (B, T) once, recording the residual stream (and attention weights)."""
    model = decoder(model)
    if ids.dim() == 1:
        ids = ids.unsqueeze(0)
    resid: list[torch.Tensor] = []
    weights: list[torch.Tensor] = []
    handles = [module.register_forward_pre_hook(lambda _m, args: resid.append(args[0].detach().float()))
               for module in entry_points(model)]
    if attention:
        handles += [block.attn.register_forward_hook(lambda m, _a, _o: weights.append(m.last_weights.float()))
                    for block in model.blocks]
    try:
        if attention:
            with keeping_attention(model):
                logits, _ = model(ids)
        else:
            logits, _ = model(ids)
    finally:
        for handle in handles:
            handle.remove()
    return Trace(ids, torch.stack(resid), weights if attention else None, logits.float())


@contextmanager
def patch_residual(model: nn.Module, layer: int, value: torch.Tensor, positions: torch.Tensor) -> Iterator[None]:
    """While active, row b of resid[layer] at position positions[b] is replaced by value[b] (d,).

    A pre-hook returning new arguments replaces the module's input: the rest of the forward pass runs
    on the patched stream as if the earlier layers had produced it.
    """
    model = decoder(model)
    rows = torch.arange(len(positions))

    def hook(_module: nn.Module, args: tuple) -> tuple:
        x = args[0].clone()
        x[rows, positions] = value.to(x.dtype)
        return (x, *args[1:])

    handle = entry_points(model)[layer].register_forward_pre_hook(hook)
    try:
        yield
    finally:
        handle.remove()
