"""A model's weights in one block of 2 MB pages, for decoding on a CPU.

Decoding one token reads every weight once. With the usual 4 KB pages that stream crosses a page every 4 KB,
and each new page needs its address translated; on a virtual machine a translation that misses the TLB walks
two sets of page tables. Linux can back a memory range with 2 MB pages instead (transparent huge pages),
512 times fewer translations, when the range asks for them (`madvise(MADV_HUGEPAGE)`; this is how `make
setup`'s machines are set: `/sys/kernel/mm/transparent_hugepage/enabled` reads `madvise`). torch's allocator
does not ask, so `in_huge_pages` copies a model's parameters and buffers into one such range, each where the
last ended, and the model's layers read them there.

Measured on this project's machine (SmolLM2, batch-1 decoding, four copies of the model in one process taking
turns): fp32 81.7 tokens/s against 64.8 and 73.2 for two copies as loaded, bf16 112 against 97 and 104; the
same weights packed alike in 4 KB pages gave 77.9 and 88.4. A 1 GiB sum read 70.7 GB/s in 2 MB pages against
51.8 in a tensor torch allocated (`benchmarks/bench_llm.py` takes the faster as the bandwidth bound).

The price is paid once, at load: the kernel may have to gather free 2 MB blocks, and on this machine placing
SmolLM2's 538 MB of fp32 weights took 0.5 s in most fresh processes and 1.9 s in one (against 1.5 s to load the
run). `LM2LLM_HUGE_PAGES=0` switches it off, as `LM2LLM_MATVEC=0` does the kernel.

Inference only, as the rest of `inference.layout`: the tensors are views of one buffer, which a later `.to()`
or training replaces with ordinary ones. Where the system has no huge pages (not Linux, or switched off), the
model is left as it is.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import torch
from torch import nn

HUGE_PAGE = 2 << 20
ALIGNMENT = 64  # each tensor starts on a cache line
SETTING = Path("/sys/kernel/mm/transparent_hugepage/enabled")
MAPPINGS = Path("/proc/self/smaps")


def huge_pages_available() -> bool:
    """Whether a range can ask for 2 MB pages: Linux with transparent huge pages not switched off (by the system
    or by `LM2LLM_HUGE_PAGES=0`)."""
    if os.environ.get("LM2LLM_HUGE_PAGES", "1") == "0" or not hasattr(mmap, "MADV_HUGEPAGE"):
        return False
    try:
        return "[never]" not in SETTING.read_text()
    except OSError:
        return False


def huge_page_buffer(nbytes: int) -> torch.Tensor | None:
    """nbytes of zeroed memory (uint8) starting on a 2 MB boundary, asked to be backed by 2 MB pages; None where
    the system cannot. The memory lives as long as a tensor viewing it does."""
    if not huge_pages_available():
        return None
    area = mmap.mmap(-1, nbytes + HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    whole = torch.frombuffer(area, dtype=torch.uint8)  # holds a reference to `area`
    start = -whole.data_ptr() % HUGE_PAGE
    try:
        area.madvise(mmap.MADV_HUGEPAGE, start, nbytes)
    except OSError:
        return None
    return whole[start:start + nbytes]


def _movable(tensor: torch.Tensor | None) -> bool:
    return (tensor is not None and tensor.device.type == "cpu" and tensor.layout == torch.strided
            and not tensor.is_mkldnn and not tensor.is_quantized and tensor.is_contiguous() and tensor.numel() > 0)


def in_huge_pages(model: nn.Module) -> nn.Module:
    """Copy every CPU parameter and buffer of `model` into one buffer of 2 MB pages, in the order of the modules
    (a LLaMA's blocks in the order a decoding step reads them), and point the model at the copies (in place;
    returns the model). A tensor held twice (a tied output layer) is copied once and stays shared. Layers that
    keep their own references to their buffers (`stream_arguments`) renew them."""
    unique: dict[int, torch.Tensor] = {}
    for module in model.modules():
        for tensor in (*module._parameters.values(), *module._buffers.values()):
            if _movable(tensor):
                unique.setdefault(id(tensor), tensor)
    offsets, end = {}, 0
    for key, tensor in unique.items():
        offsets[key] = end
        end += -(-tensor.numel() * tensor.element_size() // ALIGNMENT) * ALIGNMENT
    buffer = huge_page_buffer(end) if unique else None
    if buffer is None:
        return model
    copies: dict[int, torch.Tensor] = {}
    for key, tensor in unique.items():
        view = buffer[offsets[key]:offsets[key] + tensor.numel() * tensor.element_size()].view(tensor.dtype)
        view = view.view(tensor.shape)
        view.copy_(tensor.detach())
        copies[key] = (nn.Parameter(view, requires_grad=tensor.requires_grad) if isinstance(tensor, nn.Parameter)
                       else view)
    for module in model.modules():
        for name in [*module._parameters, *module._buffers]:
            tensor = getattr(module, name)
            if tensor is not None and id(tensor) in copies:
                setattr(module, name, copies[id(tensor)])  # through the registration hooks: plans see the change
        if hasattr(module, "stream_arguments"):
            module.arguments = module.stream_arguments()
    return model


def bytes_in_huge_pages(model: nn.Module) -> int | None:
    """Bytes of 2 MB pages in the memory mappings that hold `model`'s parameters and buffers (from
    /proc/self/smaps; None where it cannot be read): whether the system granted what `in_huge_pages` asked for."""
    starts = {t.data_ptr() for t in (*model.parameters(), *model.buffers()) if _movable(t)}
    try:
        lines = MAPPINGS.read_text().splitlines()
    except OSError:
        return None
    total, holds = 0, False
    for line in lines:
        field, _, rest = line.partition(" ")
        if "-" in field and not field.endswith(":"):  # a mapping's header: "start-end perms ..."
            low, high = (int(end, 16) for end in field.split("-"))
            holds = any(low <= start < high for start in starts)
        elif holds and field == "AnonHugePages:":
            total += int(rest.split()[0]) * 1024
    return total
