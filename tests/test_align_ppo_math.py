"""PPO arithmetic: hand-computed examples, an independent per-sequence GAE, Monte Carlo checks of the KL
estimators, and TRL where it still ships the piece (TRL 1.16 dropped PPO; its `entropy_from_logits`
remains). TRL's former `masked_whiten`, clipped losses and `AdaptiveKLController` are reproduced here by
hand from their published formulas."""

from __future__ import annotations

import math

import pytest
import torch

from lm2llm.align.ppo_math import (
    AdaptiveKLController,
    FixedKLController,
    clipped_policy_loss,
    clipped_value_loss,
    entropy_from_logits,
    generalized_advantages,
    kl_penalty,
    masked_mean,
    masked_var,
    masked_whiten,
    shaped_rewards,
)
from lm2llm.models.padding import last_real_index

MASK = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])


def test_masked_statistics_ignore_padding():
    values = torch.tensor([[1.0, 2.0, 3.0, 100.0], [4.0, 5.0, -50.0, 7.0]])
    real = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    assert masked_mean(values, MASK).item() == pytest.approx(3.0)
    torch.testing.assert_close(masked_mean(values, MASK, dim=1), torch.tensor([2.0, 4.5]))
    assert masked_var(values, MASK).item() == pytest.approx(real.var().item())  # unbiased, like torch.var
    assert masked_var(values, MASK, unbiased=False).item() == pytest.approx(2.0)
    whitened = masked_whiten(values, MASK)
    torch.testing.assert_close(whitened[MASK.bool()], (real - 3.0) / math.sqrt(2.5 + 1e-8))
    assert masked_whiten(values, MASK, shift_mean=False)[0, 0].item() == pytest.approx(-2 / math.sqrt(2.5) + 3)
    with pytest.raises(ValueError):
        masked_var(values, torch.tensor([[1, 0, 0, 0], [0, 0, 0, 0]]))


def test_kl_estimators_hand_values_and_unbiasedness():
    logp, ref = torch.tensor([-1.0, -2.0]), torch.tensor([-1.5, -1.0])
    torch.testing.assert_close(kl_penalty(logp, ref, "k1"), torch.tensor([0.5, -1.0]))
    log_r = ref - logp
    torch.testing.assert_close(kl_penalty(logp, ref, "k3"), log_r.exp() - 1 - log_r)
    assert (kl_penalty(logp, ref, "k3") >= 0).all()
    with pytest.raises(ValueError):
        kl_penalty(logp, ref, "k2x")
    # Both are unbiased estimators of KL(p ‖ q) when tokens are sampled from p.
    p = torch.tensor([0.6, 0.3, 0.1])
    q = torch.tensor([0.3, 0.3, 0.4])
    exact = (p * (p / q).log()).sum().item()
    tokens = torch.multinomial(p, 200_000, replacement=True, generator=torch.Generator().manual_seed(0))
    for estimator in ("k1", "k3"):
        estimate = kl_penalty(p.log()[tokens], q.log()[tokens], estimator).mean().item()
        assert estimate == pytest.approx(exact, abs=0.01), estimator


def test_score_lands_on_the_final_real_token_and_kl_on_every_real_token():
    assert last_real_index(MASK).tolist() == [2, 1]
    kl = torch.tensor([[0.1, 0.2, 0.3, 9.0], [0.4, 0.5, 9.0, 9.0]])
    rewards = shaped_rewards(torch.tensor([1.0, -2.0]), kl, MASK, kl_coef=0.5)
    expected = torch.tensor([[-0.05, -0.1, -0.15 + 1.0, 0.0], [-0.2, -0.25 - 2.0, 0.0, 0.0]])
    torch.testing.assert_close(rewards, expected)


def _gae_one_sequence(rewards: list[float], values: list[float], gamma: float, lam: float) -> list[float]:
    """GAE by its definition A_t = Σ_l (γλ)^l δ_{t+l}, with V after the last token = 0 (no recursion)."""
    deltas = [rewards[t] + gamma * (values[t + 1] if t + 1 < len(values) else 0.0) - values[t]
              for t in range(len(rewards))]
    return [sum((gamma * lam) ** k * deltas[t + k] for k in range(len(deltas) - t)) for t in range(len(deltas))]


def test_gae_matches_the_definition_per_sequence_and_ignores_padding():
    generator = torch.Generator().manual_seed(1)
    rewards = torch.randn(2, 4, generator=generator)
    values = torch.randn(2, 4, generator=generator)
    for gamma, lam in ((1.0, 0.95), (0.9, 0.5), (0.99, 1.0), (1.0, 0.0)):
        advantages, returns = generalized_advantages(rewards, values, MASK, gamma, lam)
        for row, length in enumerate(MASK.sum(1).tolist()):
            expected = _gae_one_sequence(rewards[row, :length].tolist(), values[row, :length].tolist(), gamma, lam)
            torch.testing.assert_close(advantages[row, :length], torch.tensor(expected))
            assert advantages[row, length:].abs().sum() == 0 and returns[row, length:].abs().sum() == 0
        torch.testing.assert_close(returns, (advantages + values) * MASK)
    # hand example, γ = 1, λ = 1: advantage = return-to-go − value
    advantages, _ = generalized_advantages(torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([[0.5, 0.2, 0.1]]),
                                           torch.ones(1, 3), 1.0, 1.0)
    torch.testing.assert_close(advantages, torch.tensor([[0.5, 0.8, 0.9]]))


def test_clipped_policy_loss_hand_values_and_clipping():
    old = torch.zeros(1, 4)
    new = torch.tensor([[math.log(1.5), math.log(0.5), math.log(1.1), 5.0]], requires_grad=True)
    advantages = torch.tensor([[1.0, -1.0, 2.0, 7.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    out = clipped_policy_loss(new, old, advantages, mask, clip_range=0.2)
    # token 0: A>0, ρ=1.5 → clipped to 1.2; token 1: A<0, ρ=0.5 → clipped to 0.8; token 2: inside the clip
    assert out.loss.item() == pytest.approx((-1.2 + 0.8 - 2.2) / 3)
    assert out.clip_fraction == pytest.approx(2 / 3)
    assert out.approx_kl == pytest.approx(0.5 * (math.log(1.5) ** 2 + math.log(0.5) ** 2 + math.log(1.1) ** 2) / 3)
    out.loss.backward()
    assert new.grad[0, 0] == 0 and new.grad[0, 1] == 0 and new.grad[0, 3] == 0  # clipped or padding: no push
    assert new.grad[0, 2].item() == pytest.approx(-2.0 * 1.1 / 3)


def test_clipped_value_loss_hand_values():
    old = torch.tensor([[0.0, 0.0, 0.0]])
    new = torch.tensor([[1.0, 0.1, -1.0]])
    returns = torch.tensor([[2.0, 0.0, 0.0]])
    loss, clip_fraction = clipped_value_loss(new, old, returns, torch.tensor([[1, 1, 0]]), clip_range=0.2)
    # token 0: unclipped (1−2)² = 1, clipped (0.2−2)² = 3.24 → 3.24; token 1: 0.01 both ways
    assert loss.item() == pytest.approx(0.5 * (3.24 + 0.01) / 2)
    assert clip_fraction == pytest.approx(0.5)


def test_entropy_matches_trl_and_the_definition():
    from trl.trainer.utils import entropy_from_logits as trl_entropy

    logits = torch.randn(3, 5, 11, generator=torch.Generator().manual_seed(4))
    probs = logits.softmax(-1)
    torch.testing.assert_close(entropy_from_logits(logits), -(probs * probs.log()).sum(-1))
    torch.testing.assert_close(entropy_from_logits(logits), trl_entropy(logits))
    assert entropy_from_logits(torch.zeros(7)).item() == pytest.approx(math.log(7))


def test_kl_controllers():
    fixed = FixedKLController(0.05)
    fixed.update(10.0, 64)
    assert fixed.value == 0.05
    adaptive = AdaptiveKLController(0.1, target=6.0, horizon=10_000)
    adaptive.update(9.0, 100)  # KL/target − 1 = 0.5, clipped to 0.2
    assert adaptive.value == pytest.approx(0.1 * (1 + 0.2 * 100 / 10_000))
    adaptive.update(5.4, 1000)  # −0.1, within the clip
    assert adaptive.value == pytest.approx(0.1 * 1.002 * (1 - 0.1 * 0.1))
    with pytest.raises(ValueError):
        AdaptiveKLController(0.1, target=0.0, horizon=10)
