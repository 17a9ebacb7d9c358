"""Sampling: each logits processor equals transformers' on the same logits; seeds, penalties, stops."""

from __future__ import annotations

import pytest
import torch
from transformers.generation.logits_process import (
    LogitsProcessorList,
    MinPLogitsWarper,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from lm2llm.errors import UserError
from lm2llm.inference.sampling import (
    Sampler,
    SamplingConfig,
    StopStrings,
    apply_frequency_presence,
    apply_repetition_penalty,
    apply_temperature,
    draw,
    min_p_filter,
    process_logits,
    sample_rows,
    top_k_filter,
    top_p_filter,
)

BATCH, VOCAB = 6, 97


@pytest.fixture
def logits() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(BATCH, VOCAB, generator=generator) * 3


@pytest.fixture
def history() -> torch.Tensor:
    return torch.randint(0, VOCAB, (BATCH, 12), generator=torch.Generator().manual_seed(1))


def seen_of(ids: torch.Tensor) -> torch.Tensor:
    return torch.zeros(ids.shape[0], VOCAB, dtype=torch.bool).scatter_(1, ids, True)


def assert_same(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    """Equal including where both removed a token (-inf)."""
    assert torch.equal(torch.isinf(ours), torch.isinf(theirs))
    finite = ~torch.isinf(ours)
    torch.testing.assert_close(ours[finite], theirs[finite], rtol=0, atol=1e-6)


@pytest.mark.parametrize("temperature", [0.3, 0.7, 1.5])
def test_temperature_equals_transformers(logits, history, temperature):
    assert_same(apply_temperature(logits, temperature), TemperatureLogitsWarper(temperature)(history, logits))


@pytest.mark.parametrize("k", [1, 5, 40, VOCAB, VOCAB + 10])
def test_top_k_equals_transformers(logits, history, k):
    assert_same(top_k_filter(logits, k), TopKLogitsWarper(k)(history, logits))


@pytest.mark.parametrize("p", [0.05, 0.5, 0.9, 0.999])
def test_top_p_equals_transformers(logits, history, p):
    assert_same(top_p_filter(logits, p), TopPLogitsWarper(p)(history, logits))


@pytest.mark.parametrize("min_p", [0.01, 0.1, 0.5, 1.0])
def test_min_p_equals_transformers(logits, history, min_p):
    assert_same(min_p_filter(logits, min_p), MinPLogitsWarper(min_p)(history, logits))


@pytest.mark.parametrize("penalty", [0.8, 1.3, 2.0])
def test_repetition_penalty_equals_transformers(logits, history, penalty):
    theirs = RepetitionPenaltyLogitsProcessor(penalty)(history, logits.clone())
    assert_same(apply_repetition_penalty(logits, seen_of(history), penalty), theirs)


def test_whole_pipeline_equals_transformers_in_its_order(logits, history):
    config = SamplingConfig(temperature=0.8, top_k=30, top_p=0.9, min_p=0.05, repetition_penalty=1.2)
    theirs = LogitsProcessorList([
        RepetitionPenaltyLogitsProcessor(1.2), TemperatureLogitsWarper(0.8), TopKLogitsWarper(30),
        TopPLogitsWarper(0.9), MinPLogitsWarper(0.05),
    ])(history, logits.clone())
    assert_same(process_logits(logits, config, seen=seen_of(history)), theirs)


def test_frequency_and_presence_penalties_follow_the_openai_formula(logits):
    counts = torch.zeros(BATCH, VOCAB)
    counts[0, 3], counts[1, 7] = 2, 1
    out = apply_frequency_presence(logits, counts, frequency=0.5, presence=0.25)
    assert out[0, 3] == pytest.approx(float(logits[0, 3]) - 0.5 * 2 - 0.25)
    assert out[1, 7] == pytest.approx(float(logits[1, 7]) - 0.5 - 0.25)
    assert torch.equal(out[2], logits[2])


def test_sampler_counts_only_generated_tokens_for_frequency_penalty():
    config = SamplingConfig(temperature=0, frequency_penalty=2.0)
    sampler = Sampler(config, 1, 3)
    sampler.observe_prompt(torch.tensor([[0, 0, 0]]))  # prompt tokens do not count
    flat = torch.tensor([[1.0, 0.0, 0.0]])
    assert [int(sampler(flat).tokens[0]) for _ in range(3)] == [0, 1, 2]  # 1.0 - 2 < 0 after one use


def test_repetition_penalty_ignores_left_padding():
    config = SamplingConfig(temperature=0, repetition_penalty=10.0)
    sampler = Sampler(config, 2, 3)
    # id 0 is padding in row 0 (mask 0) but a real token in row 1
    sampler.observe_prompt(torch.tensor([[0, 0, 2], [0, 0, 2]]), mask=torch.tensor([[0, 0, 1], [1, 1, 1]]))
    step = sampler(torch.tensor([[1.0, 0.5, 0.0], [1.0, 0.5, 0.0]]))
    assert step.tokens.tolist() == [0, 1]


def test_same_seed_same_tokens_and_different_seed_differs(logits):
    def draw(seed: int) -> list[list[int]]:
        sampler = Sampler(SamplingConfig(seed=seed, temperature=1.2), BATCH, VOCAB)
        return [sampler(logits).tokens.tolist() for _ in range(20)]

    assert draw(7) == draw(7)
    assert draw(7) != draw(8)


def test_greedy_is_argmax_at_temperature_zero_and_top_k_one(logits):
    for config in (SamplingConfig(temperature=0), SamplingConfig(top_k=1, seed=3)):
        assert torch.equal(Sampler(config, BATCH, VOCAB)(logits).tokens, logits.argmax(-1))


def test_samples_stay_inside_the_nucleus(logits):
    config = SamplingConfig(top_p=0.3, seed=0)
    allowed = ~torch.isinf(top_p_filter(logits, 0.3))
    sampler = Sampler(config, BATCH, VOCAB)
    for _ in range(50):
        tokens = sampler(logits).tokens
        assert allowed[torch.arange(BATCH), tokens].all()


def test_sampling_frequencies_match_the_distribution():
    probs = torch.tensor([0.5, 0.3, 0.2])
    sampler = Sampler(SamplingConfig(seed=0), 4000, 3)
    tokens = sampler(probs.log().expand(4000, 3)).tokens
    frequencies = torch.bincount(tokens, minlength=3) / 4000
    torch.testing.assert_close(frequencies, probs, atol=0.03, rtol=0)


def test_draw_follows_the_cumulative_sum_and_never_takes_a_removed_token():
    probs = torch.tensor([[0.0, 0.25, 0.0, 0.75, 0.0]]).expand(7, 5)
    uniforms = torch.tensor([[0.0], [0.2499], [0.25], [0.6], [0.9999], [1.0 - 2**-24], [1.0]])
    assert draw(probs, uniforms).tolist() == [1, 1, 3, 3, 3, 3, 3]  # u = 1 (rounding's worst case) too
    unnormalised = torch.tensor([[2.0, 0.0, 6.0]])  # draw scales u by the row's total
    assert draw(unnormalised, torch.tensor([[0.26]])).item() == 2


def test_sample_rows_chooses_what_each_rows_own_sampler_would(logits, history):
    """The scheduler's batched path: each row keeps its own settings, seed and penalty counts."""
    configs = [SamplingConfig(seed=1), SamplingConfig(seed=2), SamplingConfig(temperature=0),
               SamplingConfig(top_k=5, temperature=0.8, seed=3), SamplingConfig(top_p=0.7, seed=4),
               SamplingConfig(repetition_penalty=1.5, frequency_penalty=0.5, seed=5)]
    batched = [Sampler(c, 1, VOCAB) for c in configs]
    alone = [Sampler(c, 1, VOCAB) for c in configs]
    for sampler in batched + alone:
        sampler.observe_prompt(history[:1])
    for step in range(5):
        step_logits = logits.roll(step, dims=1)
        tokens = sample_rows(batched, step_logits)
        assert tokens == [int(s(step_logits[row:row + 1]).tokens[0]) for row, s in enumerate(alone)]
    assert torch.equal(batched[5].counts, alone[5].counts) and torch.equal(batched[5].seen, alone[5].seen)


def test_logprobs_are_the_models_own_and_alternatives_are_sorted(logits):
    sampler = Sampler(SamplingConfig(temperature=0.5, logprobs=True, top_logprobs=5, seed=0), BATCH, VOCAB)
    step = sampler(logits)
    logp = logits.log_softmax(-1)
    torch.testing.assert_close(step.logprobs, logp[torch.arange(BATCH), step.tokens])
    assert step.top_ids.shape == (BATCH, 5)
    assert torch.equal(step.top_ids[:, 0], logits.argmax(-1))
    assert (step.top_logprobs[:, :-1] >= step.top_logprobs[:, 1:]).all()


@pytest.mark.parametrize("field,value", [
    ("temperature", -0.1), ("top_p", 0.0), ("top_p", 1.5), ("min_p", 2.0), ("top_k", -1),
    ("repetition_penalty", 0.0), ("frequency_penalty", 3.0), ("max_new_tokens", -1), ("stop", ("",)),
])
def test_bad_settings_name_the_field(field, value):
    with pytest.raises(UserError) as error:
        SamplingConfig(**{field: value})
    assert error.value.where == field


def test_stop_strings_find_and_hold_back_korean():
    stops = StopStrings(["<끝>", "\n\n"])
    assert stops.find("안녕하세요<끝>더") == 5
    assert stops.find("안녕\n\n하세요<끝>") == 2
    assert stops.find("안녕하세요") is None
    assert stops.safe_length("안녕<") == 2  # "<" may begin "<끝>"
    assert stops.safe_length("안녕\n") == 2
    assert stops.safe_length("안녕<x") == 4


@pytest.mark.parametrize("config", [
    SamplingConfig(top_k=20, temperature=0.7, top_p=0.8),
    SamplingConfig(top_k=5, min_p=0.2, repetition_penalty=1.3, frequency_penalty=0.5),
    SamplingConfig(top_k=VOCAB, top_p=0.5),
])
def test_top_k_candidates_give_the_full_vocabulary_distribution(logits, history, config):
    sampler = Sampler(config, BATCH, VOCAB)
    sampler.observe_prompt(history)
    probs, candidates = sampler.distribution(logits)
    full = process_logits(logits, config, sampler.seen, sampler.counts).softmax(-1)
    if candidates is not None:
        probs = torch.zeros(BATCH, VOCAB).scatter(1, candidates, probs)
    torch.testing.assert_close(probs, full, atol=1e-6, rtol=0)


def test_a_tie_at_the_k_th_logit_keeps_every_tied_token():
    logits = torch.tensor([[3.0, 1.0, 1.0, 1.0, 0.0]])
    probs, candidates = Sampler(SamplingConfig(top_k=2), 1, 5).distribution(logits)
    assert candidates is None and (probs[0, :4] > 0).all() and probs[0, 4] == 0
