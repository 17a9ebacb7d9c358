"""Sequence classification on top of either family: what a model "understands" of a whole text.

- BERT reads the pooled [CLS] vector (the first position, through the pooler), as in the paper.
- A decoder (GPT/LLaMA) can only summarise a text at its *last* real token, the one that has seen all
  the others through the causal mask; the LM head is dropped and a linear head (no bias, like
  transformers' `score`) reads that position. "Last real token" comes from the attention mask, so right
  and left padding both work.

Saved as `model.safetensors` (backbone + head) and `classifier_config.json` = {"family", "config", "labels"}.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from lm2llm.errors import UserError
from lm2llm.models import Bert, Transformer, family_of
from lm2llm.models.io import load_weights, save_with_backbone, saved_backbone
from lm2llm.models.padding import at_last_real_token

WEIGHTS = "model.safetensors"
CONFIG = "classifier_config.json"


class SequenceClassifier(nn.Module):
    def __init__(self, backbone: nn.Module, labels: list[str], dropout: float = 0.0):
        super().__init__()
        if not isinstance(backbone, (Bert, Transformer)):
            raise UserError(f"classification needs a bert, gpt or llama model, not {family_of(backbone)}", where="model")
        if len(labels) < 2:
            raise UserError(f"classification needs at least two labels, got {labels}", where="labels")
        d_model = backbone.config.d_model
        if isinstance(backbone, Transformer):
            backbone.lm_head = nn.Identity()  # the decoder now returns its final (normalised) hidden states
        self.backbone = backbone
        self.labels = list(labels)
        self.dropout = dropout
        self.head = nn.Linear(d_model, len(labels), bias=isinstance(backbone, Bert))
        nn.init.normal_(self.head.weight, std=0.02)
        if self.head.bias is not None:
            nn.init.zeros_(self.head.bias)

    @property
    def config(self):
        return self.backbone.config

    @property
    def family(self) -> str:
        return family_of(self.backbone)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def features(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """One vector per text (B, d_model): BERT's pooled [CLS], or a decoder's last real token."""
        if attention_mask is None:
            attention_mask = torch.ones_like(ids)
        if isinstance(self.backbone, Bert):
            return self.backbone.pooled(ids, attention_mask)
        hidden, _ = self.backbone(ids, attention_mask=attention_mask)
        return at_last_real_token(hidden, attention_mask)

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Class logits (B, n_labels)."""
        x = nn.functional.dropout(self.features(ids, attention_mask), self.dropout, self.training)
        return self.head(x)


def save_classifier(model: SequenceClassifier, directory: str | os.PathLike) -> Path:
    return save_with_backbone(model, model.backbone, directory, WEIGHTS, CONFIG, labels=model.labels)


def is_classifier_dir(directory: str | os.PathLike) -> bool:
    return (Path(directory) / CONFIG).is_file()


def load_classifier(directory: str | os.PathLike, device: str | torch.device = "cpu") -> SequenceClassifier:
    src = Path(directory)
    backbone, meta = saved_backbone(src, CONFIG, WEIGHTS, hint="train one with `lm2llm classify train`",
                                    extra=("labels",))
    return load_weights(SequenceClassifier(backbone, meta["labels"]), src / WEIGHTS, device).eval()
