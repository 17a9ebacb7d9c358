"""`inference.pages`: a model's weights moved into one buffer of 2 MB pages compute exactly what they did."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

from lm2llm.compress.weight_only import quantize_linears
from lm2llm.inference import pages
from lm2llm.inference.engine import generate_ids
from lm2llm.inference.layout import fuse_projections
from lm2llm.inference.pages import (
    HUGE_PAGE,
    bytes_in_huge_pages,
    huge_page_buffer,
    huge_pages_available,
    in_huge_pages,
)
from lm2llm.inference.sampling import SamplingConfig
from lm2llm.models import build_model

needs_huge_pages = pytest.mark.skipif(not huge_pages_available(), reason="no transparent huge pages on this system")


def storages(model: torch.nn.Module) -> set[int]:
    return {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers())}


@needs_huge_pages
def test_the_buffer_starts_on_a_huge_page_and_outlives_its_views():
    buffer = huge_page_buffer(3 * HUGE_PAGE + 5)
    assert buffer.numel() == 3 * HUGE_PAGE + 5 and buffer.data_ptr() % HUGE_PAGE == 0 and not buffer.any()
    view = buffer[HUGE_PAGE:].view(torch.uint8)
    del buffer
    view.fill_(7)  # the mapping lives as long as a view of it
    assert int(view.sum()) == 7 * view.numel()


@needs_huge_pages
@pytest.mark.parametrize("family, preset", [("gpt", "gpt-tiny"), ("llama", "llama-tiny")])
def test_a_model_in_huge_pages_generates_the_same_and_stays_tied(family, preset):
    torch.manual_seed(0)
    plain = build_model(family, preset, vocab_size=61).eval()
    moved = in_huge_pages(copy.deepcopy(plain))
    assert len(storages(moved)) == 1 and storages(moved) != storages(plain)
    tied = plain.lm_head.weight is plain.tok_emb.weight
    assert (moved.lm_head.weight is moved.tok_emb.weight) == tied  # a tied output layer: still one parameter
    assert all(p.requires_grad for p in moved.parameters())
    for (name, a), (_, b) in zip(plain.state_dict().items(), moved.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    prompts, greedy = [[1, 2, 3, 4], [5, 6, 7]], SamplingConfig(temperature=0, max_new_tokens=10)
    assert [c.token_ids for c in generate_ids(moved, prompts, greedy)] == [
        c.token_ids for c in generate_ids(plain, prompts, greedy)]


@needs_huge_pages
@pytest.mark.parametrize("kind", ["int8", "int4", "w8a8", "w4a8"])
def test_quantized_layers_read_their_moved_buffers(kind):
    """`quantize_linears` ends in `in_huge_pages`: the kernel's arguments must be the moved buffers, not the
    originals (which would still give the right numbers, from the wrong memory)."""
    torch.manual_seed(0)
    model = quantize_linears(fuse_projections(build_model("llama", "llama-tiny", vocab_size=61, d_ff=192).eval()), kind)
    (storage,) = storages(model)
    layers = [m for m in model.modules() if hasattr(m, "stream_arguments")]
    assert layers and all(t.untyped_storage().data_ptr() == storage
                          for layer in layers for t in layer.arguments if isinstance(t, torch.Tensor))


def test_without_huge_pages_the_model_is_left_as_it_is(monkeypatch, tmp_path):
    setting = tmp_path / "enabled"
    setting.write_text("always madvise [never]\n")
    monkeypatch.setattr(pages, "SETTING", setting)
    assert not huge_pages_available() and huge_page_buffer(HUGE_PAGE) is None
    model = build_model("llama", "llama-tiny", vocab_size=61).eval()
    before = storages(model)
    assert in_huge_pages(model) is model and storages(model) == before


@needs_huge_pages
def test_the_bytes_in_huge_pages_are_read_from_the_mappings_that_hold_the_model():
    model = in_huge_pages(build_model("llama", "llama-tiny", vocab_size=8192).eval())  # 4.5 MB of weights
    granted = bytes_in_huge_pages(model)
    assert granted is not None and granted % HUGE_PAGE == 0
    assert 0 <= granted <= sum(t.numel() * t.element_size() for t in model.parameters()) + HUGE_PAGE


@needs_huge_pages
def test_tensors_that_cannot_be_viewed_from_bytes_stay_where_they_are():
    """A quantized tensor (qint8) has no plain-bytes view: it keeps its own memory; the rest moves."""
    model = build_model("llama", "llama-tiny", vocab_size=61).eval()
    with warnings.catch_warnings():  # torch deprecates its quantized tensors, which a loaded model may still hold
        warnings.simplefilter("ignore")
        quantized = torch.quantize_per_tensor(torch.randn(8), 0.1, 0, torch.qint8)
    model.register_buffer("kept", quantized)
    in_huge_pages(model)
    assert model.kept is quantized and len(storages(model)) == 2
