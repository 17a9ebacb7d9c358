"""FSDP2 for models that do not fit one device, and checkpoints that any number of processes can resume.

With `--set fsdp=true` under `torchrun --nproc_per_node=N`, PyTorch's `fully_shard` splits every
parameter, its gradient and its AdamW moments into N pieces, one per process: each repeated layer (the
entries of an `nn.ModuleList`: transformer blocks, BERT layers) is one unit, gathered whole just before its
forward and backward and freed after; the rest (embeddings, a tied head, the final norm) is the root unit.
A device then holds about 1/N of the model plus one layer at a time. Gradients are averaged over processes
by a reduce-scatter, as DDP's all-reduce does, so the trainer's loss scaling is the same for both.

Checkpoints go through `torch.distributed.checkpoint` (DCP): every process writes its own pieces into
`checkpoint/dcp/` (with a shared file system across nodes), and the metadata lets a run with another
process count, one process included, read back exactly the pieces it owns. Without torchrun the model stays
whole, but its checkpoints are still DCP, so a run can move between process counts in both directions.
"""

from __future__ import annotations

import contextlib
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from lm2llm.training import checkpoint as ckpt
from lm2llm.training.distributed import World

DCP_DIR = "dcp"
# torch.distributed.checkpoint is imported where it is used: importing it costs 0.7 s, and every process that
# trains (the tour's one-thread workers, each `lm2llm train`) imports this module, most never to shard


def shard_model(model: nn.Module, world: World, device: torch.device) -> nn.Module:
    """Shard `model` in place over the processes of `world` (each repeated layer, then the root); one process: as is."""
    if not world.distributed:
        return model
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(device.type, (world.size,))
    for layers in [m for m in model.modules() if isinstance(m, nn.ModuleList)]:
        for layer in layers:
            fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


@contextlib.contextmanager
def gradient_sync(model: nn.Module, enabled: bool) -> Iterator[None]:
    """FSDP2's `no_sync`: skip the reduce-scatter on all but the last micro-batch of a step."""
    if not hasattr(model, "set_requires_gradient_sync") or enabled:
        yield
        return
    model.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        model.set_requires_gradient_sync(True)


def full_model(model: nn.Module, world: World) -> nn.Module | None:
    """The whole model as one ordinary module on process 0's CPU (None on the others); every process must call
    it, since it gathers the shards. Unsharded models are returned as they are."""
    if not world.distributed:
        return model
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    from lm2llm.models.factory import model_from_config

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    state = get_model_state_dict(model, options=options)
    if not world.is_main:
        return None
    whole = model_from_config(model.config)
    whole.load_state_dict(state)
    return whole


def save_checkpoint(run_path: Path, *, model: nn.Module, optimizer: torch.optim.Optimizer, world: World,
                    extra_tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> Path:
    """Every process writes its pieces into a new checkpoint directory, which process 0 then swaps in."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    where: list[Any] = [str(ckpt.begin_checkpoint(run_path)) if world.is_main else None]
    if world.distributed:
        dist.broadcast_object_list(where, src=0)
    tmp = Path(where[0])
    try:
        model_state, optim_state = get_state_dict(model, optimizer)
        with _one_process_is_meant():
            dcp.save({"model": model_state, "optim": optim_state}, checkpoint_id=tmp / DCP_DIR)
        world.barrier()  # every piece is written before process 0 marks the checkpoint complete
        final = ckpt.finish_checkpoint(tmp, run_path, extra_tensors, state) if world.is_main else run_path / ckpt.NAME
    except BaseException:
        if world.is_main:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    world.barrier()  # nobody reads or writes the next checkpoint before this one is in place
    return final


@contextlib.contextmanager
def _one_process_is_meant() -> Iterator[None]:
    """DCP warns when no process group exists; here a one-process run is intended (its checkpoints stay DCP)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled", category=UserWarning)
        yield


def is_sharded_checkpoint(directory: Path) -> bool:
    return (directory / DCP_DIR).is_dir()


def load_checkpoint(directory: Path, *, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Model weights and optimizer state from a DCP checkpoint written by any number of processes."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    model_state, optim_state = get_state_dict(model, optimizer)
    state = {"model": model_state, "optim": optim_state}
    with _one_process_is_meant():
        dcp.load(state, checkpoint_id=directory / DCP_DIR)
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
