"""Dequantizing GGML tensor data: the block layouts llama.cpp stores weights in.

A quantized tensor is a row-major sequence of fixed-size blocks, each holding 32 consecutive weights of
one row (a row's length is always a multiple of the block size). Every block carries its own scale, so
one outlier only costs precision inside its 32 weights. All multi-byte fields are little-endian.

| type | bytes/block | layout | value of weight j |
|---|---|---|---|
| F32  | 4 per weight | float32 | x |
| F16  | 2 per weight | IEEE half | x |
| BF16 | 2 per weight | the upper 16 bits of a float32 | x |
| Q8_0 | 34 | d: fp16, q[32]: int8 | d · q[j] |
| Q4_0 | 18 | d: fp16, qs[16]: uint8 | d · (nibble(j) − 8) |
| Q4_1 | 20 | d: fp16, m: fp16, qs[16]: uint8 | d · nibble(j) + m |

Nibble order (Q4_0, Q4_1): byte k of `qs` holds weight k in its low four bits and weight k + 16 in its
high four bits, so the first half of the block sits in the low nibbles. Q4_0 is symmetric (zero maps to
nibble 8); Q4_1 stores a minimum `m` as well and so spends its 16 levels on [min, max] of the block.

Arithmetic is done in float32 the way `gguf.quants` does it (scale × quant, then + min), so the results
are bit-identical to that reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLOCK = 32  # weights per block of every quantized type here


@dataclass(frozen=True)
class GGMLType:
    """A tensor type: its number in the file, how many weights a block holds and how many bytes it takes."""

    name: str
    code: int
    block_size: int
    block_bytes: int

    def nbytes(self, n_weights: int) -> int:
        return n_weights // self.block_size * self.block_bytes


# The types this reader dequantizes, by their GGML type number.
TYPES = {t.code: t for t in (
    GGMLType("F32", 0, 1, 4),
    GGMLType("F16", 1, 1, 2),
    GGMLType("Q4_0", 2, BLOCK, 18),
    GGMLType("Q4_1", 3, BLOCK, 20),
    GGMLType("Q8_0", 8, BLOCK, 34),
    GGMLType("BF16", 30, 1, 2),
)}
BY_NAME = {t.name: t for t in TYPES.values()}

# GGML type numbers that exist but are not read here (K-quants, I-quants, integer types, ...): named in
# errors so a user learns what the file holds rather than "unknown type".
OTHER_TYPE_NAMES = {6: "Q5_0", 7: "Q5_1", 9: "Q8_1", 10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K",
                    15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL",
                    21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32", 27: "I64",
                    28: "F64", 29: "IQ1_M", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4"}


def _halves(blocks: np.ndarray, start: int) -> np.ndarray:
    """Column `start..start+2` of each block as an fp16 value widened to float32, shape (n_blocks, 1)."""
    return blocks[:, start:start + 2].copy().view(np.float16).astype(np.float32)


def _nibbles(qs: np.ndarray) -> np.ndarray:
    """(n_blocks, 16) bytes → (n_blocks, 32) values 0..15: low nibbles first, then high nibbles."""
    return np.concatenate([qs & 0x0F, qs >> 4], axis=1)


def dequantize(data: np.ndarray, ggml_type: GGMLType, shape: tuple[int, ...]) -> np.ndarray:
    """float32 array of `shape` from the raw bytes `data` (uint8) of a tensor of `ggml_type`."""
    n = int(np.prod(shape))
    if data.size != ggml_type.nbytes(n):
        raise ValueError(f"{ggml_type.name} data of {data.size} bytes cannot hold {n} weights")
    name = ggml_type.name
    if name == "F32":
        return data.view(np.float32).reshape(shape).copy()
    if name == "F16":
        return data.view(np.float16).astype(np.float32).reshape(shape)
    if name == "BF16":
        return (data.view(np.uint16).astype(np.uint32) << 16).view(np.float32).reshape(shape)
    blocks = data.reshape(-1, ggml_type.block_bytes)
    if name == "Q8_0":
        values = _halves(blocks, 0) * blocks[:, 2:].view(np.int8).astype(np.float32)
    elif name == "Q4_0":
        values = _halves(blocks, 0) * (_nibbles(blocks[:, 2:]).astype(np.int8) - np.int8(8)).astype(np.float32)
    else:  # Q4_1
        values = _halves(blocks, 0) * _nibbles(blocks[:, 4:]).astype(np.float32) + _halves(blocks, 2)
    return values.reshape(shape)
