"""A matrix-vector kernel for decoding, and the linear layer that uses it.

Decoding one token reads every weight of the model once, so a step can be no faster than memory delivers
the weights (the bandwidth bound `benchmarks/bench_llm.py` measures). torch's CPU kernels for a matrix
times one vector stream SmolLM2's weights at well under half of that bandwidth on this project's machine;
`matvec.cpp` is the plain loop that reads each weight row once and uses it for up to 8 sequences of the
batch (SmolLM2's linear layers alone read 44-49 GB/s through it in one run where a 1 GiB sum read 67). One
loop serves four weight formats, told apart by the weight's dtype: float32 and bfloat16 as stored, int8 with
a scale per output row, and 4-bit groups packed two to a byte (`pack_int4`; the quantized layers of
`lm2llm.compress.weight_only` call it); int8 and 4-bit weights also meet inputs quantized to int8 per block of
32 in integer products (group size -32: W8A8 in `pack_w8a8`'s layout, W4A8 in `pack_w4a8`'s). On a CPU with
AMX, bfloat16 weights meet their inputs in its tile products, 16 weight rows at a time (`amx_tiles()` says whether
they do). It is C++ because the
lesson is the memory traffic, which Python cannot show: a compiled loop is the smallest thing that does.

The same extension carries the rest of a decoding step's fixed cost in a few calls: `linear` (the choice
between the kernel and torch's `linear`, made in C++ at each of a step's calls), `decode_attention` (one new
token's RoPE, KV-cache write and attention per layer), `rms_norm`, `DecodeLayers` (every block of a LLaMA
model for one new token, all of the above in one parallel region per step, from the token embedding to the
output layer's logits where the model's ends fit), which `inference.layout`
installs, and `greedy` (each row's largest logit, which `sampling.choose` asks for).

The kernel is built the first time it is needed (`torch.utils.cpp_extension`, about half a minute), in a
cache folder keyed by the source, its compiler flags, the torch version and this CPU's instruction set; where
no C++ compiler is found, `available()` is False and the layers keep torch's own kernels. `LM2LLM_MATVEC=0` switches it off.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: torch's own marker alone keeps builds apart
    fcntl = None

import torch
from torch import nn

SOURCE = Path(__file__).with_name("matvec.cpp")
# More rows than this (a prompt) go to torch's matrix-matrix kernels. The kernel takes up to 8 rows per pass
# over the weights (`kBlock` in matvec.cpp), so a decoding step of a batch of 8 reads each weight once.
MAX_ROWS = 8
STREAMED = (torch.float32, torch.bfloat16)  # the float weights `StreamingLinear` streams as they are
# -fopenmp is what makes `at::parallel_for` split the work between torch's threads: without it the header's
# `#pragma omp parallel` is ignored and every call runs on one core (until 5 December 2026 it did, at half the
# speed: SmolLM2's fp32 linear layers at batch 1 took 21 ms a step, then 13 to 19 ms on two cores).
CFLAGS = ["-O3", "-march=native", "-ffp-contract=off", "-fopenmp"]


def cpu_flags() -> str:
    """The CPU's instruction-set flags: a kernel built with -march=native must not run on another CPU."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line
    except OSError:
        pass
    return platform.processor()


def build_directory() -> Path:
    key = hashlib.sha256(SOURCE.read_bytes() + " ".join(CFLAGS).encode() + torch.__version__.encode()
                         + cpu_flags().encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lm2llm" / "kernels" / key
    cache.mkdir(parents=True, exist_ok=True)
    return cache


TORCH_BUILD_MARKER = "lock"  # the file torch's extension loader keeps in our build folder while it builds


def load_built(directory: Path):
    """torch's `load` of the kernel, built in `directory` if it is not there yet, by one process at a time.

    torch marks a build in progress with a file (`TORCH_BUILD_MARKER`) and waits as long as it exists, so a
    process killed while torch held it (Ctrl-C during the first `lm2llm generate`) left every later one waiting
    forever. An OS lock on a file beside it is released when its holder dies: whoever holds it knows no live
    process is building, and removes a marker left behind (only that file, in the kernel's own cache folder)."""
    from torch.utils.cpp_extension import load

    with open(directory / "build.flock", "w") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
            (directory / TORCH_BUILD_MARKER).unlink(missing_ok=True)
        return load("lm2llm_matvec", [str(SOURCE)], build_directory=str(directory), extra_cflags=CFLAGS,
                    extra_ldflags=["-fopenmp"], verbose=False)


@functools.cache
def kernel():
    """The compiled extension, or None where it cannot be built (no compiler, switched off, not Linux/x86)."""
    if os.environ.get("LM2LLM_MATVEC", "1") == "0" or platform.machine() not in ("x86_64", "AMD64"):
        return None
    try:
        return load_built(build_directory())
    except Exception:  # a missing compiler or ninja: torch's own kernels serve instead
        return None


def available() -> bool:
    return kernel() is not None


def pack_int4(q: torch.Tensor, group_size: int) -> torch.Tensor:
    """4-bit values (out, in) in 0..15 as the kernel reads them, two to a byte (see matvec.cpp): superblocks of
    16 groups, where step t (32 inputs) holds inputs 2t and 2t + 1 of each group side by side and two steps
    share 32 bytes (low nibbles, then high); the rest in blocks of 64 inputs in 32 bytes, byte j holding input j
    in its low nibble and j + 32 in its high one, a last block of 32 in 16 bytes (j and j + 16)."""
    out_features, in_features = q.shape
    if in_features % 32 or in_features % group_size:
        raise ValueError(f"int4 rows are packed in groups of {group_size} (and blocks of 32) inputs, not {in_features}")
    q = q.to(torch.uint8)
    span = 16 * group_size
    head = in_features // span * span
    superblocks = q[:, :head].reshape(out_features, -1, 16, group_size // 2, 2).transpose(2, 3)
    rest = in_features - head
    parts = [superblocks.reshape(out_features, -1, 2, 32), q[:, head:head + rest // 64 * 64].reshape(out_features, -1, 2, 32),
             q[:, head + rest // 64 * 64:].reshape(out_features, -1, 2, 16)]
    return torch.cat([(part[:, :, 0] | part[:, :, 1] << 4).reshape(out_features, -1) for part in parts], dim=1)


def unpack_int4(packed: torch.Tensor, in_features: int, group_size: int) -> torch.Tensor:
    """`pack_int4`'s inverse: the (out, in) values 0..15 as uint8."""
    out_features = packed.shape[0]
    span = 16 * group_size
    head = in_features // span * span
    blocks = head + (in_features - head) // 64 * 64
    nibbles = [torch.stack([part & 0x0F, part >> 4], dim=2) for part in (
        packed[:, :blocks // 2].reshape(out_features, -1, 32), packed[:, blocks // 2:].reshape(out_features, -1, 16))]
    superblocks = nibbles[0][:, :head // 64].reshape(out_features, -1, group_size // 2, 16, 2).transpose(2, 3)
    return torch.cat([superblocks.reshape(out_features, -1), nibbles[0][:, head // 64:].reshape(out_features, -1),
                      nibbles[1].reshape(out_features, -1)], dim=1)


SUPERBLOCK = 512  # the integer formats' superblocks: 16 blocks of 32 inputs


def superblock_order(q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A row's values (out, in) in the integer formats' superblock order (see matvec.cpp): (out, superblocks, 8,
    64) steps, step t holding inputs 4t .. 4t + 3 of block k at 4k .. 4k + 3, and the rest (out, in % 512) as is."""
    out_features, in_features = q.shape
    if in_features % 32:
        raise ValueError(f"W8A8 and W4A8 rows are packed in blocks of 32 inputs, not {in_features}")
    whole = in_features // SUPERBLOCK * SUPERBLOCK
    steps = q[:, :whole].reshape(out_features, -1, 16, 8, 4).transpose(2, 3).reshape(out_features, -1, 8, 64)
    return steps, q[:, whole:]


def natural_order(steps: torch.Tensor, rest: torch.Tensor) -> torch.Tensor:
    """`superblock_order`'s inverse: the (out, in) values."""
    out_features = steps.shape[0]
    return torch.cat([steps.reshape(out_features, -1, 8, 16, 4).transpose(2, 3).reshape(out_features, -1), rest], dim=1)


def pack_w8a8(q: torch.Tensor) -> torch.Tensor:
    """int8 values (out, in) in the W8A8 kernel's layout: superblocks of 16 blocks of 32 inputs in
    `superblock_order`, the rest (fewer than 16 blocks) as stored."""
    steps, rest = superblock_order(q.to(torch.int8))
    return torch.cat([steps.reshape(q.shape[0], -1), rest], dim=1)


def unpack_w8a8(packed: torch.Tensor) -> torch.Tensor:
    """`pack_w8a8`'s inverse: the (out, in) int8 values."""
    whole = packed.shape[1] // SUPERBLOCK * SUPERBLOCK
    return natural_order(packed[:, :whole].reshape(packed.shape[0], -1, 8, 64), packed[:, whole:])


def pack_w4a8(q: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor) -> torch.Tensor:
    """int4 weights (values q (out, in) in 0..15, bf16 `scales` and `zeros` (out, in / 32), W = (q − 8)·s + zero)
    as the W4A8 kernel reads them (see matvec.cpp), one row after another: its nibbles two to a byte, superblocks of
    16 blocks of 32 inputs in `superblock_order`, steps 2u and 2u + 1 sharing 64 bytes (low nibbles, then high);
    the rest in pairs of blocks of 32 bytes, byte j holding input j of the pair in its low nibble and j + 32 in its
    high one, and a last single block in 16 bytes (j and j + 16); then the row's scales, then its zeros (so that
    decoding reads the weights as one stream)."""
    out_features = q.shape[0]
    steps, rest = superblock_order(q.to(torch.uint8))
    paired = rest.shape[1] // 64 * 64
    parts = [steps.reshape(out_features, -1, 4, 2, 64), rest[:, :paired].reshape(out_features, -1, 2, 32),
             rest[:, paired:].reshape(out_features, -1, 2, 16)]
    nibbles = [(part[..., 0, :] | part[..., 1, :] << 4).reshape(out_features, -1) for part in parts]
    sides = [side.to(torch.bfloat16).contiguous().view(torch.uint8) for side in (scales, zeros)]
    return torch.cat([*nibbles, *sides], dim=1)


def unpack_w4a8(packed: torch.Tensor, in_features: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`pack_w4a8`'s inverse: the (out, in) values 0..15 as uint8, and the rows' scales and zeros (`w4a8_sides`)."""
    out_features = packed.shape[0]
    whole = in_features // SUPERBLOCK * SUPERBLOCK
    paired = whole + (in_features - whole) // 64 * 64
    parts = (packed[:, :whole // 2].reshape(out_features, -1, 4, 64),
             packed[:, whole // 2:paired // 2].reshape(out_features, -1, 32),
             packed[:, paired // 2:in_features // 2].reshape(out_features, -1, 16))
    steps, pairs, single = (torch.stack([part & 0x0F, part >> 4], dim=-2) for part in parts)
    q = natural_order(steps.reshape(out_features, -1, 8, 64),
                      torch.cat([pairs.reshape(out_features, -1), single.reshape(out_features, -1)], dim=1))
    return (q, *w4a8_sides(packed, in_features))


def w4a8_sides(packed: torch.Tensor, in_features: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Views of `pack_w4a8`'s rows' bf16 scales and zeros, each (out, in / 32)."""
    side, start = in_features // 16, in_features // 2  # a row's scales (and its zeros) take 2 bytes per block of 32
    return (packed[:, start:start + side].view(torch.bfloat16),
            packed[:, start + side:start + 2 * side].view(torch.bfloat16))


class StreamingLinear(nn.Module):
    """An inference-only linear layer: decoding's few rows (at most `MAX_ROWS`) through the streaming kernel,
    prompts and anything wanting gradients through torch's `linear`. The choice is made inside the kernel's
    `linear` entry, so a call costs one step into C++ (a decoding step of SmolLM2 makes 121 of them). It holds
    the same weight tensor as the layer it replaces, so a tied output layer stays tied to its embedding and
    nothing is stored twice."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.weight, self.bias = weight, bias
        self.out_features, self.in_features = weight.shape
        self.linear = kernel().linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x, self.weight, self.bias, MAX_ROWS)

    def decode_weight(self, dtype: torch.dtype) -> tuple | None:
        """What the kernel's whole-model step (`DecodeLayers`) takes for this layer with inputs of `dtype`:
        (weight, scales, zeros, group_size); None where the layer must run on its own (a bias, another dtype)."""
        if self.bias is not None or self.weight.dtype != dtype or not self.weight.is_contiguous():
            return None
        return self.weight, None, None, 0

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, dtype={self.weight.dtype}"


def stream_linears(model: nn.Module) -> nn.Module:
    """Replace every fp32 or bf16 CPU `nn.Linear` with contiguous (out, in) weights by a `StreamingLinear`."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            weight = child.weight if type(child) is nn.Linear else None
            if (weight is not None and weight.dtype in STREAMED and weight.device.type == "cpu"
                    and weight.is_contiguous()):
                setattr(parent, name, StreamingLinear(weight, child.bias))
    return model
