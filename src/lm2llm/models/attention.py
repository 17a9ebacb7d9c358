"""Scaled dot-product attention, written out, with the fused PyTorch kernel as a tested-equal fast path.

    Attention(Q, K, V) = softmax(Q Kᵀ / √d + M) V

`M` is 0 where a query may look at a key and a very large negative number where it may not (a future
token under the causal mask, or a padding token). We use the dtype's most negative finite value rather
than −∞ so that a row with nothing to look at (a padding query) stays finite instead of turning into NaN;
its output is ignored anyway.

Multi-head attention splits the model width into `n_head` heads; grouped-query attention (GQA) lets
`n_head / n_kv_head` query heads share one key/value head, and multi-query attention (MQA) is the case
`n_kv_head = 1`. Fewer key/value heads shrink the KV cache that incremental decoding keeps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """(B, n_kv_head, S, D) → (B, n_kv_head·n_rep, S, D): each key/value head serves `n_rep` query heads."""
    return x if n_rep == 1 else x.repeat_interleave(n_rep, dim=1)


def attention_bias(allowed: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """Boolean "may attend" mask → additive bias (0 or the most negative finite value)."""
    if allowed is None:
        return None
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, torch.finfo(dtype).min)


def sdpa_reference(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor | None = None, causal: bool = False,
    dropout_p: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The formula itself. q: (B, H, T, D); k, v: (B, H, S, D); allowed: broadcastable to (B, H, T, S);
    `causal` (with no `allowed`) hides future keys; `dropout_p` drops attention weights (training only).

    Returns the output (B, H, T, D) and the attention weights (B, H, T, S, before dropout), for visualisation.
    """
    if causal and allowed is None:
        allowed = causal_padding_mask(q.size(2), k.size(2), k.size(2) - q.size(2), device=q.device)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    bias = attention_bias(allowed, scores.dtype)
    if bias is not None:
        scores = scores + bias
    weights = scores.softmax(dim=-1)
    return (F.dropout(weights, dropout_p) if dropout_p else weights) @ v, weights


def sdpa_fast(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor | None = None,
              causal: bool = False, dropout_p: float = 0.0) -> torch.Tensor:
    """The same computation through `F.scaled_dot_product_attention` (fused kernels; no weights returned).

    k, v may have fewer heads than q (GQA): the kernel shares them without copying (`enable_gqa`), where
    `repeat_kv` would copy the whole KV cache at every decoding step.
    """
    gqa = k.size(1) != q.size(1)
    if allowed is None and not dropout_p and grouped_products_are_faster(q, k):
        return one_query_attention(q, k, v)
    if allowed is None:
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal and q.size(2) > 1, dropout_p=dropout_p,
                                              enable_gqa=gqa)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attention_bias(allowed, q.dtype), dropout_p=dropout_p,
                                          enable_gqa=gqa)


def grouped_products_are_faster(q: torch.Tensor, k: torch.Tensor) -> bool:
    """One bf16 query per row on a CPU, with a batch or a long cache: see `one_query_attention`."""
    return (q.size(2) == 1 and q.dtype == torch.bfloat16 and q.device.type == "cpu"
            and (q.size(0) > 1 or k.size(2) > 128))


def one_query_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """One new query per row against the whole cache, as two grouped matrix products (softmax in fp32).

    Decoding in bf16 on a CPU, SmolLM2's shapes: torch's fused kernel took 526 µs per layer at batch 8 with
    100 cached tokens and 236 µs at batch 1 with 400, these two products 128 and 79 µs; only at batch 1
    with a short cache was the fused kernel faster (79 against 90 µs). The query heads that share a
    key/value head are stacked as rows of one product, so GQA needs no copy of the cache.
    """
    B, H, _, D = q.shape
    groups = k.size(1)
    grouped = q.reshape(B, groups, H // groups, D)
    scores = (grouped @ k.transpose(-2, -1)).float() / math.sqrt(D)
    return (scores.softmax(dim=-1).to(v.dtype) @ v).reshape(B, H, 1, D)


def fused_backward_is_slow(q: torch.Tensor) -> bool:
    """True when training in bfloat16 on a CPU, where torch's fused attention backward is the slow path.

    Profiled on a 2-core AVX512-BF16 CPU (nanoGPT's baby GPT, T=64): the fused kernel's bf16 backward took
    4.2 ms per layer, the written-out batched matmuls about 0.7 ms (softmax adds a little). In fp32, and
    without gradients, the fused kernel is not slow.
    """
    return q.dtype == torch.bfloat16 and q.requires_grad and q.device.type == "cpu"


def causal_padding_mask(
    q_len: int, k_len: int, offset: int, key_valid: torch.Tensor | None = None, device: torch.device | None = None
) -> torch.Tensor:
    """Which keys each query may see: (B or 1, 1, q_len, k_len) booleans.

    Query i sits at cache slot `offset + i`; it sees slots 0..offset+i (causal), minus padding slots
    (`key_valid[b, j]` False). Slots are cache positions, not token positions: with left padding the two
    differ, which the positional encodings take care of.
    """
    device = key_valid.device if key_valid is not None else device
    query_slot = torch.arange(offset, offset + q_len, device=device).unsqueeze(1)
    key_slot = torch.arange(k_len, device=device).unsqueeze(0)
    allowed = (key_slot <= query_slot).unsqueeze(0).unsqueeze(0)  # (1, 1, T, S)
    if key_valid is not None:
        allowed = allowed & key_valid[:, None, None, :k_len]
    return allowed


@dataclass
class KVCache:
    """Preallocated keys and values for every layer, filled as decoding advances.

    keys/values: (n_layer, B, n_kv_head, max_len, head_dim). Preallocating once avoids re-allocating and
    copying a growing tensor at every generated token.
    """

    keys: torch.Tensor
    values: torch.Tensor

    def __post_init__(self) -> None:
        # one (B, n_kv_head, max_len, head_dim) view per layer, made once: a decoding step then writes and
        # reads its layer's slots with two cheap calls each instead of re-indexing four dimensions
        self.layers = list(zip(self.keys.unbind(0), self.values.unbind(0), strict=True))

    @classmethod
    def allocate(cls, n_layer: int, batch_size: int, n_kv_head: int, max_len: int, head_dim: int,
                 dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> KVCache:
        shape = (n_layer, batch_size, n_kv_head, max_len, head_dim)
        return cls(torch.zeros(shape, dtype=dtype, device=device), torch.zeros(shape, dtype=dtype, device=device))

    @property
    def max_len(self) -> int:
        return self.keys.size(3)

    def write(self, layer: int, start: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v (B, n_kv_head, T, D) at slots start..start+T in place; return all keys/values so far."""
        keys, values = self.layers[layer]
        end = start + k.size(2)
        keys.narrow(2, start, k.size(2)).copy_(k)
        values.narrow(2, start, k.size(2)).copy_(v)
        return keys.narrow(2, 0, end), values.narrow(2, 0, end)


class Attention(nn.Module):
    """Multi-head self-attention with optional GQA/MQA, rotary positions and a KV cache."""

    def __init__(self, d_model: int, n_head: int, n_kv_head: int, head_dim: int, bias: bool, dropout: float = 0.0):
        super().__init__()
        if n_head % n_kv_head:
            raise ValueError(f"n_head ({n_head}) must be a multiple of n_kv_head ({n_kv_head})")
        self.n_head, self.n_kv_head, self.head_dim = n_head, n_kv_head, head_dim
        self.q_proj = nn.Linear(d_model, n_head * head_dim, bias=bias)
        self.k_proj = nn.Linear(d_model, n_kv_head * head_dim, bias=bias)
        self.v_proj = nn.Linear(d_model, n_kv_head * head_dim, bias=bias)
        self.out_proj = nn.Linear(n_head * head_dim, d_model, bias=bias)
        self.qkv_proj: nn.Linear | None = None  # the three stacked into one, by `inference.layout.fuse_projections`
        self.dropout = dropout
        self.use_fast = True  # F.scaled_dot_product_attention; False runs the written-out formula
        self.last_weights: torch.Tensor | None = None  # filled only when `keep_weights` is set
        self.keep_weights = False
        # one new token's attention (RoPE, cache write, softmax) in one compiled call, installed for CPU decoding
        # by `inference.layout.fuse_decode_step`: (qkv, cos, signed_sin, keys, values, offset, allowed, n_head)
        self.decode_step: Callable | None = None

    def forward(
        self,
        x: torch.Tensor,
        allowed: torch.Tensor | None,
        causal: bool = False,
        rope: Rotary | tuple[torch.Tensor, torch.Tensor] | None = None,
        cache: KVCache | None = None,
        layer: int = 0,
        offset: int = 0,
    ) -> torch.Tensor:
        B, T, _ = x.shape
        if self.decode_step is not None and T == 1 and cache is not None and x.is_cpu and self.qkv_proj is not None \
                and x.dtype in (torch.float32, torch.bfloat16) and self.use_fast and not self.keep_weights \
                and not self.training and not torch.is_grad_enabled():
            return self.out_proj(self.decode_one(x, rope, cache, layer, offset, allowed))
        q, k, v = self.project(x, rope)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if cache is not None:
            k, v = cache.write(layer, offset, k, v)
        # dropout on the attention weights and on the output, as GPT-2 and nanoGPT place it
        dropout = self.dropout if self.training else 0.0
        if self.keep_weights or not self.use_fast or fused_backward_is_slow(q):
            n_rep = self.n_head // self.n_kv_head
            out, weights = sdpa_reference(q, repeat_kv(k, n_rep), repeat_kv(v, n_rep), allowed, causal, dropout)
            if self.keep_weights:
                self.last_weights = weights.detach()
        else:
            out = sdpa_fast(q, k, v, allowed, causal, dropout)
        out = out.transpose(1, 2).reshape(B, T, self.n_head * self.head_dim)
        return F.dropout(self.out_proj(out), dropout) if dropout else self.out_proj(out)

    def decode_one(self, x: torch.Tensor, rope: Rotary | tuple[torch.Tensor, torch.Tensor] | None, cache: KVCache,
                   layer: int, offset: int, allowed: torch.Tensor | None) -> torch.Tensor:
        """`forward`'s projection, rotation, cache write and attention for one new token per row, through
        `decode_step`: (B, 1, n_head·head_dim), what the written-out path computes within fp32 summation order
        (tested; the cached keys and values are bit for bit the same)."""
        if rope is not None and not isinstance(rope, Rotary):
            rope = Rotary.of(*rope, x.dtype)
        keys, values = cache.layers[layer]
        return self.decode_step(self.qkv_proj(x), None if rope is None else rope.cos,
                                None if rope is None else rope.signed_sin, keys, values, offset, allowed, self.n_head)

    def project(self, x: torch.Tensor, rope: Rotary | tuple[torch.Tensor, torch.Tensor] | None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries, keys and values (B, T, heads, head_dim), queries and keys rotated by `rope` (a `Rotary`,
        or the (cos, sin) of `rope_cos_sin`).

        Where the three weights were stacked for inference this is one matrix product, and queries and keys,
        side by side in its output, are rotated together by one call.
        """
        B, T, _ = x.shape
        H, KV, D = self.n_head, self.n_kv_head, self.head_dim
        if rope is not None and not isinstance(rope, Rotary):
            rope = Rotary.of(*rope, x.dtype)
        if self.qkv_proj is None:
            q, k = self.q_proj(x).view(B, T, H, D), self.k_proj(x).view(B, T, KV, D)
            if rope is not None:
                q, k = rope.apply(q), rope.apply(k)
            return q, k, self.v_proj(x).view(B, T, KV, D)
        qkv = self.qkv_proj(x).view(B, T, H + 2 * KV, D)
        qk = qkv[:, :, :H + KV] if rope is None else rope.apply(qkv[:, :, :H + KV])
        return qk[:, :, :H], qk[:, :, H:], qkv[:, :, H + KV:]


class Rotary(NamedTuple):
    """Rotary position tables for tensors laid out (B, T, heads, head_dim), in the tensors' dtype.

    RoPE turns each pair (x1[i], x2[i]) of the two halves of a head: x·cos + rotate_half(x)·sin, where
    rotate_half(x) = (−x2, x1). Written that way it costs a split, a negation and a concatenation per call.
    Here the sign is folded into the sine table once per forward pass (`signed_sin` = (−sin, sin) by half),
    so the turn is x·cos + roll(x, half)·signed_sin: roll(x) = (x2, x1), and x2·(−s) equals (−x2)·s exactly,
    so the values are bit for bit those of the textbook form (tested), at a third of the calls.
    """

    cos: torch.Tensor
    signed_sin: torch.Tensor

    @classmethod
    def of(cls, cos: torch.Tensor, sin: torch.Tensor, dtype: torch.dtype) -> Rotary:
        """From `rope_cos_sin`'s fp32 tables (B, T, head_dim): cast once (as transformers' Llama does, so a
        bf16 model rotates in bf16) and shaped to broadcast over heads."""
        cos, sin = cos.to(dtype).unsqueeze(2), sin.to(dtype).unsqueeze(2)
        half = sin.size(-1) // 2
        return cls(cos, torch.cat((-sin[..., :half], sin[..., half:]), dim=-1))

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.cos + x.roll(x.size(-1) // 2, dims=-1) * self.signed_sin


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) → (−x2, x1) on the two halves of the last dim: a 90° turn of each (x1[i], x2[i]) pair."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate query/key pairs by position-dependent angles (the textbook form; models use `Rotary`).
    x: (B, heads, T, D); cos/sin: (B, T, D) broadcast over heads.

    The angles are computed in fp32 and used in x's dtype (as transformers' Llama does), so a bf16 model
    keeps bf16 queries and keys instead of being promoted to fp32 here.
    """
    cos, sin = cos.to(x.dtype).unsqueeze(1), sin.to(x.dtype).unsqueeze(1)
    return x * cos + rotate_half(x) * sin
