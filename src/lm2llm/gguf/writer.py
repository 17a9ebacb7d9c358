"""Writing a GGUF file (the inverse of `reader.py`): what llama.cpp, ollama and LM Studio load.

    "GGUF" | u32 version (3) | u64 tensor count | u64 metadata count
    metadata:     key (u64 length + UTF-8) | u32 value type | value      (arrays: u32 type, u64 count, items)
    tensor infos: name | u32 n_dims | u64 dims, innermost first | u32 ggml type | u64 offset into the data
    padding to `general.alignment` (32 unless the metadata says otherwise), then each tensor's bytes,
    every one starting at a multiple of the alignment.

Dimensions are listed innermost first (ggml's ne0, ne1, ...): a PyTorch (out, in) weight is written as
[in, out], and its bytes are its rows one after another, each row cut into quantization blocks.
Python values map to GGUF types the way llama.cpp's own writer maps the keys it reads: int → u32,
float → f32, bool, str, and lists of str, of float (f32) or of int (i32, as `tokenizer.ggml.token_type`).
The file is written to a temporary sibling and renamed, so a reader never sees half of one.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from lm2llm.gguf.quants import BY_NAME
from lm2llm.gguf.reader import DEFAULT_ALIGNMENT, MAGIC
from lm2llm.runs import atomic_save

VERSION = 3
# value types (reader.VALUE_TYPES has them all)
UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY = 4, 5, 6, 7, 8, 9
# the tensor types this writer emits, and general.file_type ("mostly ...") for each
WRITTEN_TYPES = ("f32", "f16", "q8_0", "q4_0", "q4_1")
FILE_TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q8_0": 7}


@dataclass
class TensorData:
    """One tensor as stored: `data` holds its bytes (uint8 for block types), `shape` its logical shape
    outermost first, as PyTorch writes it."""

    name: str
    shape: tuple[int, ...]
    ggml_type: str
    data: np.ndarray


def _string(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack("<Q", len(raw)) + raw


def _scalar(value: Any) -> tuple[int, bytes]:
    if isinstance(value, bool):
        return BOOL, struct.pack("<?", value)
    if isinstance(value, int):
        return UINT32, struct.pack("<I", value)
    if isinstance(value, float):
        return FLOAT32, struct.pack("<f", value)
    if isinstance(value, str):
        return STRING, _string(value)
    raise TypeError(f"no GGUF type for {type(value).__name__}")


def _value(value: Any) -> bytes:
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            items_type, body = INT32, np.asarray(value, dtype="<i4").tobytes()
        elif value and all(isinstance(v, float) for v in value):
            items_type, body = FLOAT32, np.asarray(value, dtype="<f4").tobytes()
        else:
            items_type, body = STRING, b"".join(_string(str(v)) for v in value)
        return struct.pack("<IIQ", ARRAY, items_type, len(value)) + body
    kind, body = _scalar(value)
    return struct.pack("<I", kind) + body


def _pad(handle: BinaryIO, alignment: int) -> None:
    handle.write(b"\0" * (-handle.tell() % alignment))


def write_gguf(path: str | Path, metadata: dict[str, Any], tensors: Sequence[TensorData]) -> Path:
    """Write a GGUF v3 file (atomically) and return its path."""
    alignment = int(metadata.get("general.alignment", DEFAULT_ALIGNMENT))
    offsets, offset = [], 0
    for tensor in tensors:
        offset += -offset % alignment
        offsets.append(offset)
        offset += tensor.data.nbytes

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            handle.write(MAGIC + struct.pack("<IQQ", VERSION, len(tensors), len(metadata)))
            for key, value in metadata.items():
                handle.write(_string(key) + _value(value))
            for tensor, start in zip(tensors, offsets, strict=True):
                dims = tensor.shape[::-1]
                handle.write(_string(tensor.name) + struct.pack(f"<I{len(dims)}QIQ", len(dims), *dims,
                                                                BY_NAME[tensor.ggml_type.upper()].code, start))
            _pad(handle, alignment)
            for tensor in tensors:
                _pad(handle, alignment)
                handle.write(np.ascontiguousarray(tensor.data).tobytes())

    return atomic_save(path, write)
