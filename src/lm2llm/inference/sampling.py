"""Sampling: how a batch of next-token logits [B, V] becomes the next tokens.

One implementation for every model in the project (n-gram, RNN, Transformer): a model only has to
produce logits, and everything a user can turn — greedy or temperature, top-k, top-p, min-p, the
repetition / frequency / presence penalties, a seed, per-token log-probabilities with their top
alternatives, stop strings — lives here.

The processors follow `transformers`' semantics and order (repetition penalty, then temperature, top-k,
top-p, min-p; tested equal to its logits processors), and the frequency / presence penalties follow the
OpenAI API as vLLM implements it (counted over generated tokens only). Log-probabilities are those of
the model's own distribution (before temperature and filtering), which is what perplexity of a sample
and the OpenAI `logprobs` field mean.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from lm2llm.errors import UserError
from lm2llm.inference import matvec

# Temperatures below this are greedy decoding (as vLLM's 1e-5): dividing logits by a tinier one overflows them
# to inf (a subnormal 1e-40 turns every logit into ±inf and the softmax into NaN), and the distribution it
# approaches is the argmax anyway.
GREEDY_TEMPERATURE = 1e-5
INVALID = -1  # the token `sample_rows` gives a row whose distribution is not one (NaN logits, nothing left)


@dataclass(frozen=True)
class SamplingConfig:
    """Every knob of generation; the defaults sample from the model's distribution unchanged."""

    max_new_tokens: int = 128
    temperature: float = 1.0  # 0 (or anything below GREEDY_TEMPERATURE) means greedy (argmax)
    top_k: int = 0  # 0 disables
    top_p: float = 1.0  # 1 disables
    min_p: float = 0.0  # 0 disables; keeps tokens with p >= min_p * p(most likely token)
    repetition_penalty: float = 1.0  # > 1 discourages any token already in prompt or output (CTRL paper)
    frequency_penalty: float = 0.0  # subtracted once per earlier occurrence in the output
    presence_penalty: float = 0.0  # subtracted once if the token occurred in the output
    stop: tuple[str, ...] = ()  # generation ends before the first of these strings
    seed: int | None = None  # same seed, same model, same prompt -> same tokens
    logprobs: bool = False  # report each chosen token's log-probability
    top_logprobs: int = 0  # ... and this many most likely alternatives at each step

    def __post_init__(self) -> None:
        checks = [
            ("max_new_tokens", self.max_new_tokens >= 0, "must be >= 0"),
            ("temperature", math.isfinite(self.temperature) and self.temperature >= 0, "must be >= 0 (0 is greedy)"),
            ("top_k", self.top_k >= 0, "must be >= 0 (0 disables)"),
            ("top_p", 0 < self.top_p <= 1, "must be in (0, 1]"),
            ("min_p", 0 <= self.min_p <= 1, "must be in [0, 1]"),
            ("repetition_penalty", self.repetition_penalty > 0, "must be > 0 (1 disables)"),
            ("frequency_penalty", -2 <= self.frequency_penalty <= 2, "must be in [-2, 2]"),
            ("presence_penalty", -2 <= self.presence_penalty <= 2, "must be in [-2, 2]"),
            ("top_logprobs", 0 <= self.top_logprobs <= 20, "must be in [0, 20]"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise UserError(f"{rule}, got {getattr(self, name)!r}", where=name)
        if any(not s for s in self.stop):
            raise UserError("stop strings must not be empty", where="stop")
        object.__setattr__(self, "stop", tuple(self.stop))

    @property
    def processing(self) -> tuple:
        """The settings that shape the distribution: rows that share them can be sampled in one call."""
        return (self.temperature, self.top_k, self.top_p, self.min_p, self.repetition_penalty,
                self.frequency_penalty, self.presence_penalty)

    @property
    def penalized(self) -> bool:
        return self.repetition_penalty != 1.0 or bool(self.frequency_penalty or self.presence_penalty)

    @property
    def greedy(self) -> bool:
        return self.temperature < GREEDY_TEMPERATURE or self.top_k == 1

    @property
    def wants_logprobs(self) -> bool:
        return self.logprobs or self.top_logprobs > 0


# --- logits processors: each maps logits [B, V] to logits [B, V]; removed tokens become -inf ---------


def apply_repetition_penalty(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """Make every token in `seen` (bool [B, V]) less likely: positive logits / penalty, negative * penalty."""
    penalised = torch.where(logits < 0, logits * penalty, logits / penalty)
    return torch.where(seen, penalised, logits)


def apply_frequency_presence(logits: torch.Tensor, counts: torch.Tensor, frequency: float,
                             presence: float) -> torch.Tensor:
    """OpenAI's penalties: logit -= frequency * count + presence * (count > 0), counts over the output."""
    return logits - frequency * counts - presence * (counts > 0).to(logits.dtype)


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    return logits / temperature


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest logits (and any tied with the k-th)."""
    kth = torch.topk(logits, min(k, logits.size(-1)), dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus sampling: keep the smallest set of most likely tokens whose probability reaches p."""
    sorted_logits, order = torch.sort(logits, descending=False)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    remove_sorted = cumulative <= (1 - p)
    remove_sorted[..., -1:] = False  # the most likely token always stays
    remove = remove_sorted.scatter(-1, order, remove_sorted)
    return logits.masked_fill(remove, float("-inf"))


def min_p_filter(logits: torch.Tensor, min_p: float) -> torch.Tensor:
    """Keep tokens at least min_p times as likely as the most likely one: a cut that scales with confidence."""
    probs = logits.softmax(dim=-1)
    remove = probs < min_p * probs.amax(dim=-1, keepdim=True)
    remove.scatter_(-1, probs.argmax(dim=-1, keepdim=True), False)
    return logits.masked_fill(remove, float("-inf"))


def apply_penalties(logits: torch.Tensor, config: SamplingConfig, seen: torch.Tensor | None = None,
                    counts: torch.Tensor | None = None) -> torch.Tensor:
    """The penalties (they apply to greedy decoding too); `seen`/`counts` are needed only when one is on."""
    logits = logits.float()
    if config.repetition_penalty != 1.0:
        logits = apply_repetition_penalty(logits, seen, config.repetition_penalty)
    if config.frequency_penalty or config.presence_penalty:
        logits = apply_frequency_presence(logits, counts, config.frequency_penalty, config.presence_penalty)
    return logits


def warp_logits(logits: torch.Tensor, config: SamplingConfig, *, top_k: bool = True) -> torch.Tensor:
    """Temperature, top-k, top-p, min-p, in transformers' order (`top_k=False` when already applied)."""
    if config.temperature != 1.0:
        logits = apply_temperature(logits, config.temperature)
    if config.top_k and top_k:
        logits = top_k_filter(logits, config.top_k)
    if config.top_p < 1.0:
        logits = top_p_filter(logits, config.top_p)
    if config.min_p:
        logits = min_p_filter(logits, config.min_p)
    return logits


def process_logits(logits: torch.Tensor, config: SamplingConfig, seen: torch.Tensor | None = None,
                   counts: torch.Tensor | None = None) -> torch.Tensor:
    """All processors over the whole vocabulary, in transformers' order (the readable definition)."""
    logits = apply_penalties(logits, config, seen, counts)
    return logits if config.greedy else warp_logits(logits, config)


def _warp_sorted(best: torch.Tensor, config: SamplingConfig) -> torch.Tensor:
    """Temperature, top-p and min-p on logits sorted in descending order, as probabilities.

    A token survives top-p when the tokens more likely than it hold less than p: the descending form of
    transformers' rule (drop the least likely tokens while their total stays within 1 − p).
    """
    probs = (best / config.temperature if config.temperature != 1.0 else best).softmax(dim=-1)
    keep = None
    if config.top_p < 1.0:
        keep = (probs.cumsum(dim=-1) - probs) < config.top_p
    if config.min_p:
        above = probs >= config.min_p * probs[:, :1]
        keep = above if keep is None else keep & above
    if keep is None:
        return probs
    probs = probs * keep
    return probs / probs.sum(dim=-1, keepdim=True)


# --- the sampler: per-batch state (generator, penalty counts) and one call per step ---------------------


@dataclass
class SampleStep:
    """One step's choice for every row: tokens [B] and, when asked, their log-probabilities."""

    tokens: torch.Tensor
    logprobs: torch.Tensor | None = None  # [B]
    top_ids: torch.Tensor | None = None  # [B, top_logprobs], most likely first
    top_logprobs: torch.Tensor | None = None  # [B, top_logprobs]


def distribution(logits: torch.Tensor, config: SamplingConfig, seen: torch.Tensor | None = None,
                 counts: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The sampling distribution of logits [B, V]: probabilities [B, C] over candidates [B, C], or over the
    whole vocabulary (candidates None).

    With top-k on, only the k best tokens can be drawn, and `torch.topk` hands them over sorted, so
    temperature, top-p and min-p reduce to a few operations on k numbers instead of sorting all V:
    the same distribution as `process_logits` (tested). An exact tie at the k-th logit, which top-k
    keeps whole, takes the full path.
    """
    logits = apply_penalties(logits, config, seen, counts)
    k = config.top_k
    if k and k < logits.size(-1):
        best, candidates = torch.topk(logits, k + 1, dim=-1)
        if not bool((best[:, k] == best[:, k - 1]).any()):
            return _warp_sorted(best[:, :k], config), candidates[:, :k]
    return warp_logits(logits, config).softmax(dim=-1), None


def draw(probs: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF sampling: row i takes the first column whose cumulative probability passes u_i · total.

    Exact (column j is taken with probability p_j / total) and cheap: one uniform per row, where
    `torch.multinomial` draws one exponential per column (measured on one CPU core: 13 vs 48 µs for
    1,024 columns, 61 vs 1,039 µs for GPT-2's 50,257).
    Rounding can put u · total at the very end of the sum; the last column with any probability then
    stands in, so a filtered-out token is never drawn.
    """
    cdf = probs.cumsum(dim=-1)
    total = cdf[:, -1:].contiguous()
    picked = torch.searchsorted(cdf, uniforms * total, right=True)
    return torch.minimum(picked, torch.searchsorted(cdf, total)).squeeze(-1)


def choose(logits: torch.Tensor, config: SamplingConfig, seen: torch.Tensor | None, counts: torch.Tensor | None,
           uniforms: torch.Tensor | None) -> torch.Tensor:
    """Next tokens [B] for logits [B, V] under one config: argmax when greedy, else `draw` with `uniforms` [B, 1].

    A row whose numbers are not a distribution (a NaN anywhere, or no token left with any probability)
    gets INVALID instead of an arbitrary token, so the caller can fail that row alone.
    """
    if config.greedy:
        # one pass: a row's maximum is NaN when it holds a NaN, and −inf when every token is −inf; without penalties
        # the logits as they come (bf16 widens to fp32 exactly, so the same token wins, without a 49k-entry copy)
        scores = apply_penalties(logits, config, seen, counts) if config.penalized else logits
        if scores.is_cpu and scores.dtype in matvec.STREAMED and matvec.available():
            return matvec.kernel().greedy(scores, INVALID)  # the same choice in one call (tested)
        best, tokens = scores.max(dim=-1)
        return tokens.masked_fill(best.isnan() | (best == float("-inf")), INVALID)
    probs, candidates = distribution(logits, config, seen, counts)
    broken = ~(probs.isfinite().all(dim=-1) & (probs.sum(dim=-1) > 0))
    tokens = draw(probs, uniforms)
    tokens = tokens if candidates is None else candidates.gather(1, tokens.clamp(max=candidates.size(1) - 1)
                                                                 .unsqueeze(-1)).squeeze(-1)
    return tokens.masked_fill(broken, INVALID)


class Sampler:
    """Chooses next tokens for a batch of B sequences, remembering what each has produced for penalties."""

    def __init__(self, config: SamplingConfig, batch_size: int, vocab_size: int,
                 device: torch.device | str = "cpu"):
        self.config = config
        self.device = torch.device(device)
        self.generator: torch.Generator | None = None
        if config.seed is not None:
            self.generator = torch.Generator(device=device)
            self.generator.manual_seed(config.seed)
        self.seen = (torch.zeros(batch_size, vocab_size, dtype=torch.bool, device=device)
                     if config.repetition_penalty != 1.0 else None)
        self.counts = (torch.zeros(batch_size, vocab_size, dtype=torch.float32, device=device)
                       if config.frequency_penalty or config.presence_penalty else None)

    def observe_prompt(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Mark prompt tokens [B, T] as seen for the repetition penalty; `mask` is 0 at padding."""
        if self.seen is None:
            return
        keep = torch.ones_like(ids) if mask is None else mask.long()
        hits = torch.zeros(self.seen.shape, dtype=torch.long, device=ids.device).scatter_add_(1, ids, keep)
        self.seen |= hits > 0  # a count, not a scatter of booleans: a padding id may also be a real token

    def distribution(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """This sampler's distribution for logits [B, V] (see the module function `distribution`)."""
        return distribution(logits, self.config, self.seen, self.counts)

    def uniforms(self, rows: int) -> torch.Tensor:
        """[rows, 1] uniforms from this sampler's generator (the global one when it has no seed)."""
        return torch.rand(rows, 1, generator=self.generator, device=self.device)

    def record(self, tokens: torch.Tensor) -> None:
        """Count chosen tokens [B] for the penalties."""
        column = tokens.unsqueeze(-1)
        if self.seen is not None:
            self.seen.scatter_(1, column, True)
        if self.counts is not None:
            self.counts.scatter_add_(1, column, torch.ones_like(column, dtype=self.counts.dtype))

    def __call__(self, logits: torch.Tensor) -> SampleStep:
        """Choose one token per row from logits [B, V] and record it."""
        config = self.config
        tokens = choose(logits, config, self.seen, self.counts,
                        None if config.greedy else self.uniforms(logits.size(0)))
        broken = (tokens == INVALID).nonzero().flatten().tolist()
        if broken:
            raise ValueError(f"the next-token distribution of row(s) {broken} is not finite (NaN logits?)")
        self.record(tokens)
        step = SampleStep(tokens)
        if config.wants_logprobs:
            logp = logits.float().log_softmax(dim=-1)
            step.logprobs = logp.gather(1, tokens.unsqueeze(-1)).squeeze(-1)
            if config.top_logprobs:
                step.top_logprobs, step.top_ids = torch.topk(logp, config.top_logprobs, dim=-1)
        return step


def sample_rows(samplers: Sequence[Sampler], logits: torch.Tensor) -> list[int]:
    """One token per row of logits [B, V], row i chosen by `samplers[i]` (a one-row sampler with its own
    settings, seed and penalty counts): the same distribution and the same uniform from its generator as
    `samplers[i](logits[i:i + 1])`, so the same token (barring a top-k tie in another row of its group,
    which sends the group down the full path: the same distribution, rounded differently).

    For continuous batching: rows that share their settings are processed in one call, and the tokens come
    back with one device-to-host copy, where a loop over rows would pay each row's kernel launches and
    synchronisation (on a GPU) or Python and sampling overhead (on a CPU). Log-probabilities are not kept.
    A row whose distribution is broken gets INVALID (see `choose`); the other rows are unaffected.
    """
    tokens = torch.empty(len(samplers), dtype=torch.long, device=logits.device)
    groups: dict[tuple, list[int]] = {}
    for row, sampler in enumerate(samplers):
        groups.setdefault(sampler.config.processing, []).append(row)
    for rows in groups.values():
        members = [samplers[row] for row in rows]
        config = members[0].config
        seen = torch.cat([m.seen for m in members]) if config.repetition_penalty != 1.0 else None
        counts = torch.cat([m.counts for m in members]) if config.frequency_penalty or config.presence_penalty else None
        uniforms = None if config.greedy else torch.cat([m.uniforms(1) for m in members])
        index = torch.tensor(rows, device=logits.device) if len(rows) < len(samplers) else None
        picked = choose(logits if index is None else logits[index], config, seen, counts, uniforms)
        if index is None:
            tokens = picked
        else:
            tokens[index] = picked
    chosen = tokens.tolist()
    for row, sampler in enumerate(samplers):
        if (sampler.seen is not None or sampler.counts is not None) and chosen[row] != INVALID:
            sampler.record(tokens[row:row + 1])
    return chosen


# --- stop strings, checked on decoded text -----------------------------------------------------------


class StopStrings:
    """Finds stop strings in growing text, and says how much of the text is safe to show already.

    Streaming must hold back a tail that could be the start of a stop string ("<|e" of "<|end|>"),
    otherwise a user would see text that the finished answer does not contain.
    """

    def __init__(self, stops: Sequence[str]):
        self.stops = tuple(stops)
        self.longest = max((len(s) for s in self.stops), default=0)

    def find(self, text: str, start: int = 0) -> int | None:
        """Index of the earliest stop string in text that ends after `start`, or None."""
        begin = max(0, start - self.longest + 1)
        hits = [i for i in (text.find(s, begin) for s in self.stops) if i >= 0]
        return min(hits) if hits else None

    def safe_length(self, text: str) -> int:
        """Length of the prefix of text that no future text can turn into the start of a stop string."""
        for size in range(min(self.longest - 1, len(text)), 0, -1):
            tail = text[-size:]
            if any(s.startswith(tail) for s in self.stops):
                return len(text) - size
        return len(text)


# --- what a finished generation returns ------------------------------------------------------------


@dataclass
class Completion:
    """A generated continuation and why it ended ("stop": end token or stop string; "length")."""

    token_ids: list[int]
    text: str | None = None
    finish_reason: str = "length"
    logprobs: list[float] = field(default_factory=list)
    top_logprobs: list[dict[int, float]] = field(default_factory=list)
