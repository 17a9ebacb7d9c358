"""Token shards: the only contract between data preparation and training (as in nanoGPT).

A shard directory holds `train.bin` and `val.bin` — flat arrays of token ids, uint16 when the
vocabulary fits, else uint32 — and `meta.json` (dtype, vocab_size, token counts, tokenizer, and whatever
the writer adds). Writing streams chunk by chunk, so a corpus larger than memory works; reading memory-maps.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from lm2llm.errors import UserError
from lm2llm.runs import atomic_write_json

SPLITS = ("train", "val")


def dtype_for(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.uint32)


class ShardWriter:
    """Append token ids to `<split>.bin` files; `close()` writes meta.json last (its presence marks completion)."""

    def __init__(self, directory: str | Path, vocab_size: int):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.vocab_size = vocab_size
        self.dtype = dtype_for(vocab_size)
        self.counts = dict.fromkeys(SPLITS, 0)
        self._files = {s: open(self.directory / f"{s}.bin", "wb") for s in SPLITS}

    def write(self, split: str, ids: Iterable[int] | np.ndarray) -> None:
        array = np.asarray(ids, dtype=np.int64)
        if array.size and (array.min() < 0 or array.max() >= self.vocab_size):
            raise ValueError(f"token id outside [0, {self.vocab_size})")
        self._files[split].write(array.astype(self.dtype).tobytes())
        self.counts[split] += int(array.size)

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        """On an error, release the files without meta.json, so the directory never looks complete."""
        if exc_type is not None:
            for handle in self._files.values():
                handle.close()

    def close(self, **meta: object) -> Path:
        for handle in self._files.values():
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
        record = {"dtype": self.dtype.name, "vocab_size": self.vocab_size, "tokens": self.counts, **meta}
        return atomic_write_json(self.directory / "meta.json", record)


class TokenShards:
    """Read a shard directory: random (x, y) windows for training, in-order windows for evaluation."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        meta_path = self.directory / "meta.json"
        if not meta_path.is_file():
            raise UserError("not a token-shard directory (no meta.json)", where=str(self.directory),
                            hint="create one with 'lm2llm data prepare'")
        self.meta = json.loads(meta_path.read_text(encoding="utf-8"))
        self.vocab_size = int(self.meta["vocab_size"])
        dtype = np.dtype(self.meta["dtype"])
        self.arrays = {}
        for split in SPLITS:
            path = self.directory / f"{split}.bin"
            self.arrays[split] = (
                np.memmap(path, dtype=dtype, mode="r") if path.stat().st_size else np.zeros(0, dtype=dtype)
            )

    def num_tokens(self, split: str) -> int:
        return int(self.arrays[split].shape[0])

    def _check(self, split: str, block_size: int) -> np.ndarray:
        data = self.arrays[split]
        if data.shape[0] < block_size + 1:
            raise UserError(
                f"the {split} split has {data.shape[0]} tokens, fewer than block_size + 1 = {block_size + 1}",
                where=str(self.directory), hint="use a shorter context or more data",
            )
        return data

    def random_batch(
        self, split: str, batch_size: int, block_size: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`batch_size` windows at random offsets; the same generator state gives the same batch."""
        data = self._check(split, block_size)
        starts = torch.randint(data.shape[0] - block_size, (batch_size,), generator=generator).tolist()
        rows = np.stack([data[s : s + block_size + 1].astype(np.int64) for s in starts])
        batch = torch.from_numpy(rows)
        return batch[:, :-1].contiguous(), batch[:, 1:].contiguous()

    def sequential_batches(
        self, split: str, batch_size: int, block_size: int, max_batches: int | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Non-overlapping windows in order, for evaluation that covers the split once."""
        data = self._check(split, block_size)
        n_windows = (data.shape[0] - 1) // block_size
        starts = [i * block_size for i in range(n_windows)]
        for b, i in enumerate(range(0, len(starts), batch_size)):
            if max_batches is not None and b >= max_batches:
                return
            rows = np.stack([data[s : s + block_size + 1].astype(np.int64) for s in starts[i : i + batch_size]])
            batch = torch.from_numpy(rows)
            yield batch[:, :-1].contiguous(), batch[:, 1:].contiguous()
