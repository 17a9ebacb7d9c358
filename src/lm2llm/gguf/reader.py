"""Reading a GGUF file: llama.cpp's single-file format for a model's metadata and (quantized) weights.

Layout (all little-endian), versions 2 and 3:

    "GGUF" | version u32 | tensor_count u64 | metadata_count u64
    metadata_count × (key: string, value_type u32, value)
    tensor_count × (name: string, n_dims u32, dims u64 × n_dims, ggml_type u32, offset u64)
    padding to `general.alignment` (default 32)
    tensor data: each tensor at data_start + offset, offsets aligned too

A string is a u64 byte length then UTF-8 bytes; an array is an element type u32, a u64 count, then the
elements. `dims` lists the fastest-varying dimension first (ggml's ne[0]), so a (rows, cols) matrix is
stored as [cols, rows]; `GGUFTensor.shape` gives numpy's order.

The file is untrusted input: every length, count, shape and offset is checked against the bytes that
are actually there before anything is allocated from it, and each failure names the field. The tensor
data is memory-mapped, so opening a file costs only its metadata.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lm2llm.errors import UserError
from lm2llm.gguf.quants import OTHER_TYPE_NAMES, TYPES, GGMLType, dequantize

MAGIC = b"GGUF"
VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4  # ggml tensors have at most four dimensions
MAX_ELEMENTS = 1 << 40  # no tensor of a model that runs on one machine comes near this

# value type number → (name, struct format or None for string/array)
VALUE_TYPES: dict[int, tuple[str, str | None]] = {
    0: ("uint8", "<B"), 1: ("int8", "<b"), 2: ("uint16", "<H"), 3: ("int16", "<h"), 4: ("uint32", "<I"),
    5: ("int32", "<i"), 6: ("float32", "<f"), 7: ("bool", "<?"), 8: ("string", None), 9: ("array", None),
    10: ("uint64", "<Q"), 11: ("int64", "<q"), 12: ("float64", "<d"),
}
NUMPY_OF = {0: np.uint8, 1: np.int8, 2: np.uint16, 3: np.int16, 4: np.uint32, 5: np.int32, 6: np.float32,
            7: np.bool_, 10: np.uint64, 11: np.int64, 12: np.float64}


@dataclass(frozen=True)
class GGUFTensor:
    name: str
    shape: tuple[int, ...]  # numpy order: the slowest-varying dimension first
    ggml_type: GGMLType
    offset: int  # absolute position in the file
    nbytes: int


class _Cursor:
    """Reads little-endian fields from the mapped file, refusing to run past its end."""

    def __init__(self, buffer: np.ndarray, path: Path):
        self.buffer, self.path, self.pos = buffer, path, 0

    def fail(self, what: str, field: str) -> UserError:
        return UserError(f"malformed GGUF: {what}", where=f"{self.path}: {field} (byte {self.pos})")

    def take(self, n: int, field: str) -> np.ndarray:
        if n < 0 or self.pos + n > self.buffer.size:
            raise self.fail(f"{field} needs {n} bytes but the file ends at byte {self.buffer.size}", field)
        out = self.buffer[self.pos:self.pos + n]
        self.pos += n
        return out

    def scalar(self, fmt: str, field: str) -> Any:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), field).tobytes())[0]

    def string(self, field: str) -> str:
        length = self.scalar("<Q", field)
        raw = self.take(length, field).tobytes()
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.fail(f"{field} is not UTF-8", field) from exc

    def value(self, type_code: int, field: str) -> Any:
        if type_code not in VALUE_TYPES:
            raise self.fail(f"unknown value type {type_code}", field)
        name, fmt = VALUE_TYPES[type_code]
        if fmt is not None:
            return self.scalar(fmt, field)
        if name == "string":
            return self.string(field)
        item_type, count = self.scalar("<I", field), self.scalar("<Q", field)
        if item_type in NUMPY_OF:  # a numeric array: one bounded read, no per-element loop
            width = np.dtype(NUMPY_OF[item_type]).itemsize
            if count > (self.buffer.size - self.pos) // width:
                raise self.fail(f"array of {count} items runs past the end of the file", field)
            return self.take(count * width, field).view(NUMPY_OF[item_type]).tolist()
        if item_type == 9:
            raise self.fail("nested arrays are not read", field)
        # strings: each takes at least 8 bytes, which bounds the count before any list grows
        if count > (self.buffer.size - self.pos) // 8:
            raise self.fail(f"array of {count} strings runs past the end of the file", field)
        return [self.value(item_type, f"{field}[{i}]") for i in range(count)]


class GGUFFile:
    """A GGUF file's metadata (`.metadata`, a dict) and tensors (`.tensors`, by name), data memory-mapped."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise UserError("no such GGUF file", where=str(self.path))
        if self.path.stat().st_size < 24:
            raise UserError("not a GGUF file (shorter than its header)", where=str(self.path))
        self.buffer = np.memmap(self.path, dtype=np.uint8, mode="r")
        cursor = _Cursor(self.buffer, self.path)
        if cursor.take(4, "magic").tobytes() != MAGIC:
            raise UserError("not a GGUF file (the first bytes are not 'GGUF')", where=str(self.path))
        self.version = cursor.scalar("<I", "version")
        if self.version not in VERSIONS:
            hint = "a big-endian file?" if self.version > 0xFFFF else "re-convert it with a current llama.cpp"
            raise UserError(f"GGUF version {self.version} is not read (versions 2 and 3 are)",
                            where=f"{self.path}: version", hint=hint)
        n_tensors, n_kv = cursor.scalar("<Q", "tensor_count"), cursor.scalar("<Q", "metadata_count")
        # every metadata entry and tensor info takes more than 8 bytes: counts beyond that are lies
        if n_kv > self.buffer.size // 8 or n_tensors > self.buffer.size // 8:
            raise cursor.fail(f"{n_kv} metadata entries / {n_tensors} tensors cannot fit in the file", "header")
        self.metadata: dict[str, Any] = {}
        for i in range(n_kv):
            key = cursor.string(f"metadata[{i}].key")
            self.metadata[key] = cursor.value(cursor.scalar("<I", f"{key}.type"), key)
        infos = [self._tensor_info(cursor, i) for i in range(n_tensors)]
        self.alignment = int(self.metadata.get("general.alignment", DEFAULT_ALIGNMENT))
        if self.alignment <= 0 or self.alignment & (self.alignment - 1):
            raise UserError(f"general.alignment {self.alignment} is not a power of two",
                            where=f"{self.path}: general.alignment")
        self.data_start = -(-cursor.pos // self.alignment) * self.alignment
        self.tensors = self._place(infos)

    def _tensor_info(self, cursor: _Cursor, index: int) -> tuple[str, tuple[int, ...], int, int]:
        name = cursor.string(f"tensor[{index}].name")
        n_dims = cursor.scalar("<I", f"{name}.n_dims")
        if not 1 <= n_dims <= MAX_DIMS:
            raise cursor.fail(f"tensor {name!r} has {n_dims} dimensions (1 to {MAX_DIMS} allowed)", f"{name}.n_dims")
        dims = tuple(cursor.scalar("<Q", f"{name}.dims[{d}]") for d in range(n_dims))
        type_code, offset = cursor.scalar("<I", f"{name}.type"), cursor.scalar("<Q", f"{name}.offset")
        return name, dims, type_code, offset

    def _place(self, infos: list[tuple[str, tuple[int, ...], int, int]]) -> dict[str, GGUFTensor]:
        """Check each tensor's type, shape and byte range, and that no two tensors overlap."""
        tensors: dict[str, GGUFTensor] = {}
        for name, dims, type_code, offset in infos:
            where = f"{self.path}: tensor {name!r}"
            if type_code not in TYPES:
                known = OTHER_TYPE_NAMES.get(type_code)
                what = f"type {known} is not supported" if known else f"unknown tensor type {type_code}"
                raise UserError(what, where=f"{where}.type", hint=f"supported: {', '.join(t.name for t in TYPES.values())}")
            ggml_type = TYPES[type_code]
            n = 1
            for d in dims:
                if d == 0 or d > MAX_ELEMENTS:
                    raise UserError(f"dimension {d} is out of range", where=f"{where}.dims")
                n *= d
            if n > MAX_ELEMENTS or dims[0] % ggml_type.block_size:
                raise UserError(f"shape {list(dims)} does not fit type {ggml_type.name} (rows of whole "
                                f"{ggml_type.block_size}-weight blocks, at most {MAX_ELEMENTS} weights)", where=f"{where}.dims")
            if offset % self.alignment:
                raise UserError(f"offset {offset} is not aligned to {self.alignment}", where=f"{where}.offset")
            start, nbytes = self.data_start + offset, ggml_type.nbytes(n)
            if start + nbytes > self.buffer.size:
                raise UserError(f"data [{start}, {start + nbytes}) lies beyond the end of the file "
                                f"({self.buffer.size} bytes): truncated?", where=f"{where}.offset")
            if name in tensors:
                raise UserError("the tensor name appears twice", where=where)
            tensors[name] = GGUFTensor(name, tuple(reversed(dims)), ggml_type, start, nbytes)
        spans = sorted((t.offset, t.offset + t.nbytes, t.name) for t in tensors.values())
        for (_, end, first), (start, _, second) in zip(spans, spans[1:], strict=False):
            if start < end:
                raise UserError(f"tensors {first!r} and {second!r} overlap", where=f"{self.path}: tensor {second!r}.offset")
        return tensors

    def raw(self, name: str) -> np.ndarray:
        """The bytes of tensor `name` as a read-only uint8 view of the mapped file."""
        tensor = self.tensor(name)
        return self.buffer[tensor.offset:tensor.offset + tensor.nbytes]

    def tensor(self, name: str) -> GGUFTensor:
        if name not in self.tensors:
            raise UserError(f"the file has no tensor {name!r}", where=str(self.path))
        return self.tensors[name]

    def dequantized(self, name: str) -> np.ndarray:
        """Tensor `name` as float32, in numpy's shape order."""
        tensor = self.tensor(name)
        return dequantize(self.raw(name), tensor.ggml_type, tensor.shape)

    def field(self, key: str, kind: type | tuple[type, ...] = object) -> Any:
        """A metadata value that must be present (and of `kind`), or a UserError naming the key."""
        if key not in self.metadata:
            raise UserError(f"the file lacks the metadata key {key!r}", where=str(self.path))
        value = self.metadata[key]
        if not isinstance(value, kind) or isinstance(value, bool) and kind in (int, float, (int, float)):
            raise UserError(f"{key} has an unexpected value {str(value)[:60]!r}", where=f"{self.path}: {key}")
        return value
