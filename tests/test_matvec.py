"""The streaming matrix-vector kernel (inference/matvec.py): the same products as `F.linear` for any
row count, width and bias, torch's kernels for prompts and gradients, and a model decoding through it
generates what the plain model generates."""

from __future__ import annotations

import copy
import shutil

import pytest
import torch
import torch.nn.functional as F

from lm2llm.inference import matvec
from lm2llm.inference.engine import generate_ids
from lm2llm.inference.layout import for_cpu_inference
from lm2llm.inference.sampling import SamplingConfig
from lm2llm.models import build_model

pytestmark = pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None,
                                reason="no C++ compiler: the kernel cannot be built, torch's kernels serve")


def test_the_kernel_builds_where_a_compiler_exists():
    assert matvec.available()


@pytest.mark.parametrize("rows", [1, 2, 3, 4, 7, 11])
@pytest.mark.parametrize("shape", [(96, 64), (37, 50), (130, 17)])  # widths with and without a 16-lane tail
def test_products_equal_f_linear(rows, shape):
    generator = torch.Generator().manual_seed(rows)
    weight = torch.randn(*shape, generator=generator)
    x = torch.randn(rows, shape[1], generator=generator)
    torch.testing.assert_close(matvec.kernel().matvec(weight, x), F.linear(x, weight), atol=1e-5, rtol=1e-5)


def test_streaming_layer_matches_linear_and_falls_back_for_prompts_and_gradients():
    plain = torch.nn.Linear(48, 80)
    layer = matvec.StreamingLinear(plain.weight, plain.bias)
    for shape in [(1, 1, 48), (4, 1, 48), (2, 30, 48)]:  # decoding rows; a prompt goes to F.linear
        x = torch.randn(shape)
        with torch.no_grad():
            torch.testing.assert_close(layer(x), plain(x), atol=1e-5, rtol=1e-5)
    assert layer.streams(4, torch.randn(4, 48)) is False  # the weight wants gradients here
    x = torch.randn(1, 48, requires_grad=True)
    layer(x).sum().backward()  # gradients flow through torch's kernel
    assert x.grad is not None and layer.weight.grad is not None
    with torch.no_grad():
        assert layer.streams(4, torch.randn(4, 48)) and not layer.streams(matvec.MAX_ROWS + 1, torch.randn(1, 48))


@pytest.mark.parametrize("family, preset", [("gpt", "gpt-tiny"), ("llama", "llama-tiny")])
def test_a_model_decoding_through_the_kernel_generates_the_same_text(family, preset):
    plain = build_model(family, preset, vocab_size=61).eval()
    streamed = for_cpu_inference(copy.deepcopy(plain))
    assert any(isinstance(m, matvec.StreamingLinear) for m in streamed.modules())
    if family == "gpt":  # the output layer still shares the token embedding: nothing stored twice
        assert streamed.lm_head.weight is streamed.tok_emb.weight
    prompts = [[1, 2, 3, 4], [5, 6, 7, 8, 9, 10], [11]]
    greedy = SamplingConfig(temperature=0, max_new_tokens=12)
    assert [c.token_ids for c in generate_ids(streamed, prompts, greedy)] == [
        c.token_ids for c in generate_ids(plain, prompts, greedy)]
