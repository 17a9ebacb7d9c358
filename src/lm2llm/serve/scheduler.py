"""Continuous (dynamic) batching: every live sequence advances in one model call per step.

A server that generated one request at a time would leave the model idle on most of its width: a decode
step for 8 rows costs little more than a step for 1 on a CPU or GPU, because the weights are read once
either way. The scheduler therefore keeps one batched decoding state (the model's KV cache, or an RNN's
hidden state) and, between two steps:

- **admits** waiting sequences while there are free rows: their prompts are prefilled together in one
  left-padded call and their states joined to the batch (`state.gather`);
- **retires** finished sequences (end token, `max_new_tokens`, a stop string, or a cancelled client): the
  batch is regrouped without them, so the next step computes only live rows.

Each sequence keeps its own `Sampler` (its own settings, seed and penalty counts) and its own
detokenizer with stop strings (`inference.text.RowText`), so what a request gets does not depend on the
other requests that share its steps; `sample_rows` still samples the rows with the same settings in one
call. Nothing here knows HTTP: results go to a callback per sequence.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from lm2llm.errors import UserError
from lm2llm.inference.engine import context_limit
from lm2llm.inference.sampling import Sampler, SamplingConfig, StopStrings, sample_rows
from lm2llm.inference.text import RowText, TextChunk
from lm2llm.tokenizer import Tokenizer


class QueueFull(Exception):
    """More sequences wait than the scheduler accepts: the client should retry later (HTTP 429)."""


@dataclass
class SequenceRequest:
    """One sequence to generate: prompt ids, how to sample, which tokens end it, where its text goes.

    `emit` is called from the scheduler thread with `TextChunk`s whose `index` is `index`; the last
    chunk has a `finish_reason` ("stop", "length", or "error" with the message as text).
    """

    prompt_ids: list[int]
    config: SamplingConfig
    emit: Callable[[TextChunk], None]
    end_ids: Sequence[int] = ()
    index: int = 0


@dataclass
class _Live:
    """A sequence inside the scheduler: its request, sampler, text and how far it got."""

    request: SequenceRequest
    sampler: Sampler
    text: RowText
    max_new_tokens: int
    generated: int = 0
    next_token: int | None = None
    cancelled: bool = False
    done: bool = False


@dataclass
class Ticket:
    """A handle on submitted sequences: `cancel()` frees their rows at the next step."""

    sequences: list[_Live] = field(default_factory=list)

    def cancel(self) -> None:
        for sequence in self.sequences:
            sequence.cancelled = True


@dataclass
class SchedulerStats:
    """Counters for tests, /health and the tour: how full the batches were."""

    steps: int = 0
    rows_stepped: int = 0  # sum over steps of the live rows: rows_stepped / steps is the mean batch size
    prefills: int = 0
    finished: int = 0
    largest_batch: int = 0

    @property
    def mean_batch(self) -> float:
        return self.rows_stepped / self.steps if self.steps else 0.0


class BatchScheduler:
    """Runs a model on a thread, decoding every admitted sequence together; `submit` from any thread."""

    def __init__(self, model: nn.Module, tokenizer: Tokenizer, *, max_batch: int = 16, max_waiting: int = 256,
                 prefill_model: nn.Module | None = None):
        """`prefill_model`: the same weights in another dtype, for prompts only (see `_prefill`)."""
        if max_batch < 1 or max_waiting < 1:
            raise UserError("max_batch and max_waiting must be at least 1", where="scheduler")
        self.model = model.eval()
        self.prefill_model = (prefill_model or model).eval()
        self.dtype = next(model.parameters()).dtype
        self.tokenizer = tokenizer
        self.max_batch, self.max_waiting = max_batch, max_waiting
        self.limit = context_limit(model)
        self.vocab_size = model.config.vocab_size
        self.device = next(model.parameters()).device
        self.stats = SchedulerStats()
        self._waiting: deque[_Live] = deque()
        self._live: list[_Live] = []
        self._state = None
        self._wakeup = threading.Condition()
        self._running = False
        self._thread: threading.Thread | None = None

    # --- the client side ---------------------------------------------------------------------------

    def check_prompt(self, prompt_ids: Sequence[int]) -> None:
        """A UserError for a prompt the model cannot take (empty, unknown ids, longer than its context)."""
        if not prompt_ids:
            raise UserError("the prompt has no tokens", where="prompt")
        if min(prompt_ids) < 0 or max(prompt_ids) >= self.vocab_size:
            raise UserError(f"token ids must be in [0, {self.vocab_size})", where="prompt")
        if self.limit is not None and len(prompt_ids) > self.limit:
            raise UserError(f"the prompt has {len(prompt_ids)} tokens; the model sees at most {self.limit}",
                            where="prompt", hint="shorten the prompt")

    def submit(self, requests: Sequence[SequenceRequest]) -> Ticket:
        """Queue sequences (all or none); raises UserError for a bad prompt, QueueFull when too many wait."""
        for request in requests:
            self.check_prompt(request.prompt_ids)
        sequences = [self._new_sequence(r) for r in requests]
        with self._wakeup:
            if len(self._waiting) + len(sequences) > self.max_waiting:
                raise QueueFull(f"{len(self._waiting)} sequences are waiting (at most {self.max_waiting})")
            self._waiting.extend(sequences)
            self._wakeup.notify()
        return Ticket(sequences)

    def _new_sequence(self, request: SequenceRequest) -> _Live:
        room = request.config.max_new_tokens
        if self.limit is not None:
            room = min(room, self.limit - len(request.prompt_ids))
        sampler = Sampler(request.config, 1, self.vocab_size, self.device)
        sampler.observe_prompt(torch.tensor([request.prompt_ids], dtype=torch.long, device=self.device))
        return _Live(request, sampler, RowText(self.tokenizer, StopStrings(request.config.stop)), room)

    @property
    def load(self) -> dict[str, int]:
        return {"live": len(self._live), "waiting": len(self._waiting)}

    # --- the scheduler thread ----------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._running = True
        self._thread = threading.Thread(target=self._loop, name="lm2llm-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._wakeup:
            self._running = False
            self._wakeup.notify()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _loop(self) -> None:
        while True:
            with self._wakeup:
                while self._running and not self._waiting and not self._live:
                    self._wakeup.wait()
                if not self._running:
                    return
                admitted = []
                while self._waiting and len(self._live) + len(admitted) < self.max_batch:
                    sequence = self._waiting.popleft()
                    if not sequence.cancelled:
                        admitted.append(sequence)
            try:
                with torch.inference_mode():
                    self._iterate(admitted)
            except Exception as error:  # a bug must not leave clients waiting forever
                for sequence in [*self._live, *admitted]:
                    if not sequence.done:
                        sequence.done = True
                        sequence.request.emit(TextChunk(sequence.request.index, f"{type(error).__name__}: {error}",
                                                        finish_reason="error"))
                self._live, self._state = [], None

    def _iterate(self, admitted: list[_Live]) -> None:
        """Admit new sequences (prefill + join), then one decode step for every live row, then retire."""
        keep = [row for row, s in enumerate(self._live) if not s.cancelled]
        ready = [s for s in admitted if not self._finish_if_empty(s)]
        if ready:
            prefilled = self._prefill(ready)
            self._regroup([(self._state, keep), (prefilled, range(len(ready)))], [self._live[r] for r in keep] + ready)
        elif len(keep) < len(self._live):
            self._regroup([(self._state, keep)], [self._live[r] for r in keep])
        if not self._live:
            return
        for sequence in ready:  # their first token came from the prefill logits
            self._advance(sequence)
        if any(s.done for s in self._live):
            self._retire()
            if not self._live:
                return
        ids = torch.tensor([[s.next_token] for s in self._live], dtype=torch.long, device=self.device)
        logits, _ = self.model(ids, state=self._state)
        self.stats.steps += 1
        self.stats.rows_stepped += len(self._live)
        self.stats.largest_batch = max(self.stats.largest_batch, len(self._live))
        tokens = sample_rows([s.sampler for s in self._live], logits[:, -1])
        for sequence, token in zip(self._live, tokens, strict=True):
            sequence.next_token = token
            self._advance(sequence)
        self._retire()

    def _finish_if_empty(self, sequence: _Live) -> bool:
        """A sequence with no room for a token (its prompt fills the context, or max_tokens 0) ends at once."""
        if sequence.max_new_tokens > 0:
            return False
        self._emit(sequence, "", "length")
        return True

    def _prefill(self, sequences: list[_Live]):
        """Run the new prompts through the model together (left-padded); sample each one's first token.

        A prompt is many tokens at once, so prefill is bound by matmul arithmetic, while a decoding step
        is bound by reading the weights. With a `prefill_model` in bf16 on a CPU with native bf16 matmuls,
        prompts run several times faster; the state they leave is cast to the decoding model's dtype.
        """
        longest = max(len(s.request.prompt_ids) for s in sequences)
        ids = torch.zeros(len(sequences), longest, dtype=torch.long)
        mask = torch.zeros(len(sequences), longest, dtype=torch.long)
        for row, sequence in enumerate(sequences):
            prompt = sequence.request.prompt_ids
            ids[row, longest - len(prompt):] = torch.tensor(prompt, dtype=torch.long)
            mask[row, longest - len(prompt):] = 1
        state = self.prefill_model.new_state(len(sequences), longest)
        logits, _ = self.prefill_model(ids.to(self.device), state=state,
                                       attention_mask=None if bool(mask.all()) else mask.to(self.device))
        self.stats.prefills += 1
        for sequence, token in zip(sequences, sample_rows([s.sampler for s in sequences], logits[:, -1]), strict=True):
            sequence.next_token = token
        return state.to(self.dtype)

    def _regroup(self, parts: list, live: list[_Live]) -> None:
        """Make the batch exactly `live`'s rows, with cache room for the longest remaining generation."""
        self._live = live
        if not live:
            self._state = None
            return
        room = max(s.max_new_tokens - s.generated for s in live)
        parts = [(state, rows) for state, rows in parts if state is not None and len(rows)]
        self._state = type(parts[0][0]).gather(parts, room)

    def _retire(self) -> None:
        keep = [row for row, s in enumerate(self._live) if not (s.done or s.cancelled)]
        if len(keep) < len(self._live):
            self._regroup([(self._state, keep)], [self._live[r] for r in keep])

    def _advance(self, sequence: _Live) -> None:
        """Take the sequence's sampled `next_token`: end it, or count it and release its text."""
        if sequence.cancelled or sequence.done:
            return
        token = sequence.next_token
        if token in sequence.request.end_ids:
            self._emit(sequence, sequence.text.detokenizer.flush(), "stop")
            return
        sequence.generated += 1
        piece = sequence.text.detokenizer.push(token)
        last = sequence.generated >= sequence.max_new_tokens
        if last:
            piece += sequence.text.detokenizer.flush()
        text, stopped = sequence.text.add(piece, final=last)
        reason = "stop" if stopped else ("length" if last else None)
        if reason:
            sequence.done = True
            self.stats.finished += 1
        sequence.request.emit(TextChunk(sequence.request.index, text, [token], finish_reason=reason))

    def _emit(self, sequence: _Live, piece: str, reason: str) -> None:
        """End a sequence that produced no new token this step (end token, or no room at all)."""
        text, _ = sequence.text.add(piece, final=True)  # whatever a possible stop string held back
        sequence.done = True
        self.stats.finished += 1
        sequence.request.emit(TextChunk(sequence.request.index, text, finish_reason=reason))

