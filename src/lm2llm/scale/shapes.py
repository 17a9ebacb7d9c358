"""Model sizes for a sweep, by one stated rule, and the three ways of counting their parameters.

The rule (Kaplan et al. 2020 found the loss depends on the shape only weakly): a width d gives a GPT with
n_layer = max(1, round(d/32)) blocks, heads of 16 dimensions, a 4·d MLP, the data's vocabulary and the
sweep's context. Parameters are counted on the meta device from the real model, under three conventions:

- `all`: every parameter (Hoffmann et al. 2022; a tied output matrix counts once),
- `non_embedding`: without the token and position embeddings (Kaplan et al. 2020),
- `blocks`: the transformer blocks only (no embeddings, no final norm).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from lm2llm.errors import UserError
from lm2llm.models import build_model
from lm2llm.models.accounting import count_by_component

CONVENTIONS = ("all", "non_embedding", "blocks")
HEAD_DIM = 16


@dataclass(frozen=True)
class Shape:
    width: int
    n_layer: int
    n_head: int

    @property
    def name(self) -> str:
        return f"w{self.width}l{self.n_layer}"

    def overrides(self, context: int) -> dict[str, int]:
        """The `model.*` keys of a training config for this shape."""
        return {"n_layer": self.n_layer, "d_model": self.width, "n_head": self.n_head, "context_length": context}


def shape_for_width(width: int) -> Shape:
    if width < HEAD_DIM or width % HEAD_DIM:
        raise UserError(f"width {width} must be a positive multiple of {HEAD_DIM}", where="--sizes",
                        hint="e.g. --sizes 16,32,48,64,96")
    return Shape(width, max(1, round(width / 32)), width // HEAD_DIM)


@functools.cache
def param_counts(shape: Shape, vocab_size: int, context: int) -> dict[str, int]:
    """Parameters of the GPT of this shape under each convention (cached: callers must not mutate the dict)."""
    with torch.device("meta"):
        model = build_model("gpt", None, vocab_size=vocab_size, **shape.overrides(context))
    parts = count_by_component(model)
    total = sum(parts.values())
    non_embedding = total - parts.get("token_embedding", 0) - parts.get("position_embedding", 0)
    final_norm = sum(p.numel() for p in model.norm_f.parameters())
    return {"all": total, "non_embedding": non_embedding, "blocks": non_embedding - final_norm}


def nearest_shape(params: float, vocab_size: int, context: int, convention: str = "all",
                  widths: range = range(HEAD_DIM, 513, HEAD_DIM)) -> Shape:
    """The shape of the rule whose parameter count is nearest `params` on a log scale."""
    return min((shape_for_width(w) for w in widths),
               key=lambda s: abs(math.log(param_counts(s, vocab_size, context)[convention] / params)))
