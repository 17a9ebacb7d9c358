"""Padded batches: rows of different lengths as one tensor (`pad`), and where each row ends.

Training pads on the right (a row's tokens keep their positions 0, 1, 2, ...); generation pads prompts on
the left, so that every row's next token lands in the same column. A causal model has seen a whole text
only at its last real token: finding that token from the attention mask (not from the sequence length or
an end-of-text id) works for right and left padding alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

SIDES = ("right", "left")


def pad(rows: Sequence[Sequence[int]], value: int, *, side: str = "right",
        length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows as one (B, T) long tensor filled with `value` on `side`, and its 0/1 mask (1 = a row's own entry).

    T is `length` when given (at least the longest row), else the longest row.
    """
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, not {side!r}")
    width = max((len(row) for row in rows), default=0) if length is None else length
    ids = torch.full((len(rows), width), value, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for index, row in enumerate(rows):
        if not len(row):
            continue
        span = slice(0, len(row)) if side == "right" else slice(width - len(row), width)
        ids[index, span] = torch.as_tensor(row, dtype=torch.long)
        mask[index, span] = 1
    return ids, mask


def last_real_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last 1 in each row of a 0/1 mask, left- or right-padded (0 for an empty row)."""
    positions = torch.arange(mask.shape[1], device=mask.device)
    return (positions * mask.to(torch.long)).argmax(dim=1)


def at_last_real_token(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`values[b, last real position of row b]` for a (batch, seq, ...) tensor: (batch, ...)."""
    rows = torch.arange(values.shape[0], device=values.device)
    return values[rows, last_real_index(mask)]
