"""Process-group plumbing for `torchrun`: who am I, sum a tensor over processes, and nothing else.

`torchrun --nproc_per_node=N -m lm2llm train ...` sets RANK/WORLD_SIZE/LOCAL_RANK; without them this is
a one-process run and every helper here is a no-op. gloo serves CPUs, NCCL GPUs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class World:
    rank: int = 0
    local_rank: int = 0
    size: int = 1
    local_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def all_sum(self, value: torch.Tensor) -> torch.Tensor:
        if self.distributed:
            dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return value

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def init_world(device_type: str) -> World:
    """Join the process group torchrun prepared (if any) and return this process's place in it."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return World(rank=dist.get_rank(), local_rank=int(os.environ.get("LOCAL_RANK", "0")), size=size,
                 local_size=int(os.environ.get("LOCAL_WORLD_SIZE", str(size))))


def close_world(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()
