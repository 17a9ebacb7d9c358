"""Where each row of a padded batch ends: the position a classifier, a reward model and PPO read.

A causal model has seen a whole text only at its last real token. Finding that token from the attention
mask (not from the sequence length or an end-of-text id) works for right and left padding alike.
"""

from __future__ import annotations

import torch


def last_real_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last 1 in each row of a 0/1 mask, left- or right-padded (0 for an empty row)."""
    positions = torch.arange(mask.shape[1], device=mask.device)
    return (positions * mask.to(torch.long)).argmax(dim=1)


def at_last_real_token(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`values[b, last real position of row b]` for a (batch, seq, ...) tensor: (batch, ...)."""
    rows = torch.arange(values.shape[0], device=values.device)
    return values[rows, last_real_index(mask)]
