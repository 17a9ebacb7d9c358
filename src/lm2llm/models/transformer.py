"""One decoder-only Transformer whose config spans GPT-2, LLaMA and PaLM.

| knob            | GPT-2 style           | LLaMA style                | PaLM            |
|-----------------|-----------------------|----------------------------|-----------------|
| norm            | LayerNorm (with bias) | RMSNorm                    | LayerNorm, no bias |
| mlp             | GELU (tanh), 4·d      | SwiGLU                     | SwiGLU          |
| positional      | learned absolute      | RoPE                       | RoPE            |
| n_kv_head       | = n_head (MHA)        | < n_head (GQA) in big ones | 1 (MQA)         |
| bias            | yes                   | no                         | no              |
| tie_embeddings  | yes                   | no                         | yes             |
| parallel_block  | no                    | no                         | yes             |

Pre-norm residual blocks: x + Attn(Norm(x)), then x + MLP(Norm(x)); the parallel block computes both
branches from one normalised input, x + Attn(Norm(x)) + MLP(Norm(x)), which lets them run concurrently.

Incremental decoding: `state = model.new_state(B, max_len)` preallocates a KV cache; each call
`model(ids, state=state)` writes the new keys/values into it and attends over everything so far, giving
the same logits as recomputing the whole sequence. `attention_mask` (1 = token, 0 = padding) supports
left-padded batches: padding slots are never attended to and real tokens are numbered from 0 in each row.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from lm2llm.errors import UserError
from lm2llm.models.attention import Attention, KVCache, Rotary, causal_padding_mask
from lm2llm.models.positions import POSITIONAL_KINDS, AbsolutePositions, rope_cos_sin

NORMS = ("layernorm", "rmsnorm")
MLPS = ("gelu", "gelu_tanh", "swiglu", "relu2")


@dataclass
class TransformerConfig:
    vocab_size: int = 256
    context_length: int = 128
    n_layer: int = 2
    n_head: int = 4
    n_kv_head: int | None = None  # None: = n_head (MHA); 1: MQA; in between: GQA
    d_model: int = 64
    d_ff: int | None = None  # None: 4·d_model for GELU, ≈ 8/3·d_model (rounded up to 8) for SwiGLU
    head_dim: int | None = None  # None: d_model // n_head
    norm: str = "layernorm"
    norm_eps: float = 1e-5
    mlp: str = "gelu_tanh"
    positional: str = "learned"
    rope_theta: float = 10000.0
    bias: bool = True
    tie_embeddings: bool = True
    parallel_block: bool = False
    dropout: float = 0.0
    init_std: float = 0.02
    zero_init_residual: bool = False  # the projections into the residual stream start at 0 (modded-nanogpt)

    def __post_init__(self) -> None:
        for name, value, allowed in (("norm", self.norm, NORMS), ("mlp", self.mlp, MLPS),
                                     ("positional", self.positional, POSITIONAL_KINDS)):
            if value not in allowed:
                raise UserError(f"unknown {name} {value!r}", where=f"config.{name}", hint=f"choose from {', '.join(allowed)}")
        if self.n_kv_head is None:
            self.n_kv_head = self.n_head
        if self.head_dim is None:
            if self.d_model % self.n_head:
                raise UserError(f"d_model {self.d_model} is not divisible by n_head {self.n_head}", where="config.n_head")
            self.head_dim = self.d_model // self.n_head
        if self.n_head % self.n_kv_head:
            raise UserError(f"n_head {self.n_head} is not a multiple of n_kv_head {self.n_kv_head}", where="config.n_kv_head")
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model if self.mlp != "swiglu" else 8 * math.ceil(8 * self.d_model / 3 / 8)
        if self.positional == "rope" and self.head_dim % 2:
            raise UserError(f"RoPE needs an even head_dim, got {self.head_dim}", where="config.head_dim")


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype the linear layers compute `x` in: autocast's where it is on (bf16 training keeps fp32
    activations between layers), else x's own. RoPE tables in it keep rotated queries and keys in the
    projections' dtype; fp32 tables would promote them, and a bf16 CPU step then took the fused attention's
    slow fp32 backward (4.9 ms per layer against 0.7 for the bf16 matmuls, baby GPT, T = 64)."""
    device = x.device.type
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype


class RMSNorm(nn.Module):
    """x / sqrt(mean(x²) + eps) · g: LayerNorm without centring or bias (cheaper, as good in practice)."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        # the same arithmetic in one compiled call, for CPU inference in fp32 or bf16 (`inference.layout.
        # fuse_decode_step` installs it): (x, weight, eps) -> normalised x. torch's CPU `rms_norm` takes about
        # eight operations
        self.inference_kernel: Callable | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (self.inference_kernel is not None and x.is_cpu and x.dtype == self.weight.dtype
                and x.dtype in (torch.float32, torch.bfloat16) and not torch.is_grad_enabled()):
            return self.inference_kernel(x, self.weight, self.eps)
        # normalised in fp32, scaled in x's dtype (as transformers' Llama does); `F.rms_norm` is the same
        # arithmetic in one call (bit for bit, tested), where the formula written out takes six
        if x.dtype == self.weight.dtype == torch.float32:
            return F.rms_norm(x, self.weight.shape, self.weight, self.eps)
        return F.rms_norm(x.float(), self.weight.shape, eps=self.eps).to(x.dtype) * self.weight


def make_norm(config: TransformerConfig) -> nn.Module:
    if config.norm == "rmsnorm":
        return RMSNorm(config.d_model, config.norm_eps)
    return nn.LayerNorm(config.d_model, eps=config.norm_eps, bias=config.bias)


class MLP(nn.Module):
    """GELU: down(gelu(up(x))). SwiGLU: down(silu(gate(x)) · up(x)), a gated unit with a third matrix.
    ReLU²: down(relu(up(x))²) (So et al. 2021, Primer; the modded-nanogpt speedruns use it): sparse like ReLU,
    smooth at 0 like GELU, and two cheap elementwise operations where the exact GELU and its backward cost
    more (in this project's speedrun it trained no faster, so the recipe leaves it out)."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.kind = config.mlp
        self.up = nn.Linear(config.d_model, config.d_ff, bias=config.bias)
        self.gate = nn.Linear(config.d_model, config.d_ff, bias=config.bias) if config.mlp == "swiglu" else None
        self.down = nn.Linear(config.d_ff, config.d_model, bias=config.bias)
        self.gate_up: nn.Linear | None = None  # gate and up stacked into one, by `inference.layout.fuse_projections`
        self.dropout = config.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gate_up is not None:
            gate, up = self.gate_up(x).chunk(2, dim=-1)
            hidden = F.silu(gate) * up
        elif self.gate is not None:
            hidden = F.silu(self.gate(x)) * self.up(x)
        elif self.kind == "relu2":
            hidden = F.relu(self.up(x)).square()
        else:
            hidden = F.gelu(self.up(x), approximate="tanh" if self.kind == "gelu_tanh" else "none")
        out = self.down(hidden)
        return F.dropout(out, self.dropout) if self.training else out


class Block(nn.Module):
    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.parallel = config.parallel_block
        self.norm_attn = make_norm(config)
        self.attn = Attention(config.d_model, config.n_head, config.n_kv_head, config.head_dim, config.bias, config.dropout)
        self.norm_mlp = None if config.parallel_block else make_norm(config)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, layer: int, **attn_args) -> torch.Tensor:
        if self.parallel:
            h = self.norm_attn(x)
            return x + self.attn(h, layer=layer, **attn_args) + self.mlp(h)
        x = x + self.attn(self.norm_attn(x), layer=layer, **attn_args)
        return x + self.mlp(self.norm_mlp(x))


@dataclass
class Chunk:
    """Where a forward pass's T tokens sit: their position ids (B, T), the cache slot of the first one, and
    which keys each may see (`allowed`: None when `causal` alone says it, or when nothing is masked)."""

    positions: torch.Tensor
    offset: int = 0
    allowed: torch.Tensor | None = None
    causal: bool = False


def whole_sequence(ids: torch.Tensor, valid: torch.Tensor | None) -> Chunk:
    """A pass over whole sequences without a cache: positions from 0 (counting only real tokens when a
    padding mask `valid` is given), causal attention that skips padding."""
    B, T = ids.shape
    if valid is None:
        return Chunk(torch.arange(T, device=ids.device).expand(B, T), causal=True)
    return Chunk(positions_from_mask(valid), allowed=causal_padding_mask(T, T, 0, valid))


@dataclass
class DecoderState:
    """What incremental decoding carries between calls: the KV cache and, per row, padding and positions."""

    cache: KVCache
    key_valid: torch.Tensor  # (B, max_len) bool: slot holds a real token
    next_position: torch.Tensor  # (B,) long: position id of the row's next real token
    length: int = 0  # slots filled so far (the same for every row)
    padded: bool = False  # some filled slot holds no real token: attention needs the key mask

    def advance(self, ids: torch.Tensor, valid: torch.Tensor | None) -> Chunk:
        """Take the next T tokens of every row (`valid`: 0 at padding): mark their slots, number them on from
        each row's last real token, and say which cached keys each may see."""
        T = ids.shape[1]
        offset = self.length
        if offset + T > self.cache.max_len:
            raise UserError(f"the KV cache holds {self.cache.max_len} tokens; {offset + T} were given",
                            where="new_state(max_len)", hint="allocate a longer state")
        if valid is None:  # every token real: no mask to build, no device sync (the decode fast path)
            self.key_valid[:, offset:offset + T] = True
            # one token (a decoding step): its positions are the next ones as they are, two operations fewer
            positions = (self.next_position.unsqueeze(1) if T == 1
                         else self.next_position.unsqueeze(1) + torch.arange(T, device=ids.device))
            self.next_position = self.next_position + T
        else:
            self.key_valid[:, offset:offset + T] = valid
            positions = positions_from_mask(valid, self.next_position)
            self.next_position = self.next_position + valid.sum(dim=1)
            self.padded = self.padded or not bool(valid.all())
        self.length = offset + T
        key_valid = self.key_valid if self.padded else None
        if key_valid is None and (T == 1 or offset == 0):
            # one new token sees the whole unpadded cache (no mask at all); a first chunk without padding is
            # plain causal attention, which the fused kernel does without building a mask
            return Chunk(positions, offset, None, causal=T > 1)
        return Chunk(positions, offset, causal_padding_mask(T, offset + T, offset, key_valid, device=ids.device))

    def to(self, dtype: torch.dtype) -> DecoderState:
        """The same state with its KV cache in `dtype` (itself when it already is)."""
        if self.cache.keys.dtype == dtype:
            return self
        return replace(self, cache=KVCache(self.cache.keys.to(dtype), self.cache.values.to(dtype)))

    def span(self) -> torch.Tensor:
        """Per row, how many trailing slots it uses: from its first real token to `length`."""
        used = self.key_valid[:, :self.length].long()
        first = torch.where(used.any(dim=1), used.argmax(dim=1), self.length)
        return self.length - first

    @classmethod
    def gather(cls, parts: Sequence[tuple[DecoderState, Sequence[int]]], room: int) -> DecoderState:
        """Rows picked from several states (a row may repeat) as one state, for continuous batching.

        Rows end at their state's `length`, so each is copied right-aligned into a fresh cache as long as
        the longest row's span plus `room` slots for tokens still to come. The slots in front of a
        shorter row are padding (never attended to), and positions travel with the row, so the logits of
        every row stay what they were in its own state; trailing slots nobody uses are dropped.
        """
        picked = [(state, list(rows)) for state, rows in parts if len(rows)]
        if not picked:
            raise ValueError("gather needs at least one row")
        first = picked[0][0]
        spans = [state.span()[rows] for state, rows in picked]
        length = int(max(int(s.max()) for s in spans))
        n_layer, _, n_kv_head, _, head_dim = first.cache.keys.shape
        batch = sum(len(rows) for _, rows in picked)
        cache = KVCache.allocate(n_layer, batch, n_kv_head, length + room, head_dim, first.cache.keys.dtype,
                                 first.cache.keys.device)
        key_valid = torch.zeros(batch, length + room, dtype=torch.bool, device=first.key_valid.device)
        out = 0
        for (state, rows), row_spans in zip(picked, spans, strict=True):
            for row, span in zip(rows, row_spans.tolist(), strict=True):
                src = slice(state.length - span, state.length)
                dst = slice(length - span, length)
                cache.keys[:, out, :, dst] = state.cache.keys[:, row, :, src]
                cache.values[:, out, :, dst] = state.cache.values[:, row, :, src]
                key_valid[out, dst] = state.key_valid[row, src]
                out += 1
        positions = torch.cat([state.next_position[rows] for state, rows in picked])
        return cls(cache, key_valid, positions, length, padded=not bool(key_valid[:, :length].all()))


def positions_from_mask(mask: torch.Tensor, start: torch.Tensor | None = None) -> torch.Tensor:
    """Position ids (B, T) for a 0/1 mask: real tokens count 0, 1, 2, ... from `start`; padding gets 0."""
    mask = mask.long()
    positions = mask.cumsum(dim=1) - 1
    if start is not None:
        positions = positions + start.unsqueeze(1)
    return positions.clamp(min=0) * mask


class Transformer(nn.Module):
    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
        self.pos_emb = (
            AbsolutePositions(config.positional, config.context_length, config.d_model, scale=config.init_std)
            if config.positional in ("learned", "sinusoidal") else None
        )
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.norm_f = make_norm(config)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight
        # one new token through every block in one compiled call, for CPU decoding
        # (`inference.layout.fuse_decode_step` installs it): (model, x, chunk, rope, cache) -> the last block's
        # output, and `.logits(model, ids, chunk, cache)` -> the logits from the embedding on, or None where it
        # does not apply (then the modules run one by one)
        self.decode_blocks: Callable | None = None
        self.rotary_tables: dict[tuple, Rotary] = {}  # (dtype, device) -> every position's tables (`rotary`)
        if not any(p.is_meta for p in self.parameters()):
            self.apply(self._init_weights)
            self.init_residual_projections()

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=self.config.init_std)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)

    def init_residual_projections(self) -> None:
        """GPT-2: projections that write into the residual stream get std 0.02/√(2·n_layer), because each
        layer adds two such outputs to the stream and its variance would otherwise grow with depth.
        `zero_init_residual` starts them at 0 instead: every block begins as the identity, and the first
        steps train the embedding and head as a bigram model before the blocks add to it."""
        std = self.config.init_std / math.sqrt(2 * self.config.n_layer)
        for block in self.blocks:
            for weight in (block.attn.out_proj.weight, block.mlp.down.weight):
                if self.config.zero_init_residual:
                    nn.init.zeros_(weight)
                else:
                    nn.init.normal_(weight, mean=0.0, std=std)

    def num_params(self) -> int:
        """Distinct parameters (a tied embedding counts once)."""
        return sum(p.numel() for p in self.parameters())

    def new_state(self, batch_size: int, max_len: int) -> DecoderState:
        c = self.config
        weight = self.tok_emb.weight
        return DecoderState(
            KVCache.allocate(c.n_layer, batch_size, c.n_kv_head, max_len, c.head_dim, weight.dtype, weight.device),
            torch.zeros(batch_size, max_len, dtype=torch.bool, device=weight.device),
            torch.zeros(batch_size, dtype=torch.long, device=weight.device),
        )

    def forward(
        self,
        ids: torch.Tensor,
        targets: torch.Tensor | None = None,
        *,
        state: DecoderState | None = None,
        attention_mask: torch.Tensor | None = None,
        last_only: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """ids (B, T) → logits (B, T, vocab) and, given targets (−100 = ignore), the mean cross-entropy.

        `last_only`: logits (B, 1, vocab) of the last position only, all that generating the next token
        needs; a prompt then skips the output layer for every other position (for SmolLM2, with its
        49,152-token vocabulary, that layer is a fifth of a prompt's arithmetic).
        """
        valid = None if attention_mask is None else attention_mask.to(torch.bool)
        chunk = whole_sequence(ids, valid) if state is None else state.advance(ids, valid)
        self.check_positions(chunk, ids.shape[1])
        cache = None if state is None else state.cache
        one_step = (self.decode_blocks is not None and cache is not None and ids.shape[1] == 1
                    and not torch.is_grad_enabled())
        if one_step and targets is None:
            logits = self.decode_blocks.logits(self, ids, chunk, cache)
            if logits is not None:
                return logits, None
        x = self.tok_emb(ids)
        if self.pos_emb is not None:
            x = x + self.pos_emb(chunk.positions)
        x = F.dropout(x, self.config.dropout, self.training)
        rope = self.rotary(chunk, ids.shape[1], compute_dtype(x)) if self.config.positional == "rope" else None
        fused = self.decode_blocks(self, x, chunk, rope, cache) if one_step else None
        if fused is not None:
            x = fused
        else:
            for layer, block in enumerate(self.blocks):
                x = block(x, layer, allowed=chunk.allowed, causal=chunk.causal, rope=rope, cache=cache,
                          offset=chunk.offset)
        logits = self.lm_head(self.norm_f(x[:, -1:] if last_only else x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100)
        return logits, loss

    def rotary(self, chunk: Chunk, length: int, dtype: torch.dtype) -> Rotary:
        """RoPE's tables for the chunk's positions, in `dtype`: rows of a table of every position below the context
        length, made once per dtype and device, where computing them took about ten small operations per call
        (0.1 ms of a SmolLM2 decoding step on the CPU, each operation run cold after the weights have streamed
        through the caches). Computed directly for a chunk reaching past the context. The same values either way:
        each is an elementwise function of its position (tested)."""
        if chunk.offset + length > self.config.context_length:  # positions never exceed slots
            return Rotary.of(*rope_cos_sin(chunk.positions, self.config.head_dim, self.config.rope_theta), dtype)
        key = (dtype, chunk.positions.device)
        if key not in self.rotary_tables:
            every = torch.arange(self.config.context_length, device=chunk.positions.device)[None]
            table = Rotary.of(*rope_cos_sin(every, self.config.head_dim, self.config.rope_theta), dtype)
            self.rotary_tables[key] = Rotary(table.cos[0], table.signed_sin[0])  # (context, 1, head_dim)
        table = self.rotary_tables[key]
        return Rotary(table.cos[chunk.positions], table.signed_sin[chunk.positions])

    def check_positions(self, chunk: Chunk, length: int) -> None:
        """Learned and sinusoidal positions stop at the context length; positions never exceed slots, so only
        a chunk reaching past the context needs the exact check."""
        limit = self.config.context_length
        if self.pos_emb is not None and chunk.offset + length > limit and int(chunk.positions.max()) >= limit:
            raise UserError(f"position {int(chunk.positions.max())} is past the context length {limit}",
                            where="ids", hint="feed at most context_length tokens")

    @torch.no_grad()
    def attention_maps(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Attention weights of every layer, each (B, n_head, T, T), from the written-out formula."""
        for block in self.blocks:
            block.attn.keep_weights = True
        try:
            self(ids, attention_mask=attention_mask)
            return [block.attn.last_weights for block in self.blocks]
        finally:
            for block in self.blocks:
                block.attn.keep_weights = False
                block.attn.last_weights = None

    def set_fast_attention(self, enabled: bool) -> None:
        """Switch every layer between F.scaled_dot_product_attention and the written-out formula."""
        for block in self.blocks:
            block.attn.use_fast = enabled
