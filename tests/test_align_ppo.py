"""The PPO loop on tiny models: rollouts line up with the inference engine, the first update sees ratio 1
(dropout off, same temperature), responses without end-of-turn are penalised, and PPO raises the
reward-model score while the KL to the frozen reference stays bounded."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from lm2llm.align.ppo import PPOConfig, PPOTrainer, pad_prompts_and_responses
from lm2llm.align.reward_model import RewardModel
from lm2llm.errors import UserError
from lm2llm.inference.engine import generate_ids
from lm2llm.models import build_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

VOCAB, EOT, PAD = 16, 2, 1
PROMPTS = [[3 + i % 5, 4 + i % 7, 5] if i % 3 else [6, 3 + i % 4] for i in range(16)]


def _trainer(seed: int = 0, dropout: float = 0.0, **overrides) -> PPOTrainer:
    torch.manual_seed(seed)
    policy = build_model("gpt", "gpt-tiny", vocab_size=VOCAB, dropout=dropout)
    reward_model = RewardModel(build_model("gpt", "gpt-tiny", vocab_size=VOCAB))
    config = PPOConfig(**{"batch_size": 16, "minibatch_size": 8, "ppo_epochs": 4, "lr": 3e-3,
                          "max_new_tokens": 8, "kl_coef": 0.02, "seed": seed, **overrides})
    return PPOTrainer(policy, reward_model, config, end_of_turn_id=EOT, pad_id=PAD)


def test_padding_layout_puts_every_response_at_the_same_column():
    ids, mask, response_mask = pad_prompts_and_responses([[7, 8, 9], [7]], [[10, EOT], [11, 12, 13]], PAD)
    assert ids.tolist() == [[7, 8, 9, 10, EOT, PAD], [PAD, PAD, 7, 11, 12, 13]]
    assert mask.tolist() == [[1, 1, 1, 1, 1, 0], [0, 0, 1, 1, 1, 1]]
    assert response_mask.tolist() == [[1, 1, 0], [1, 1, 1]]


def test_rollout_matches_the_engine_and_penalises_missing_end_of_turn():
    trainer = _trainer(temperature=1.0)
    batch = trainer.rollout(PROMPTS)
    engine = generate_ids(trainer.policy, PROMPTS, dataclasses.replace(trainer.sampling_config(), logprobs=True),
                          end_ids=[EOT])
    response_len = batch.response_mask.shape[1]
    for row, completion in enumerate(engine):
        stopped = completion.finish_reason == "stop"
        tokens = batch.ids[row, batch.prompt_len:][batch.response_mask[row].bool()].tolist()
        assert tokens == completion.token_ids + ([EOT] if stopped else [])  # truncated after end-of-turn
        assert bool(batch.ended[row]) == stopped
        n = len(completion.token_ids)
        # the full forward pass and the engine's cached decoding give the same log-probs (T = 1)
        torch.testing.assert_close(batch.logprobs[row, :n], torch.tensor(completion.logprobs), atol=1e-4, rtol=1e-4)
        assert batch.response_mask[row, len(tokens):].sum() == 0 and len(tokens) <= response_len
    with torch.no_grad():
        raw = trainer.reward_model.score(batch.ids, batch.attention_mask)
    torch.testing.assert_close(batch.scores, raw - trainer.config.missing_eot_penalty * (~batch.ended).float())
    assert batch.kl.abs().max() < 1e-5  # policy == reference before any update


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_first_update_sees_ratio_one_with_dropout_configured(temperature):
    # dropout 0.1 in the config: PPO must still see identical old and new log-probs (models in eval mode)
    trainer = _trainer(dropout=0.1, temperature=temperature, ppo_epochs=1, minibatch_size=16)
    stats = trainer.optimise(trainer.rollout(PROMPTS))
    assert stats["approx_kl"] < 1e-10 and stats["clip_fraction"] == 0.0


def test_ppo_raises_the_reward_while_kl_stays_bounded():
    trainer = _trainer()
    with torch.no_grad():
        batch = trainer.rollout(PROMPTS)
        trainer.reward_model.normalise(trainer.reward_model.score(batch.ids, batch.attention_mask))
    history = [trainer.step(PROMPTS) for _ in range(10)]
    expected = {"score", "kl", "kl_coef", "reward", "entropy", "response_length", "eot_rate", "policy_loss",
                "value_loss", "clip_fraction", "value_clip_fraction", "approx_kl"}
    assert expected <= set(history[-1])
    first, last = history[0], sum(h["score"] for h in history[-3:]) / 3
    assert last > first["score"] + 0.5, [round(h["score"], 3) for h in history]
    assert all(0 <= h["kl"] < 10 for h in history[1:])
    for before, after in zip(trainer.reference.parameters(), _trainer().reference.parameters(), strict=True):
        torch.testing.assert_close(before, after)  # the reference never moves


def test_adaptive_kl_coefficient_moves_towards_the_target():
    trainer = _trainer(kl_target=0.01, kl_horizon=100)
    coefs = [trainer.step(PROMPTS)["kl_coef"] for _ in range(3)] + [trainer.kl_controller.value]
    assert coefs[-1] > coefs[1]  # KL above a tiny target raises β


def test_config_and_prompt_checks():
    with pytest.raises(UserError, match="kl_estimator"):
        PPOConfig(kl_estimator="k2")
    with pytest.raises(UserError, match="temperature"):
        PPOConfig(temperature=0.0)
    with pytest.raises(UserError, match="at least two prompts"):
        _trainer().step(PROMPTS[:1])
