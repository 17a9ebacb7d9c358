"""The streaming matrix-vector kernel (inference/matvec.py): for every weight format the products of its
dequantized reference (fp32 exactly up to summation order, the others within their stated rounding) for
any row count, width and bias, torch's kernels for prompts and gradients, and a model decoding through it
generates what the plain model generates."""

from __future__ import annotations

import copy
import platform
import shutil
import subprocess

import pytest
import torch
import torch.nn.functional as F

from lm2llm.compress.weight_only import (
    dequantize_int4,
    dequantize_int8,
    int4_groupwise,
    int8_per_channel,
    quantize_linears,
)
from lm2llm.inference import matvec
from lm2llm.inference.engine import generate_ids
from lm2llm.inference.layout import DecodeBlocks, for_cpu_inference, fuse_decode_step, fuse_projections
from lm2llm.inference.sampling import INVALID, SamplingConfig
from lm2llm.models import build_model
from lm2llm.models.transformer import RMSNorm

pytestmark = pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None,
                                reason="no C++ compiler: the kernel cannot be built, torch's kernels serve")


def test_the_kernel_builds_where_a_compiler_exists():
    assert matvec.available()


def test_a_build_marker_left_by_a_killed_process_does_not_hold_the_next_load(tmp_path, monkeypatch):
    """torch waits while its build marker exists; one left by a process killed mid-build made every later load
    wait forever (found when a killed test run left one). Under the OS lock no live process is building, so the
    marker goes and the load proceeds."""
    import torch.utils.cpp_extension

    (tmp_path / matvec.TORCH_BUILD_MARKER).touch()
    loads = []
    monkeypatch.setattr(torch.utils.cpp_extension, "load", lambda *args, **kwargs: loads.append(kwargs) or "built")
    assert matvec.load_built(tmp_path) == "built"
    assert not (tmp_path / matvec.TORCH_BUILD_MARKER).exists() and loads[0]["build_directory"] == str(tmp_path)


def test_the_kernel_splits_its_work_between_torchs_threads():
    """Built without OpenMP, `at::parallel_for` runs on one core: it did so unnoticed until December 2026, at
    about half speed."""
    assert matvec.kernel().parallel


# block sizes of the kernel's passes (8 rows each; fp32 meets 7 and 8 rows three weight rows at a time), and 8 + 3
ROWS = [1, 2, 5, 7, 8, 11]
SHAPES = [(96, 64), (37, 50), (130, 17), (20, 160)]  # widths with and without 16- and 32-lane tails


def inputs(rows: int, shape: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(rows * 1000 + shape[1])
    return torch.randn(*shape, generator=generator), torch.randn(rows, shape[1], generator=generator)


@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("shape", SHAPES)
def test_fp32_and_int8_products_equal_their_float_reference(rows, shape):
    """fp32 weights, and int8 ones widened to fp32 with the row scale applied to the sum, differ from F.linear
    on the (dequantized) weight only by fp32 summation order."""
    weight, x = inputs(rows, shape)
    torch.testing.assert_close(matvec.kernel().matvec(x, weight), F.linear(x, weight), atol=1e-5, rtol=1e-5)
    q, scales = int8_per_channel(weight)
    got = matvec.kernel().matvec(x, q, scales.bfloat16())
    torch.testing.assert_close(got, F.linear(x, dequantize_int8(q, scales)), atol=1e-5, rtol=1e-5)
    got_bf16 = matvec.kernel().matvec(x.bfloat16(), q, scales.bfloat16())  # bf16 in, bf16 out
    assert got_bf16.dtype == torch.bfloat16
    within_bf16_rounding(got_bf16, F.linear(x.bfloat16().float(), dequantize_int8(q, scales)))


def within_bf16_rounding(got: torch.Tensor, exact: torch.Tensor) -> None:
    """Each output within one bf16 rounding (2⁻⁸ relative) of the exact fp32 product, plus fp32 summation slack."""
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), exact, rtol=2 ** -8, atol=1e-4)


@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("shape", SHAPES)
def test_bf16_products_equal_fp32_products_of_the_bf16_numbers(rows, shape):
    """bf16 weights and inputs: the products of the same bf16 numbers summed in fp32, rounded once to bf16."""
    weight, x = (t.bfloat16() for t in inputs(rows, shape))
    within_bf16_rounding(matvec.kernel().matvec(x, weight), F.linear(x.float(), weight.float()))


@pytest.mark.skipif(shutil.which("objdump") is None or platform.machine() != "x86_64",
                    reason="needs objdump and an x86-64 CPU to read the built kernel's instructions")
def test_the_built_kernel_asks_memory_ahead():
    """The kernel's software prefetches are in the machine code: GCC 12 had dropped every `_mm_prefetch` of the
    asking into L2, and the kernel built from that form never asked, unseen for a day (no result changes)."""
    matvec.kernel()
    code = subprocess.run(["objdump", "-d", str(matvec.build_directory() / "lm2llm_matvec.so")],
                          capture_output=True, text=True, check=True).stdout
    assert "prefetcht0" in code and "prefetcht1" in code


@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_choices_made_per_cpu_give_the_same_bits(rows, dtype):
    """Asking ahead and meeting 7 or 8 input rows one fp32 weight row at a time (made on Intel CPUs) change the speed,
    not a bit of the product: both settings, on whatever CPU the test runs (bf16 through `vdpbf16ps`, the rows
    that ask, also where AMX tiles would take it)."""
    kernel = matvec.kernel()
    weight, x = (t.to(dtype) for t in inputs(rows, (70, 576)))
    was, tiles = kernel.intel_choices(), kernel.amx_tiles()
    products = []
    try:
        if tiles:
            kernel.amx_tiles(False)
        for setting in (True, False):
            kernel.intel_choices(setting)
            products.append(kernel.matvec(x, weight))
    finally:
        kernel.intel_choices(was)
        if tiles:
            kernel.amx_tiles(True)
    assert torch.equal(products[0], products[1])


@pytest.mark.parametrize("rows", ROWS)
def test_bf16_in_amx_tiles_is_as_exact_as_in_dot_products_and_the_same_for_any_threads(rows):
    """On a CPU with AMX, bf16 weights meet their inputs in tile products of 16 weight rows (`Tiles`): other
    additions than `vdpbf16ps`'s, so other bits, but as near the exact product. A row's bits do not depend on how
    the rows are split between threads, although a share's last tile ends at its last row and so reads some rows
    of the share before it (70 rows: on one thread tiles at 0, 16, 32, 48 and 54; on two, rows 0-34 and 35-69,
    tiles at 0, 16, 32 and at 35, 51, 54)."""
    kernel = matvec.kernel()
    if not kernel.amx_tiles():
        pytest.skip("this CPU has no AMX tiles (or Linux did not grant them)")
    weight, x = (t.bfloat16() for t in inputs(rows, (70, 576)))
    threads = torch.get_num_threads()
    try:
        tiled = []
        for count in (1, 2, 3):
            torch.set_num_threads(count)
            tiled.append(kernel.matvec(x, weight))
        kernel.amx_tiles(False)
        dot_products = kernel.matvec(x, weight)
    finally:
        kernel.amx_tiles(True)
        torch.set_num_threads(threads)
    assert all(torch.equal(t, tiled[0]) for t in tiled[1:])
    exact = F.linear(x.float(), weight.float())
    within_bf16_rounding(tiled[0], exact)
    within_bf16_rounding(dot_products, exact)


@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("shape, group", [((96, 64), 32), ((37, 96), 32), ((20, 160), 32), ((33, 192), 64),
                                          ((8, 256), 128), ((24, 576), 32), ((16, 1024), 64), ((9, 1600), 32)])
def test_int4_products_equal_the_dequantized_weight_times_bf16_inputs(rows, shape, group):
    """int4: the dequantized weight times the inputs rounded to bf16 (what the kernel multiplies), within fp32
    summation slack in fp32 and one bf16 rounding in bf16; widths of 16 groups and more exercise the superblocks
    (576 = one superblock of 32-input groups and a rest of 2 groups, as SmolLM2's layers)."""
    weight, x = inputs(rows, shape)
    q, scales, zeros = int4_groupwise(weight, group)
    packed = matvec.pack_int4(q, group)
    assert packed.shape == (shape[0], shape[1] // 2) and torch.equal(matvec.unpack_int4(packed, shape[1], group), q)
    exact = F.linear(x.bfloat16().float(), dequantize_int4(q, scales, zeros))
    got = matvec.kernel().matvec(x, packed, scales.bfloat16(), zeros.bfloat16(), group)
    torch.testing.assert_close(got, exact, atol=1e-4, rtol=1e-5)
    within_bf16_rounding(matvec.kernel().matvec(x.bfloat16(), packed, scales.bfloat16(), zeros.bfloat16(), group),
                         exact)


def test_the_kernel_refuses_what_it_cannot_read():
    x, weight = torch.randn(1, 64), torch.randn(8, 64)
    with pytest.raises(RuntimeError, match="inputs"):
        matvec.kernel().matvec(x, torch.randn(8, 32))
    with pytest.raises(RuntimeError, match="scales"):
        matvec.kernel().matvec(x, weight.to(torch.int8), torch.ones(7, dtype=torch.bfloat16))
    with pytest.raises(RuntimeError, match="groups"):
        matvec.kernel().matvec(x, torch.zeros(8, 32, dtype=torch.uint8), torch.ones(8, 1), torch.ones(8, 1), 48)
    with pytest.raises(RuntimeError, match="float32 or bfloat16"):
        matvec.kernel().matvec(x.half(), weight)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_bias_is_added_before_the_outputs_one_rounding(dtype):
    weight, x = (t.to(dtype) for t in inputs(3, (40, 64)))
    bias = torch.randn(40).to(dtype)
    exact = F.linear(x.float(), weight.float(), bias.float())
    got = matvec.kernel().matvec(x, weight, bias=bias)
    if dtype == torch.float32:
        torch.testing.assert_close(got, exact, atol=1e-5, rtol=1e-5)
    else:
        within_bf16_rounding(got, exact)
    with pytest.raises(RuntimeError, match="bias"):
        matvec.kernel().matvec(x, weight, bias=torch.zeros(39, dtype=dtype))


def torch_linear_calls(layer: torch.nn.Module, x: torch.Tensor) -> int:
    """How many times torch's own `linear` ran in `layer(x)` (the kernel is no torch operation)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        layer(x)
    return sum(event.key == "aten::linear" for event in profile.key_averages())


def test_streaming_layer_streams_decoding_rows_and_gives_prompts_and_gradients_to_torch():
    plain = torch.nn.Linear(48, 80)
    layer = matvec.StreamingLinear(plain.weight, plain.bias)
    for shape in [(1, 1, 48), (matvec.MAX_ROWS, 1, 48), (2, 30, 48)]:  # decoding rows; a prompt goes to torch
        x = torch.randn(shape)
        with torch.no_grad():
            torch.testing.assert_close(layer(x), plain(x), atol=1e-5, rtol=1e-5)
            assert torch_linear_calls(layer, x) == (x.numel() > matvec.MAX_ROWS * 48)
    assert torch_linear_calls(layer, torch.randn(1, 48)) == 1  # the weight wants gradients here
    x = torch.randn(1, 48, requires_grad=True)
    layer(x).sum().backward()  # gradients flow through torch's kernel
    assert x.grad is not None and layer.weight.grad is not None
    with torch.no_grad(), pytest.raises(RuntimeError, match="dtype"):  # torch's own error for mixed dtypes
        layer(torch.randn(1, 48).bfloat16())


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


def test_a_bf16_model_streams_its_decoding_and_keeps_its_logits():
    """bf16 linears stream too (`stream_linears`); a decoding step's logits stay within bf16 rounding of torch's
    bf16 `F.linear` (both sum bf16 products in fp32, in different orders) and prompts still go to torch."""
    torch.manual_seed(0)
    plain = build_model("llama", "llama-tiny", vocab_size=61).eval().to(torch.bfloat16)
    streamed = matvec.stream_linears(copy.deepcopy(plain))
    layers = [m for m in streamed.modules() if isinstance(m, matvec.StreamingLinear)]
    assert layers and all(layer.weight.dtype == torch.bfloat16 for layer in layers)
    ids = torch.randint(0, 61, (2, 9))
    with torch.no_grad():
        state_plain, state_streamed = plain.new_state(2, 16), streamed.new_state(2, 16)
        torch.testing.assert_close(streamed(ids[:, :8], state=state_streamed)[0],  # 16 rows: torch's kernels
                                   plain(ids[:, :8], state=state_plain)[0], rtol=0, atol=0)
        step_plain = plain(ids[:, 8:], state=state_plain)[0].float()
        step_streamed = streamed(ids[:, 8:], state=state_streamed)[0].float()  # 2 rows: the kernel
    torch.testing.assert_close(step_streamed, step_plain, rtol=0.02, atol=0.02 * float(step_plain.abs().max()))


@pytest.mark.parametrize("family, preset", [("gpt", "gpt-tiny"), ("llama", "llama-tiny")])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_one_call_decoding_attention_equals_the_written_out_step(family, preset, dtype):
    """`decode_attention` (RoPE, cache write, GQA attention for one token per row, left padding masked) against
    the written-out path on the same stacked projections: the cached keys and values of the first layer bit for
    bit (its inputs are the same), every step's logits within summation order (fp32) or bf16 rounding."""
    torch.manual_seed(0)
    plain = fuse_projections(build_model(family, preset, vocab_size=61).eval().to(dtype))
    fused = fuse_decode_step(copy.deepcopy(plain))
    assert all(block.attn.decode_step is not None for block in fused.blocks)
    for module in fused.modules():  # the norms' own kernel is tested below; here the layers' inputs stay torch's
        if isinstance(module, RMSNorm):
            module.inference_kernel = None
    ids, mask = torch.randint(0, 61, (3, 12)), torch.ones(3, 8, dtype=torch.long)
    mask[1, :3] = 0  # a left-padded row: its padding slots must stay unseen
    tolerance = {"atol": 1e-5, "rtol": 1e-5} if dtype == torch.float32 else {"atol": 0.02, "rtol": 0.02}
    with torch.inference_mode():
        states = plain.new_state(3, 16), fused.new_state(3, 16)
        for model, state in zip((plain, fused), states, strict=True):
            model(ids[:, :8], state=state, attention_mask=mask)
        for t in range(8, 12):
            expected, got = (model(ids[:, t:t + 1], state=state)[0] for model, state in zip((plain, fused), states,
                                                                                               strict=True))
            torch.testing.assert_close(got.float(), expected.float(), **tolerance)
    assert torch.equal(states[0].cache.keys[0], states[1].cache.keys[0])
    assert torch.equal(states[0].cache.values[0], states[1].cache.values[0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("weights", ["float", "int8", "int4", "w8a8", "w4a8"])
def test_the_whole_model_step_equals_the_modules_one_by_one(dtype, weights):
    """`DecodeBlocks` (one kernel call per token through every block) against the same model with the step
    removed, so that its modules run one by one: logits and caches bit for bit, with a left-padded row and with
    the int8 and int4 layers; a hook on a module of a block turns the step off, and assigning a module makes a
    new plan from the new weights."""
    torch.manual_seed(0)
    # d_ff 192: whole int4 groups of 32
    model = fuse_projections(build_model("llama", "llama-tiny", vocab_size=61, d_ff=192).eval().to(dtype))
    model = for_cpu_inference(model) if weights == "float" else quantize_linears(model, weights)
    assert type(model.blocks[0].mlp.down).__name__ == {"float": "StreamingLinear", "int8": "Int8Linear",
                                                        "int4": "Int4Linear", "w8a8": "W8A8Linear",
                                                        "w4a8": "W4A8Linear"}[weights]
    one_by_one = copy.deepcopy(model)
    assert isinstance(model.decode_blocks, DecodeBlocks)
    one_by_one.decode_blocks = None
    plans = []
    make_plan = model.decode_blocks.make_plan
    model.decode_blocks.make_plan = lambda *args: plans.append(1) or make_plan(*args)
    ids, mask = torch.randint(0, 61, (3, 13)), torch.ones(3, 8, dtype=torch.long)
    mask[1, :3] = 0
    calls = []
    with torch.inference_mode():
        states = model.new_state(3, 16), one_by_one.new_state(3, 16)
        for m, state in zip((model, one_by_one), states, strict=True):
            m(ids[:, :8], state=state, attention_mask=mask)
        for t in range(8, 13):
            if t == 10:  # a new layer (the same weights): the plan is made again from the model's modules
                for m in (model, one_by_one):
                    m.blocks[1].mlp.down = copy.deepcopy(m.blocks[1].mlp.down)
            if t == 12:  # a hooked module: the blocks' modules must run, so the hook sees its input
                model.blocks[0].mlp.down.register_forward_hook(lambda *_: calls.append(1))
            got, expected = (m(ids[:, t:t + 1], state=state)[0] for m, state in zip((model, one_by_one), states,
                                                                                     strict=True))
            assert torch.equal(got, expected)
    assert calls == [1] and len(plans) == 2  # steps 8 and 9 on the first plan, 10 and 11 on the second, 12 hooked
    assert model.decode_blocks.plan[2] is not None  # the plans were the kernel's, not a refusal
    assert model.decode_blocks.plan[3]  # with the embedding, final norm and output layer: logits from one call
    assert torch.equal(states[0].cache.keys, states[1].cache.keys)
    assert torch.equal(states[0].cache.values, states[1].cache.values)


def test_the_one_call_logits_leave_a_watched_end_to_the_modules_and_refuse_an_unknown_token():
    """The whole forward pass of a step in one call (`DecodeBlocks.logits`): a hook on the output layer or the
    final norm sees its input, since the modules then run; a token id outside the vocabulary is an error naming
    it, as the embedding's own lookup refuses it."""
    torch.manual_seed(0)
    model = for_cpu_inference(build_model("llama", "llama-tiny", vocab_size=61).eval())
    reference = copy.deepcopy(model)
    reference.decode_blocks = None
    seen = []
    with torch.inference_mode():
        states = model.new_state(2, 8), reference.new_state(2, 8)
        ids = torch.randint(0, 61, (2, 5))
        for m, state in zip((model, reference), states, strict=True):
            m(ids[:, :3], state=state)
        for t, module in ((3, model.lm_head), (4, model.norm_f)):
            hook = module.register_forward_hook(lambda *_: seen.append(1))
            got, expected = (m(ids[:, t:t + 1], state=state)[0] for m, state in zip((model, reference), states,
                                                                                     strict=True))
            hook.remove()
            assert torch.equal(got, expected)
        assert seen == [1, 1] and model.decode_blocks.plan[3]
        with pytest.raises(RuntimeError, match="token id 61 is outside the vocabulary of 61"):
            model(torch.tensor([[5], [61]]), state=states[0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_steps_swiglu_is_torchs_bit_for_bit(dtype):
    """The whole-model step's SwiGLU (torch's own vectorised exp, as `F.silu` uses it) against `F.silu(gate) * up`
    on values from 1e-3 to 100 and the edges: zeros, underflow, overflow, infinities (NaN where torch's is)."""
    if not hasattr(matvec.kernel(), "silu_mul"):
        pytest.skip("no AVX-512 here: the step calls torch's silu itself")
    torch.manual_seed(0)
    gate = torch.randn(3, 4096) * torch.logspace(-3, 2, 4096)
    gate[0, :16] = torch.tensor([0.0, -0.0, 1e-30, -1e-30, 88.0, -88.0, -104.0, 89.0, 3e38, -3e38, float("inf"),
                                 float("-inf"), 1e-40, -1e-40, 20.0, -20.0])
    gate, up = gate.to(dtype), torch.randn(3, 4096).to(dtype)
    torch.testing.assert_close(matvec.kernel().silu_mul(gate, up), F.silu(gate) * up, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("vocab", [7, 61, 49152])
def test_the_greedy_choice_is_torchs_first_maximum(dtype, vocab):
    """The kernel's greedy choice against `max(dim=-1)`: the first of tied maxima (within a lane, across lanes and in
    the tail), and INVALID for a row with a NaN or with nothing above -inf."""
    torch.manual_seed(0)
    logits = torch.randn(6, vocab).to(dtype)
    logits[1, vocab // 3] = logits[1, vocab - 1] = logits[1, vocab // 2] = 50.0  # ties: the first one wins
    logits[2] = 3.0  # every entry tied
    logits[3, vocab // 2] = float("nan")
    logits[4] = float("-inf")
    logits[5, :vocab - 1] = float("-inf")  # only the last entry counts
    best, expected = logits.max(dim=-1)
    expected[best.isnan() | (best == float("-inf"))] = INVALID
    assert matvec.kernel().greedy(logits, INVALID).tolist() == expected.tolist()
    assert matvec.kernel().greedy(logits[:, :-1], INVALID).tolist() == logits[:, :-1].max(dim=-1)[1].masked_fill(
        ~logits[:, :-1].max(dim=-1)[0].isfinite(), INVALID).tolist()  # a strided view is read as its values


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_one_call_rms_norm_equals_the_modules_own(dtype):
    """The kernel's RMSNorm: normalised in fp32 and scaled in x's dtype like `RMSNorm.forward`; only the mean's
    summation order differs (fp32 within 1e-6 relative; bf16 at most one rounding step apart)."""
    torch.manual_seed(0)
    norm = RMSNorm(576, 1e-5).to(dtype)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(576))
        x = (torch.randn(3, 2, 576) * 4).to(dtype)
        expected = norm(x)
        norm.inference_kernel = matvec.kernel().rms_norm
        got = norm(x)
    if dtype == torch.float32:
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
    else:
        torch.testing.assert_close(got.float(), expected.float(), rtol=2 ** -7, atol=1e-6)
    x.requires_grad_(True)
    assert norm(x).grad_fn is not None  # gradients wanted: torch's own path


def test_a_float16_model_laid_out_for_the_cpu_decodes_through_its_modules():
    """The kernels take fp32 and bf16 only: a float16 LLaMA laid out for CPU decoding (as `--dtype float16`
    loads it, or cast afterwards) must decode through torch's own operations, not stop at the kernel's checks
    (the one-call RMSNorm and attention used to), to the logits of its whole-sequence pass."""
    torch.manual_seed(0)
    ids = torch.randint(0, 61, (2, 7))
    for model in (for_cpu_inference(build_model("llama", "llama-tiny", vocab_size=61).eval().half()),
                  for_cpu_inference(build_model("llama", "llama-tiny", vocab_size=61).eval()).half()):
        with torch.inference_mode():
            whole = model(ids)[0][:, -1]
            state = model.new_state(2, 8)
            model(ids[:, :6], state=state)
            step = model(ids[:, 6:], state=state)[0][:, -1]
        assert model.decode_blocks.plan[2] is None
        torch.testing.assert_close(step.float(), whole.float(), rtol=0.01, atol=0.01)
