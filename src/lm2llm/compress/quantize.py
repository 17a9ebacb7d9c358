"""GGUF block quantization: Q8_0, Q4_0 and Q4_1, written out and bit-exact with llama.cpp's reference.

A row of weights is cut into blocks of 32; each block keeps a float16 scale (and, for Q4_1, a float16
minimum) and 32 small integers, so a weight costs 8.5 bits (Q8_0), 4.5 (Q4_0) or 5 (Q4_1) instead of 32.

| type | bytes per block | stored as                                   | a weight is          |
|------|-----------------|---------------------------------------------|----------------------|
| Q8_0 | 34 = 2 + 32     | d = amax/127, q = round(x/d) as int8        | q·d                  |
| Q4_0 | 18 = 2 + 16     | d = m/−8 (m: signed value of largest |x|), | (q − 8)·d            |
|      |                 | q = min(15, trunc(x/d + 8.5)) as 4 bits     |                      |
| Q4_1 | 20 = 2 + 2 + 16 | d = (max − min)/15, q = trunc((x−min)/d+0.5)| q·d + min            |

Rounding is the reference's to the last bit: Q8_0 rounds half away from zero (C's roundf, not numpy's
or torch's half-to-even); the 4-bit types truncate after adding one half; each multiply and add is a
separate float32 operation (no fused multiply-add), as `gguf.quants` computes it. Byte j of a 4-bit block
holds q[j] in its low nibble and q[j+16] in its high one. The tests compare every byte with
`gguf.quants.quantize` on random and on SmolLM2's real weights; `lm2llm.gguf.quants` dequantizes.
"""

from __future__ import annotations

import torch

from lm2llm.errors import UserError
from lm2llm.gguf.quants import BLOCK, BY_NAME


def _blocks(weights: torch.Tensor) -> torch.Tensor:
    if weights.shape[-1] % BLOCK:
        raise UserError(f"a row of {weights.shape[-1]} values is not a whole number of {BLOCK}-value blocks",
                        where=f"tensor of shape {tuple(weights.shape)}")
    return weights.detach().to(torch.float32).reshape(-1, BLOCK)


def _inverse(d: torch.Tensor) -> torch.Tensor:
    """1/d, and 0 where d is 0 (an all-zero block quantizes to zeros)."""
    return torch.where(d == 0, torch.zeros_like(d), 1 / d)


def _fp16_bytes(values: torch.Tensor) -> torch.Tensor:
    return values.to(torch.float16).view(torch.uint8)


def _pack_nibbles(q: torch.Tensor) -> torch.Tensor:
    """(n, 32) values 0..15 → (n, 16) bytes: q[j] low, q[j+16] high."""
    q = q.to(torch.uint8)
    return q[:, :BLOCK // 2] | (q[:, BLOCK // 2:] << 4)


def round_half_away(x: torch.Tensor) -> torch.Tensor:
    """C's roundf: halves go away from zero. floor(|x| + 0.5) would round 0.49999997 up in float32; this
    splits off the fraction first, as llama.cpp's reference does."""
    a = x.abs()
    whole = torch.floor(a)
    return torch.sign(x) * (whole + torch.floor(2 * (a - whole)))


def quantize_q8_0(blocks: torch.Tensor) -> torch.Tensor:
    d = blocks.abs().amax(dim=1, keepdim=True) / 127
    q = round_half_away(blocks * _inverse(d)).to(torch.int8).view(torch.uint8)
    return torch.cat([_fp16_bytes(d), q], dim=1)


def quantize_q4_0(blocks: torch.Tensor) -> torch.Tensor:
    largest = blocks.gather(1, blocks.abs().argmax(dim=1, keepdim=True))  # signed; the first on ties
    d = largest / -8
    q = torch.trunc(blocks * _inverse(d) + 8.5).clamp(0, 15)
    return torch.cat([_fp16_bytes(d), _pack_nibbles(q)], dim=1)


def quantize_q4_1(blocks: torch.Tensor) -> torch.Tensor:
    low = blocks.amin(dim=1, keepdim=True)
    d = (blocks.amax(dim=1, keepdim=True) - low) / 15
    q = torch.trunc((blocks - low) * _inverse(d) + 0.5).clamp(0, 15)
    return torch.cat([_fp16_bytes(d), _fp16_bytes(low), _pack_nibbles(q)], dim=1)


QUANTIZERS = {"q8_0": quantize_q8_0, "q4_0": quantize_q4_0, "q4_1": quantize_q4_1}
# 4-bit files keep the token embedding (and an output layer) at 8 bits, as the SmolLM2 Q4_1 file we ship
# does (llama.cpp's quantizer, likewise, gives the output layer more bits): it is the layer 4 bits hurt most.
EMBEDDING_KIND = {"q4_0": "q8_0", "q4_1": "q8_0"}


def matrix_kind(kind: str, embedding: bool) -> str:
    """The block type a matrix gets in a `kind` model: the embedding and output layer keep 8 bits in 4-bit ones."""
    return EMBEDDING_KIND.get(kind, kind) if embedding else kind


def quantize(weights: torch.Tensor, kind: str) -> torch.Tensor:
    """`weights` (..., n) as GGUF blocks: uint8 (..., n/32 · bytes per block), row by row as llama.cpp lays
    them out. `kind`: q8_0, q4_0 or q4_1."""
    if kind not in QUANTIZERS:
        raise UserError(f"unknown block quantization {kind!r}", hint=", ".join(QUANTIZERS))
    packed = QUANTIZERS[kind](_blocks(weights))
    return packed.reshape(*weights.shape[:-1], BY_NAME[kind.upper()].nbytes(weights.shape[-1]))
