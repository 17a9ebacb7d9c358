"""Knowledge distillation: a small student learns the teacher's whole next-token distribution.

A one-hot target says only which token came next; the teacher's probabilities also say which other
tokens were plausible and how much ("dark knowledge", Hinton et al. 2015). Dividing both models' logits
by a temperature T > 1 flattens them, so the small probabilities the student should learn from carry
weight. The gradient of a KL at temperature T shrinks as 1/T², so Hinton et al. multiply the soft loss by
T² to keep its size independent of T when it is mixed with the ordinary cross-entropy.

`generalized_jsd_loss` is the loss of on-policy distillation (GKD, Agarwal et al. 2024), written out and
equal to TRL's: with mixture M = β·P_teacher + (1−β)·P_student, JSD_β = β·KL(teacher‖M) + (1−β)·KL(student‖M);
β = 0 is the forward KL(teacher‖student) Hinton used, β = 1 the reverse KL(student‖teacher), which makes
the student pick one of the teacher's modes instead of spreading over all of them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lm2llm.training.objectives import IGNORE_INDEX, Batch, CausalLM


def kl(p_log: torch.Tensor, q_log: torch.Tensor) -> torch.Tensor:
    """KL(P‖Q) per position from log-probabilities: Σ p·(log p − log q)."""
    return (p_log.exp() * (p_log - q_log)).sum(dim=-1)


def generalized_jsd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                         labels: torch.Tensor | None = None, beta: float = 0.5, temperature: float = 1.0,
                         reduction: str = "batchmean") -> torch.Tensor:
    """Logits (B, T, V) → scalar. "batchmean": sum over positions divided by the positions kept (labels not
    −100), or by the batch size when no labels are given; "sum"; "mean": divided by positions × vocabulary.
    All three as TRL's `GKDTrainer` reduces them."""
    student = F.log_softmax(student_logits / temperature, dim=-1)
    teacher = F.log_softmax(teacher_logits / temperature, dim=-1)
    if beta == 0:
        per_position = kl(teacher, student)
    elif beta == 1:
        per_position = kl(student, teacher)
    else:
        mixture = torch.logsumexp(torch.stack([student + math.log1p(-beta), teacher + math.log(beta)]), dim=0)
        per_position = beta * kl(teacher, mixture) + (1 - beta) * kl(student, mixture)
    if labels is not None:
        per_position = per_position[labels != IGNORE_INDEX]
    if reduction == "sum":
        return per_position.sum()
    if reduction == "mean":  # TRL's: a mean over every (position, vocabulary entry) term
        return per_position.sum() / max(per_position.numel() * student_logits.shape[-1], 1)
    denominator = max(per_position.numel(), 1) if labels is not None else max(student_logits.shape[0], 1)
    return per_position.sum() / denominator


def hinton_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor,
                temperature: float = 2.0, soft_weight: float = 0.5) -> torch.Tensor:
    """soft_weight · T² · KL(teacher_T ‖ student_T) + (1 − soft_weight) · cross-entropy(targets), both as a
    mean over the tokens whose target is not −100."""
    soft = generalized_jsd_loss(student_logits, teacher_logits, targets, beta=0.0, temperature=temperature)
    hard = F.cross_entropy(student_logits.reshape(-1, student_logits.shape[-1]), targets.reshape(-1),
                           ignore_index=IGNORE_INDEX)
    return soft_weight * temperature ** 2 * soft + (1 - soft_weight) * hard


class Distillation(CausalLM):
    """The Trainer objective of a student learning from `teacher` (same tokenizer): `hinton_loss` on the
    target tokens while training; plain cross-entropy in eval mode, so validation loss and perplexity stay
    comparable with a student trained from the tokens alone."""

    name = "distillation"

    def __init__(self, teacher: nn.Module, temperature: float = 2.0, soft_weight: float = 0.5):
        self.teacher = teacher.eval()
        self.temperature, self.soft_weight = temperature, soft_weight

    def loss_sum(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        if not model.training:
            return super().loss_sum(model, batch)
        logits, _ = model(batch["ids"])
        with torch.no_grad():
            teacher_logits, _ = self.teacher(batch["ids"])
        mean = hinton_loss(logits.float(), teacher_logits.float(), batch["targets"], self.temperature, self.soft_weight)
        return mean * self.weight(batch)
