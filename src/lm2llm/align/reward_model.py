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

import dataclasses
import os
from pathlib import Path

import safetensors.torch
import torch
from torch import nn

from lm2llm.errors import UserError
from lm2llm.models import Transformer, config_for, family_of
from lm2llm.models.factory import model_from_config
from lm2llm.models.padding import at_last_real_token
from lm2llm.runs import atomic_save, atomic_write_json, read_json

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
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.detach().contiguous() for name, t in model.state_dict().items()}
    atomic_save(out / WEIGHTS, lambda tmp: safetensors.torch.save_file(tensors, str(tmp)))
    atomic_write_json(out / CONFIG, {"family": family_of(model.backbone),
                                     "config": dataclasses.asdict(model.backbone.config)})
    return out


def load_reward_model(directory: str | os.PathLike, device: str | torch.device = "cpu") -> RewardModel:
    src = Path(directory)
    meta = read_json(src / CONFIG)
    if not isinstance(meta, dict) or "family" not in meta or not isinstance(meta.get("config"), dict):
        raise UserError('expected {"family": ..., "config": {...}}', where=str(src / CONFIG))
    if not (src / WEIGHTS).is_file():
        raise UserError("file not found", where=str(src / WEIGHTS), hint="train one with `lm2llm reward`")
    model = RewardModel(model_from_config(config_for(meta["family"], **meta["config"])))
    try:
        model.load_state_dict(safetensors.torch.load_file(str(src / WEIGHTS)), strict=True)
    except RuntimeError as exc:
        raise UserError(f"weights do not match the config: {str(exc).splitlines()[0]}", where=str(src / WEIGHTS)) from exc
    return model.to(device)
