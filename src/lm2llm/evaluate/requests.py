"""The three request kinds of lm-evaluation-harness, and the interface every scorable model offers.

- `loglikelihood(context, continuation)` → (log P(continuation | context) in nats, whether greedy
  decoding would have produced exactly that continuation);
- `loglikelihood_rolling(text)` → log P(text) in nats, the text cut into windows of the model's context
  (`windows.rolling_windows`), each token scored once;
- `generate_until(context, until, max_tokens)` → greedy text, cut before the first stop string.

Word-boundary spaces belong to the continuation (" Paris", not "Paris "), as in lm-eval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Generation:
    """A `generate_until` request."""

    context: str
    until: tuple[str, ...] = ()
    max_tokens: int = 256


class Scorer(Protocol):
    """A model that answers the three request kinds (a neural run, an n-gram, a remote server)."""

    name: str

    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[tuple[float, bool]]: ...

    def loglikelihood_rolling(self, texts: Sequence[str]) -> list[float]: ...

    def generate_until(self, requests: Sequence[Generation]) -> list[str]: ...


def split_trailing_space(context: str, continuation: str) -> tuple[str, str]:
    """lm-eval moves trailing spaces of the context onto the continuation before tokenising the pair."""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        return context[:-spaces], context[-spaces:] + continuation
    return context, continuation


def cut_at_stops(text: str, until: Sequence[str]) -> str:
    """The text before the earliest stop string (all of it when none occurs)."""
    cut = min((index for index in (text.find(stop) for stop in until if stop) if index >= 0), default=len(text))
    return text[:cut]
