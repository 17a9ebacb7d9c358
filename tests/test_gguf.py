"""The GGUF reader and dequantizers against the `gguf` package, malformed files, and the reader's checks."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from lm2llm.errors import UserError
from lm2llm.gguf.quants import BY_NAME
from lm2llm.gguf.reader import GGUFFile

gguf = pytest.importorskip("gguf")
from gguf.quants import dequantize as reference_dequantize  # noqa: E402
from gguf.quants import quantize as reference_quantize  # noqa: E402

TYPES = ("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1")


def write_reference_file(path: Path, tensors: dict[str, tuple[np.ndarray, str]]) -> None:
    """A GGUF written by the reference writer, each array stored as the named type."""
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_string("general.name", "tiny")
    writer.add_array("tokenizer.ggml.tokens", ["a", "b", "안녕"])
    for name, (array, type_name) in tensors.items():
        qtype = gguf.GGMLQuantizationType[type_name]
        data = array if type_name == "F32" else reference_quantize(array, qtype)
        writer.add_tensor(name, data, raw_dtype=None if type_name == "F32" else qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_every_type_dequantizes_bit_for_bit_like_the_reference(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {f"t.{name}": ((rng.standard_normal((6, 64)) * rng.uniform(0.01, 3)).astype(np.float32), name)
               for name in TYPES}
    tensors["t.zeros.Q4_1"] = (np.zeros((2, 32), np.float32), "Q4_1")
    tensors["t.outlier.Q4_0"] = (np.concatenate([np.full((1, 31), 1e-3), [[50.0]]], 1).astype(np.float32), "Q4_0")
    path = tmp_path / "tiny.gguf"
    write_reference_file(path, tensors)
    ours, theirs = GGUFFile(path), gguf.GGUFReader(str(path))
    assert ours.version == 3 and ours.metadata["general.name"] == "tiny"
    assert ours.metadata["tokenizer.ggml.tokens"] == ["a", "b", "안녕"]
    for tensor in theirs.tensors:
        expected = reference_dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        got = ours.dequantized(tensor.name)
        assert got.shape == expected.shape == tensors[tensor.name][0].shape
        assert np.array_equal(got.view(np.uint32), expected.view(np.uint32)), tensor.name


# -- malformed files ---------------------------------------------------------------------------------------

def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def gguf_bytes(tensors: list[tuple[str, tuple[int, ...], int, int]], metadata: bytes = b"", n_kv: int = 0,
               version: int = 3) -> bytes:
    """A GGUF header and tensor infos (name, dims ggml-order, type, offset), padded to 32 bytes."""
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), n_kv) + metadata
    for name, dims, type_code, offset in tensors:
        out += _string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", type_code, offset)
    return out + b"\0" * (-len(out) % 32)


def open_bytes(tmp_path: Path, data: bytes) -> GGUFFile:
    path = tmp_path / "bad.gguf"
    path.write_bytes(data)
    return GGUFFile(path)


F32 = BY_NAME["F32"].code


@pytest.mark.parametrize("data, message", [
    (b"GGML" + b"\0" * 40, "not a GGUF file"),
    (b"GGUF" + struct.pack("<IQQ", 1, 0, 0), "version 1"),
    (gguf_bytes([("w", (4,), F32, 0)]), "beyond the end of the file"),  # truncated: no data at all
    (gguf_bytes([("w", (32,), 12, 0)]) + b"\0" * 200, "type Q4_K is not supported"),
    (gguf_bytes([("w", (32,), 99, 0)]) + b"\0" * 200, "unknown tensor type 99"),
    (gguf_bytes([("w", (4,), F32, 0), ("v", (4,), F32, 0)]) + b"\0" * 64, "overlap"),
    (gguf_bytes([("w", (4,), F32, 1 << 50)]) + b"\0" * 64, "beyond the end"),
    (gguf_bytes([("w", (4,), F32, 3)]) + b"\0" * 64, "not aligned"),
    (gguf_bytes([("w", (1 << 30, 1 << 30, 1 << 10), F32, 0)]) + b"\0" * 64, "at most"),
    (gguf_bytes([("w", (4, 0), F32, 0)]) + b"\0" * 64, "dimension 0"),
    (gguf_bytes([("w", (4, 1, 1, 1, 1), F32, 0)]) + b"\0" * 64, "5 dimensions"),
    (gguf_bytes([("w", (33,), BY_NAME["Q8_0"].code, 0)]) + b"\0" * 64, "does not fit type Q8_0"),
    (gguf_bytes([], metadata=_string("k") + struct.pack("<I", 8) + struct.pack("<Q", 1 << 60), n_kv=1), "needs"),
    (gguf_bytes([], metadata=_string("k") + struct.pack("<IIQ", 9, 8, 1 << 58), n_kv=1), "runs past the end"),
    (gguf_bytes([], metadata=_string("k") + struct.pack("<I", 77), n_kv=1), "unknown value type 77"),
    (b"GGUF" + struct.pack("<IQQ", 3, 1 << 62, 0) + b"\0" * 16, "cannot fit"),
])
def test_malformed_files_get_a_clear_error_naming_the_field(tmp_path, data, message):
    with pytest.raises(UserError, match=message) as info:
        open_bytes(tmp_path, data)
    assert "bad.gguf" in str(info.value)


def test_a_valid_hand_written_file_reads(tmp_path):
    values = np.arange(8, dtype=np.float32)
    metadata = _string("general.alignment") + struct.pack("<II", 4, 32)
    gguf_file = open_bytes(tmp_path, gguf_bytes([("w", (4, 2), F32, 0)], metadata, n_kv=1) + values.tobytes())
    assert gguf_file.tensors["w"].shape == (2, 4)
    assert np.array_equal(gguf_file.dequantized("w"), values.reshape(2, 4))
    with pytest.raises(UserError, match="no tensor 'x'"):
        gguf_file.dequantized("x")
