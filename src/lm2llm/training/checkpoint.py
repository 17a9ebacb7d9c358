"""Checkpoints a run can resume from exactly, written so that a kill at any moment loses nothing good.

`checkpoint/` holds the model (`model.safetensors`, plus `model_config.json` when the model is one of
ours), `optimizer.safetensors` (Adam moments and step counts), `state.safetensors` (torch RNG states and
the data generator) and `trainer_state.json` (step, optimizer hyper-parameters, Python/NumPy RNG, mixed-
precision scaler), written last. Tensors go through safetensors and the rest through JSON: nothing is
unpickled on load.

A new checkpoint is built in a temporary sibling directory; only when it is complete does it take the
place of `checkpoint/` (old one renamed aside, new one renamed in, old one removed). A kill before the
swap leaves the previous checkpoint in place; a kill inside the swap leaves it under `.checkpoint.old`,
which `find_checkpoint` falls back to.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from lm2llm.errors import UserError
from lm2llm.runs import atomic_save, atomic_write_json, read_json

NAME = "checkpoint"
OLD = ".checkpoint.old"
STATE_FILE = "trainer_state.json"
WeightsWriter = Callable[[nn.Module, Path], Any]


def optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split `optimizer.state_dict()` into tensors (for safetensors) and plain values (for JSON)."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, dict[str, Any]] = {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                plain.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "plain_state": plain}


def load_optimizer_state(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                         meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    for index, values in meta["plain_state"].items():
        state.setdefault(int(index), {}).update(values)
    groups = [{**g, "betas": tuple(g["betas"])} if "betas" in g else g for g in meta["param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    python_state = random.getstate()
    plain = {
        "python": [python_state[0], list(python_state[1]), python_state[2]],
        "numpy": [kind, keys.tolist(), pos, has_gauss, gauss],
    }
    return tensors, plain


def set_rng_state(tensors: dict[str, torch.Tensor], plain: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    version, internal, gauss = plain["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = plain["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))


def save_weights(model: nn.Module, directory: Path) -> None:
    """Weights of any module (tied tensors stored once); lm2llm models use `lm2llm.models.save_model`."""
    from safetensors.torch import save_model

    atomic_save(directory / "model.safetensors", lambda tmp: save_model(model, str(tmp)))


def load_checkpoint_weights(model: nn.Module, directory: Path) -> None:
    """A checkpoint's weights into `model` (any module, as `save_weights` wrote them); a UserError on a mismatch."""
    from safetensors.torch import load_model

    missing, unexpected = load_model(model, str(directory / "model.safetensors"), strict=False)
    if missing or unexpected:
        raise UserError(f"checkpoint weights do not fit the model (missing {sorted(missing)[:3]}, "
                        f"unexpected {sorted(unexpected)[:3]})", where=str(directory))


def begin_checkpoint(run_path: Path) -> Path:
    """A fresh temporary sibling of `checkpoint/` to build the next one in (stale ones of killed writers removed)."""
    for stale in run_path.glob(f".{NAME}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f".{NAME}.tmp-", dir=run_path))


def finish_checkpoint(tmp: Path, run_path: Path, extra_tensors: dict[str, torch.Tensor],
                      state: dict[str, Any]) -> Path:
    """Add the RNG/data tensors and the state file (last: it marks completeness), then swap `tmp` into place."""
    rng_tensors, rng_plain = rng_state()
    tensors = {**rng_tensors, **extra_tensors}
    atomic_save(tmp / "state.safetensors", lambda p: save_file(tensors, str(p)))
    atomic_write_json(tmp / STATE_FILE, {**state, "rng": rng_plain})
    final, old = run_path / NAME, run_path / OLD
    if old.exists() and final.exists():
        shutil.rmtree(old)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def write_checkpoint(run_path: Path, *, model: nn.Module, write_weights: WeightsWriter,
                     optimizer: torch.optim.Optimizer, extra_tensors: dict[str, torch.Tensor],
                     state: dict[str, Any]) -> Path:
    """Build the checkpoint in a temporary directory, then swap it in place of `checkpoint/`."""
    tmp = begin_checkpoint(run_path)
    try:
        write_weights(model, tmp)
        opt_tensors, opt_plain = optimizer_state(optimizer)
        atomic_save(tmp / "optimizer.safetensors", lambda p: save_file(opt_tensors, str(p)))
        return finish_checkpoint(tmp, run_path, extra_tensors, {**state, "optimizer": opt_plain})
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def find_checkpoint(run_path: Path) -> Path | None:
    """The newest complete checkpoint of a run (its state file is written last, so it marks completeness)."""
    for candidate in (run_path / NAME, run_path / OLD):
        if (candidate / STATE_FILE).is_file():
            return candidate
    return None


def read_state(directory: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(trainer state, RNG/data tensors) of a checkpoint directory."""
    return read_json(directory / STATE_FILE), load_file(str(directory / "state.safetensors"))


def read_checkpoint(directory: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(trainer state, optimizer tensors, RNG/data tensors) of a checkpoint directory."""
    state, tensors = read_state(directory)
    return state, load_file(str(directory / "optimizer.safetensors")), tensors
