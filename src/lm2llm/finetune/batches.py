"""Supervised fine-tuning batches: conversations → right-padded (ids, targets) with prompt tokens masked.

The chat template gives each conversation's ids and a 0/1 mask of the assistant's tokens (its text and
the end-of-turn token, so the model learns to stop). Target position t is `ids[t+1]` where that token is
the assistant's, else `IGNORE_INDEX`: the loss is on the replies only, never on the prompts or padding.

Each example gets its own row, padded on the right with the padding token. Attention is causal, so a
real token never sees the padding after it, and each row's positions start at 0: nothing crosses from
one example to another, which packing would need a block-diagonal mask to guarantee. The Trainer's
`CausalLM` objective averages over all unmasked targets of the global batch, so the loss does not depend
on how the batch is split into micro-batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch

from lm2llm.errors import UserError
from lm2llm.finetune.data import Conversation
from lm2llm.models.padding import pad
from lm2llm.training.objectives import IGNORE_INDEX, Batch


class ChatTokenizer(Protocol):
    pad_id: int
    end_of_turn_id: int

    def render_chat(self, messages: Sequence[dict], add_generation_prompt: bool = False) -> tuple[list[int], list[int]]: ...


@dataclass
class Encoded:
    """Token ids and assistant mask per kept conversation, and how many were cut short or dropped."""

    examples: list[tuple[list[int], list[int]]]
    truncated: int = 0
    dropped: list[int] = field(default_factory=list)  # indices whose reply lay wholly past the context


def encode_conversations(tokenizer: ChatTokenizer, conversations: Sequence[Conversation],
                         max_tokens: int) -> Encoded:
    """Render each conversation and keep at most `max_tokens` + 1 tokens (inputs plus the last target).

    A conversation whose template marks no assistant token is an error (there would be nothing to learn,
    and a zero loss would hide it). One whose reply starts beyond the context is dropped and counted.
    """
    encoded = Encoded(examples=[])
    for index, messages in enumerate(conversations):
        ids, mask = tokenizer.render_chat(messages)
        if not any(mask):
            raise UserError("the chat template marks no assistant token in this conversation",
                            where=f"conversation {index}", hint="every training example needs an assistant reply")
        if len(ids) > max_tokens + 1:
            ids, mask = ids[:max_tokens + 1], mask[:max_tokens + 1]
            encoded.truncated += 1
            if not any(mask[1:]):
                encoded.dropped.append(index)
                continue
        encoded.examples.append((ids, mask))
    if not encoded.examples:
        raise UserError(f"every conversation's reply lies beyond the model's {max_tokens}-token context",
                        hint="use a model with a longer context or shorter examples")
    return encoded


def collate_examples(examples: Sequence[tuple[list[int], list[int]]], pad_id: int) -> Batch:
    """Right-padded `ids` (B, T) and `targets` (B, T): next token where it is the assistant's, else IGNORE_INDEX."""
    inputs, targets = [], []
    for tokens, mask in examples:
        tokens_t, mask_t = torch.tensor(tokens), torch.tensor(mask, dtype=torch.bool)
        inputs.append(tokens_t[:-1])
        targets.append(torch.where(mask_t[1:], tokens_t[1:], IGNORE_INDEX))
    return {"ids": pad(inputs, pad_id)[0], "targets": pad(targets, IGNORE_INDEX)[0]}


class SFTBatches:
    """The Trainer's data source for SFT: epochs over shuffled examples, a fixed held-out evaluation set.

    Resuming is exact: the whole state is the shuffling generator, the epoch's order and the cursor.
    """

    def __init__(self, train: Encoded, *, batch_size: int, pad_id: int, seed: int,
                 eval_examples: Sequence[tuple[list[int], list[int]]] = (), eval_batch_size: int | None = None):
        self.examples = train.examples
        self.batch_size = batch_size
        self.pad_id = pad_id
        self.block_size = max(len(ids) for ids, _ in self.examples) - 1
        self.generator = torch.Generator().manual_seed(seed)
        self.order = torch.randperm(len(self.examples), generator=self.generator)
        self.cursor = 0
        size = eval_batch_size or batch_size
        self._eval = [collate_examples(eval_examples[i:i + size], pad_id) for i in range(0, len(eval_examples), size)]
        self.eval_bytes = 0  # bits per byte means little on replies alone; the Trainer reports NaN

    def next_batch(self) -> Batch:
        picked = []
        while len(picked) < self.batch_size:
            if self.cursor == len(self.order):
                self.order = torch.randperm(len(self.examples), generator=self.generator)
                self.cursor = 0
            picked.append(self.examples[int(self.order[self.cursor])])
            self.cursor += 1
        return collate_examples(picked, self.pad_id)

    def eval_set(self) -> list[Batch]:
        return self._eval

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {"data.generator": self.generator.get_state(), "data.order": self.order.clone(),
                "data.cursor": torch.tensor(self.cursor)}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.generator.set_state(tensors["data.generator"])
        self.order = tensors["data.order"].clone()
        self.cursor = int(tensors["data.cursor"])
