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

Four options (off by default, so the default model stays equal to transformers' `BertForMaskedLM`)
take a tiny BERT off masked LM's first plateau, where it predicts token frequencies at every blank
(chapter 2.2); `plateau_recipe` turns them all on:

| option           | default (BERT, HF)     | recipe                | why it helps a tiny model                             |
|------------------|------------------------|-----------------------|-------------------------------------------------------|
| `positional`     | `learned` table        | `alibi`               | neighbours are close from step 0: each head adds −slope·distance to its scores (Press et al. 2022), where a learned table must first learn which positions are adjacent |
| `norm_placement` | `post`: Norm(x + f(x)) | `pre`: x + f(Norm(x)) | the residual path passes gradients to the early layers untouched, so a high learning rate is stable without a long warm-up (Xiong et al. 2020) |
| `init_std`       | 0.02                   | d_model^−½            | at width 64, std-0.02 matrices make tiny products with tiny gradients (a saddle); d^−½ starts at unit scale |
| `mask_rate`      | 0.15                   | 0.30                  | twice the blanks per window, twice the training signal per step (Wettig et al. 2023, "Should You Mask 15 % in Masked Language Modeling?") |

`mask_rate` is read by the masked-LM data (`training.run.masked_lm_batches`), not by the forward pass; it
is kept here so that a saved model records how it was pre-trained. ALiBi and pre-LN have no counterpart in
transformers' BERT: such a model is refused by `export-hf`.

`model(ids, targets)` returns masked-LM logits at every position and, given targets (−100 = not masked),
their cross-entropy: the same interface as the decoders, so the Trainer runs it unchanged. `encode`
gives the final hidden states, `pooled` the pooler output that sentence classification reads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lm2llm.errors import UserError
from lm2llm.models.attention import Attention, attention_bias, fused_backward_is_slow

POSITION_KINDS = ("learned", "alibi")
NORM_PLACEMENTS = ("post", "pre")


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
    positional: str = "learned"  # "learned": a trained vector per position (BERT); "alibi": a distance penalty
    norm_placement: str = "post"  # "post": Norm(x + Sublayer(x)) (BERT); "pre": x + Sublayer(Norm(x)), a final Norm
    mask_rate: float = 0.15  # masked-LM pre-training: the share of ordinary tokens chosen as targets

    def __post_init__(self) -> None:
        if self.d_model % self.n_head:
            raise UserError(f"d_model ({self.d_model}) is not divisible by n_head ({self.n_head})", where="config.n_head")
        for name, value, kinds in (("positional", self.positional, POSITION_KINDS),
                                   ("norm_placement", self.norm_placement, NORM_PLACEMENTS)):
            if value not in kinds:
                raise UserError(f"{name} is {value!r}, not one of {', '.join(kinds)}", where=f"config.{name}")
        if not 0 < self.mask_rate < 1:
            raise UserError(f"mask_rate is {self.mask_rate!r}, not between 0 and 1", where="config.mask_rate")
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    @property
    def like_transformers(self) -> bool:
        """True where transformers' BERT has the same architecture (the masking rate and init do not matter)."""
        return self.positional == "learned" and self.norm_placement == "post"


def plateau_recipe(d_model: int) -> dict:
    """The options that took a width-64 BERT off masked LM's first plateau in chapter 2.2 (see the table above)."""
    return {"positional": "alibi", "norm_placement": "pre", "init_std": d_model ** -0.5, "mask_rate": 0.3}


def alibi_slopes(n_head: int) -> torch.Tensor:
    """ALiBi's per-head slopes (Press et al. 2022): 2^(−8/n), its powers, for n a power of two; otherwise the
    slopes of the power of two below, plus every other slope of the one above (the paper's code)."""
    below = 2 ** math.floor(math.log2(n_head))
    slopes = [2 ** (-8 * (i + 1) / below) for i in range(below)]
    slopes += [2 ** (-8 * (i + 1) / (2 * below)) for i in range(0, 2 * below, 2)][: n_head - below]
    return torch.tensor(slopes)


def alibi_bias(slopes: torch.Tensor, length: int, allowed: torch.Tensor | None) -> torch.Tensor:
    """Additive scores (B or 1, heads, T, T): −slope·|i − j| in both directions (an encoder reads both sides),
    and the most negative finite value at padding keys."""
    distance = torch.arange(length, device=slopes.device)
    bias = -slopes[:, None, None] * (distance[None, :] - distance[:, None]).abs()
    mask = attention_bias(allowed, bias.dtype)
    return bias[None] if mask is None else bias + mask


def biased_attention(attn: Attention, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """`attn`'s heads with an additive score bias: torch's fused kernel, or the formula written out where that
    kernel's backward is slow (training in bf16 on a CPU, as `Attention` does)."""
    B, T, _ = x.shape
    q, k, v = (t.view(B, T, -1, attn.head_dim).transpose(1, 2) for t in attn.project(x, None))
    dropout = attn.dropout if attn.training else 0.0  # on the attention weights and the output, as BERT has it
    if fused_backward_is_slow(q):
        scores = q @ k.transpose(-2, -1) / math.sqrt(attn.head_dim) + bias
        out = F.dropout(scores.float().softmax(dim=-1).to(v.dtype), dropout) @ v
    else:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), dropout_p=dropout)
    return F.dropout(attn.out_proj(out.transpose(1, 2).reshape(B, T, -1)), dropout)


class BertLayer(nn.Module):
    """Post-LN block: x = Norm(x + Attn(x)); x = Norm(x + MLP(x)). Pre-LN: x = x + Attn(Norm(x)), and so on."""

    def __init__(self, c: BertConfig):
        super().__init__()
        self.attn = Attention(c.d_model, c.n_head, c.n_head, c.head_dim, bias=True, dropout=c.dropout)
        self.norm_attn = nn.LayerNorm(c.d_model, eps=c.norm_eps)
        self.up = nn.Linear(c.d_model, c.d_ff)
        self.down = nn.Linear(c.d_ff, c.d_model)
        self.norm_mlp = nn.LayerNorm(c.d_model, eps=c.norm_eps)
        self.dropout = c.dropout
        self.pre_norm = c.norm_placement == "pre"

    def forward(self, x: torch.Tensor, allowed: torch.Tensor | None, bias: torch.Tensor | None = None) -> torch.Tensor:
        """`bias`: additive attention scores (ALiBi, padding included) used instead of `allowed`."""
        if self.pre_norm:
            x = x + self.attend(self.norm_attn(x), allowed, bias)
            return x + self.mlp(self.norm_mlp(x))
        x = self.norm_attn(x + self.attend(x, allowed, bias))
        return self.norm_mlp(x + self.mlp(x))

    def attend(self, x: torch.Tensor, allowed: torch.Tensor | None, bias: torch.Tensor | None) -> torch.Tensor:
        return self.attn(x, allowed) if bias is None else biased_attention(self.attn, x, bias)

    def mlp(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(self.down(F.gelu(self.up(x))), self.dropout, self.training)


class Bert(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = c = config
        self.tok_emb = nn.Embedding(c.vocab_size, c.d_model)
        self.pos_emb = nn.Embedding(c.context_length, c.d_model) if c.positional == "learned" else None
        if c.positional == "alibi":
            self.register_buffer("slopes", alibi_slopes(c.n_head), persistent=False)
        self.type_emb = nn.Embedding(c.type_vocab_size, c.d_model)
        self.norm_emb = nn.LayerNorm(c.d_model, eps=c.norm_eps)
        self.layers = nn.ModuleList(BertLayer(c) for _ in range(c.n_layer))
        # pre-LN leaves the residual stream unnormalised: one Norm after the last layer (Xiong et al. 2020)
        self.norm_final = nn.LayerNorm(c.d_model, eps=c.norm_eps) if c.norm_placement == "pre" else None
        self.pooler = nn.Linear(c.d_model, c.d_model)
        # masked-LM head; its output matrix is the token embedding itself (tied), plus a bias per token
        self.mlm_dense = nn.Linear(c.d_model, c.d_model)
        self.mlm_norm = nn.LayerNorm(c.d_model, eps=c.norm_eps)
        self.mlm_bias = nn.Parameter(torch.zeros(c.vocab_size))
        self.apply(self._init)

    def _init(self, module: nn.Module) -> None:
        """BERT's initialisation: every matrix N(0, init_std), biases 0, LayerNorms the identity."""
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
        types = token_type_ids if token_type_ids is not None else torch.zeros_like(ids)
        x = self.tok_emb(ids) + self.type_emb(types)
        if self.pos_emb is not None:
            x = x + self.pos_emb(torch.arange(T, device=ids.device))
        x = F.dropout(self.norm_emb(x), self.config.dropout, self.training)
        # bidirectional: a query may look at every real key, never at padding
        allowed = None if attention_mask is None else attention_mask.to(torch.bool)[:, None, None, :]
        bias = alibi_bias(self.slopes, T, allowed) if self.config.positional == "alibi" else None
        for layer in self.layers:
            x = layer(x, allowed, bias)
        return x if self.norm_final is None else self.norm_final(x)

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

