"""One name per compression method, and the model it makes: what `lm2llm compress` and chapter 8 compare.

| method            | what the weights become                                  | runs on             |
|-------------------|----------------------------------------------------------|---------------------|
| bf16              | bfloat16 copies                                          | float kernels       |
| q8_0, q4_0, q4_1  | GGUF blocks (every matrix; the embedding Q8_0), expanded | float kernels (llama.cpp runs the blocks) |
| int8, int4        | weight-only packed integers (linear layers)              | the streaming kernel (`inference/matvec.py`), else torch's int kernels |
| w8a8, w4a8        | int8's / int4's weights, met by int8 inputs (per 32)     | the streaming kernel's integer products (AVX512-VNNI), else float |
| magnitude:S, wanda:S, sparsegpt:S | S = 0.5 (unstructured) or 2:4, in the blocks' linear layers | float kernels |

A GGUF variant is its blocks dequantized: the float model computes exactly what llama.cpp's block
kernels compute up to their own rounding, so its quality is the file's quality; its speed here is not
the file's speed (`benchmarks/bench_quant.py` times llama.cpp on the file where llama.cpp is built).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from lm2llm.compress.prune import METHODS as PRUNING
from lm2llm.compress.prune import Sparsity, prune_model
from lm2llm.compress.quantize import QUANTIZERS, matrix_kind, quantize
from lm2llm.compress.weight_only import KINDS, quantize_linears
from lm2llm.errors import UserError
from lm2llm.gguf.quants import BLOCK, BY_NAME, dequantize
from lm2llm.inference.layout import fuse_projections
from lm2llm.models.transformer import Transformer

FLOAT = ("fp32", "bf16")


@dataclass(frozen=True)
class Method:
    """A parsed `--method`: kind ("fp32", "bf16", "q8_0", ..., "int4", "wanda", ...) and, for pruning, the sparsity."""

    kind: str
    sparsity: Sparsity | None = None

    @classmethod
    def parse(cls, text: str) -> Method:
        if text in (*FLOAT, *QUANTIZERS, *KINDS):
            return cls(text)
        if text == "2:4":
            return cls("wanda", Sparsity.parse("2:4"))
        kind, _, amount = text.partition(":")
        if kind in PRUNING and amount:
            return cls(kind, Sparsity.parse(amount))
        raise UserError(f"unknown compression method {text!r}", where="--method",
                        hint="fp32, bf16, q8_0, q4_0, q4_1, int8, int4, w8a8, w4a8, magnitude:0.5, wanda:0.5, sparsegpt:0.5, "
                             "wanda:2:4 (or 2:4)")

    @property
    def needs_calibration(self) -> bool:
        return self.kind in ("wanda", "sparsegpt")

    @property
    def label(self) -> str:
        if self.sparsity is None:
            return self.kind
        amount = f"{self.sparsity.n}:{self.sparsity.m}" if self.sparsity.n else f"{self.sparsity.fraction:g}"
        return f"{self.kind}:{amount}"


def block_round_trip(model: Transformer, kind: str) -> Transformer:
    """Every matrix whose rows are whole blocks replaced (in place) by its GGUF blocks, dequantized: `kind`,
    or Q8_0 for the embedding and output layer of a 4-bit model, as `export-gguf` writes them."""
    embedding = {id(model.tok_emb.weight), id(model.lm_head.weight)}
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() == 2 and parameter.shape[-1] % BLOCK == 0:
                block_kind = matrix_kind(kind, id(parameter) in embedding)
                blocks = quantize(parameter, block_kind).numpy().reshape(-1)
                parameter.copy_(torch.from_numpy(dequantize(blocks, BY_NAME[block_kind.upper()], tuple(parameter.shape))))
    return model


def apply_method(model: Transformer, method: Method, calibration: Iterable[torch.Tensor] = ()) -> dict:
    """Compress `model` in place (a float32 Transformer) and return what the method reports."""
    if method.kind == "bf16":
        model.to(torch.bfloat16)
    elif method.kind in QUANTIZERS:
        block_round_trip(model, method.kind)
    elif method.kind in KINDS:  # q/k/v and gate/up stacked first: 4 kernel calls per layer instead of 7
        quantize_linears(fuse_projections(model), method.kind)
    elif method.sparsity is not None:
        return prune_model(model, method.kind, method.sparsity, calibration)
    return {}


def weight_bytes(model: Transformer, method: Method) -> int:
    """Bytes the weights take stored the method's way: float parameters at their width, packed integer
    buffers as they are, GGUF matrices as blocks (vectors stay f32 in a GGUF file)."""
    tensors = {id(t): t for t in [*model.parameters(), *model.buffers()]}.values()  # a tied weight once
    if method.kind in QUANTIZERS:
        embedding = {id(model.tok_emb.weight), id(model.lm_head.weight)}
        return sum(BY_NAME[matrix_kind(method.kind, id(t) in embedding).upper()].nbytes(t.numel())
                   if t.dim() == 2 and t.shape[-1] % BLOCK == 0 else t.numel() * 4 for t in tensors)
    return sum(t.numel() * t.element_size() for t in tensors)
