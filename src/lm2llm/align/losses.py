"""Preference losses: the Bradley–Terry reward-model loss, and DPO / IPO on summed completion log-probs.

All three turn a pairwise judgement "y_w is preferred to y_l given x" into a differentiable loss.

Reward model (Bradley–Terry, as in InstructGPT): the probability that y_w wins is σ(r(x, y_w) − r(x, y_l)),
so the negative log-likelihood of the human label is

    L_RM = −log σ(r_w − r_l − m)

with an optional margin m (Llama 2 uses a larger margin for clearer preferences).

DPO (Rafailov et al. 2023) skips the reward model: the optimal KL-regularised policy defines an implicit
reward r̂(x, y) = β (log π_θ(y|x) − log π_ref(y|x)), and plugging it into Bradley–Terry gives

    h     = β [(log π_θ(y_w|x) − log π_ref(y_w|x)) − (log π_θ(y_l|x) − log π_ref(y_l|x))]
    L_DPO = −log σ(h)

where log π(y|x) is the sum of the completion tokens' log-probabilities (prompt tokens excluded).

IPO (Azar et al. 2023) replaces the log-sigmoid by a squared loss that does not push h to infinity on
deterministic preferences. Following TRL (and the IPO authors' runs), the log-ratios are averaged per
completion token so β means the same for short and long answers:

    h̄     = (log-ratio_w / |y_w|) − (log-ratio_l / |y_l|)
    L_IPO = (h̄ − 1 / (2β))²
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

DPO_LOSS_TYPES = ("sigmoid", "ipo")


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log p(target_t) under softmax(logits_t / temperature), for every position: shape of `targets`.

    Dividing by the temperature matters in RLHF: the policy samples at temperature T, so the log-probs in
    the PPO ratio and the KL must be those of the distribution that actually produced the tokens.
    """
    logits = logits.float() / temperature
    return torch.gather(F.log_softmax(logits, dim=-1), -1, targets.unsqueeze(-1)).squeeze(-1)


def sequence_logprobs(logits: torch.Tensor, ids: torch.Tensor, completion_mask: torch.Tensor,
                      temperature: float = 1.0) -> torch.Tensor:
    """Sum of log p(ids_t | ids_<t) over completion positions: shape (batch,).

    `logits[:, t]` predicts `ids[:, t + 1]` (the usual causal-LM layout), and `completion_mask[:, t]` is 1
    where `ids[:, t]` belongs to the answer (0 for prompt and padding).
    """
    per_token = token_logprobs(logits[:, :-1], ids[:, 1:], temperature)
    return (per_token * completion_mask[:, 1:].to(per_token.dtype)).sum(-1)


def bradley_terry_losses(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor,
                         margin: torch.Tensor | float = 0.0) -> torch.Tensor:
    """−log σ(r_w − r_l − margin) for each pair."""
    return -F.logsigmoid(chosen_rewards - rejected_rewards - margin)



def pairwise_accuracy(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor) -> float:
    """Share of pairs whose chosen answer scores strictly higher (ties count as misses)."""
    return (chosen_rewards > rejected_rewards).float().mean().item()


@dataclass
class DPOOutput:
    """The loss to minimise and the per-pair statistics that show what DPO is doing."""

    losses: torch.Tensor            # per pair, differentiable, shape (batch,)
    chosen_rewards: torch.Tensor    # β (log π_θ(y_w) − log π_ref(y_w)), detached, shape (batch,)
    rejected_rewards: torch.Tensor  # β (log π_θ(y_l) − log π_ref(y_l)), detached

    @property
    def loss(self) -> torch.Tensor:
        """The mean over pairs: what a training step minimises."""
        return self.losses.mean()

    @property
    def margins(self) -> torch.Tensor:
        return self.chosen_rewards - self.rejected_rewards

    @property
    def accuracy(self) -> float:
        return pairwise_accuracy(self.chosen_rewards, self.rejected_rewards)

    def stats(self) -> dict[str, float]:
        return {
            "loss": self.loss.item(),
            "rewards_chosen": self.chosen_rewards.mean().item(),
            "rewards_rejected": self.rejected_rewards.mean().item(),
            "rewards_margin": self.margins.mean().item(),
            "rewards_accuracy": self.accuracy,
        }


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor,
             reference_chosen: torch.Tensor, reference_rejected: torch.Tensor, *,
             beta: float = 0.1, loss_type: str = "sigmoid",
             chosen_lengths: torch.Tensor | None = None,
             rejected_lengths: torch.Tensor | None = None) -> DPOOutput:
    """DPO (`loss_type="sigmoid"`) or IPO (`"ipo"`) from summed completion log-probs, each of shape (batch,).

    IPO needs the completion lengths (number of answer tokens) to average the log-ratios per token.
    """
    if loss_type not in DPO_LOSS_TYPES:
        raise ValueError(f"loss_type must be one of {DPO_LOSS_TYPES}, got {loss_type!r}")
    chosen_logratios = policy_chosen - reference_chosen
    rejected_logratios = policy_rejected - reference_rejected
    if loss_type == "sigmoid":
        per_pair = -F.logsigmoid(beta * (chosen_logratios - rejected_logratios))
    else:
        if chosen_lengths is None or rejected_lengths is None:
            raise ValueError("IPO averages log-ratios per token: pass chosen_lengths and rejected_lengths")
        delta = (chosen_logratios / chosen_lengths.clamp(min=1)
                 - rejected_logratios / rejected_lengths.clamp(min=1))
        per_pair = (delta - 1.0 / (2.0 * beta)) ** 2
    return DPOOutput(
        losses=per_pair,
        chosen_rewards=(beta * chosen_logratios).detach(),
        rejected_rewards=(beta * rejected_logratios).detach(),
    )
