"""Continuous batching: regrouped decoding states give every row its own logits, and sequences that join
and leave a running batch generate exactly what they generate alone."""

from __future__ import annotations

import copy
import queue

import pytest
import torch

from lm2llm.errors import UserError
from lm2llm.inference.engine import QueueFull, SequenceRequest, generate_ids
from lm2llm.inference.sampling import SamplingConfig
from lm2llm.models import build_model
from lm2llm.serve.scheduler import BatchScheduler

VOCAB = 61
pytestmark = pytest.mark.usefixtures("one_torch_thread")
MODELS = {
    "gpt": dict(family="gpt", preset="gpt-tiny"),  # learned positions
    "llama": dict(family="llama", preset="llama-tiny"),  # RoPE + GQA
    "lstm": dict(family="lstm", d_embed=16, d_hidden=24, n_layer=2),
}
PROMPTS = [[5, 9, 2], [7, 1, 4, 4, 8, 3, 2, 9], [11], [3] * 20, [1, 2, 3, 4, 5]]


def make_model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    spec = dict(MODELS[name])
    return build_model(spec.pop("family"), spec.pop("preset", None), vocab_size=VOCAB, **spec).eval()


def prefill(model, prompts):
    """A left-padded batch of prompts through the model: its state and each row's last logits."""
    longest = max(map(len, prompts))
    ids = torch.zeros(len(prompts), longest, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, prompt in enumerate(prompts):
        ids[row, longest - len(prompt):] = torch.tensor(prompt)
        mask[row, longest - len(prompt):] = 1
    state = model.new_state(len(prompts), longest + 8)
    logits, _ = model(ids, state=state, attention_mask=mask)
    return state, logits[:, -1]


@pytest.mark.parametrize("name", MODELS)
@torch.no_grad()
def test_gathered_rows_decode_as_in_their_own_state(name):
    """Rows from two states of different lengths, one repeated, one dropped: the next step's logits of
    each row equal those of a full forward pass over its own sequence."""
    model = make_model(name)
    first, _ = prefill(model, PROMPTS[:2])
    second, _ = prefill(model, PROMPTS[2:4])
    merged = type(first).gather([(first, [1]), (second, [0, 1, 1])], room=3)
    nxt = torch.tensor([[6], [7], [8], [9]])
    logits, _ = model(nxt, state=merged)
    sequences = [PROMPTS[1], PROMPTS[2], PROMPTS[3], PROMPTS[3]]
    for row, (sequence, token) in enumerate(zip(sequences, nxt[:, 0].tolist(), strict=True)):
        full, _ = model(torch.tensor([sequence + [token]]))
        torch.testing.assert_close(logits[row, -1], full[0, -1], atol=1e-5, rtol=0)
    if name != "lstm":  # the cache is as long as the longest row plus the room asked for
        assert merged.cache.max_len == len(PROMPTS[3]) + 3
        assert merged.key_valid.shape == (4, len(PROMPTS[3]) + 3)


@pytest.mark.parametrize("name", MODELS)
@torch.no_grad()
def test_a_bf16_prefill_hands_decoding_a_state_in_the_models_dtype(name):
    """Prompts prefilled by a bf16 copy, decoding in fp32: the state is cast, and the next logits stay
    within bf16 rounding of an all-fp32 run."""
    model = make_model(name)
    bf16 = copy.deepcopy(model).to(torch.bfloat16)
    exact, _ = prefill(model, PROMPTS[:2])
    rounded, _ = prefill(bf16, PROMPTS[:2])
    cast = rounded.to(torch.float32)
    floats = [cast.cache.keys, cast.cache.values] if name != "lstm" else [cast.h, cast.c]
    assert [t.dtype for t in floats] == [torch.float32] * 2
    nxt = torch.tensor([[6], [7]])
    want, _ = model(nxt, state=exact)
    got, _ = model(nxt, state=cast)
    torch.testing.assert_close(got, want, atol=5e-3, rtol=0)  # measured: at most 5e-4 on these models
    scheduler = BatchScheduler(model, HangulIds(), prefill_model=bf16)
    scheduler.start()
    try:
        outs = [queue.Queue() for _ in PROMPTS]
        for index, (prompt, out) in enumerate(zip(PROMPTS, outs, strict=True)):
            scheduler.submit([SequenceRequest(prompt, SamplingConfig(temperature=0, max_new_tokens=5), out.put,
                                              index=index)])
        assert [collect(out)[2] for out in outs] == ["length"] * len(PROMPTS)
    finally:
        scheduler.stop()


class HangulIds:
    """A stand-in vocabulary: token i is the Hangul syllable U+AC00 + i (what the scheduler decodes with)."""

    def decode(self, ids: list[int]) -> str:
        return "".join(chr(0xAC00 + i) for i in ids)


def collect(out: queue.Queue) -> tuple[list[int], str, str]:
    tokens, text = [], ""
    while True:
        chunk = out.get(timeout=30)
        tokens += chunk.token_ids
        text += chunk.text
        if chunk.finish_reason:
            return tokens, text, chunk.finish_reason


@pytest.mark.parametrize("name", MODELS)
def test_sequences_joining_a_running_batch_generate_what_they_generate_alone(name):
    model = make_model(name)
    alone = [generate_ids(model, [p], SamplingConfig(temperature=0, max_new_tokens=20))[0].token_ids for p in PROMPTS]
    scheduler = BatchScheduler(model, HangulIds(), max_batch=3)
    scheduler.start()
    try:
        outs = []
        for index, prompt in enumerate(PROMPTS):  # budgets differ, so rows leave at different steps
            outs.append(queue.Queue())
            config = SamplingConfig(temperature=0, max_new_tokens=6 + 3 * index)
            scheduler.submit([SequenceRequest(prompt, config, outs[-1].put, index=index)])
        results = [collect(out) for out in outs]
    finally:
        scheduler.stop()
    for (tokens, text, reason), expected, index in zip(results, alone, range(len(PROMPTS)), strict=True):
        assert tokens == expected[:6 + 3 * index] and reason == "length"
        assert text == "".join(chr(0xAC00 + i) for i in tokens)  # Hangul text, streamed whole
    assert scheduler.stats.largest_batch == 3 and scheduler.stats.mean_batch > 1


def test_stop_strings_end_tokens_and_limits():
    model = make_model("gpt")
    decode = HangulIds().decode
    sampled = SamplingConfig(temperature=1.0, seed=3, max_new_tokens=12)
    scheduler = BatchScheduler(model, HangulIds(), max_batch=4, max_waiting=2)
    scheduler.start()

    def alone(config: SamplingConfig, prompt=PROMPTS[0], **kwargs) -> tuple[list[int], str, str]:
        out = queue.Queue()
        scheduler.submit([SequenceRequest(prompt, config, out.put, **kwargs)])
        return collect(out)

    try:
        free, text, reason = alone(sampled)
        assert (len(free), text, reason) == (12, decode(free), "length")
        stop = decode(free[4:6])
        cut = text.index(stop)
        assert alone(SamplingConfig(temperature=1.0, seed=3, max_new_tokens=12, stop=("없음", stop)))[1:] == (text[:cut], "stop")
        assert alone(sampled, end_ids=(free[5],))[:1] == (free[:free.index(free[5])],)
        assert alone(SamplingConfig(max_new_tokens=5), [1] * 64) == ([], "", "length")  # the prompt fills the context
        assert alone(SamplingConfig(max_new_tokens=0)) == ([], "", "length")
    finally:
        scheduler.stop()
    with pytest.raises(UserError, match="at most 64"):
        scheduler.check_prompt([1] * 65)
    with pytest.raises(UserError, match="token ids"):
        scheduler.check_prompt([VOCAB])
    with pytest.raises(UserError, match="can never fit"):  # more than may ever wait: not worth a retry
        scheduler.submit([SequenceRequest([1], SamplingConfig(), print) for _ in range(3)])
    scheduler.submit([SequenceRequest([1], SamplingConfig(), print) for _ in range(2)])
    with pytest.raises(QueueFull):  # stopped: nothing leaves the queue
        scheduler.submit([SequenceRequest([1], SamplingConfig(), print)])


def test_cancelled_sequences_leave_the_batch():
    model = make_model("llama")
    scheduler = BatchScheduler(model, HangulIds(), max_batch=2)
    scheduler.start()
    try:
        out = queue.Queue()
        ticket = scheduler.submit([SequenceRequest([1, 2], SamplingConfig(max_new_tokens=60, seed=0), out.put)])
        out.get(timeout=30)
        ticket.cancel()
        other = queue.Queue()
        scheduler.submit([SequenceRequest([3], SamplingConfig(max_new_tokens=4, seed=0), other.put)])
        assert collect(other)[2] == "length"
    finally:
        scheduler.stop()
    assert scheduler.load == {"live": 0, "waiting": 0}
