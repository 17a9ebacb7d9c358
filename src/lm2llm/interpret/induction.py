"""Induction heads: on a repeated random sequence [A B C … | A B C …], a head that, at the second B,
looks at the token right after the first B (C) can copy it: the circuit behind in-context copying.

The score is TransformerLens' head detector (`detect_head(..., "induction_head")` with its defaults,
error measure "mul"): the detection pattern marks, for each query, the keys one after an earlier
occurrence of the query's token (lower triangle); score = Σ(attention · pattern) / Σ attention, averaged
over sequences. A perfect induction head on the second half scores ≈ 0.5 of all rows (the first half
has nothing to match), so TransformerLens' and our numbers read the same way.
"""

from __future__ import annotations

import torch
from torch import nn

from lm2llm.interpret.hooks import decoder, run_with_cache


def duplicate_token_pattern(tokens: torch.Tensor) -> torch.Tensor:
    """(T, T): 1 where key j < query i holds the same token (diagonal excluded)."""
    same = (tokens.unsqueeze(1) == tokens.unsqueeze(0)).float()
    same = same * (1 - torch.eye(len(tokens)))
    return torch.tril(same)


def induction_pattern(tokens: torch.Tensor) -> torch.Tensor:
    """The duplicate-token pattern shifted one key to the right (first column zero), lower triangle."""
    duplicate = duplicate_token_pattern(tokens)
    shifted = torch.roll(duplicate, shifts=1, dims=1)
    shifted[:, 0] = 0
    return torch.tril(shifted)


def repeated_random_tokens(vocab_size: int, length: int, batch: int, seed: int = 0, prefix: int | None = None,
                           low: int = 0) -> torch.Tensor:
    """(batch, 2·length [+1]) random ids in [low, vocab) repeated once, after an optional prefix (BOS) token."""
    generator = torch.Generator().manual_seed(seed)
    half = torch.randint(low, vocab_size, (batch, length), generator=generator)
    ids = torch.cat([half, half], dim=1)
    if prefix is not None:
        ids = torch.cat([torch.full((batch, 1), prefix), ids], dim=1)
    return ids


def head_scores(attention: list[torch.Tensor], ids: torch.Tensor) -> torch.Tensor:
    """(n_layer, n_head) induction scores, each the mean over the batch rows of the detector's score."""
    scores = []
    for weights in attention:  # (B, H, T, T)
        pattern = torch.stack([induction_pattern(row) for row in ids])  # (B, T, T)
        per_row = (weights * pattern.unsqueeze(1)).sum((-1, -2)) / weights.sum((-1, -2))
        scores.append(per_row.mean(0))
    return torch.stack(scores)


def induction_scores(model: nn.Module, length: int = 20, batch: int = 4, seed: int = 0, prefix: int | None = None,
                     low: int = 0) -> torch.Tensor:
    """Induction score of every head of `model` on repeated random tokens."""
    model = decoder(model)
    ids = repeated_random_tokens(model.config.vocab_size, length, batch, seed, prefix, low)
    return head_scores(run_with_cache(model, ids, attention=True).attention, ids)


def plot_head_scores(scores: torch.Tensor, title: str) -> object:
    """Heat map of a (n_layer, n_head) score table."""
    from lm2llm.tour.plots import plt

    fig, ax = plt.subplots(figsize=(0.35 * scores.size(1) + 2.5, 0.22 * scores.size(0) + 1.6))
    image = ax.imshow(scores.numpy(), cmap="magma", vmin=0, aspect="auto")
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title(title)
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    return fig
