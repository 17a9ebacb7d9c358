"""The arithmetic of PPO-based RLHF (InstructGPT recipe), as pure functions on tensors.

Shapes: every per-token tensor is (batch, response_len) over the *response* tokens only, right-padded;
`mask` is 1 on real response tokens (up to and including the end-of-turn token) and 0 on padding.

The pieces, in the order one PPO step uses them:

1. Per-token KL to the frozen reference, from the sampled tokens' log-probs (Schulman's estimators,
   http://joschu.net/blog/kl-approx.html), with log r = log π_ref − log π_θ:
       k1 = log π_θ − log π_ref = −log r            (unbiased, can be negative per token; the default)
       k3 = (r − 1) − log r                          (unbiased and always ≥ 0, lower variance)
2. Reward per token: r_t = −β · KL_t, plus the reward model's score at the final real token.
3. GAE (Schulman et al. 2016): δ_t = r_t + γ V_{t+1} − V_t, A_t = δ_t + γλ A_{t+1}, returns R_t = A_t + V_t;
   the value after the last real token is 0 (the episode ends there).
4. Advantages whitened over the real tokens of the batch: (A − mean) / sqrt(var + 1e-8).
5. Clipped policy loss with ratio ρ = exp(log π_θ − log π_old):
       L_π = mean( max(−A ρ, −A clip(ρ, 1 − ε, 1 + ε)) )
   and clipped value loss  L_V = ½ mean( max((V − R)², (clip(V, V_old − ε_v, V_old + ε_v) − R)²) ).
6. Diagnostics: entropy, clip fractions, and approximate KL ½ mean((log π_θ − log π_old)²) between the
   policy before and after the update.
7. Adaptive KL coefficient (Ziegler et al. 2019): β ← β (1 + clip(KL/target − 1, ±0.2) · n / horizon).

Conventions follow TRL's PPO (masked_whiten with an unbiased variance, the clipping forms above), with
one deliberate difference: the score is added at the final real token, not one position after it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lm2llm.models.padding import last_real_index

KL_ESTIMATORS = ("k1", "k3")


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of `values` where `mask` is 1 (over everything, or along `dim`)."""
    mask = mask.to(values.dtype)
    if dim is None:
        return (values * mask).sum() / mask.sum()
    return (values * mask).sum(dim) / mask.sum(dim)


def masked_var(values: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance over masked entries; Bessel-corrected by default (needs at least two real entries)."""
    centred = values - masked_mean(values, mask)
    variance = masked_mean(centred**2, mask)
    if unbiased:
        count = mask.sum()
        if count < 2:
            raise ValueError("an unbiased variance needs at least two unmasked values")
        variance = variance * count / (count - 1)
    return variance


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """Scale to unit variance over masked entries; also centre to mean 0 unless `shift_mean` is False."""
    mean, variance = masked_mean(values, mask), masked_var(values, mask)
    whitened = (values - mean) * torch.rsqrt(variance + 1e-8)
    return whitened if shift_mean else whitened + mean


def kl_penalty(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str = "k1") -> torch.Tensor:
    """Per-token KL(π_θ ‖ π_ref) estimate from the sampled tokens' log-probs (see module docstring)."""
    if estimator not in KL_ESTIMATORS:
        raise ValueError(f"KL estimator must be one of {KL_ESTIMATORS}, got {estimator!r}")
    log_ratio = ref_logprobs - logprobs
    return -log_ratio if estimator == "k1" else log_ratio.exp() - 1 - log_ratio


def shaped_rewards(scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, kl_coef: float) -> torch.Tensor:
    """Per-token rewards: −kl_coef · KL on every real token, plus the sequence score on the last one."""
    rewards = -kl_coef * kl * mask.to(kl.dtype)
    rows = torch.arange(rewards.shape[0], device=rewards.device)
    rewards[rows, last_real_index(mask)] += scores.to(rewards.dtype)
    return rewards


def generalized_advantages(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor,
                           gamma: float = 1.0, lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE(γ, λ) over right-padded responses: returns (advantages, returns), both zero on padding."""
    mask = mask.to(values.dtype)
    rewards, values = rewards * mask, values * mask
    length = rewards.shape[1]
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(length)):
        next_value = values[:, t + 1] if t + 1 < length else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = (delta + gamma * lam * running) * mask[:, t]
        advantages[:, t] = running
    return advantages, (advantages + values) * mask


@dataclass
class PolicyLoss:
    loss: torch.Tensor        # scalar, differentiable
    clip_fraction: float      # share of real tokens where the clipped term was the active one
    approx_kl: float          # ½ mean((log π_θ − log π_old)²): how far this update moved the policy


def clipped_policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                        mask: torch.Tensor, clip_range: float = 0.2) -> PolicyLoss:
    """PPO's clipped surrogate objective, negated to a loss, averaged over real tokens."""
    log_ratio = logprobs - old_logprobs
    ratio = log_ratio.exp()
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip_range, 1.0 + clip_range)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        clip_fraction = masked_mean((clipped > unclipped).float(), mask).item()
        approx_kl = (0.5 * masked_mean(log_ratio**2, mask)).item()
    return PolicyLoss(loss, clip_fraction, approx_kl)


def clipped_value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
                       mask: torch.Tensor, clip_range: float = 0.2) -> tuple[torch.Tensor, float]:
    """½ mean(max((V − R)², (clip(V, V_old ± ε) − R)²)) over real tokens, and the clipped fraction."""
    clipped_values = torch.clamp(values, old_values - clip_range, old_values + clip_range)
    unclipped_loss = (values - returns) ** 2
    clipped_loss = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(unclipped_loss, clipped_loss), mask)
    with torch.no_grad():
        clip_fraction = masked_mean((clipped_loss > unclipped_loss).float(), mask).item()
    return loss, clip_fraction


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of softmax(logits) along the last dimension: logsumexp(z) − Σ p z."""
    logits = logits.float()
    return torch.logsumexp(logits, dim=-1) - (torch.softmax(logits, dim=-1) * logits).sum(-1)


class FixedKLController:
    """A constant KL coefficient β."""

    def __init__(self, kl_coef: float):
        self.value = kl_coef

    def update(self, current_kl: float, n_steps: int) -> None:
        """A fixed coefficient ignores the measured KL."""


class AdaptiveKLController:
    """Proportional controller that steers the measured KL towards `target` (Ziegler et al. 2019).

    β ← β · (1 + clip(KL / target − 1, −0.2, 0.2) · n_steps / horizon), where n_steps is the number of
    samples since the last update: a KL above target raises β (pulling the policy back), below lowers it.
    """

    def __init__(self, kl_coef: float, target: float, horizon: int):
        if target <= 0 or horizon <= 0:
            raise ValueError("the adaptive KL controller needs a positive target and horizon")
        self.value = kl_coef
        self.target = target
        self.horizon = horizon

    def update(self, current_kl: float, n_steps: int) -> None:
        proportional_error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + proportional_error * n_steps / self.horizon
