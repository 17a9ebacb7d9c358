"""Masked-LM data (BERT): which tokens to hide and what to put in their place.

Of the tokens that may be predicted (never a special token, never padding), 15 % are chosen (`rate`, as
in BERT; `BertConfig.mask_rate` may raise it). Each chosen token becomes a target; its input is replaced
by the mask token 80 % of the time, by a random ordinary token 10 % of the time and left unchanged 10 %
of the time, so the model cannot learn that only `<|mask|>` positions matter (the mask token never appears
when the model is used). The objective is then plain cross-entropy at the chosen positions
(`objectives.MaskedLM`).
"""

from __future__ import annotations

from collections.abc import Collection

import torch

from lm2llm.training.objectives import IGNORE_INDEX, Batch


def mask_tokens(ids: torch.Tensor, *, mask_id: int, vocab_size: int, special_ids: Collection[int],
                generator: torch.Generator, rate: float = 0.15,
                attention_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets) for BERT: targets hold the original id at chosen positions, −100 elsewhere."""
    special = torch.tensor(sorted(special_ids), dtype=ids.dtype)
    candidates = ~torch.isin(ids, special)
    if attention_mask is not None:
        candidates &= attention_mask.to(torch.bool)
    chosen = (torch.rand(ids.shape, generator=generator) < rate) & candidates
    if not chosen.any() and candidates.any():  # every batch must predict something (its weight is > 0)
        flat = candidates.flatten().nonzero().squeeze(1)
        pick = flat[torch.randint(len(flat), (1,), generator=generator)]
        chosen.view(-1)[pick] = True
    targets = torch.where(chosen, ids, torch.full_like(ids, IGNORE_INDEX))
    roll = torch.rand(ids.shape, generator=generator)
    excluded = set(special_ids)
    ordinary = torch.tensor([i for i in range(vocab_size) if i not in excluded], dtype=ids.dtype)
    random_ids = ordinary[torch.randint(len(ordinary), ids.shape, generator=generator)]
    inputs = torch.where(chosen & (roll < 0.8), torch.full_like(ids, mask_id), ids)
    inputs = torch.where(chosen & (roll >= 0.8) & (roll < 0.9), random_ids, inputs)
    return inputs, targets


class MaskedBatches:
    """Wraps a batch source (such as `ShardBatches`): the same windows, masked for BERT.

    Training batches are masked afresh every step from a seeded generator (its state is checkpointed, so
    resuming is exact); the validation set is masked once, so successive validation losses compare.
    With `cls_id`, every window starts with that token (it replaces the window's first token), as BERT's
    inputs always start with [CLS]: the position a classifier later pools is then one pre-training has seen.
    """

    def __init__(self, source, *, mask_id: int, vocab_size: int, special_ids: Collection[int], seed: int,
                 rate: float = 0.15, cls_id: int | None = None):
        self.source = source
        self.cls_id = cls_id
        self.block_size = source.block_size
        self.generator = torch.Generator().manual_seed(seed)
        self._eval_seed = seed + 2
        self._mask = dict(mask_id=mask_id, vocab_size=vocab_size, special_ids=tuple(special_ids), rate=rate)
        self._eval: list[Batch] | None = None
        self.eval_bytes = 0  # bits per byte is a next-token measure; it does not apply to masked LM

    def _masked(self, batch: Batch, generator: torch.Generator) -> Batch:
        ids = batch["ids"]
        if self.cls_id is not None:
            ids = ids.clone()
            ids[:, 0] = self.cls_id
        inputs, targets = mask_tokens(ids, generator=generator, attention_mask=batch.get("attention_mask"),
                                      **self._mask)
        return {**{k: v for k, v in batch.items() if k == "attention_mask"}, "ids": inputs, "targets": targets}

    def next_batch(self) -> Batch:
        return self._masked(self.source.next_batch(), self.generator)

    def eval_set(self) -> list[Batch]:
        if self._eval is None:
            generator = torch.Generator().manual_seed(self._eval_seed)
            self._eval = [self._masked(batch, generator) for batch in self.source.eval_set()]
        return self._eval

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {**self.source.state_tensors(), "mlm.generator": self.generator.get_state()}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.source.load_state_tensors(tensors)
        self.generator.set_state(tensors["mlm.generator"])
