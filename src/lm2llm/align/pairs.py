"""Preference pairs as tensors: chat-template encoding, padded batches, and the Trainer's data source.

Each answer is rendered as `prompt messages + {"role": "assistant", "content": answer}` with the
tokenizer's chat template; the assistant mask marks the answer tokens and its closing end-of-turn, which
are what DPO sums log-probs over and where the reward model reads its score (the last real token).
Padding uses the tokenizer's `<|pad|>` id, distinct from end-of-turn and end-of-text, and every batch
carries its attention masks, so no code ever has to guess where a sequence ends from a token id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from lm2llm.align.preference import PreferencePair
from lm2llm.errors import UserError
from lm2llm.models.padding import pad

Batch = dict[str, torch.Tensor]
SIDES = ("chosen", "rejected")


@dataclass(frozen=True)
class EncodedPair:
    chosen_ids: list[int]
    chosen_mask: list[int]     # 1 on the chosen answer's tokens and its end-of-turn
    rejected_ids: list[int]
    rejected_mask: list[int]


def encode_pair(tokenizer, pair: PreferencePair) -> EncodedPair:
    """Render both answers after the prompt with the chat template (`tokenizer.render_chat`)."""
    if not hasattr(tokenizer, "render_chat"):
        raise UserError(f"a {getattr(tokenizer, 'kind', type(tokenizer).__name__)} tokenizer has no chat template",
                        where="tokenizer", hint="use the BPE tokenizer of an SFT run")
    encoded = {}
    for side in SIDES:
        answer = getattr(pair, side)
        ids, mask = tokenizer.render_chat([*pair.messages(), {"role": "assistant", "content": answer}])
        encoded[f"{side}_ids"], encoded[f"{side}_mask"] = ids, mask
    return EncodedPair(**encoded)


def encode_pairs(tokenizer, pairs: Sequence[PreferencePair], max_len: int) -> tuple[list[EncodedPair], int]:
    """Encode every pair; pairs with a side longer than `max_len` are left out and counted (second value)."""
    kept, too_long = [], 0
    for pair in pairs:
        encoded = encode_pair(tokenizer, pair)
        if max(len(encoded.chosen_ids), len(encoded.rejected_ids)) > max_len:
            too_long += 1
        else:
            kept.append(encoded)
    if not kept:
        raise UserError(f"every preference pair is longer than {max_len} tokens", where="max_len",
                        hint="use a model with a longer context or shorter data")
    return kept, too_long


def collate(pairs: Sequence[EncodedPair], pad_id: int) -> Batch:
    """Right-padded (B, T) tensors per side: `{side}_ids`, `{side}_attention`, `{side}_completion`.

    Both sides share one length T, so a model can score them in a single forward pass.
    """
    length = max(max(len(p.chosen_ids), len(p.rejected_ids)) for p in pairs)
    batch: Batch = {}
    for side in SIDES:
        ids, attention = pad([getattr(p, f"{side}_ids") for p in pairs], pad_id, length=length)
        completion, _ = pad([getattr(p, f"{side}_mask") for p in pairs], 0, length=length)
        batch[f"{side}_ids"], batch[f"{side}_attention"], batch[f"{side}_completion"] = ids, attention, completion
    return batch


def both_sides(batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """[chosen; rejected] stacked along the batch: ids, attention, completion mask, each (2B, T)."""
    return tuple(torch.cat([batch[f"chosen_{key}"], batch[f"rejected_{key}"]])
                 for key in ("ids", "attention", "completion"))


class PreferenceBatches:
    """The Trainer's data source for preference objectives: seeded random batches, fixed held-out batches.

    Extra per-pair tensors (such as DPO's precomputed reference log-probs) ride along in every batch.
    """

    def __init__(self, train: Sequence[EncodedPair], held_out: Sequence[EncodedPair], *, pad_id: int,
                 batch_size: int, seed: int, block_size: int,
                 extra_train: dict[str, torch.Tensor] | None = None,
                 extra_held_out: dict[str, torch.Tensor] | None = None):
        if not train or not held_out:
            raise UserError("need training and held-out preference pairs", where="pairs")
        self.train, self.held_out = list(train), list(held_out)
        self.pad_id, self.batch_size, self.block_size = pad_id, batch_size, block_size
        self.extra_train, self.extra_held_out = extra_train or {}, extra_held_out or {}
        self.generator = torch.Generator().manual_seed(seed)
        self.eval_bytes = 0  # the Trainer's bits-per-byte does not apply to pairs

    def _batch(self, pairs: Sequence[EncodedPair], rows: torch.Tensor, extra: dict[str, torch.Tensor]) -> Batch:
        return collate([pairs[i] for i in rows.tolist()], self.pad_id) | {k: v[rows] for k, v in extra.items()}

    def next_batch(self) -> Batch:
        rows = torch.randint(len(self.train), (self.batch_size,), generator=self.generator)
        return self._batch(self.train, rows, self.extra_train)

    def eval_set(self) -> list[Batch]:
        rows = torch.arange(len(self.held_out))
        return [self._batch(self.held_out, chunk, self.extra_held_out) for chunk in rows.split(self.batch_size)]

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {"data.generator": self.generator.get_state()}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.generator.set_state(tensors["data.generator"])
