"""Trainer objectives for preference learning: the reward model (Bradley–Terry) and DPO / IPO.

Both follow `lm2llm.training`'s objective protocol: `weight(batch)` is the number of pairs and
`loss_sum(model, batch)` the summed per-pair loss, so the Trainer's step is the mean over the global batch
whatever the micro-batching. The models are called through their plain forward (never a helper method),
so a DDP- or compile-wrapped model works too.

DPO's reference log-probs are computed once, before training, and ride along in every batch
(`ref_chosen_logps`, `ref_rejected_logps`), as TRL's `precompute_ref_log_probs` does: the frozen
reference never needs to be in memory during training.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lm2llm.align.losses import (
    DPOOutput,
    bradley_terry_losses,
    dpo_loss,
    pairwise_accuracy,
    sequence_logprobs,
)
from lm2llm.align.pairs import Batch, EncodedPair, both_sides, collate
from lm2llm.models.padding import at_last_real_token


def pair_scores(model: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw reward-model outputs at each side's last real token: (chosen, rejected), each (B,)."""
    ids, attention, _ = both_sides(batch)
    return at_last_real_token(model(ids, attention), attention).chunk(2)


def pair_logprobs(model: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed completion log-probs of the chosen and rejected answers under `model`, each (B,)."""
    ids, attention, completion = both_sides(batch)
    logits, _ = model(ids, attention_mask=attention)
    return sequence_logprobs(logits, ids, completion).chunk(2)


def pair_metrics(loss: float, weight: int, utf8_bytes: int) -> dict[str, float]:
    """A pairwise loss has no perplexity or bits per byte: evaluation reports the mean loss per pair."""
    return {"val_loss": loss}


class RewardObjective:
    """−log σ(r_chosen − r_rejected − margin), summed over pairs."""

    name = "reward"

    def __init__(self, margin: float = 0.0):
        self.margin = margin

    def weight(self, batch: Batch) -> int:
        return int(batch["chosen_ids"].shape[0])

    def loss_sum(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        chosen, rejected = pair_scores(model, batch)
        return bradley_terry_losses(chosen.float(), rejected.float(), self.margin).sum()

    eval_metrics = staticmethod(pair_metrics)


class DPOObjective:
    """DPO (`loss_type="sigmoid"`) or IPO (`"ipo"`) against precomputed reference log-probs."""

    name = "dpo"

    def __init__(self, beta: float = 0.1, loss_type: str = "sigmoid"):
        self.beta, self.loss_type = beta, loss_type

    def weight(self, batch: Batch) -> int:
        return int(batch["chosen_ids"].shape[0])

    def output(self, model: nn.Module, batch: Batch) -> DPOOutput:
        chosen, rejected = pair_logprobs(model, batch)
        return dpo_loss(chosen.float(), rejected.float(), batch["ref_chosen_logps"], batch["ref_rejected_logps"],
                        beta=self.beta, loss_type=self.loss_type,
                        chosen_lengths=batch["chosen_completion"].sum(-1),
                        rejected_lengths=batch["rejected_completion"].sum(-1))

    def loss_sum(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return self.output(model, batch).losses.sum()

    eval_metrics = staticmethod(pair_metrics)


@torch.no_grad()
def reference_logprobs(reference: nn.Module, pairs: Sequence[EncodedPair], pad_id: int,
                       batch_size: int = 16) -> dict[str, torch.Tensor]:
    """The frozen reference's summed completion log-probs for every pair (computed once, in eval mode)."""
    was_training = reference.training
    reference.eval()
    chosen, rejected = [], []
    for start in range(0, len(pairs), batch_size):
        c, r = pair_logprobs(reference, collate(pairs[start:start + batch_size], pad_id))
        chosen.append(c.float())
        rejected.append(r.float())
    reference.train(was_training)
    return {"ref_chosen_logps": torch.cat(chosen), "ref_rejected_logps": torch.cat(rejected)}


@torch.no_grad()
def evaluate_reward_model(model: nn.Module, batches: Sequence[Batch], margin: float = 0.0) -> dict[str, float]:
    """Held-out Bradley–Terry loss, pairwise accuracy and mean margin of a reward model."""
    model.eval()
    chosen, rejected = zip(*(pair_scores(model, b) for b in batches), strict=True)
    chosen, rejected = torch.cat(chosen).float(), torch.cat(rejected).float()
    return {"loss": bradley_terry_losses(chosen, rejected, margin).mean().item(),
            "accuracy": pairwise_accuracy(chosen, rejected),
            "margin": (chosen - rejected).mean().item(), "pairs": chosen.numel()}


@torch.no_grad()
def evaluate_dpo(model: nn.Module, batches: Sequence[Batch], objective: DPOObjective) -> dict[str, float]:
    """Held-out DPO loss, implicit-reward accuracy and margins."""
    model.eval()
    outputs = [objective.output(model, b) for b in batches]
    merged = DPOOutput(torch.cat([o.losses for o in outputs]), torch.cat([o.chosen_rewards for o in outputs]),
                       torch.cat([o.rejected_rewards for o in outputs]))
    return merged.stats() | {"pairs": merged.losses.numel()}
