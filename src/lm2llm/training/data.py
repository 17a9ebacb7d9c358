"""Batches for causal-LM training from token shards, with a state that makes resuming exact.

Each step draws the *global* batch (all processes, all micro-batches) from one seeded generator, and each
process keeps its slice. So the data a step sees does not depend on how many processes or micro-batches
split it, and the loader's whole state is that generator's state. Evaluation uses a fixed set of
validation windows (drawn once from its own seed), so successive val losses are comparable.
"""

from __future__ import annotations

from typing import Protocol

import torch

from lm2llm.data.shards import TokenShards
from lm2llm.tokenizer import Tokenizer
from lm2llm.training.objectives import Batch


class BatchSource(Protocol):
    """What the Trainer reads batches from: SFT, preference and classification data provide the same."""

    block_size: int
    eval_bytes: int

    def next_batch(self) -> Batch: ...

    def eval_set(self) -> list[Batch]: ...

    def state_tensors(self) -> dict[str, torch.Tensor]: ...

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None: ...


class ShardBatches:
    def __init__(self, shards: TokenShards, *, block_size: int, batch_size: int, seed: int,
                 eval_batches: int, eval_batch_size: int | None = None, tokenizer: Tokenizer | None = None):
        self.shards = shards
        self.block_size = block_size
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self._eval_seed = seed + 1
        self._eval_count = eval_batches
        self._eval_batch_size = eval_batch_size or batch_size
        self._tokenizer = tokenizer
        self._eval: list[Batch] | None = None
        self.eval_bytes = 0  # UTF-8 bytes the evaluated target tokens decode to (for bits per byte)

    def next_batch(self) -> Batch:
        ids, targets = self.shards.random_batch("train", self.batch_size, self.block_size, self.generator)
        return {"ids": ids, "targets": targets}

    def eval_set(self) -> list[Batch]:
        if self._eval is None:
            gen = torch.Generator().manual_seed(self._eval_seed)
            self._eval = []
            for _ in range(self._eval_count):
                ids, targets = self.shards.random_batch("val", self._eval_batch_size, self.block_size, gen)
                self._eval.append({"ids": ids, "targets": targets})
            if self._tokenizer is not None:
                self.eval_bytes = sum(len(self._tokenizer.decode(row.tolist()).encode("utf-8"))
                                      for batch in self._eval for row in batch["targets"])
        return self._eval

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {"data.generator": self.generator.get_state()}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.generator.set_state(tensors["data.generator"])
