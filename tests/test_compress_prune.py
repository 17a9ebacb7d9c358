"""Pruning: Wanda and SparseGPT equal llmcompressor's functions on random layers; the sequential
model pruning reaches the asked sparsity and keeps the model usable."""

from __future__ import annotations

import importlib.metadata
import importlib.util

import pytest
import torch
from torch import nn

from lm2llm.compress.prune import (
    Calibration,
    Sparsity,
    magnitude,
    measured_sparsity,
    prune_model,
    sparse_bytes,
    sparsegpt,
    wanda,
)
from lm2llm.errors import UserError
from lm2llm.models import build_model


def reference(module_path: str):
    """One file of llmcompressor, loaded on its own: its package __init__ pulls in far more than these
    pure functions need (install: pip install --no-deps llmcompressor loguru)."""
    try:
        path = importlib.metadata.distribution("llmcompressor").locate_file(module_path)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("llmcompressor is not installed (pip install --no-deps llmcompressor loguru)")
    pytest.importorskip("loguru")
    spec = importlib.util.spec_from_file_location(module_path.replace("/", "_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def calibrated_layer(seed: int = 0, hessian: bool = False):
    torch.manual_seed(seed)
    layer = nn.Linear(64, 48, bias=False)
    batches = [torch.randn(4, 16, 64) * torch.linspace(0.1, 5, 64) for _ in range(3)]  # uneven feature norms
    batches[1][..., 7] = 0
    ours = Calibration(64, hessian)
    for batch in batches:
        ours.add(batch)
    return layer, batches, ours


def test_row_scalars_and_wanda_equal_llmcompressor():
    ref = reference("llmcompressor/modifiers/pruning/wanda/wanda_sparsify.py")
    layer, batches, ours = calibrated_layer()
    scalars, samples = ref.make_empty_row_scalars(layer), 0
    for batch in batches:
        scalars, samples = ref.accumulate_row_scalars(batch, layer, scalars, samples)
    torch.testing.assert_close(ours.row_scalars, scalars, rtol=1e-6, atol=1e-6)
    for text in ("0.5", "0.1", "0.7", "2:4"):
        sparsity = Sparsity.parse(text)
        expected = ref.sparsify_weight(layer, {layer: scalars.clone()}, sparsity.fraction, sparsity.n, sparsity.m)
        assert torch.equal(wanda(layer.weight, ours.row_scalars, sparsity), expected), text


def test_hessian_and_sparsegpt_equal_llmcompressor():
    ref = reference("llmcompressor/modifiers/pruning/sparsegpt/sgpt_sparsify.py")
    layer, batches, ours = calibrated_layer(hessian=True)
    hessian, samples = ref.make_empty_hessian(layer), 0
    for batch in batches:
        hessian, samples = ref.accumulate_hessian(batch, layer, hessian, samples)
    torch.testing.assert_close(ours.hessian, hessian, rtol=1e-6, atol=1e-5)
    for text in ("0.5", "2:4"):
        sparsity = Sparsity.parse(text)
        _, expected = ref.sparsify_weight(layer, {layer: hessian.clone()}, sparsity.fraction, sparsity.n, sparsity.m,
                                          block_size=128, dampening_frac=0.01, preserve_sparsity_mask=False)
        ours_pruned = sparsegpt(layer.weight, ours.hessian, sparsity)
        assert torch.equal(ours_pruned == 0, expected == 0), text
        torch.testing.assert_close(ours_pruned, expected, rtol=1e-5, atol=1e-6)


def test_magnitude_and_two_of_four_patterns():
    torch.manual_seed(0)
    weight = torch.randn(32, 64)
    pruned = magnitude(weight, Sparsity.parse("0.5"))
    assert float((pruned == 0).float().mean()) == pytest.approx(0.5, abs=1 / 2048)
    assert float(pruned.abs()[pruned != 0].min()) >= float(weight.abs()[pruned == 0].max())
    two_four = magnitude(weight, Sparsity.parse("2:4"))
    assert bool(((two_four.reshape(32, 16, 4) == 0).sum(-1) == 2).all())


@pytest.mark.parametrize("method", ["magnitude", "wanda", "sparsegpt"])
def test_prune_model_reaches_the_sparsity_and_still_predicts(method):
    torch.manual_seed(0)
    model = build_model("llama", "llama-tiny", vocab_size=64, d_ff=128).eval()
    ids = torch.randint(0, 64, (4, 16))
    with torch.no_grad():
        dense = model(ids)[0]
    result = prune_model(model, method, Sparsity.parse("0.5"), [ids[:2], ids[2:]])
    assert result["sparsity"] == pytest.approx(0.5, abs=0.01) == measured_sparsity(model)
    with torch.no_grad():
        pruned = model(ids)[0]
    assert torch.isfinite(pruned).all() and not torch.equal(pruned, dense)
    sizes = sparse_bytes(model)
    assert sizes["csr"] > sizes["packed_2_4"] and sizes["dense"] > sizes["packed_2_4"]


def test_bad_sparsity_and_method():
    with pytest.raises(UserError, match="N:M"):
        Sparsity.parse("4:2")
    with pytest.raises(UserError, match=r"\[0, 1\)"):
        Sparsity.parse("1.5")
    with pytest.raises(UserError, match="unknown pruning method"):
        prune_model(build_model("llama", "llama-tiny", vocab_size=32), "random", Sparsity(0.5))
    with pytest.raises(UserError, match="calibration"):
        prune_model(build_model("llama", "llama-tiny", vocab_size=32), "wanda", Sparsity(0.5))
