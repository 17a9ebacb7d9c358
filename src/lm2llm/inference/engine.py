"""The decode engine: every generation in the project (generate, chat, SFT and alignment answers, the tour,
the server) is sequences submitted to one `Engine` and drained from it: `submit`, `step`, collect.

It needs only the models' incremental decoding interface — `state = model.new_state(B, max_len)` (a
preallocated KV cache for decoders, the hidden state for RNNs) and `logits, _ = model(ids, state=state,
attention_mask=mask)`, which advances the state — so Transformers and RNNs share one loop. It batches
continuously: a decode step for 8 rows costs little more than a step for 1, because the weights are read
once either way, so every live sequence advances in one model call per step, and between two steps it

- **admits** waiting sequences while there are free rows: their prompts, left-padded to one length
  (`models.padding.pad`), are prefilled together in one call, and their states joined to the batch
  (`state.gather`); the last column of logits gives each one its first token;
- **retires** finished sequences (an end token, `max_new_tokens`, a stop string, a cancelled client): the
  batch is regrouped without them, so the next step computes only live rows.

Each sequence has its own sampler (settings, seed, penalty counts) and, given a tokenizer, its own
detokenizer with stop strings (`RowText`), so what it gets does not depend on the sequences that share
its steps; `sampling.sample_rows` still samples the rows with the same settings in one call. Sequences
submitted together with `shared=True` (one batch of `generate`) draw from one generator as one batched
`Sampler` does — one uniform per row per step — so the seed names the whole batch's draws.

`step` runs on one thread; `submit` and `Ticket.cancel` may come from any other (`serve.scheduler` runs
the engine on a thread of its own).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from lm2llm.errors import UserError
from lm2llm.inference.sampling import INVALID, Completion, Sampler, SamplingConfig, StopStrings, sample_rows
from lm2llm.models.padding import pad
from lm2llm.tokenizer import StreamDecoder, Tokenizer


def context_limit(model: nn.Module) -> int | None:
    """How many tokens the model can see at once (None for RNNs: their state has no length)."""
    return getattr(model.config, "context_length", None)


class QueueFull(Exception):
    """More sequences wait than the engine accepts: the client should retry later (HTTP 429)."""


@dataclass
class TextChunk:
    """A piece of one sequence's output: new text, the tokens that made it, and the finish reason at the end
    ("stop": an end token or a stop string; "length"; "error" with the message as text)."""

    index: int
    text: str
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    top_logprobs: list[dict[int, float]] = field(default_factory=list)
    finish_reason: str | None = None


class RowText:
    """One sequence's text so far and how much of it has been released.

    Streaming has two traps: a byte-level token may end in the middle of a UTF-8 character (a Hangul
    syllable is 3 bytes and can span tokens), which the tokenizer's `StreamDecoder` holds back until all
    its bytes are in; and the tail of the text may be the beginning of a stop string, held back until it
    cannot be.
    """

    def __init__(self, tokenizer: Tokenizer, stops: StopStrings, hidden: Sequence[int] = ()):
        self.detokenizer = StreamDecoder(tokenizer, hidden)
        self.stops = stops
        self.text = ""
        self.released = 0
        self.checked = 0

    def add(self, piece: str, final: bool) -> tuple[str, bool]:
        """Append decoded text; return what may be shown now and whether a stop string was reached."""
        self.text += piece
        cut = self.stops.find(self.text, self.checked) if self.stops.stops else None
        self.checked = len(self.text)
        if cut is not None:
            self.text = self.text[:cut]
            final = True
        end = len(self.text) if final else self.stops.safe_length(self.text)
        out, self.released = self.text[self.released:end], max(self.released, end)
        return out, cut is not None


@dataclass
class SequenceRequest:
    """One sequence to generate: prompt ids, how to sample, which tokens end it, where its chunks go.

    `emit`, when given, is called from the thread that steps the engine with every `TextChunk` (whose
    `index` is `index`); the last one has a `finish_reason`.
    """

    prompt_ids: list[int]
    config: SamplingConfig
    emit: Callable[[TextChunk], None] | None = None
    end_ids: Sequence[int] = ()
    index: int = 0
    hidden_ids: Sequence[int] = ()  # tokens kept out of the text (special tokens), not out of token_ids


class SharedDraws:
    """One generator for the B sequences of a batch: each sampling round draws B uniforms, one per row
    whether the row is still live or not, exactly as a batched `Sampler` does."""

    def __init__(self, sampler: Sampler, batch_size: int):
        self.sampler, self.batch_size = sampler, batch_size
        self.round, self.values = -1, None

    def uniform(self, row: int, round_: int) -> torch.Tensor:
        if round_ != self.round:
            self.values, self.round = self.sampler.uniforms(self.batch_size), round_
        return self.values[row:row + 1]


class SharedRow(Sampler):
    """Row `row` of a batch's sampler as a one-row sampler: its penalty counts are views into the batch's,
    its uniform comes from the batch's draw of the current round."""

    def __init__(self, draws: SharedDraws, row: int, engine: Engine):
        shared = draws.sampler
        self.config, self.device, self.generator = shared.config, shared.device, None
        self.seen = None if shared.seen is None else shared.seen[row:row + 1]
        self.counts = None if shared.counts is None else shared.counts[row:row + 1]
        self.draws, self.row, self.engine = draws, row, engine

    def uniforms(self, rows: int) -> torch.Tensor:
        return self.draws.uniform(self.row, self.engine.sampling_round)


@dataclass
class Live:
    """A sequence inside the engine: its request, sampler, text and how far it got."""

    request: SequenceRequest
    sampler: Sampler
    text: RowText | None
    max_new_tokens: int
    generated: int = 0
    next_token: int | None = None
    cancelled: bool = False
    done: bool = False


@dataclass
class Ticket:
    """A handle on submitted sequences: `cancel()` frees their rows at the next step."""

    sequences: list[Live] = field(default_factory=list)

    def cancel(self) -> None:
        for sequence in self.sequences:
            sequence.cancelled = True


@dataclass
class EngineStats:
    """Counters for tests, /health and the tour: how full the batches were."""

    steps: int = 0
    rows_stepped: int = 0  # sum over steps of the live rows: rows_stepped / steps is the mean batch size
    prefills: int = 0
    finished: int = 0
    largest_batch: int = 0

    @property
    def mean_batch(self) -> float:
        return self.rows_stepped / self.steps if self.steps else 0.0


class Engine:
    """Decodes every admitted sequence together, one token per live row per `step()`."""

    def __init__(self, model: nn.Module, tokenizer: Tokenizer | None = None, *, max_batch: int | None = None,
                 max_waiting: int | None = None, prefill_model: nn.Module | None = None):
        """Without a tokenizer the engine works on token ids only (no text, no stop strings); `max_batch`
        and `max_waiting` None: no limit. `prefill_model`: the same weights in another dtype, for prompts
        only (see `_prefill`)."""
        if (max_batch is not None and max_batch < 1) or (max_waiting is not None and max_waiting < 1):
            raise UserError("max_batch and max_waiting must be at least 1", where="engine")
        self.model = model.eval()
        self.prefill_model = (prefill_model or model).eval()
        self.dtype = next(model.parameters()).dtype
        self.tokenizer = tokenizer
        self.max_batch, self.max_waiting = max_batch, max_waiting
        self.limit = context_limit(model)
        self.vocab_size = model.config.vocab_size
        self.device = next(model.parameters()).device
        self.stats = EngineStats()
        self.sampling_round = 0
        self._waiting: deque[Live] = deque()
        self._live: list[Live] = []
        self._state = None
        self._lock = threading.Lock()
        self._chunks: list[TextChunk] = []

    # --- submitting ----------------------------------------------------------------------------------

    def check_prompt(self, prompt_ids: Sequence[int], where: str = "prompt") -> None:
        """A UserError for a prompt the model cannot take (empty, unknown ids, longer than its context)."""
        if not prompt_ids:
            raise UserError("empty prompt", where=where,
                            hint="give at least one token (a tokenizer's start token, if it has one)")
        if min(prompt_ids) < 0 or max(prompt_ids) >= self.vocab_size:
            raise UserError(f"token ids must be in [0, {self.vocab_size})", where=where)
        if self.limit is not None and len(prompt_ids) > self.limit:
            raise UserError(f"the prompt has {len(prompt_ids)} tokens; the model sees at most {self.limit}",
                            where=where, hint="shorten the prompt")

    def submit(self, requests: Sequence[SequenceRequest], *, shared: bool = False) -> Ticket:
        """Queue sequences (all or none); a UserError for a bad prompt, QueueFull when too many wait.

        `shared`: the requests are one batch with one config, drawing from one generator (see the module
        docstring), admitted together: at most `max_batch` of them.
        """
        if not requests:
            raise UserError("no prompts to generate from", where="prompts")
        if shared and self.max_batch is not None and len(requests) > self.max_batch:
            raise ValueError(f"a shared batch of {len(requests)} needs max_batch >= {len(requests)}")
        for number, request in enumerate(requests):
            self.check_prompt(request.prompt_ids, "prompt" if len(requests) == 1 else f"prompts[{number}]")
            if request.config.stop and self.tokenizer is None:
                raise UserError("stop strings need text: this engine has no tokenizer", where="stop")
        if self.max_waiting is not None and len(requests) > self.max_waiting:
            raise UserError(f"{len(requests)} sequences in one request can never fit: the server queues at most "
                            f"{self.max_waiting}", where="n", hint="ask for fewer prompts or choices")
        sequences = self._new_sequences(requests, shared)
        with self._lock:
            if self.max_waiting is not None and len(self._waiting) + len(sequences) > self.max_waiting:
                raise QueueFull(f"{len(self._waiting)} sequences are waiting (at most {self.max_waiting})")
            self._waiting.extend(sequences)
        return Ticket(sequences)

    def _new_sequences(self, requests: Sequence[SequenceRequest], shared: bool) -> list[Live]:
        if shared:
            if any(r.config != requests[0].config for r in requests):
                raise ValueError("a shared batch needs one sampling config")
            draws = SharedDraws(Sampler(requests[0].config, len(requests), self.vocab_size, self.device),
                                len(requests))
            samplers = [SharedRow(draws, row, self) for row in range(len(requests))]
        else:
            samplers = [Sampler(r.config, 1, self.vocab_size, self.device) for r in requests]
        sequences = []
        for request, sampler in zip(requests, samplers, strict=True):
            room = request.config.max_new_tokens
            if self.limit is not None:
                room = min(room, self.limit - len(request.prompt_ids))
            sampler.observe_prompt(torch.tensor([request.prompt_ids], dtype=torch.long, device=self.device))
            text = None if self.tokenizer is None else RowText(self.tokenizer, StopStrings(request.config.stop),
                                                                 request.hidden_ids)
            sequences.append(Live(request, sampler, text, room))
        return sequences

    @property
    def load(self) -> dict[str, int]:
        return {"live": len(self._live), "waiting": len(self._waiting)}

    @property
    def busy(self) -> bool:
        """Whether any sequence is live or waiting."""
        return bool(self._live or self._waiting)

    # --- stepping ------------------------------------------------------------------------------------

    def step(self) -> list[TextChunk]:
        """Admit waiting sequences (prefill + join), one token for every live row, retire the finished:
        the chunks this produced, each also handed to its request's `emit`.

        A sequence whose own sampling or text breaks ends alone with an "error" chunk; an exception of the
        step itself (the model) ends every sequence that way (a bug must not leave clients waiting forever)
        and is raised again.
        """
        with self._lock:
            admitted = []
            while self._waiting and (self.max_batch is None or len(self._live) + len(admitted) < self.max_batch):
                sequence = self._waiting.popleft()
                if not sequence.cancelled:
                    admitted.append(sequence)
        self._chunks = []
        try:
            with torch.inference_mode():
                self._iterate(admitted)
        except Exception as error:
            for sequence in [*self._live, *admitted]:
                self._fail(sequence, f"{type(error).__name__}: {error}")
            self._live, self._state = [], None
            raise
        return self._chunks

    def drain(self) -> Iterator[TextChunk]:
        """Step until nothing is live or waiting, yielding every chunk."""
        while self.busy:
            yield from self.step()

    def _iterate(self, admitted: list[Live]) -> None:
        keep = [row for row, s in enumerate(self._live) if not s.cancelled]
        ready = [s for s in admitted if not self._finish_if_empty(s)]
        if ready:
            prefilled, logits = self._prefill(ready)
            self._regroup([(self._state, keep), (prefilled, range(len(ready)))], [self._live[r] for r in keep] + ready)
            self._sample(ready, logits)  # their first token, from the prefill's last column
        elif len(keep) < len(self._live):
            self._regroup([(self._state, keep)], [self._live[r] for r in keep])
        if any(s.done for s in self._live):
            self._retire()
        if not self._live:
            return
        ids = torch.tensor([[s.next_token] for s in self._live], dtype=torch.long, device=self.device)
        logits, _ = self.model(ids, state=self._state)
        self.stats.steps += 1
        self.stats.rows_stepped += len(self._live)
        self.stats.largest_batch = max(self.stats.largest_batch, len(self._live))
        self._sample(self._live, logits[:, -1])
        self._retire()

    def _finish_if_empty(self, sequence: Live) -> bool:
        """A sequence with no room for a token (its prompt fills the context, or max_tokens 0) ends at once."""
        if sequence.max_new_tokens > 0:
            return False
        self._finish(sequence, "", "length")
        return True

    def _prefill(self, sequences: list[Live]):
        """Run the new prompts through the model together (left-padded): their state and last logits.

        A prompt is many tokens at once, so prefill is bound by matmul arithmetic, while a decoding step
        is bound by reading the weights. With a `prefill_model` in bf16 on a CPU with native bf16 matmuls,
        prompts run several times faster; the state they leave is cast to the decoding model's dtype.
        """
        ids, mask = pad([s.request.prompt_ids for s in sequences], 0, side="left")
        state = self.prefill_model.new_state(len(sequences), ids.shape[1])
        logits, _ = self.prefill_model(ids.to(self.device), state=state, last_only=True,
                                       attention_mask=None if bool(mask.all()) else mask.to(self.device))
        self.stats.prefills += 1
        return state.to(self.dtype), logits[:, -1]

    def _sample(self, sequences: list[Live], logits: torch.Tensor) -> None:
        """Choose each sequence's next token from its row of logits [B, V] and take it."""
        self.sampling_round += 1
        tokens = sample_rows([s.sampler for s in sequences], logits)
        asked = [row for row, s in enumerate(sequences) if s.sampler.config.wants_logprobs and tokens[row] != INVALID]
        scored = dict(zip(asked, self._logprobs(sequences, logits, tokens, asked), strict=True))
        for row, (sequence, token) in enumerate(zip(sequences, tokens, strict=True)):
            if token == INVALID:  # this row's distribution broke (NaN logits): it alone fails
                self._fail(sequence, "the model's next-token distribution is not finite (NaN logits)")
                continue
            sequence.next_token = token
            try:
                self._advance(sequence, *scored.get(row, (None, None)))
            except Exception as error:  # its text or stop strings broke: this sequence fails, not the batch
                self._fail(sequence, f"{type(error).__name__}: {error}")

    @staticmethod
    def _logprobs(sequences: list[Live], logits: torch.Tensor, tokens: list[int], rows: list[int]) -> list:
        """(log-probability of the chosen token, top log-probabilities or None) for each of `rows`."""
        if not rows:
            return []
        logp = logits[rows].float().log_softmax(dim=-1)
        chosen = logp.gather(1, torch.tensor([[tokens[r]] for r in rows], device=logp.device)).squeeze(1).tolist()
        scored = []
        for i, row in enumerate(rows):
            top_n = sequences[row].sampler.config.top_logprobs
            top = None
            if top_n:
                values, ids = torch.topk(logp[i], top_n)
                top = dict(zip(ids.tolist(), values.tolist(), strict=True))
            scored.append((chosen[i], top))
        return scored

    def _regroup(self, parts: list, live: list[Live]) -> None:
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

    def _advance(self, sequence: Live, logprob: float | None, top: dict[int, float] | None) -> None:
        """Take the sequence's sampled `next_token`: end it, or count it and release its text."""
        if sequence.cancelled or sequence.done:
            return
        token = sequence.next_token
        if token in sequence.request.end_ids:
            self._finish(sequence, sequence.text.detokenizer.flush() if sequence.text else "", "stop")
            return
        sequence.generated += 1
        last = sequence.generated >= sequence.max_new_tokens
        text, stopped = "", False
        if sequence.text is not None:
            piece = sequence.text.detokenizer.push(token)
            if last:
                piece += sequence.text.detokenizer.flush()
            text, stopped = sequence.text.add(piece, final=last)
        reason = "stop" if stopped else ("length" if last else None)
        if reason:
            sequence.done = True
            self.stats.finished += 1
        self._emit(sequence, TextChunk(sequence.request.index, text, [token], [] if logprob is None else [logprob],
                                       [] if top is None else [top], reason))

    def _finish(self, sequence: Live, piece: str, reason: str) -> None:
        """End a sequence that produced no new token this step (end token, or no room at all)."""
        text = sequence.text.add(piece, final=True)[0] if sequence.text else ""  # what a stop string held back
        sequence.done = True
        self.stats.finished += 1
        self._emit(sequence, TextChunk(sequence.request.index, text, finish_reason=reason))

    def _fail(self, sequence: Live, message: str) -> None:
        """End one sequence with an "error" chunk; the others in the batch go on."""
        if not sequence.done:
            sequence.done = True
            self._emit(sequence, TextChunk(sequence.request.index, message, finish_reason="error"))

    def _emit(self, sequence: Live, chunk: TextChunk) -> None:
        self._chunks.append(chunk)
        if sequence.request.emit is not None:
            try:
                sequence.request.emit(chunk)
            except Exception:  # the receiver is gone or broken: stop its sequence, not the whole batch
                sequence.cancelled = True


def collect(chunks: Iterable[TextChunk], count: int, *, text: bool = True) -> list[Completion]:
    """Completions 0..count-1 gathered from their chunks (`text` None when `text` is False)."""
    completions = [Completion([], "" if text else None) for _ in range(count)]
    for chunk in chunks:
        done = completions[chunk.index]
        if text:
            done.text += chunk.text
        done.token_ids += chunk.token_ids
        done.logprobs += chunk.logprobs
        done.top_logprobs += chunk.top_logprobs
        if chunk.finish_reason:
            done.finish_reason = chunk.finish_reason
    return completions


def generate_batch(engine: Engine, prompts: Sequence[Sequence[int]], config: SamplingConfig, *,
                   end_ids: Sequence[int] = (), hidden_ids: Sequence[int] = ()) -> Iterator[TextChunk]:
    """Submit prompts as one batch (one config, one seed for the batch's draws) and drain the engine."""
    engine.submit([SequenceRequest(list(p), config, end_ids=tuple(end_ids), index=i, hidden_ids=tuple(hidden_ids))
                   for i, p in enumerate(prompts)], shared=True)
    return engine.drain()


def generate_ids(model: nn.Module, prompts: Sequence[Sequence[int]], config: SamplingConfig, *,
                 end_ids: Sequence[int] = ()) -> list[Completion]:
    """Generate a continuation of each prompt (token ids in, token ids out), batched and cached."""
    engine = Engine(model, max_batch=max(1, len(prompts)))
    return collect(generate_batch(engine, prompts, config, end_ids=end_ids), len(prompts), text=False)
