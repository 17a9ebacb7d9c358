"""int8 / int4 weight-only layers: PyTorch's packed kernels against the float round trip they stand for; w8a8
against the integer arithmetic it stands for."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lm2llm.compress.weight_only import (
    Int4Linear,
    Int8Linear,
    W4A8Linear,
    W8A8Linear,
    dequantize_int4,
    int4_groupwise,
    int8_per_channel,
    quantize_activations,
    quantize_linears,
    round_trip,
    round_trip_linears,
)
from lm2llm.errors import UserError
from lm2llm.inference.layout import for_cpu_inference, fuse_projections
from lm2llm.inference.matvec import MAX_ROWS, StreamingLinear, pack_w4a8, pack_w8a8, unpack_w4a8, unpack_w8a8
from lm2llm.models import build_model


def test_int8_is_symmetric_per_row_within_half_a_step():
    weight = torch.randn(48, 64)
    q, scales = int8_per_channel(weight)
    assert q.dtype == torch.int8 and int(q.abs().max()) == 127
    error = (round_trip(weight, "int8") - weight).abs()
    assert bool((error <= scales[:, None] / 2 * 1.01 + 1e-7).all())


def test_int4_groups_span_min_to_max():
    weight = torch.randn(16, 128)
    q, scales, zeros = int4_groupwise(weight, 32)
    assert q.shape == (16, 128) and scales.shape == zeros.shape == (16, 4) and int(q.max()) <= 15
    error = (round_trip(weight, "int4", 32) - weight).abs().reshape(16, 4, 32)
    assert bool((error <= scales[..., None] * 0.51 + 1e-3).all())


@pytest.mark.parametrize("layer", [Int8Linear, lambda linear: Int4Linear(linear, 32)])
def test_kernel_equals_dequantized_matmul(layer):
    torch.manual_seed(0)
    linear = nn.Linear(64, 90)  # not a multiple of 16 rows: int4 pads the packed tiles
    quantized = layer(linear)
    kind = "int8" if isinstance(quantized, Int8Linear) else "int4"
    x = torch.randn(3, 5, 64)
    reference = F.linear(x.bfloat16().float(), round_trip(linear.weight, kind, 32), linear.bias)
    out = quantized(x)
    assert out.shape == (3, 5, 90) and out.dtype == torch.float32
    torch.testing.assert_close(out, reference, rtol=1e-2, atol=2e-2)  # the kernels round their output to bf16


def kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> float:
    """Mean KL(p ‖ q) over positions, as llama.cpp's perplexity --kl-divergence reports it."""
    return float(F.kl_div(q_logits.log_softmax(-1), p_logits.log_softmax(-1), log_target=True,
                          reduction="none").sum(-1).mean())


@pytest.mark.parametrize("family", ["gpt", "llama"])
@pytest.mark.parametrize("kind", ["int8", "int4"])
def test_quantized_model_logits_match_round_trip_reference(family, kind):
    """The kernels add far less error than the quantization itself: KL(reference ‖ kernels) is under a
    fifth of KL(full precision ‖ reference), top-1 tokens agree, no logit is off by 15 % of their spread."""
    torch.manual_seed(0)
    model = build_model(family, f"{family}-tiny", vocab_size=96, d_ff=192).eval()
    for p in model.parameters():  # trained-like scale: logits spread by a few units, not ~0
        p.data.mul_(4)
    ids = torch.randint(0, 96, (2, 12))
    with torch.no_grad():
        full = model(ids)[0]
        reference = round_trip_linears(copy.deepcopy(model), kind)(ids)[0]
        quantized = quantize_linears(copy.deepcopy(model), kind)
        logits = quantized(ids)[0]
    assert all(not isinstance(m, nn.Linear) for m in quantized.modules())
    assert kl(reference, logits) < 0.2 * kl(full, reference)
    assert float((logits.argmax(-1) == reference.argmax(-1)).float().mean()) >= 0.9
    assert float((logits - reference).abs().max()) < 0.15 * float(reference.std())


@pytest.mark.parametrize("kind", ["int8", "int4", "w8a8", "w4a8"])
def test_stacked_projections_quantize_to_the_same_logits(kind):
    """q/k/v and gate/up stacked before quantizing (4 kernel calls per layer instead of 7): every output row keeps
    its own scales, so the logits are those of the separately quantized layers; `.to()` keeps bf16 scales."""
    torch.manual_seed(0)
    model = build_model("llama", "llama-tiny", vocab_size=64, d_ff=192).eval()
    ids = torch.randint(0, 64, (2, 9))
    separate = quantize_linears(copy.deepcopy(model), kind)
    stacked = quantize_linears(fuse_projections(copy.deepcopy(model)), kind).to(torch.float32)
    assert type(stacked.blocks[0].attn.qkv_proj).__name__ == type(stacked.blocks[0].mlp.gate_up).__name__
    assert all(b.dtype == torch.bfloat16 for b in stacked.buffers() if b.is_floating_point())
    with torch.no_grad():
        torch.testing.assert_close(stacked(ids)[0], separate(ids)[0], rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", ["int8", "int4", "w8a8", "w4a8"])
def test_a_model_laid_out_for_cpu_decoding_is_quantized_too(kind):
    """`for_cpu_inference` turns float linears into `StreamingLinear`s; quantizing such a model afterwards must
    still quantize every layer (it used to leave them float without a word), to the same logits."""
    torch.manual_seed(0)
    model = fuse_projections(build_model("llama", "llama-tiny", vocab_size=64, d_ff=192).eval())
    ids = torch.randint(0, 64, (2, 9))
    first = quantize_linears(copy.deepcopy(model), kind)
    after = quantize_linears(for_cpu_inference(copy.deepcopy(model)), kind)
    assert not any(isinstance(m, (nn.Linear, StreamingLinear)) for m in after.modules())
    with torch.no_grad():
        assert torch.equal(after(ids)[0], first(ids)[0])


def test_w8a8_inputs_are_quantized_as_llama_cpp_quantizes_them():
    """Per block of 32: d = max|x|/127 kept as fp16, q = x·(127/max|x|) rounded half to even; a block of zeros
    is all zeros with d = 0."""
    block = torch.zeros(64)
    block[:4] = torch.tensor([127.0, 63.5, -0.5, 1.5])
    q, d = quantize_activations(block)
    assert q[:4].tolist() == [127, 64, 0, 2] and d.tolist() == [1.0, 0.0] and not q[32:].any()
    x = torch.randn(3, 96) * 3
    q, d = quantize_activations(x)
    expected = (x.unflatten(-1, (3, 32)) * (127 / x.unflatten(-1, (3, 32)).abs().amax(-1, keepdim=True))).round()
    assert torch.equal(q, expected.flatten(-2).to(torch.int8))
    assert torch.equal(d, (x.unflatten(-1, (3, 32)).abs().amax(-1) / 127).half().float())


def assert_is_the_arithmetic(layer: nn.Module, x: torch.Tensor, exact: torch.Tensor) -> None:
    """The layer (its kernel) and its float fallback against `exact` (float64): fp32 within 1e-6 of the largest
    output, bf16 within one rounding, in x's dtype."""
    with torch.inference_mode():
        got, fallback = layer(x), layer.fallback(x)
    tolerance = 1e-6 if x.dtype == torch.float32 else 2 ** -7
    for result in (got, fallback):
        assert result.dtype == x.dtype
        assert float((result.double() - exact).abs().max()) <= tolerance * float(exact.abs().max())


def w8a8_exact(layer: W8A8Linear, x: torch.Tensor) -> torch.Tensor:
    """W8A8's arithmetic done exactly: each block's integer dot product of q with the quantized inputs, times the
    block's d and the row's scale, summed in float64."""
    q = unpack_w8a8(layer.packed)
    assert torch.equal(pack_w8a8(q), layer.packed)
    qx, d = quantize_activations(x)
    blocks = (qx.long().unflatten(-1, (-1, 32))[:, None] * q.long().unflatten(-1, (-1, 32))[None]).sum(-1)
    return (blocks.double() * d.double()[:, None]).sum(-1) * layer.scales.double()[None]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("rows", [1, 3, 8, 11])
@pytest.mark.parametrize("in_features", [96, 192, 544, 576, 1536])
def test_w8a8_kernel_is_the_integer_arithmetic(dtype, rows, in_features):
    """The kernel's W8A8 product against its arithmetic done exactly: fp32 within summation order, bf16 within one
    rounding. 96 inputs: a step of 64 and a masked last half step; 192: three steps; 544 and 576: a superblock of
    16 blocks, then a masked half step or a whole one; 1536: three superblocks. One input row of 192, 576 or 1536
    is met with its inputs held in registers (`stream_held`), more rows as loaded."""
    torch.manual_seed(0)
    linear = nn.Linear(in_features, 40, bias=False)
    layer = W8A8Linear(linear)
    assert torch.equal(unpack_w8a8(layer.packed), int8_per_channel(linear.weight)[0])
    x = torch.randn(rows, in_features).to(dtype)
    assert_is_the_arithmetic(layer, x, w8a8_exact(layer, x))


def test_the_kernel_quantizes_inputs_as_quantize_activations_does_ties_included():
    """Inputs whose x·127/max|x| fall exactly halfway (63.5, −0.5, 2.5 in a block whose max is 127) must round to
    even in the kernel as in `quantize_activations`: one value off by one would move an output by about 1/127
    of itself, far beyond the tolerance. One-hot weight rows read each quantized input back."""
    block = torch.tensor([127.0, 63.5, -0.5, 2.5, -3.5, 0.25] + [1.0] * 26)
    x = torch.cat([block] * 18 + [-block] * 2)[None]  # 640 inputs: a superblock, then two blocks
    linear = nn.Linear(640, 640, bias=False)
    with torch.no_grad():
        linear.weight.copy_(torch.eye(640))
    layer = W8A8Linear(linear)
    assert_is_the_arithmetic(layer, x, w8a8_exact(layer, x))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("rows", [1, 3, 8, 11])
@pytest.mark.parametrize("in_features", [96, 192, 544, 576, 1536])
def test_w4a8_kernel_is_the_integer_arithmetic(dtype, rows, in_features):
    """W4A8 against its arithmetic done exactly: per block, d · (s · (q · qx) + (zero − 8·s) · Σqx), the integer
    dot products in int64 and the sums in float64. 96 inputs: a pair of blocks and a single one; 192: three pairs;
    544: a superblock of 16 blocks and a single one; 576: a superblock and a pair; 1536: three superblocks. One
    input row of 192, 576 or 1536 is met with its inputs held in registers (`stream_held`), more rows as loaded."""
    torch.manual_seed(0)
    linear = nn.Linear(in_features, 40, bias=False)
    layer = W4A8Linear(linear)
    q, scales, zeros = unpack_w4a8(layer.packed, in_features)
    assert torch.equal(pack_w4a8(q, scales, zeros), layer.packed)
    assert torch.equal(scales, layer.scales) and torch.equal(zeros, layer.zeros)
    q, scales, zeros = q.long(), scales.double(), zeros.double()
    x = torch.randn(rows, in_features).to(dtype)
    qx, d = quantize_activations(x)
    blocks = in_features // 32
    products = (qx.long().unflatten(-1, (blocks, 32))[:, None] * q.unflatten(-1, (blocks, 32))[None]).sum(-1).double()
    input_sums = qx.long().unflatten(-1, (blocks, 32)).sum(-1).double()[:, None]
    exact = (d.double()[:, None] * (scales * products + (zeros - 8 * scales) * input_sums)).sum(-1)
    assert_is_the_arithmetic(layer, x, exact)
    weight = dequantize_int4(q, layer.scales.float(), layer.zeros.float())  # the weights are int4's, groups of 32
    assert torch.equal(weight, round_trip(linear.weight, "int4", 32))


def streamed(dtype: torch.dtype):
    """A float layer as decoding streams it, its weight in `dtype`."""
    return lambda linear: StreamingLinear(linear.weight.detach().to(dtype), None)


@pytest.mark.parametrize("make, dtype", [(streamed(torch.float32), torch.float32), (streamed(torch.bfloat16), torch.bfloat16),
                                         (Int8Linear, torch.float32), (Int4Linear, torch.float32),
                                         (W8A8Linear, torch.float32), (W4A8Linear, torch.float32)])
@pytest.mark.parametrize("in_features", [192, 576, 1536])
def test_a_rows_product_has_the_same_bits_whatever_rows_share_the_call(make, dtype, in_features):
    """A decoding row's product does not depend on the rows beside it (the other sequences of a batch): each weight
    row meets each input row in the same order of additions for every count of rows, and one input row of these
    shapes, met with its inputs held in registers (`stream_held`, W8A8 and W4A8), in the same pieces as a batch's
    rows. The same bits, not only close, for 1, 2, 3, 4 and 7 of a call's 8 rows (the most that decoding streams)."""
    torch.manual_seed(0)
    layer = make(nn.Linear(in_features, 40, bias=False))
    x = torch.randn(MAX_ROWS, in_features).to(dtype)
    with torch.no_grad():
        together = layer(x)
        for count in (1, 2, 3, 4, 7):
            for start in range(0, MAX_ROWS - count + 1, count):
                assert torch.equal(layer(x[start:start + count]), together[start:start + count]), (count, start)


@pytest.mark.parametrize("kind, weight_only", [("w8a8", "int8"), ("w4a8", "int4")])
def test_integer_input_models_stay_near_the_full_precision_one(kind, weight_only):
    """Rounding the inputs too costs more than the weights alone, but not much more: KL from the full-precision
    logits under 4x the weight-only model's (in three seeds w8a8's was 1.5-2x int8's, w4a8's within 2 % of int4's)
    and top-1 agreement at most 0.1 below it; the decoding step (one kernel call through every block) gives the
    logits of the whole-sequence pass."""
    torch.manual_seed(0)
    model = build_model("llama", "llama-tiny", vocab_size=96, d_ff=192).eval()
    for p in model.parameters():  # trained-like scale: logits spread by a few units, not ~0
        p.data.mul_(4)
    ids = torch.randint(0, 96, (2, 12))
    with torch.no_grad():
        full = model(ids)[0]
        weights_only = quantize_linears(fuse_projections(copy.deepcopy(model)), weight_only)(ids)[0]
        quantized = quantize_linears(fuse_projections(copy.deepcopy(model)), kind)
        logits = quantized(ids)[0]
        state = quantized.new_state(2, 16)
        quantized(ids[:, :11], state=state)
        step = quantized(ids[:, 11:], state=state)[0]
    assert kl(full, logits) < 4 * kl(full, weights_only)
    agreement = float((logits.argmax(-1) == full.argmax(-1)).float().mean())
    assert agreement >= float((weights_only.argmax(-1) == full.argmax(-1)).float().mean()) - 0.1
    torch.testing.assert_close(step, logits[:, 11:], rtol=1e-4, atol=1e-4 * float(full.abs().max()))


def test_quantized_model_decodes_with_the_kv_cache():
    torch.manual_seed(0)
    model = quantize_linears(build_model("llama", "llama-tiny", vocab_size=64).eval(), "int8")
    ids = torch.randint(0, 64, (1, 10))
    with torch.no_grad():
        whole = model(ids)[0][:, -1]
        state = model.new_state(1, 16)
        model(ids[:, :9], state=state)
        step = model(ids[:, 9:], state=state)[0][:, -1]
    torch.testing.assert_close(step, whole, rtol=1e-2, atol=1e-2)


def test_bad_choices_are_user_errors():
    with pytest.raises(UserError, match="unknown quantization"):
        quantize_linears(nn.Sequential(nn.Linear(32, 32)), "int3")
    with pytest.raises(UserError, match="do not divide"):
        quantize_linears(nn.Sequential(nn.Linear(48, 32)), "int4", group_size=32)
    with pytest.raises(UserError, match="CPU kernel takes"):
        quantize_linears(nn.Sequential(nn.Linear(48, 32)), "int4", group_size=16)
    with pytest.raises(UserError, match="blocks of 32"):
        quantize_linears(nn.Sequential(nn.Linear(48, 32)), "w8a8")


@pytest.fixture
def korean_run(tmp_path):
    from lm2llm.models import save_model
    from lm2llm.tokenizer import CharTokenizer

    tokenizer = CharTokenizer.train(["안녕하세요 반갑습니다. 양자화된 모델도 한국어를 씁니다."])
    torch.manual_seed(0)
    save_model(build_model("gpt", "gpt-tiny", vocab_size=tokenizer.vocab_size), tmp_path / "run")
    tokenizer.save(tmp_path / "run")
    return tmp_path / "run"


@pytest.mark.parametrize("kind", ["int8", "int4", "w8a8", "w4a8"])
def test_generate_cli_with_quantize(cli, korean_run, kind):
    result = cli("generate", korean_run, "--prompt", "안녕", "-n", "6", "--temperature", "0", "--quantize", kind, "--json")
    assert result.code == 0, result.err
    assert len(json.loads(result.out)["completions"][0]["token_ids"]) == 6


def test_generate_cli_rejects_an_unknown_quantization(cli, korean_run):
    result = cli("generate", korean_run, "--prompt", "안녕", "--quantize", "int3")
    assert result.code == 2 and "unknown quantization" in result.err


def test_served_model_quantizes_and_refuses_a_float_prefill_copy(korean_run):
    from lm2llm.serve.app import ServedModel

    served = ServedModel.from_run(korean_run, quantize="int4")
    assert type(served.scheduler.engine.model.blocks[0].attn.qkv_proj).__name__ == "Int4Linear"
    with pytest.raises(UserError, match="prefill-dtype"):
        ServedModel.from_run(korean_run, quantize="int8", prefill_dtype="bfloat16")


def test_int4_inputs_wanting_gradients_take_the_expanded_weight_with_the_same_products():
    """An input that needs gradients goes around the streaming kernel (it has no backward) to the expanded
    weight: the same products within bf16 rounding, and the gradient reaches the input."""
    torch.manual_seed(0)
    quantized = Int4Linear(nn.Linear(64, 48), 32)
    x = torch.randn(2, 64, requires_grad=True)
    with torch.no_grad():
        streamed = quantized(x)
    through_torch = quantized(x)
    through_torch.sum().backward()
    assert x.grad is not None
    torch.testing.assert_close(through_torch.detach(), streamed, rtol=1e-2, atol=2e-2)


@pytest.mark.parametrize("layer, instead", [(W8A8Linear, "int8"), (W4A8Linear, "int4")])
def test_integer_inputs_want_whole_blocks_of_32_and_say_what_to_use_instead(layer, instead):
    with pytest.raises(UserError, match="blocks of 32; a layer has 40") as caught:
        layer(nn.Linear(40, 8))
    assert caught.value.where == "--quantize" and instead in caught.value.hint
