"""The generation engine: batched, cached decoding on token ids, for every model in the project.

It needs only the models' incremental decoding interface — `state = model.new_state(B, max_len)` (a
preallocated KV cache for decoders, the hidden state for RNNs) and `logits, _ = model(ids, state=state,
attention_mask=mask)`, which advances the state — so Transformers and RNNs share one loop:

1. **prefill**: the prompts, left-padded to one length (mask 0 on padding), go through the model in one
   call, filling the cache; the last column of logits predicts each row's first new token;
2. **decode**: each step feeds one token per row and samples the next (`sampling.Sampler`).

Rows stop on their own (an end token, `max_new_tokens`, or when the caller sees a stop string); a
finished row rides along masked out until every row is done, which keeps the cache a plain tensor.
The engine knows nothing of text: `inference.text` adds detokenisation, stop strings and streaming.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from lm2llm.errors import UserError
from lm2llm.inference.sampling import Completion, Sampler, SampleStep, SamplingConfig


def context_limit(model: nn.Module) -> int | None:
    """How many tokens the model can see at once (None for RNNs: their state has no length)."""
    return getattr(model.config, "context_length", None)


@dataclass
class RowStep:
    """What one live row produced in one step (the token is None when the row just ended on an end token)."""

    row: int
    token: int | None
    logprob: float | None
    top_logprobs: dict[int, float] | None
    finish_reason: str | None


class DecodeBatch:
    """B prompts decoded together; call `step()` until `done`, read `completions`."""

    def __init__(self, model: nn.Module, prompts: Sequence[Sequence[int]], config: SamplingConfig, *,
                 end_ids: Sequence[int] = (), pad_id: int = 0):
        if not prompts:
            raise UserError("no prompts to generate from", where="prompts")
        for index, prompt in enumerate(prompts):
            if not prompt:
                raise UserError("empty prompt", where=f"prompts[{index}]",
                                hint="give at least one token (a tokenizer's start token, if it has one)")
        self.model, self.config = model, config
        self.end_ids = frozenset(end_ids)
        device = next(model.parameters()).device
        longest = max(len(p) for p in prompts)
        limit = context_limit(model)
        if limit is not None and longest > limit:
            raise UserError(f"the prompt has {longest} tokens; the model sees at most {limit}",
                            where="prompt", hint="shorten the prompt")
        self.max_new_tokens = config.max_new_tokens if limit is None else min(config.max_new_tokens, limit - longest)
        batch = len(prompts)
        ids = torch.full((batch, longest), pad_id, dtype=torch.long)
        mask = torch.zeros(batch, longest, dtype=torch.long)
        for row, prompt in enumerate(prompts):
            ids[row, longest - len(prompt):] = torch.tensor(list(prompt), dtype=torch.long)
            mask[row, longest - len(prompt):] = 1
        self.next_ids = ids.to(device)
        self.state = model.new_state(batch, longest + max(self.max_new_tokens, 1))
        self.sampler = Sampler(config, batch, model.config.vocab_size, device)
        self.sampler.observe_prompt(self.next_ids, mask.to(device))
        padded = any(len(p) < longest for p in prompts)
        self.next_mask = mask.to(device) if padded else None  # what the next model call gets
        self.completions = [Completion([]) for _ in prompts]
        self.live = [True] * batch
        if self.max_new_tokens == 0:
            self.live = [False] * batch

    @property
    def done(self) -> bool:
        return not any(self.live)

    def finish(self, row: int, reason: str) -> None:
        """End a row (the text layer calls this when it sees a stop string, even in the row's last token)."""
        self.live[row] = False
        self.completions[row].finish_reason = reason

    @torch.inference_mode()
    def step(self) -> list[RowStep]:
        """Run the model once and choose one token for every live row."""
        if self.done:
            return []
        logits, _ = self.model(self.next_ids, state=self.state, attention_mask=self.next_mask)
        sample = self.sampler(logits[:, -1])
        tokens = sample.tokens.tolist()  # one conversion per step, not one per row
        steps = [self._record(row, tokens[row], sample) for row in range(len(self.live)) if self.live[row]]
        self.next_ids = sample.tokens.unsqueeze(1)
        # no mask while every row is live keeps the models' fast paths (fused kernels, no mask building)
        self.next_mask = None if all(self.live) else torch.tensor(
            self.live, dtype=torch.long, device=self.next_ids.device).unsqueeze(1)
        return steps

    def _record(self, row: int, token: int, sample: SampleStep) -> RowStep:
        completion = self.completions[row]
        if token in self.end_ids:
            self.finish(row, "stop")
            return RowStep(row, None, None, None, "stop")
        completion.token_ids.append(token)
        logprob = top = None
        if sample.logprobs is not None:
            logprob = float(sample.logprobs[row])
            completion.logprobs.append(logprob)
        if sample.top_ids is not None:
            top = dict(zip(sample.top_ids[row].tolist(), sample.top_logprobs[row].tolist(), strict=True))
            completion.top_logprobs.append(top)
        if len(completion.token_ids) >= self.max_new_tokens:
            self.finish(row, "length")
        return RowStep(row, token, logprob, top, completion.finish_reason if not self.live[row] else None)


def generate_ids(model: nn.Module, prompts: Sequence[Sequence[int]], config: SamplingConfig, *,
                 end_ids: Sequence[int] = ()) -> list[Completion]:
    """Generate a continuation of each prompt (token ids in, token ids out), batched and cached."""
    batch = DecodeBatch(model, prompts, config, end_ids=end_ids)
    while not batch.done:
        batch.step()
    return batch.completions
