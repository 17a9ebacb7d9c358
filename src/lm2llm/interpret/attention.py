"""Attention maps: who looks at whom, per layer and head, as heat maps over the tokens."""

from __future__ import annotations

import math
from typing import Any

import torch

from lm2llm.interpret.hooks import Trace


def token_label(tokenizer: Any, token_id: int) -> str:
    """A single token as a figure can draw it: a byte-level piece of a Hangul syllable decodes to '�' and
    a control byte to nothing visible, so those are shown by id ('<1234>') rather than as a box."""
    text = tokenizer.decode([token_id]).replace("\n", "⏎")
    return text if text.isprintable() and "\ufffd" not in text else f"<{token_id}>"


def token_labels(tokenizer: Any, ids: list[int]) -> list[str]:
    return [token_label(tokenizer, i) for i in ids]


def head_entropy(weights: torch.Tensor) -> torch.Tensor:
    """Mean entropy (nats) of each head's attention rows: (n_head,) for weights (n_head, T, T)."""
    return -(weights * weights.clamp_min(1e-12).log()).sum(-1).mean(-1)


def plot_heads(trace: Trace, labels: list[str], layer: int, title: str, heads: list[int] | None = None) -> Any:
    """One figure: a heat map per head of `layer` (rows: queries, columns: keys) for the first row."""
    from lm2llm.tour.plots import plt

    weights = trace.attention[layer][0]
    heads = list(range(weights.size(0))) if heads is None else heads
    cols = min(4, len(heads))
    rows = math.ceil(len(heads) / cols)
    size = 0.22 * len(labels) + 1.5
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    for ax in axes.flat[len(heads):]:
        ax.axis("off")
    for ax, head in zip(axes.flat, heads, strict=False):
        ax.imshow(weights[head].numpy(), cmap="viridis", vmin=0, vmax=1)
        ax.set_title(f"L{layer} H{head}", fontsize=8)
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=6)
        ax.set_yticks(range(len(labels)), labels, fontsize=6)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
