"""Recurrent language models: Elman RNN, LSTM and GRU cells written as their equations, stacked.

A recurrent model reads one token at a time and squeezes everything it has seen into a fixed-size
state h_t, so step t cannot start before step t−1 ends: that sequential dependency is the training-speed
limit the Transformer removes (measured in tour chapter 1.2), and the repeated multiplication by W_hh is
why gradients vanish over long distances.

The parameters use the names and layout of `torch.nn.LSTMCell`/`GRUCell`/`RNNCell` (gate order
i, f, g, o for the LSTM and r, z, n for the GRU, two bias vectors), so `use_torch=True` can hand the very
same weights to PyTorch's fused kernel (the one `torch.nn.LSTM` calls); tests pin both paths equal.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lm2llm.errors import UserError

CELLS = ("rnn", "lstm", "gru")
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


@dataclass
class RNNConfig:
    vocab_size: int = 256
    cell: str = "lstm"
    d_embed: int = 64
    d_hidden: int = 128
    n_layer: int = 1
    dropout: float = 0.0
    tie_embeddings: bool = False  # needs d_embed == d_hidden
    use_torch: bool = False  # run PyTorch's fused kernel on the same weights

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise UserError(f"unknown cell {self.cell!r}", where="config.cell", hint=f"choose from {', '.join(CELLS)}")
        if self.tie_embeddings and self.d_embed != self.d_hidden:
            raise UserError("tied embeddings need d_embed == d_hidden", where="config.tie_embeddings")


class RecurrentCell(nn.Module):
    """One layer's step function h_{t-1} → h_t, for any of the three cells."""

    def __init__(self, cell: str, d_in: int, d_hidden: int):
        super().__init__()
        self.cell = cell
        gates = GATES[cell] * d_hidden
        self.weight_ih = nn.Parameter(torch.empty(gates, d_in))
        self.weight_hh = nn.Parameter(torch.empty(gates, d_hidden))
        self.bias_ih = nn.Parameter(torch.empty(gates))
        self.bias_hh = nn.Parameter(torch.empty(gates))

    def reset_parameters(self) -> None:
        """PyTorch's default: U(−1/√H, 1/√H) for every weight and bias."""
        bound = 1.0 / math.sqrt(self.weight_hh.size(1))
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        gi = F.linear(x, self.weight_ih, self.bias_ih)
        gh = F.linear(h, self.weight_hh, self.bias_hh)
        if self.cell == "rnn":
            # h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
            return torch.tanh(gi + gh), None
        if self.cell == "lstm":
            # i, f, o gates in (0, 1); g the candidate; c_t = f·c_{t-1} + i·g; h_t = o·tanh(c_t)
            i, f, g, o = (gi + gh).chunk(4, dim=-1)
            i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
            c = f * c + i * g
            return o * torch.tanh(c), c
        # GRU: r resets how much of h_{t-1} the candidate sees; z interpolates old state and candidate
        ir, iz, in_ = gi.chunk(3, dim=-1)
        hr, hz, hn = gh.chunk(3, dim=-1)
        r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
        n = torch.tanh(in_ + r * hn)
        return (1 - z) * n + z * h, None


@dataclass
class RNNState:
    """Hidden state (and LSTM cell state) of every layer: (n_layer, B, d_hidden)."""

    h: torch.Tensor
    c: torch.Tensor | None

    def to(self, dtype: torch.dtype) -> RNNState:
        """The same state in `dtype`."""
        return RNNState(self.h.to(dtype), None if self.c is None else self.c.to(dtype))

    @classmethod
    def gather(cls, parts: Sequence[tuple[RNNState, Sequence[int]]], room: int = 0) -> RNNState:
        """Rows picked from several states as one state (continuous batching); `room` is for the common
        interface: a recurrent state has no length to grow."""
        picked = [(state, list(rows)) for state, rows in parts if len(rows)]
        if not picked:
            raise ValueError("gather needs at least one row")
        h = torch.cat([state.h[:, rows] for state, rows in picked], dim=1)
        c = None if picked[0][0].c is None else torch.cat([state.c[:, rows] for state, rows in picked], dim=1)
        return cls(h, c)


class RNNLanguageModel(nn.Module):
    def __init__(self, config: RNNConfig):
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_embed)
        self.cells = nn.ModuleList(
            RecurrentCell(config.cell, config.d_embed if layer == 0 else config.d_hidden, config.d_hidden)
            for layer in range(config.n_layer)
        )
        self.lm_head = nn.Linear(config.d_hidden, config.vocab_size)
        if config.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight
        if not any(p.is_meta for p in self.parameters()):
            for cell in self.cells:
                cell.reset_parameters()
            nn.init.normal_(self.tok_emb.weight, std=0.1 if not config.tie_embeddings else 0.02)
            nn.init.zeros_(self.lm_head.bias)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def new_state(self, batch_size: int, max_len: int = 0) -> RNNState:
        """A zero state; `max_len` is accepted for the common decoding interface (an RNN needs no cache)."""
        c = self.config
        weight = self.tok_emb.weight
        h = torch.zeros(c.n_layer, batch_size, c.d_hidden, dtype=weight.dtype, device=weight.device)
        return RNNState(h, torch.zeros_like(h) if c.cell == "lstm" else None)

    def forward(
        self,
        ids: torch.Tensor,
        targets: torch.Tensor | None = None,
        *,
        state: RNNState | None = None,
        attention_mask: torch.Tensor | None = None,
        last_only: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """ids (B, T) → logits (B, T, vocab), loss. A given `state` is advanced in place; `last_only` gives
        the last position's logits (B, 1, vocab), as the Transformer does.

        With `attention_mask` (0 = padding), padding steps leave the state unchanged, so a left-padded
        row ends in the same state as the unpadded sequence.
        """
        B, T = ids.shape
        run = state if state is not None else self.new_state(B)
        x = F.dropout(self.tok_emb(ids), self.config.dropout, self.training)
        if self.config.use_torch and attention_mask is None:
            out = self._fused(x, run)
        else:
            out = self._unrolled(x, run, attention_mask)
        logits = self.lm_head(F.dropout(out[:, -1:] if last_only else out, self.config.dropout, self.training))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100)
        return logits, loss

    def _unrolled(self, x: torch.Tensor, state: RNNState, mask: torch.Tensor | None) -> torch.Tensor:
        """The recurrence as a Python loop over time, then over layers: readable, and slow."""
        hs = list(state.h.unbind(0))
        cs = list(state.c.unbind(0)) if state.c is not None else [None] * len(hs)
        outputs = []
        for t in range(x.size(1)):
            inp = x[:, t]
            keep = None if mask is None else mask[:, t].to(torch.bool).unsqueeze(1)
            for layer, cell in enumerate(self.cells):
                h, c = cell(inp, hs[layer], cs[layer])
                if keep is not None:
                    h = torch.where(keep, h, hs[layer])
                    c = None if c is None else torch.where(keep, c, cs[layer])
                hs[layer], cs[layer] = h, c
                inp = h if layer == len(self.cells) - 1 else F.dropout(h, self.config.dropout, self.training)
            outputs.append(inp)
        state.h = torch.stack(hs)
        state.c = torch.stack(cs) if state.c is not None else None
        return torch.stack(outputs, dim=1)

    def _fused(self, x: torch.Tensor, state: RNNState) -> torch.Tensor:
        """The same recurrence through PyTorch's fused kernel (what torch.nn.LSTM/GRU/RNN call)."""
        weights = [w for cell in self.cells for w in (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)]
        args = (weights, True, self.config.n_layer, self.config.dropout, self.training, False, True)
        if self.config.cell == "lstm":
            out, h, c = torch.lstm(x, (state.h, state.c), *args)
            state.h, state.c = h, c
        else:
            kernel = torch.gru if self.config.cell == "gru" else torch.rnn_tanh
            out, h = kernel(x, state.h, *args)
            state.h = h
        return out
