"""Preference pairs through the chat template, and the reward / DPO objectives trained with the Trainer."""

from __future__ import annotations

import math

import pytest
import torch

from lm2llm.align.objectives import (
    DPOObjective,
    RewardObjective,
    evaluate_dpo,
    evaluate_reward_model,
    pair_logprobs,
    reference_logprobs,
)
from lm2llm.align.pairs import PreferenceBatches, collate, encode_pair, encode_pairs
from lm2llm.align.preference import PreferencePair
from lm2llm.align.reward_model import RewardModel
from lm2llm.align.synthetic import make_preference_suite
from lm2llm.errors import UserError
from lm2llm.models import build_model
from lm2llm.tokenizer.char import CharTokenizer
from lm2llm.tokenizer.hf_bpe import BPETokenizer
from lm2llm.training import Trainer, build_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TASKS = ["addition", "korean_to_digits", "facts"]
CONTEXT = 96


@pytest.fixture(scope="module")
def suite():
    train, held = make_preference_suite(40, 10, seed=0, tasks=TASKS)
    texts = [m["content"] for p in train for m in p.prompt] + [p.chosen for p in train] + [p.rejected for p in train]
    tokenizer = BPETokenizer.train(texts, vocab_size=400)
    (train_enc, _), (held_enc, _) = encode_pairs(tokenizer, train, CONTEXT), encode_pairs(tokenizer, held, CONTEXT)
    return tokenizer, train_enc, held_enc


def _config(steps: int, lr: float):
    return build_config(overrides={"max_steps": steps, "lr": lr, "min_lr": lr / 10, "warmup_steps": 2,
                                   "batch_size": 16, "eval_every": steps, "progress": False, "device": "cpu",
                                   "dtype": "float32", "seed": 0}).trainer


def test_answers_are_masked_with_their_end_of_turn_and_padding_is_distinct(suite):
    tokenizer = suite[0]
    pair = PreferencePair([{"role": "user", "content": "3 더하기 4는?"}], "7", "음, 아마 8일 거예요.")
    encoded = encode_pair(tokenizer, pair)
    for ids, mask, answer in ((encoded.chosen_ids, encoded.chosen_mask, pair.chosen),
                              (encoded.rejected_ids, encoded.rejected_mask, pair.rejected)):
        answer_ids = [i for i, m in zip(ids, mask, strict=True) if m]
        assert answer_ids[-1] == tokenizer.end_of_turn_id and ids[-1] == tokenizer.end_of_turn_id
        assert tokenizer.decode(answer_ids[:-1]) == answer
    assert tokenizer.pad_id not in (tokenizer.end_of_turn_id, tokenizer.eos_id)
    batch = collate([encoded], tokenizer.pad_id)
    short = "chosen" if len(encoded.chosen_ids) < len(encoded.rejected_ids) else "rejected"
    assert batch[f"{short}_ids"][0, -1] == tokenizer.pad_id and batch[f"{short}_attention"][0, -1] == 0
    with pytest.raises(UserError, match="no chat template"):
        encode_pair(CharTokenizer.train(["abc"]), pair)
    with pytest.raises(UserError, match="longer than"):
        encode_pairs(tokenizer, [pair], max_len=3)


def test_padding_does_not_change_log_probs(suite):
    tokenizer, train, _ = suite
    torch.manual_seed(0)
    model = build_model("gpt", "gpt-tiny", vocab_size=tokenizer.vocab_size, context_length=CONTEXT).eval()
    together = reference_logprobs(model, train[:6], tokenizer.pad_id, batch_size=6)
    with torch.no_grad():
        for row, pair in enumerate(train[:6]):
            chosen, rejected = pair_logprobs(model, collate([pair], tokenizer.pad_id))
            torch.testing.assert_close(together["ref_chosen_logps"][row], chosen[0], atol=1e-4, rtol=1e-5)
            torch.testing.assert_close(together["ref_rejected_logps"][row], rejected[0], atol=1e-4, rtol=1e-5)


def test_reward_model_learns_held_out_preferences(suite):
    tokenizer, train, held = suite
    torch.manual_seed(0)
    model = RewardModel(build_model("gpt", "gpt-tiny", vocab_size=tokenizer.vocab_size, context_length=CONTEXT))
    data = PreferenceBatches(train, held, pad_id=tokenizer.pad_id, batch_size=16, seed=0, block_size=CONTEXT)
    before = evaluate_reward_model(model, data.eval_set())
    Trainer(model, RewardObjective(), data, _config(30, 1e-3)).fit()
    after = evaluate_reward_model(model, data.eval_set())
    assert after["loss"] < before["loss"] and after["accuracy"] >= 0.8, (before, after)


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo"])
def test_dpo_starts_at_log2_and_learns_held_out_preferences(suite, loss_type):
    tokenizer, train, held = suite
    torch.manual_seed(0)
    policy = build_model("gpt", "gpt-tiny", vocab_size=tokenizer.vocab_size, context_length=CONTEXT)
    objective = DPOObjective(beta=0.5, loss_type=loss_type)
    data = PreferenceBatches(train, held, pad_id=tokenizer.pad_id, batch_size=16, seed=0, block_size=CONTEXT,
                             extra_train=reference_logprobs(policy, train, tokenizer.pad_id),
                             extra_held_out=reference_logprobs(policy, held, tokenizer.pad_id))
    before = evaluate_dpo(policy, data.eval_set(), objective)
    assert before["rewards_margin"] == pytest.approx(0.0, abs=1e-4)  # policy == reference
    if loss_type == "sigmoid":
        assert before["loss"] == pytest.approx(math.log(2), abs=1e-4)
    Trainer(policy, objective, data, _config(25, 3e-3)).fit()
    after = evaluate_dpo(policy, data.eval_set(), objective)
    assert after["loss"] < before["loss"] and after["rewards_accuracy"] >= 0.8, (before, after)
    assert after["rewards_margin"] > 0
