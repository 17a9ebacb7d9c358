"""Saving and loading models: `model.safetensors` (weights, no pickle) + `model_config.json`.

`model_config.json` is {"family": ..., "config": {...}}: enough to rebuild the exact architecture. Both
files are written atomically, so a reader sees the old model or the new one, never half of one.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

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


def save_with_backbone(model: nn.Module, backbone: nn.Module, directory: str | os.PathLike, weights: str,
                       config: str, **extra: Any) -> Path:
    """A model built around a backbone (a classifier, a reward model): all its weights in `weights`, and in
    `config` the backbone's {"family", "config"} with `extra` fields, enough to rebuild it."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.detach().contiguous() for name, t in model.state_dict().items()}
    atomic_save(out / weights, lambda tmp: safetensors.torch.save_file(tensors, str(tmp)))
    atomic_write_json(out / config, {"family": family_of(backbone), "config": dataclasses.asdict(backbone.config),
                                     **extra})
    return out


def saved_backbone(src: Path, config: str, weights: str, hint: str, extra: tuple[str, ...] = ()
                   ) -> tuple[nn.Module, dict]:
    """A freshly built model of the architecture recorded in `src / config` ({"family", "config", *extra}),
    and that record, once the weights file is known to exist (`hint` says how to make one)."""
    meta = read_json(src / config)
    if not isinstance(meta, dict) or not {"family", *extra} <= meta.keys() or not isinstance(meta.get("config"), dict):
        fields = ", ".join(['"family": ...', '"config": {...}', *(f'"{key}": ...' for key in extra)])
        raise UserError(f"expected {{{fields}}}", where=str(src / config))
    if not (src / weights).is_file():
        raise UserError("file not found", where=str(src / weights), hint=hint)
    return model_from_config(config_for(meta["family"], **meta["config"])), meta


def load_weights(model: nn.Module, path: Path, device: str | torch.device = "cpu") -> nn.Module:
    """Load `path` into `model` strictly (every tensor must match) and move it to `device`."""
    try:
        safetensors.torch.load_model(model, str(path), strict=True, device=str(device))
    except RuntimeError as exc:
        raise UserError(f"weights do not match the config: {str(exc).splitlines()[0]}", where=str(path)) from exc
    return model.to(device)


def load_model(directory: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model saved in `directory` and load its weights (strictly: every tensor must match)."""
    src = Path(directory)
    model, _ = saved_backbone(src, CONFIG, WEIGHTS, hint="save the model with save_model")
    return load_weights(model, src / WEIGHTS, device)
