"""The engine: cached, left-padded batched decoding equals full recomputation, for decoders and RNNs;
per-row stopping, limits, seeds; streaming text that never breaks a character or leaks a stop string."""

from __future__ import annotations

import copy

import pytest
import torch

from lm2llm.errors import UserError
from lm2llm.inference.engine import Engine, SequenceRequest, generate_ids
from lm2llm.inference.layout import (
    PackedLinear,
    for_cpu_inference,
    fuse_projections,
    input_major,
    pack_linears,
)
from lm2llm.inference.sampling import SamplingConfig
from lm2llm.inference.text import TextGenerator
from lm2llm.models import build_model
from lm2llm.tokenizer import CharTokenizer

VOCAB = 61
PROMPTS = [[5, 9, 2], [7, 1, 4, 4, 8, 3, 2, 9], [11]]
# learned positions (GPT-2), RoPE + GQA (LLaMA), MQA, and the recurrent cells
MODELS = {
    "gpt": dict(family="gpt", preset="gpt-tiny"),
    "llama-gqa": dict(family="llama", preset="llama-tiny"),
    "llama-mqa": dict(family="llama", n_layer=2, d_model=32, n_head=4, n_kv_head=1, context_length=64),
    "lstm": dict(family="lstm", d_embed=16, d_hidden=24, n_layer=2),
    "gru": dict(family="gru", d_embed=16, d_hidden=24, n_layer=1),
}


def make_model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    spec = dict(MODELS[name])
    return build_model(spec.pop("family"), spec.pop("preset", None), vocab_size=VOCAB, **spec).eval()


@pytest.mark.parametrize("name", MODELS)
def test_cached_batched_decoding_equals_full_recomputation(name):
    """Each step's log-probabilities (chosen token and top 5) from the cache, with left padding, equal
    a fresh forward pass over the unpadded sequence so far."""
    model = make_model(name)
    config = SamplingConfig(temperature=0.9, top_k=20, seed=1, max_new_tokens=12, logprobs=True, top_logprobs=5)
    completions = generate_ids(model, PROMPTS, config)
    for prompt, completion in zip(PROMPTS, completions, strict=True):
        full = torch.tensor([prompt + completion.token_ids])
        with torch.no_grad():
            logp = model(full)[0][0].log_softmax(-1)[len(prompt) - 1:-1]
        expected = logp.gather(1, torch.tensor(completion.token_ids).unsqueeze(1)).squeeze(1)
        torch.testing.assert_close(torch.tensor(completion.logprobs), expected, atol=1e-5, rtol=0)
        top = torch.tensor([sorted(step.values(), reverse=True) for step in completion.top_logprobs])
        torch.testing.assert_close(top, logp.topk(5, dim=-1).values, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["gpt", "llama-gqa", "lstm"])
def test_a_batch_generates_what_each_prompt_generates_alone(name):
    model = make_model(name)
    greedy = SamplingConfig(temperature=0, max_new_tokens=10)
    together = [c.token_ids for c in generate_ids(model, PROMPTS, greedy)]
    alone = [generate_ids(model, [p], greedy)[0].token_ids for p in PROMPTS]
    assert together == alone


@pytest.mark.parametrize("name", MODELS)
def test_input_major_weights_keep_the_models_logits_and_ties(name):
    model = make_model(name)
    ids = torch.tensor([PROMPTS[1]])
    with torch.no_grad():
        before = model(ids)[0]
        input_major(model)
        after = model(ids)[0]
    torch.testing.assert_close(after, before, atol=1e-5, rtol=0)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(m.weight.t().is_contiguous() for m in linears)  # (in, out) in memory
    if name == "gpt":  # the output layer is still the token embedding
        assert model.lm_head.weight is model.tok_emb.weight
    greedy = SamplingConfig(temperature=0, max_new_tokens=8)
    assert [c.token_ids for c in generate_ids(model, PROMPTS, greedy)] == [
        c.token_ids for c in generate_ids(make_model(name), PROMPTS, greedy)]


@pytest.mark.parametrize("name", ["gpt", "llama-gqa"])
def test_packed_bf16_linears_are_bit_identical_and_survive_copy_and_casts(name):
    """bf16 layers packed once for oneDNN give exactly torch's bf16 `F.linear` results (same kernel, no
    per-call re-layout), in prompts, in cached decoding and at batch 8; deepcopy, `.to()` and
    `state_dict` see the dense weights."""
    plain = make_model(name).to(torch.bfloat16)
    packed = pack_linears(copy.deepcopy(plain))
    assert any(isinstance(m, PackedLinear) for m in packed.modules())
    assert not any(type(m) is torch.nn.Linear for m in packed.modules())
    ids = torch.tensor([PROMPTS[1]] * 8)
    with torch.no_grad():
        assert torch.equal(packed(ids)[0], plain(ids)[0])
    greedy = SamplingConfig(temperature=0, max_new_tokens=8)
    assert [c.token_ids for c in generate_ids(packed, PROMPTS, greedy)] == [
        c.token_ids for c in generate_ids(plain, PROMPTS, greedy)]
    state = packed.state_dict()
    for key, value in plain.state_dict().items():
        assert torch.equal(state[key], value), key
    clone = copy.deepcopy(packed).float()
    with torch.no_grad():
        torch.testing.assert_close(clone(ids)[0], plain.float()(ids)[0], atol=0, rtol=0)


@pytest.mark.parametrize("name", ["gpt", "llama-gqa"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_stacked_projections_keep_the_logits_and_the_greedy_text(name, dtype):
    """q/k/v (and gate/up) stacked into one layer compute the same rows' dot products: the same logits up
    to fp32 summation order, the same greedy continuations; the separate layers are gone (no double
    memory), and the CPU layout is applied on top."""
    plain = make_model(name).to(dtype)
    fused = for_cpu_inference(copy.deepcopy(plain))
    attn = fused.blocks[0].attn
    assert attn.qkv_proj is not None and not hasattr(attn, "q_proj")
    assert (fused.blocks[0].mlp.gate_up is not None) == (name == "llama-gqa")
    ids = torch.tensor([PROMPTS[1]] * 8)
    with torch.no_grad():
        torch.testing.assert_close(fused(ids)[0], plain(ids)[0], atol=1e-5, rtol=0)
    greedy = SamplingConfig(temperature=0, max_new_tokens=8)
    assert [c.token_ids for c in generate_ids(fused, PROMPTS, greedy)] == [
        c.token_ids for c in generate_ids(plain, PROMPTS, greedy)]
    assert fuse_projections(fused) is fused  # a second call changes nothing


def test_rows_stop_on_their_own_end_token():
    model = make_model("gpt")
    greedy = SamplingConfig(temperature=0, max_new_tokens=8)
    free = generate_ids(model, PROMPTS, greedy)
    end = free[0].token_ids[2]
    stopped = generate_ids(model, PROMPTS, greedy, end_ids=[end])
    assert stopped[0].token_ids == free[0].token_ids[:free[0].token_ids.index(end)]
    assert stopped[0].finish_reason == "stop"
    for before, after in zip(free[1:], stopped[1:], strict=True):  # other rows unaffected until their own end
        cut = before.token_ids.index(end) if end in before.token_ids else len(before.token_ids)
        assert after.token_ids == before.token_ids[:cut]


def test_same_seed_same_batch_output():
    model = make_model("llama-gqa")
    config = SamplingConfig(temperature=1.0, top_p=0.95, seed=42, max_new_tokens=15)
    first = [c.token_ids for c in generate_ids(model, PROMPTS, config)]
    assert first == [c.token_ids for c in generate_ids(model, PROMPTS, config)]


def test_context_length_limits_prompt_and_generation():
    model = make_model("gpt")  # context 64
    with pytest.raises(UserError, match="at most 64"):
        generate_ids(model, [[1] * 65], SamplingConfig())
    done = generate_ids(model, [[1] * 60], SamplingConfig(temperature=0, max_new_tokens=50))[0]
    assert (len(done.token_ids), done.finish_reason) == (4, "length")
    with pytest.raises(UserError, match="empty prompt"):
        generate_ids(model, [[1], []], SamplingConfig())
    with pytest.raises(UserError, match="no tokenizer"):
        Engine(model).submit([SequenceRequest([1], SamplingConfig(stop=("x",)))])


@pytest.fixture
def korean_generator() -> TextGenerator:
    tokenizer = CharTokenizer.train(["안녕하세요 반갑습니다. 오늘 날씨가 좋네요! 한국어 문장을 만듭니다."])
    torch.manual_seed(0)
    model = build_model("gpt", "gpt-tiny", vocab_size=tokenizer.vocab_size)
    return TextGenerator(model, tokenizer)


def test_streamed_text_is_the_generated_text(korean_generator):
    config = SamplingConfig(temperature=0.8, seed=3, max_new_tokens=20)
    prompts = ["안녕하세요", "오늘 날씨"]
    streamed = ["", ""]
    last = {}
    for chunk in korean_generator.stream(prompts, config):
        streamed[chunk.index] += chunk.text
        last[chunk.index] = chunk.finish_reason
    completions = korean_generator.generate(prompts, config)
    assert streamed == [c.text for c in completions]
    assert last == {0: "length", 1: "length"}
    tokenizer = korean_generator.tokenizer
    assert [tokenizer.decode(c.token_ids) for c in completions] == streamed


def test_stop_string_cuts_the_text_and_is_never_streamed(korean_generator):
    free = korean_generator.generate(["안녕"], SamplingConfig(temperature=0.8, seed=5, max_new_tokens=30))[0].text
    stop = free[6:8]  # a two-character stop string that really occurs
    config = SamplingConfig(temperature=0.8, seed=5, max_new_tokens=30, stop=(stop,))
    chunks = list(korean_generator.stream(["안녕"], config))
    text = "".join(c.text for c in chunks)
    assert text == free[:free.index(stop)]
    assert chunks[-1].finish_reason == "stop"


def test_nothing_to_generate_still_reports_each_row(korean_generator):
    chunks = list(korean_generator.stream(["안녕", "오늘"], SamplingConfig(max_new_tokens=0)))
    assert [(c.index, c.text, c.finish_reason) for c in chunks] == [(0, "", "length"), (1, "", "length")]
    full = korean_generator.generate(["안" * 64], SamplingConfig(max_new_tokens=5))[0]  # the context is full
    assert (full.token_ids, full.finish_reason) == ([], "length")


def test_each_row_of_a_batch_has_its_own_room_in_the_context():
    """A long prompt's row stops at the context; a short one in the same batch goes on, as it would alone."""
    model = make_model("gpt")  # context 64
    greedy = SamplingConfig(temperature=0, max_new_tokens=20)
    long, short = generate_ids(model, [[1] * 60, [2] * 10], greedy)
    assert (len(long.token_ids), len(short.token_ids)) == (4, 20)
    assert short.token_ids == generate_ids(model, [[2] * 10], greedy)[0].token_ids


def test_the_engine_steps_on_the_callers_thread_and_cancelled_rows_leave():
    model = make_model("llama-gqa")
    engine = Engine(model, max_batch=2)
    greedy = SamplingConfig(temperature=0, max_new_tokens=30)
    first = engine.submit([SequenceRequest([1, 2], greedy, index=0)])
    engine.submit([SequenceRequest([3], greedy, index=1)])
    assert sorted(c.index for c in engine.step()) == [0, 0, 1, 1]  # the prefill's token and one decode step's
    first.cancel()
    rest = list(engine.drain())
    assert {c.index for c in rest} == {1} and rest[-1].finish_reason == "length"
    assert engine.load == {"live": 0, "waiting": 0} and engine.stats.largest_batch == 2
