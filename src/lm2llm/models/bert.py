"""BERT as published (Devlin et al. 2019): an encoder-only Transformer pre-trained by filling in blanks.

Where it differs from the decoders in `transformer.py`:

| knob              | BERT                                    | GPT-2 (`transformer.py`)      |
|-------------------|-----------------------------------------|-------------------------------|
| attention         | bidirectional: every token sees all     | causal: only earlier tokens   |
| norm placement    | post-LN: Norm(x + Sublayer(x))          | pre-LN: x + Sublayer(Norm(x)) |
| embeddings        | token + learned position + token type, then LayerNorm | token + position |
| MLP activation    | GELU (exact, erf)                       | GELU (tanh approximation)     |
| output head       | MLM: dense → GELU → LayerNorm → tied embedding + bias | tied embedding |
| extra             | pooler: tanh(W·h[CLS]) for sentence tasks | —                           |

`model(ids, targets)` returns masked-LM logits at every position and, given targets (−100 = not masked),
their cross-entropy: the same interface as the decoders, so the Trainer runs it unchanged. `encode`
gives the final hidden states, `pooled` the pooler output that sentence classification reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lm2llm.errors import UserError
from lm2llm.models.attention import Attention


@dataclass
class BertConfig:
    vocab_size: int = 256
    context_length: int = 128
    type_vocab_size: int = 2  # segment A / segment B
    n_layer: int = 2
    n_head: int = 4
    d_model: int = 64
    d_ff: int | None = None  # None: 4·d_model
    norm_eps: float = 1e-12
    dropout: float = 0.0  # the paper used 0.1; 0 keeps tiny CPU runs fast and deterministic
    init_std: float = 0.02

    def __post_init__(self) -> None:
        if self.d_model % self.n_head:
            raise UserError(f"d_model ({self.d_model}) is not divisible by n_head ({self.n_head})", where="config.n_head")
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head


class BertLayer(nn.Module):
    """Post-LN block: x = Norm(x + Attn(x)); x = Norm(x + MLP(x))."""

    def __init__(self, c: BertConfig):
        super().__init__()
        self.attn = Attention(c.d_model, c.n_head, c.n_head, c.head_dim, bias=True, dropout=c.dropout)
        self.norm_attn = nn.LayerNorm(c.d_model, eps=c.norm_eps)
        self.up = nn.Linear(c.d_model, c.d_ff)
        self.down = nn.Linear(c.d_ff, c.d_model)
        self.norm_mlp = nn.LayerNorm(c.d_model, eps=c.norm_eps)
        self.dropout = c.dropout

    def forward(self, x: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
        x = self.norm_attn(x + self.attn(x, allowed))
        h = F.dropout(self.down(F.gelu(self.up(x))), self.dropout, self.training)
        return self.norm_mlp(x + h)


class Bert(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = c = config
        self.tok_emb = nn.Embedding(c.vocab_size, c.d_model)
        self.pos_emb = nn.Embedding(c.context_length, c.d_model)
        self.type_emb = nn.Embedding(c.type_vocab_size, c.d_model)
        self.norm_emb = nn.LayerNorm(c.d_model, eps=c.norm_eps)
        self.layers = nn.ModuleList(BertLayer(c) for _ in range(c.n_layer))
        self.pooler = nn.Linear(c.d_model, c.d_model)
        # masked-LM head; its output matrix is the token embedding itself (tied), plus a bias per token
        self.mlm_dense = nn.Linear(c.d_model, c.d_model)
        self.mlm_norm = nn.LayerNorm(c.d_model, eps=c.norm_eps)
        self.mlm_bias = nn.Parameter(torch.zeros(c.vocab_size))
        self.apply(self._init)

    def _init(self, module: nn.Module) -> None:
        """BERT's initialisation: every matrix N(0, 0.02), biases 0, LayerNorms the identity."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=self.config.init_std)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def new_state(self, batch_size: int, max_len: int) -> None:
        raise UserError("BERT is an encoder: it reads a whole text at once and has no incremental decoding",
                        where="model", hint="generate with a gpt or llama model")

    def encode(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
               token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """ids (B, T) → final hidden states (B, T, d_model); attention_mask (1 = token, 0 = padding)."""
        B, T = ids.shape
        if T > self.config.context_length:
            raise UserError(f"{T} tokens are more than the context length {self.config.context_length}",
                            where="ids", hint="truncate the input")
        positions = torch.arange(T, device=ids.device)
        types = token_type_ids if token_type_ids is not None else torch.zeros_like(ids)
        x = self.tok_emb(ids) + self.pos_emb(positions) + self.type_emb(types)
        x = F.dropout(self.norm_emb(x), self.config.dropout, self.training)
        # bidirectional: a query may look at every real key, never at padding
        allowed = None if attention_mask is None else attention_mask.to(torch.bool)[:, None, None, :]
        for layer in self.layers:
            x = layer(x, allowed)
        return x

    def pooled(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
               token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """tanh(W·h₀ + b): the sentence vector read from the first ([CLS]) position, (B, d_model)."""
        return torch.tanh(self.pooler(self.encode(ids, attention_mask, token_type_ids)[:, 0]))

    def mlm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        h = self.mlm_norm(F.gelu(self.mlm_dense(hidden)))
        return F.linear(h, self.tok_emb.weight, self.mlm_bias)

    def forward(self, ids: torch.Tensor, targets: torch.Tensor | None = None, *,
                attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """ids (B, T) → masked-LM logits (B, T, vocab) and, given targets (−100 = ignore), the mean cross-entropy."""
        logits = self.mlm_logits(self.encode(ids, attention_mask, token_type_ids))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
        return logits, loss

