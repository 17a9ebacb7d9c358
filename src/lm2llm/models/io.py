"""Saving and loading models: `model.safetensors` (weights, no pickle) + `model_config.json`.

`model_config.json` is {"family": ..., "config": {...}}: enough to rebuild the exact architecture. Both
files are written atomically, so a reader sees the old model or the new one, never half of one.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import safetensors.torch
import torch
from torch import nn

from lm2llm.errors import UserError
from lm2llm.models.factory import config_for, family_of, model_from_config
from lm2llm.runs import atomic_save, atomic_write_json, read_json

WEIGHTS = "model.safetensors"
CONFIG = "model_config.json"


def save_model(model: nn.Module, directory: str | os.PathLike) -> Path:
    """Write weights and config into `directory` (created if needed); tied weights are stored once."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    atomic_save(out / WEIGHTS, lambda tmp: safetensors.torch.save_model(model, str(tmp)))
    atomic_write_json(out / CONFIG, {"family": family_of(model), "config": dataclasses.asdict(model.config)})
    return out


def load_model(directory: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model saved in `directory` and load its weights (strictly: every tensor must match)."""
    src = Path(directory)
    meta = read_json(src / CONFIG)
    if not isinstance(meta, dict) or "family" not in meta or not isinstance(meta.get("config"), dict):
        raise UserError('expected {"family": ..., "config": {...}}', where=str(src / CONFIG))
    if not (src / WEIGHTS).is_file():
        raise UserError("file not found", where=str(src / WEIGHTS), hint="save the model with save_model")
    config = config_for(meta["family"], **meta["config"])
    model = model_from_config(config)
    try:
        safetensors.torch.load_model(model, str(src / WEIGHTS), strict=True, device=str(device))
    except RuntimeError as exc:
        raise UserError(f"weights do not match the config: {str(exc).splitlines()[0]}", where=str(src / WEIGHTS)) from exc
    return model.to(device)
