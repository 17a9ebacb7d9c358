"""Objectives: what the loss is. The Trainer owns the loop; an objective only turns a batch into a loss.

A batch is a dict of tensors whose first dimension is the example (so the Trainer can split it across
processes and micro-batches without knowing what it holds). An objective gives

- `weight(batch)`: how many units the loss averages over (target tokens, examples, preference pairs),
  known *before* the forward pass, and
- `loss_sum(model, batch)`: the loss summed over those units.

The Trainer divides the summed losses of all micro-batches on all processes by their total weight, so
one optimizer step sees exactly the mean over the global batch whatever the accumulation count or the
number of processes (averaging per micro-batch instead over-weights short micro-batches when masks
differ). Masked-LM, classification, reward-model (pairwise) and DPO objectives are further small classes
with these two methods; supervised fine-tuning is `CausalLM` on targets whose prompt positions are
`IGNORE_INDEX`.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from lm2llm.errors import UserError

IGNORE_INDEX = -100  # a target position that does not count (prompt tokens in SFT, padding)

Batch = dict[str, torch.Tensor]


class Objective(Protocol):
    name: str

    def weight(self, batch: Batch) -> int: ...

    def loss_sum(self, model: nn.Module, batch: Batch) -> torch.Tensor: ...

    def eval_metrics(self, loss: float, weight: int, utf8_bytes: int) -> dict[str, float]:
        """What an evaluation reports from the mean validation loss (accuracy-style objectives add theirs)."""
        ...


class CausalLM:
    """Next-token prediction: cross-entropy of `targets` (ids shifted by one) given `ids`."""

    name = "causal_lm"

    def weight(self, batch: Batch) -> int:
        return int((batch["targets"] != IGNORE_INDEX).sum())

    def loss_sum(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        logits, _ = model(batch["ids"])
        return F.cross_entropy(logits.float().flatten(0, 1), batch["targets"].flatten(),
                               ignore_index=IGNORE_INDEX, reduction="sum")

    def eval_metrics(self, loss: float, weight: int, utf8_bytes: int) -> dict[str, float]:
        return lm_metrics(loss, weight, utf8_bytes)


class MaskedLM(CausalLM):
    """BERT's masked-LM loss: the same cross-entropy, on inputs where `training.masking` hid 15 % of the
    tokens and `targets` holds the hidden originals (−100 everywhere else)."""

    name = "masked_lm"

    def eval_metrics(self, loss: float, weight: int, utf8_bytes: int) -> dict[str, float]:
        """Loss and perplexity over the hidden tokens; bits per byte is a next-token measure, left out."""
        return {"val_loss": loss, "val_ppl": math.exp(min(loss, 50.0))}


class SequenceClassification:
    """One label per text: cross-entropy of the classifier's logits; the weight is the number of texts."""

    name = "classification"

    def weight(self, batch: Batch) -> int:
        return int(batch["labels"].numel())

    def loss_sum(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        logits = model(batch["ids"], batch["attention_mask"])
        return F.cross_entropy(logits.float(), batch["labels"], reduction="sum")

    def eval_metrics(self, loss: float, weight: int, utf8_bytes: int) -> dict[str, float]:
        return {"val_loss": loss}  # accuracy and F1 need predictions: `classify.train.evaluate_classifier`


OBJECTIVES: dict[str, type] = {"causal_lm": CausalLM, "masked_lm": MaskedLM, "classification": SequenceClassification}


def make_objective(name: str) -> Objective:
    if name not in OBJECTIVES:
        raise UserError(f"unknown objective {name!r}", where="objective", hint=f"choose from {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name]()


def lm_metrics(loss: float, tokens: int, utf8_bytes: int) -> dict[str, float]:
    """Per-token loss (nats) → perplexity and bits per byte; bpb compares models with different tokenizers."""
    return {
        "val_loss": loss,
        "val_ppl": math.exp(min(loss, 50.0)),
        "val_bpb": loss * tokens / (math.log(2) * utf8_bytes) if utf8_bytes else float("nan"),
    }
