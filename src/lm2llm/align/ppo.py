"""PPO-based RLHF, the InstructGPT recipe, on token ids (the text layer lives in the CLI and the tour).

Four networks take part:

- the **policy** π_θ (starts as the SFT model) — trained;
- the **reference** π_ref (a frozen copy of the SFT model) — the KL anchor that keeps the policy's text fluent;
- the **reward model** r (frozen, `RewardModel.score`) — judges each finished response once;
- the **value model** V (a copy of the reward model, read at every position) — trained, PPO's critic.

One `step`:

1. *Rollout*: sample a response for each prompt with the inference engine at temperature T. A response
   ends after the end-of-turn token; one that never emits it is cut at `max_new_tokens` and its score is
   lowered by `missing_eot_penalty` (otherwise the reward model may rate a run-on answer well).
2. *Score*: log-probs of the sampled tokens under π_θ and π_ref (logits divided by T, the distribution the
   tokens really came from), values V, and the reward-model score at the final real token.
3. *Advantages*: per-token reward −β·KL (β fixed or adaptive), the score at the last token, GAE(γ, λ),
   advantages whitened over the batch (`ppo_math`).
4. *Optimise*: `ppo_epochs` passes over shuffled minibatches of the rollouts, each minimising the clipped
   policy loss + `vf_coef` × the clipped value loss. Dropout is off throughout (the models are in eval
   mode): with dropout on, the "old" and "new" log-probs of the ratio would differ by noise alone.

`step` returns the statistics the literature logs: mean score, KL to the reference, entropy, clip fraction,
approximate KL of the update, value loss, response length and end-of-turn rate.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from lm2llm.align.losses import token_logprobs
from lm2llm.align.ppo_math import (
    KL_ESTIMATORS,
    AdaptiveKLController,
    FixedKLController,
    clipped_policy_loss,
    clipped_value_loss,
    entropy_from_logits,
    generalized_advantages,
    kl_penalty,
    masked_mean,
    masked_whiten,
    shaped_rewards,
)
from lm2llm.align.reward_model import RewardModel
from lm2llm.errors import UserError
from lm2llm.inference.engine import generate_ids
from lm2llm.inference.sampling import SamplingConfig
from lm2llm.models.padding import pad


@dataclass
class PPOConfig:
    batch_size: int = 16          # rollouts per PPO step
    minibatch_size: int = 8       # rollouts per gradient step
    ppo_epochs: int = 4           # passes over each batch of rollouts
    lr: float = 1e-5
    temperature: float = 1.0
    max_new_tokens: int = 24
    kl_coef: float = 0.05         # β, the initial value when adaptive
    kl_target: float | None = None  # set to adapt β towards this KL per response (Ziegler et al.)
    kl_horizon: int = 10_000
    kl_estimator: str = "k1"
    gamma: float = 1.0
    lam: float = 0.95
    clip_range: float = 0.2
    clip_range_value: float = 0.2
    vf_coef: float = 0.1
    max_grad_norm: float = 1.0
    missing_eot_penalty: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        checks = [
            ("batch_size", self.batch_size >= 2, "must be >= 2 (advantages are whitened over the batch)"),
            ("minibatch_size", 1 <= self.minibatch_size <= self.batch_size, "must be in [1, batch_size]"),
            ("ppo_epochs", self.ppo_epochs >= 1, "must be >= 1"),
            ("lr", math.isfinite(self.lr) and self.lr > 0, "must be a finite number > 0"),
            ("temperature", self.temperature > 0, "must be > 0 (PPO needs a sampling distribution)"),
            ("max_new_tokens", self.max_new_tokens >= 1, "must be >= 1"),
            ("kl_coef", self.kl_coef >= 0, "must be >= 0"),
            ("kl_target", self.kl_target is None or self.kl_target > 0, "must be > 0 when set"),
            ("kl_estimator", self.kl_estimator in KL_ESTIMATORS, f"must be one of {', '.join(KL_ESTIMATORS)}"),
            ("gamma", 0 < self.gamma <= 1, "must be in (0, 1]"),
            ("lam", 0 <= self.lam <= 1, "must be in [0, 1]"),
            ("clip_range", self.clip_range > 0, "must be > 0"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise UserError(f"{rule}, got {getattr(self, name)!r}", where=name)


@dataclass
class Rollouts:
    """A batch of prompt+response sequences and everything PPO computes from them before optimising."""

    ids: torch.Tensor              # (B, P + R): left-padded prompt, right-padded response
    attention_mask: torch.Tensor   # (B, P + R)
    response_mask: torch.Tensor    # (B, R): 1 on response tokens, end-of-turn included
    prompt_len: int                # P
    logprobs: torch.Tensor         # (B, R) under the policy that sampled them
    values: torch.Tensor           # (B, R)
    advantages: torch.Tensor       # (B, R), whitened
    returns: torch.Tensor          # (B, R)
    scores: torch.Tensor           # (B,) reward-model score (after the missing end-of-turn penalty)
    kl: torch.Tensor               # (B, R) per-token KL estimate to the reference
    entropy: torch.Tensor          # (B, R) policy entropy at each sampled position
    ended: torch.Tensor            # (B,) bool: the response emitted end-of-turn


def pad_prompts_and_responses(prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]],
                              pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left-pad prompts and right-pad responses so every response starts at the same column P."""
    prompt_ids, prompt_mask = pad(prompts, pad_id, side="left")
    response_ids, response_mask = pad(responses, pad_id, length=max(1, max(len(r) for r in responses)))
    return (torch.cat([prompt_ids, response_ids], dim=1), torch.cat([prompt_mask, response_mask], dim=1),
            response_mask)


def response_logits(model: nn.Module, ids: torch.Tensor, attention_mask: torch.Tensor, prompt_len: int,
                    temperature: float) -> torch.Tensor:
    """Logits / T at the positions that predict the response tokens: (B, R, vocab)."""
    logits, _ = model(ids, attention_mask=attention_mask)
    return logits[:, prompt_len - 1:-1].float() / temperature


class PPOTrainer:
    """Holds the four networks, the optimiser and the KL controller; `step(prompts)` is one PPO iteration."""

    def __init__(self, policy: nn.Module, reward_model: RewardModel, config: PPOConfig, *,
                 end_of_turn_id: int, pad_id: int, value_model: RewardModel | None = None):
        self.config = config
        self.end_of_turn_id, self.pad_id = end_of_turn_id, pad_id
        self.policy = policy.eval()  # eval: dropout off, see the module docstring
        self.reference = copy.deepcopy(policy).eval().requires_grad_(False)
        self.reward_model = reward_model.eval().requires_grad_(False)
        # the critic starts as the reward model (InstructGPT), read at every position, unnormalised
        self.value_model = (value_model if value_model is not None else copy.deepcopy(reward_model)).eval()
        self.value_model.requires_grad_(True)
        parameters = [*self.policy.parameters(), *self.value_model.parameters()]
        self.optimizer = torch.optim.AdamW(parameters, lr=config.lr, eps=1e-5, weight_decay=0.0)
        self.kl_controller = (AdaptiveKLController(config.kl_coef, config.kl_target, config.kl_horizon)
                              if config.kl_target is not None else FixedKLController(config.kl_coef))
        self.steps_done = 0
        self.shuffle = random.Random(config.seed)

    def sampling_config(self) -> SamplingConfig:
        cfg = self.config
        return SamplingConfig(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                              seed=cfg.seed * 1_000_003 + self.steps_done)

    @torch.no_grad()
    def rollout(self, prompts: Sequence[Sequence[int]]) -> Rollouts:
        cfg = self.config
        completions = generate_ids(self.policy, prompts, self.sampling_config(), end_ids=[self.end_of_turn_id])
        ended = torch.tensor([c.finish_reason == "stop" for c in completions])
        responses = [c.token_ids + ([self.end_of_turn_id] if c.finish_reason == "stop" else [])
                     for c in completions]
        ids, attention_mask, response_mask = pad_prompts_and_responses(prompts, responses, self.pad_id)
        prompt_len = ids.shape[1] - response_mask.shape[1]
        targets = ids[:, prompt_len:]

        logits = response_logits(self.policy, ids, attention_mask, prompt_len, cfg.temperature)
        logprobs = token_logprobs(logits, targets)
        entropy = entropy_from_logits(logits)
        ref_logprobs = token_logprobs(
            response_logits(self.reference, ids, attention_mask, prompt_len, cfg.temperature), targets)
        values = self.value_model(ids, attention_mask)[:, prompt_len - 1:-1]
        scores = self.reward_model.score(ids, attention_mask) - cfg.missing_eot_penalty * (~ended).float()

        kl = kl_penalty(logprobs, ref_logprobs, cfg.kl_estimator) * response_mask
        rewards = shaped_rewards(scores, kl, response_mask, self.kl_controller.value)
        advantages, returns = generalized_advantages(rewards, values, response_mask, cfg.gamma, cfg.lam)
        advantages = masked_whiten(advantages, response_mask) * response_mask
        return Rollouts(ids, attention_mask, response_mask, prompt_len, logprobs, values * response_mask,
                        advantages, returns, scores, kl, entropy, ended)

    def optimise(self, batch: Rollouts) -> dict[str, float]:
        """`ppo_epochs` passes of clipped PPO updates over shuffled minibatches; mean statistics."""
        cfg = self.config
        size = batch.ids.shape[0]
        totals = {"policy_loss": 0.0, "value_loss": 0.0, "clip_fraction": 0.0, "value_clip_fraction": 0.0,
                  "approx_kl": 0.0}
        updates = 0
        for _ in range(cfg.ppo_epochs):
            order = list(range(size))
            self.shuffle.shuffle(order)
            for start in range(0, size, cfg.minibatch_size):
                rows = torch.tensor(order[start:start + cfg.minibatch_size])
                mask = batch.response_mask[rows]
                if mask.sum() == 0:
                    continue
                ids, attention = batch.ids[rows], batch.attention_mask[rows]
                logits = response_logits(self.policy, ids, attention, batch.prompt_len, cfg.temperature)
                logprobs = token_logprobs(logits, ids[:, batch.prompt_len:])
                policy = clipped_policy_loss(logprobs, batch.logprobs[rows], batch.advantages[rows], mask,
                                             cfg.clip_range)
                values = self.value_model(ids, attention)[:, batch.prompt_len - 1:-1]
                value_loss, value_clip = clipped_value_loss(values, batch.values[rows], batch.returns[rows], mask,
                                                            cfg.clip_range_value)
                loss = policy.loss + cfg.vf_coef * value_loss
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_([p for g in self.optimizer.param_groups for p in g["params"]],
                                         cfg.max_grad_norm)
                self.optimizer.step()
                for key, value in (("policy_loss", policy.loss.item()), ("value_loss", value_loss.item()),
                                   ("clip_fraction", policy.clip_fraction), ("value_clip_fraction", value_clip),
                                   ("approx_kl", policy.approx_kl)):
                    totals[key] += value
                updates += 1
        return {key: value / max(updates, 1) for key, value in totals.items()}

    def step(self, prompts: Sequence[Sequence[int]]) -> dict[str, float]:
        """One PPO iteration on `prompts` (a batch of token-id prompts ending with the assistant role)."""
        if len(prompts) < 2:
            raise UserError("PPO needs at least two prompts per step", where="prompts")
        batch = self.rollout(prompts)
        kl_per_response = batch.kl.sum(1).mean().item()
        kl_coef = self.kl_controller.value
        stats = self.optimise(batch)
        self.kl_controller.update(kl_per_response, len(prompts))
        self.steps_done += 1
        mask = batch.response_mask
        return {
            "step": self.steps_done,
            "score": batch.scores.mean().item(),
            "kl": kl_per_response,
            "kl_coef": kl_coef,
            "reward": (batch.scores - kl_coef * batch.kl.sum(1)).mean().item(),
            "entropy": masked_mean(batch.entropy, mask).item(),
            "response_length": mask.sum(1).float().mean().item(),
            "eot_rate": batch.ended.float().mean().item(),
            **stats,
        }
