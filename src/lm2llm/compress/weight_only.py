"""Weight-only int8 and int4 linear layers: the streaming kernel for decoding, PyTorch's packed kernels else.

Decoding one sequence is a chain of matrix-vector products that read every weight once per token, so its
speed is set by the bytes of weights streamed from memory. Storing them as 8 or 4 bits cuts those bytes
4x or 8x against float32; the activations stay floating point ("weight-only"), so only the weights'
rounding error is added.

- int8, symmetric per output channel: s = max|w_row|/127, q = round(w/s) in −127..127, w ≈ q·s.
- int4, asymmetric per group of `group_size` inputs (the tinygemm layout gpt-fast and torchao use):
  s = (max − min)/15, zero = min + 8·s, q = round((w − min)/s) in 0..15, w ≈ (q − 8)·s + zero.

Where the streaming kernel (`lm2llm.inference.matvec`) could be built, it computes these layers: int8 rows
widened to fp32 against fp32 inputs, int4 nibbles against bf16 inputs (bf16 products, fp32 sums), the
output in the input's dtype; int8 prompts (more than `MAX_ROWS` rows) go to `torch._weight_int8pack_mm`,
int4 ones stay in the kernel, 8 rows per pass over the weights (its int4 layout is its own). Without the
kernel both use PyTorch's packed kernels, which are fast only with bf16 activations on this CPU (the fp32
int8 path measured ~15x slower), so such a layer computes in bf16 and hands back the input's dtype:
`_weight_int8pack_mm` (x · qᵀ · s) and `_weight_int4pack_mm_for_cpu` on
`_convert_weight_to_int4pack_for_cpu`'s packing.
`round_trip_linears` gives the reference: the same model with each weight quantized and expanded back
to float, which the tests compare the kernels' logits with.

- w8a8 (not weight-only): int8's weights met by inputs quantized to int8 per block of 32 at each call, as
  llama.cpp multiplies a Q8_0 matrix (`W8A8Linear`). Widening int8 weights to fp32 is arithmetic that
  this machine's faster memory spells outrun: there weight-only int8 decoded SmolLM2 at 1.04-1.28x bf16
  (1.81x in a slow spell); integer multiply-adds (AVX512-VNNI) remove that cost (w8a8 at 1.39-1.76x), at the
  price of rounding the inputs too.
- w4a8: int4's weights in groups of 32 met by the same int8 inputs, as llama.cpp multiplies a Q4_0 matrix
  (`W4A8Linear`), in its own packing.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from lm2llm.errors import UserError
from lm2llm.inference import matvec
from lm2llm.inference.layout import fuse_decode_step
from lm2llm.inference.pages import in_huge_pages

COMPUTE_DTYPE = torch.bfloat16
WEIGHT_ONLY = ("int8", "int4")
KINDS = (*WEIGHT_ONLY, "w8a8", "w4a8")  # and int8/int4 weights met by int8 inputs (`W8A8Linear`, `W4A8Linear`)
ACTIVATION_BLOCK = 32  # inputs quantized per block of 32, Q8_0's block
INT4_GROUPS = (32, 64, 128, 256)
EVERY_ROW = 1 << 62  # `max_streamed_rows` of a layer whose every row, prompts too, goes through the kernel


def int8_per_channel(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-output-row int8: q (out, in) int8 and scales (out,), w ≈ q·s. The scales are rounded to
    bfloat16 first, since the kernel multiplies by the bf16 value."""
    weight = weight.detach().float()
    scales = (weight.abs().amax(dim=1) / 127).to(COMPUTE_DTYPE).float()
    scales = torch.where(scales == 0, torch.ones_like(scales), scales)
    return torch.round(weight / scales[:, None]).clamp(-127, 127).to(torch.int8), scales


def int4_groupwise(weight: torch.Tensor, group_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric int4 per (output row, group of inputs): q (out, in) in 0..15, scales and zeros (out, n_groups),
    w ≈ (q − 8)·s + zero, with s and zero rounded to bfloat16 before q is chosen."""
    out_features, in_features = weight.shape
    if group_size not in INT4_GROUPS:
        raise UserError(f"int4 group size {group_size} is not one the CPU kernel takes", where="--group-size",
                        hint=", ".join(map(str, INT4_GROUPS)))
    if in_features % group_size:
        raise UserError(f"int4 groups of {group_size} do not divide a layer's {in_features} inputs",
                        where="--group-size", hint="choose a group size that divides every layer's input width")
    groups = weight.detach().float().reshape(out_features, -1, group_size)
    low, high = groups.amin(dim=-1), groups.amax(dim=-1)
    scales = ((high - low).clamp(min=1e-6) / 15).to(COMPUTE_DTYPE).float()
    zeros = (low + 8 * scales).to(COMPUTE_DTYPE).float()
    lowest = (zeros - 8 * scales)[..., None]
    q = torch.round((groups - lowest) / scales[..., None]).clamp(0, 15)
    return q.reshape(out_features, in_features).to(torch.uint8), scales, zeros


def dequantize_int8(q: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    return q.float() * scales[:, None]


def dequantize_int4(q: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor) -> torch.Tensor:
    out_features, in_features = q.shape
    groups = q.float().reshape(out_features, scales.shape[1], -1)
    return ((groups - 8) * scales[..., None] + zeros[..., None]).reshape(out_features, in_features)


def round_trip(weight: torch.Tensor, kind: str, group_size: int = 32) -> torch.Tensor:
    """The float weight a quantized layer really multiplies by: quantized, then expanded back (for w8a8 and w4a8
    the weights' part: their inputs are rounded too, at each call)."""
    if kind in ("int8", "w8a8"):
        return dequantize_int8(*int8_per_channel(weight))
    return dequantize_int4(*int4_groupwise(weight, ACTIVATION_BLOCK if kind == "w4a8" else group_size))


class QuantizedLinear(nn.Module):
    """What the int8 and int4 layers share: the call around the kernels, kept to the few tensor operations it
    needs (at SmolLM2's sizes each extra one costs a visible share of a decoding step), and scales that stay
    bfloat16, the dtype the kernels read, when the model is cast to another dtype."""

    in_features: int
    out_features: int
    bias: nn.Parameter | None
    streamed: bool  # stored for the streaming kernel (else for PyTorch's packed kernels)
    max_streamed_rows = matvec.MAX_ROWS

    def __init__(self, linear: nn.Linear):
        """The shape, bias and kernel choice every quantized layer takes from the float one; each subclass then
        registers its buffers and looks its kernel arguments up once (`self.arguments = self.stream_arguments()`:
        buffer lookups cost at every call)."""
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.bias = _bias(linear)
        self.streamed = matvec.available()

    def stream_arguments(self) -> tuple:
        """What `matvec.kernel().matvec` takes after the input: (weight, scales, zeros, group_size)."""
        raise NotImplementedError

    def fallback(self, flat: torch.Tensor) -> torch.Tensor:
        """The product without the streaming kernel (prompts, gradients, other dtypes), in flat's dtype."""
        raise NotImplementedError

    def decode_weight(self, dtype: torch.dtype) -> tuple | None:
        """(weight, scales, zeros, group_size) for the kernel's whole-block step, as `StreamingLinear`'s."""
        if not self.streamed or self.bias is not None or dtype not in matvec.STREAMED:
            return None
        return self.arguments

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (self.streamed and x.dtype in matvec.STREAMED and x.numel() <= self.max_streamed_rows * self.in_features
                and not (x.requires_grad and torch.is_grad_enabled())):
            y = matvec.kernel().matvec(x, *self.arguments)  # (..., in) in, (..., out) out
        else:
            y = self.fallback(x.reshape(-1, self.in_features)).view(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias

    def _apply(self, fn, recurse: bool = True):
        super()._apply(fn, recurse)
        for name, buffer in self.named_buffers(recurse=False):
            if buffer.is_floating_point():
                setattr(self, name, buffer.to(COMPUTE_DTYPE))
        self.arguments = self.stream_arguments()
        return self


def _bias(linear: nn.Linear) -> nn.Parameter | None:
    return None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)


class Int8Linear(QuantizedLinear):
    """y = x · (q·s)ᵀ + b with q int8 (out, in) and one scale per output row (one layout for both kernels)."""

    def __init__(self, linear: nn.Linear):
        super().__init__(linear)
        q, scales = int8_per_channel(linear.weight)
        self.register_buffer("q", q)
        self.register_buffer("scales", scales.to(COMPUTE_DTYPE))
        self.arguments = self.stream_arguments()

    def stream_arguments(self) -> tuple:
        return self.q, self.scales, None, 0

    def fallback(self, flat: torch.Tensor) -> torch.Tensor:
        return torch._weight_int8pack_mm(flat.to(COMPUTE_DTYPE), self.q, self.scales).to(flat.dtype)


def quantize_activations(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x (..., in) per block of 32 inputs as llama.cpp's x86 `quantize_row_q8_0` quantizes it: d = max|x|/127
    kept as fp16, q = round(x · (127/max|x|)) in fp32, ties to even: q (..., in) int8 and d (..., in/32)."""
    blocks = x.float().unflatten(-1, (-1, ACTIVATION_BLOCK))
    top = blocks.abs().amax(dim=-1)
    inverse = torch.where(top == 0, torch.zeros_like(top), 127 / top)
    return torch.round(blocks * inverse[..., None]).to(torch.int8).flatten(-2), (top / 127).half().float()


def rounded_inputs(x: torch.Tensor) -> torch.Tensor:
    """x as `quantize_activations` rounds it, back in fp32: what the integer-input layers multiply by."""
    q, d = quantize_activations(x)
    return (q.float().unflatten(-1, (-1, ACTIVATION_BLOCK)) * d[..., None]).flatten(-2)


class IntegerInputLinear(QuantizedLinear):
    """What W8A8 and W4A8 share: inputs quantized per block of 32 (so a layer's inputs must come in whole blocks),
    and every row through the kernel, prompts too, so a prompt and its decoding compute alike."""

    max_streamed_rows = EVERY_ROW
    kind: str
    weight_only: str  # the weight-only kind to use instead where the inputs do not come in whole blocks

    def __init__(self, linear: nn.Linear):
        if linear.in_features % ACTIVATION_BLOCK:
            raise UserError(f"{self.kind} quantizes inputs in blocks of {ACTIVATION_BLOCK}; a layer has "
                            f"{linear.in_features}", where="--quantize", hint=f"use {self.weight_only} for this model")
        super().__init__(linear)


class W8A8Linear(IntegerInputLinear):
    """y = s · Σ_blocks d · (q · qx) + b: int8's weights (`int8_per_channel`) met by int8 inputs, each block of 32
    inputs quantized on the fly as llama.cpp quantizes inputs for its Q8_0 products (`quantize_activations`), the
    products summed as integers: what llama.cpp computes for a Q8_0 matrix on a CPU, and torchao's dynamic
    int8 activations (there one scale per token).

    Weight-only int8 widens every weight to fp32 before multiplying, and when this machine's memory is fast
    that arithmetic, not memory, sets its speed; integer multiply-adds (AVX512-VNNI) do four times the work
    per instruction, on weights laid out in superblocks (`matvec.pack_w8a8`) so that a block's products
    are summed as integers before its one scaling.
    The price is the inputs' rounding, measured with the other variants (`lm2llm compress --method w8a8`)."""

    kind, weight_only = "w8a8", "int8"

    def __init__(self, linear: nn.Linear):
        super().__init__(linear)
        q, scales = int8_per_channel(linear.weight)
        self.register_buffer("packed", matvec.pack_w8a8(q))
        self.register_buffer("scales", scales.to(COMPUTE_DTYPE))
        self.arguments = self.stream_arguments()

    def stream_arguments(self) -> tuple:
        return self.packed, self.scales, None, -ACTIVATION_BLOCK  # negative: the inputs are quantized per block

    def fallback(self, flat: torch.Tensor) -> torch.Tensor:
        weight = dequantize_int8(matvec.unpack_w8a8(self.packed), self.scales.float())
        return (rounded_inputs(flat) @ weight.t()).to(flat.dtype)


class W4A8Linear(IntegerInputLinear):
    """y = Σ_blocks d · (s · (q · qx) + (zero − 8·s) · Σqx) + b: int4's weights in groups of 32 met by inputs
    quantized per block of 32 as `W8A8Linear`'s, the products summed as integers (the nibbles are the unsigned
    operand of AVX512-VNNI's `vpdpbusd`): what llama.cpp computes for a Q4_0 matrix on a CPU, with int4's
    asymmetric groups. Weight-only int4 looks each nibble up as a bf16 number and is bound by that arithmetic;
    here it is one mask per 64 weights. Its own packing (`matvec.pack_w4a8`), each row's scales and zeros after its
    nibbles."""

    kind, weight_only = "w4a8", "int4"

    def __init__(self, linear: nn.Linear):
        super().__init__(linear)
        q, scales, zeros = int4_groupwise(linear.weight, ACTIVATION_BLOCK)
        self.register_buffer("packed", matvec.pack_w4a8(q, scales.to(COMPUTE_DTYPE), zeros.to(COMPUTE_DTYPE)))
        self.arguments = self.stream_arguments()

    @property
    def scales(self) -> torch.Tensor:
        """The bf16 scales (out, in / 32), a view of the packed rows that hold them."""
        return matvec.w4a8_sides(self.packed, self.in_features)[0]

    @property
    def zeros(self) -> torch.Tensor:
        return matvec.w4a8_sides(self.packed, self.in_features)[1]

    def stream_arguments(self) -> tuple:
        return self.packed, None, None, -ACTIVATION_BLOCK  # negative: the inputs are quantized per block

    def fallback(self, flat: torch.Tensor) -> torch.Tensor:
        q, scales, zeros = matvec.unpack_w4a8(self.packed, self.in_features)
        weight = dequantize_int4(q, scales.float(), zeros.float())
        return (rounded_inputs(flat) @ weight.t()).to(flat.dtype)


class Int4Linear(QuantizedLinear):
    """y = x · ((q − 8)·s + zero)ᵀ + b with q 4-bit, s and zero per (output row, group of inputs)."""

    max_streamed_rows = EVERY_ROW  # the kernel's layout is the only copy of the weight

    def __init__(self, linear: nn.Linear, group_size: int = 32):
        super().__init__(linear)
        self.group_size = group_size
        if self.streamed:
            q, scales, zeros = int4_groupwise(linear.weight, group_size)
            self.register_buffer("packed", matvec.pack_int4(q, group_size))
            self.register_buffer("scales", scales.to(COMPUTE_DTYPE))
            self.register_buffer("zeros", zeros.to(COMPUTE_DTYPE))
        else:
            self.pack_for_torch(linear.weight.detach())
        self.arguments = self.stream_arguments()

    def pack_for_torch(self, weight: torch.Tensor) -> None:
        self.padded_rows = -self.out_features % 16  # the packing wants whole tiles of 16 output rows: pad with zeros
        if self.padded_rows:
            weight = torch.cat([weight, weight.new_zeros(self.padded_rows, self.in_features)])
        q, scales, zeros = int4_groupwise(weight, self.group_size)
        self.register_buffer("packed", torch.ops.aten._convert_weight_to_int4pack_for_cpu(q.to(torch.int32), 1))
        # the kernel wants (n_groups, out, 2): each group's scale and zero side by side
        self.register_buffer("scales_and_zeros", torch.stack([scales, zeros], dim=-1).transpose(0, 1)
                             .contiguous().to(COMPUTE_DTYPE))

    def stream_arguments(self) -> tuple:
        return (self.packed, self.scales, self.zeros, self.group_size) if self.streamed else ()

    def fallback(self, flat: torch.Tensor) -> torch.Tensor:
        if self.streamed:  # gradients or a dtype the kernel does not take: the expanded weight, in float
            q = matvec.unpack_int4(self.packed, self.in_features, self.group_size)
            weight = dequantize_int4(q, self.scales.float(), self.zeros.float())
            return (flat.float() @ weight.t()).to(flat.dtype)
        y = torch._weight_int4pack_mm_for_cpu(flat.to(COMPUTE_DTYPE), self.packed, self.group_size,
                                              self.scales_and_zeros)
        return (y[:, :self.out_features] if self.padded_rows else y).to(flat.dtype)


def _linears(model: nn.Module) -> list[tuple[nn.Module, str, nn.Module]]:
    """Every float linear layer with its parent: `nn.Linear`, and the `StreamingLinear` that `for_cpu_inference`
    puts in its place (a model already laid out for CPU decoding must not stay float unnoticed)."""
    found = []
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, matvec.StreamingLinear)):
            parent_name, _, attribute = name.rpartition(".")
            found.append((model.get_submodule(parent_name) if parent_name else model, attribute, module))
    return found


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise UserError(f"unknown quantization {kind!r}", where="--quantize", hint=", ".join(KINDS))


def quantize_linears(model: nn.Module, kind: str, group_size: int = 32) -> nn.Module:
    """Replace every float linear layer of `model` (in place) by its int8 or int4 weight-only counterpart, or by
    int8 or int4 (groups of 32) weights met by int8 inputs (w8a8, w4a8).

    An output layer tied to the embedding is quantized as a layer; the embedding keeps its float table
    (a lookup reads one row per token, not the whole matrix). CPU only: the packed kernels are CPU ones.
    Attention with stacked projections decodes through the kernel's one-call step, as in `for_cpu_inference`,
    and the weights move into 2 MB pages (`pages.in_huge_pages`).
    """
    _check_kind(kind)
    if any(p.device.type != "cpu" for p in model.parameters()):
        raise UserError("int8/int4/w8a8/w4a8 layers run on CPU kernels", where="--quantize",
                        hint="use --device cpu")
    layers = {"int8": Int8Linear, "w8a8": W8A8Linear, "w4a8": W4A8Linear,
              "int4": partial(Int4Linear, group_size=group_size)}[kind]
    for parent, attribute, linear in _linears(model):
        setattr(parent, attribute, layers(linear))
    return in_huge_pages(fuse_decode_step(model))


def round_trip_linears(model: nn.Module, kind: str, group_size: int = 32) -> nn.Module:
    """The reference for `quantize_linears`: every linear weight replaced (in place) by its float round
    trip, so the model computes in float what the quantized one computes from packed integers. A tied
    output layer gets its own copy (the embedding keeps the original table, as in `quantize_linears`)."""
    _check_kind(kind)
    for _, _, linear in _linears(model):
        linear.weight = nn.Parameter(round_trip(linear.weight, kind, group_size), requires_grad=False)
    return model
