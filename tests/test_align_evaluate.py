"""Policy-vs-SFT evaluation: a policy equal to SFT ties everything at zero KL; a different one moves."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from lm2llm.align.evaluate import (
    compare_with_sft,
    generate_answers,
    on_policy_agreement,
    pair_hits,
    prompt_ids,
)
from lm2llm.align.objectives import evaluate_reward_model
from lm2llm.align.pairs import PreferenceBatches, encode_pairs
from lm2llm.align.reward_model import RewardModel
from lm2llm.align.synthetic import make_preference_suite
from lm2llm.finetune.tasks import make_suite
from lm2llm.inference.sampling import SamplingConfig
from lm2llm.models import build_model
from lm2llm.tokenizer.hf_bpe import BPETokenizer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_compare_with_sft():
    train, test = make_suite(20, 4, seed=3, tasks=["addition", "digits_to_korean"])
    tokenizer = BPETokenizer.train([m["content"] for r in train for m in r.messages], vocab_size=300)
    torch.manual_seed(0)
    sft, other = (build_model("gpt", "gpt-tiny", vocab_size=tokenizer.vocab_size) for _ in range(2))
    reward_model = RewardModel(build_model("gpt", "gpt-tiny", vocab_size=tokenizer.vocab_size))
    same, transcripts = compare_with_sft(sft, sft, reward_model, tokenizer, test, max_new_tokens=6)
    assert same["win_rate_reward"] == same["win_rate_exact"] == 0.5
    assert same["reward"] == same["reward_sft"] and same["kl_to_sft"] == pytest.approx(0.0, abs=1e-5)
    assert len(transcripts) == len(test) and all(t["sft"] == t["aligned"] for t in transcripts)
    assert any("한글로" in t["prompt"] for t in transcripts)
    with torch.no_grad():
        other.tok_emb.weight.mul_(40)  # a peaked policy, far from the near-uniform SFT stand-in
    moved, _ = compare_with_sft(other, sft, reward_model, tokenizer, test, max_new_tokens=6)
    assert moved["kl_to_sft"] > 0.1 and 0 <= moved["win_rate_reward"] <= 1 and moved["answer_tokens"] <= 7


@pytest.fixture(scope="module")
def tiny():
    train, test = make_suite(20, 6, seed=3, tasks=["facts", "digits_to_korean"])
    tokenizer = BPETokenizer.train([m["content"] for r in train for m in r.messages], vocab_size=300)
    torch.manual_seed(0)
    policy = build_model("gpt", "gpt-tiny", vocab_size=tokenizer.vocab_size, context_length=128)
    return test, tokenizer, policy, RewardModel(build_model("gpt", "gpt-tiny", vocab_size=tokenizer.vocab_size,
                                                            context_length=128))


def test_pair_hits_agree_with_the_training_metric(tiny):
    _, tokenizer, _, reward_model = tiny
    train, held = make_preference_suite(4, 6, seed=0, tasks=["facts", "digits_to_korean"])
    hits = pair_hits(reward_model, tokenizer, held, batch_size=5)
    encoded, _ = encode_pairs(tokenizer, held, reward_model.config.context_length)
    batches = PreferenceBatches(encode_pairs(tokenizer, train, 128)[0], encoded, pad_id=tokenizer.pad_id,
                                batch_size=4, seed=0, block_size=128)
    assert len(hits) == len(encoded) and all(pair in held for pair, _ in hits)  # too long for the context: left out
    assert {pair.kind for pair, _ in hits} >= {"wrong", "runs_on"}
    accuracy = evaluate_reward_model(reward_model, batches.eval_set())["accuracy"]
    assert sum(hit for _, hit in hits) / len(hits) == pytest.approx(accuracy)


def test_on_policy_agreement_flips_with_the_reward(tiny):
    test, tokenizer, policy, reward_model = tiny
    # make each prompt's first sample the "right" answer, so every prompt has right and wrong samples
    prompts = [prompt_ids(tokenizer, r.prompt_messages) for r in test for _ in range(3)]
    texts = generate_answers(policy, tokenizer, prompts, SamplingConfig(max_new_tokens=5, seed=1)).texts
    records = [dataclasses.replace(r, answer=texts[3 * i]) for i, r in enumerate(test)]
    agreement = on_policy_agreement(policy, reward_model, tokenizer, records, samples=3, max_new_tokens=5, seed=1)
    assert agreement["samples"] == 3 * len(test) and agreement["prompts"] >= 1
    with torch.no_grad():
        reward_model.gain.mul_(-1)  # the opposite judge
    try:
        flipped = on_policy_agreement(policy, reward_model, tokenizer, records, samples=3, max_new_tokens=5, seed=1)
    finally:
        with torch.no_grad():
            reward_model.gain.mul_(-1)
    assert flipped["prompts"] == agreement["prompts"]
    assert flipped["agreement"] == pytest.approx(1 - agreement["agreement"])
