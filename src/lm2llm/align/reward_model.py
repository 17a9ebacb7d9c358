"""Reward model: a decoder-only transformer whose LM head is replaced by a scalar head.

The InstructGPT reward model starts from the SFT model, drops the vocabulary projection and reads one
number from the final hidden state of the last real token of `prompt + answer` (the answer's closing
end-of-turn token). "Last real token" comes from the attention mask, never from searching for a padding id,
so it stays right when padding and end-of-sequence share an id (a classic bug) and with left padding.

After training, rewards are normalised so that answers from a reference policy score mean 0 and standard
deviation 1 (Ziegler et al. 2019): the PPO KL coefficient then means the same thing whatever the scale
the Bradley–Terry loss happened to settle on (that loss only fixes reward differences, not an offset).

The same module, unnormalised and read at every position, is PPO's value model ("value head initialised
from the reward model").
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from lm2llm.errors import UserError
from lm2llm.models import Transformer, family_of
from lm2llm.models.io import load_weights, save_with_backbone, saved_backbone
from lm2llm.models.padding import at_last_real_token

WEIGHTS = "reward_model.safetensors"
CONFIG = "reward_model_config.json"


class RewardModel(nn.Module):
    """`backbone` (a `Transformer`, usually the SFT model) with a 1-unit head in place of its LM head."""

    def __init__(self, backbone: Transformer):
        super().__init__()
        if not isinstance(backbone, Transformer):
            raise UserError(f"a reward model needs a transformer backbone, got {family_of(backbone)}",
                            where="model", hint="start from an SFT run of a gpt or llama model")
        d_model = backbone.config.d_model
        head = nn.Linear(d_model, 1, bias=True)
        nn.init.normal_(head.weight, std=1.0 / (d_model + 1) ** 0.5)  # as in lm-human-preferences
        nn.init.zeros_(head.bias)
        backbone.lm_head = head  # unties it from the token embedding
        self.backbone = backbone
        # score = gain · raw + bias; set by `normalise` so reference answers score mean 0, std 1
        self.register_buffer("gain", torch.ones(()))
        self.register_buffer("bias", torch.zeros(()))

    @property
    def config(self):
        return self.backbone.config

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Raw (unnormalised) scalar output at every position: (batch, seq)."""
        values, _ = self.backbone(ids, attention_mask=attention_mask)
        return values.squeeze(-1)

    def score(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Normalised reward of each sequence, read at its last real token: (batch,)."""
        return self.gain * at_last_real_token(self(ids, attention_mask), attention_mask) + self.bias

    @torch.no_grad()
    def normalise(self, reference_scores: torch.Tensor) -> None:
        """Rescale so that `reference_scores` (current scores of reference answers) get mean 0, std 1."""
        if reference_scores.numel() < 2:
            raise UserError("need at least two reference answers to normalise rewards", where="reference samples")
        mean, std = reference_scores.mean(), reference_scores.std().clamp(min=1e-6)
        self.bias.copy_((self.bias - mean) / std)
        self.gain.copy_(self.gain / std)


def save_reward_model(model: RewardModel, directory: str | os.PathLike) -> Path:
    """`reward_model.safetensors` (backbone, head, normalisation) + `reward_model_config.json`."""
    return save_with_backbone(model, model.backbone, directory, WEIGHTS, CONFIG)


def load_reward_model(directory: str | os.PathLike, device: str | torch.device = "cpu") -> RewardModel:
    src = Path(directory)
    backbone, _ = saved_backbone(src, CONFIG, WEIGHTS, hint="train one with `lm2llm reward`")
    return load_weights(RewardModel(backbone), src / WEIGHTS, device)
