"""Interpolated modified Kneser-Ney, estimated exactly as KenLM's `lmplz` does (lm/builder/).

The facts matched, from lmplz's source:
- adjust_counts.cc: the highest order keeps raw counts; a lower-order n-gram gets its continuation
  count (number of distinct words seen to its left), except n-grams starting with `<s>`, which keep raw
  counts; `<unk>` and `<s>` unigrams count 0. Discounts per order from counts-of-counts t1..t4 of these
  adjusted counts: Y = t1/(t1 + 2 t2), D_k = k - (k+1) Y t_{k+1}/t_k (k = 1, 2, 3; D3 serves 3+). A t_k of
  0 or a D_k outside [0, k] is an error unless fallback discounts are given (`--discount_fallback`,
  default 0.5 1 1.5). One quirk kept for equality: the statistics take the *raw* count for the last
  lower-order n-grams of lmplz's stream, the suffixes of the final highest-order n-gram in suffix order.
- initial_probabilities.cc: u(w|c) = (a(cw) - D(a(cw))) / sum_x a(cx);
  gamma(c) = (D1 N1(c.) + D2 N2(c.) + D3 N3+(c.)) / sum_x a(cx). `<s>` gets u = 1 and gamma 0 as a unigram.
- interpolate.cc: p(w|c) = u(w|c) + gamma(c) p(w|c'), the unigrams interpolating with 1/|V| where |V|
  counts `<unk>` but not `<s>` (so p(<unk>) = gamma/|V|); written log10 p, and log10 gamma as the
  backoff of an n-gram that is the context of a longer one (0 otherwise, and always for n-grams ending
  in `</s>` or `<unk>`). lmplz never sees `<unk>` in its input; when our vocabulary limits put `<unk>`
  into the text, it is counted like a word, including its backoff, so the model stays normalised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lm2llm.errors import UserError
from lm2llm.ngram.backoff import BackoffModel
from lm2llm.ngram.counts import NgramCounts
from lm2llm.ngram.vocab import BOS_ID, EOS_ID

LMPLZ_FALLBACK = (0.5, 1.0, 1.5)


@dataclass(frozen=True)
class Discounts:
    """D1, D2, D3+ of one order."""

    d1: float
    d2: float
    d3: float

    def apply(self, adjusted: np.ndarray) -> np.ndarray:
        table = np.array([0.0, self.d1, self.d2, self.d3])
        return table[np.minimum(adjusted, 3)]


def adjusted_counts(counts: NgramCounts) -> list[np.ndarray]:
    """lmplz's adjusted counts a(g) per order (see the module docstring)."""
    order = counts.order
    adjusted = [c.copy() for c in counts.counts]
    for n in range(1, order):
        continuation = np.bincount(counts.suffixes[n], minlength=len(counts.keys[n - 1])).astype(np.int64)
        keep_raw = counts.starts_with_bos(n)
        adjusted[n - 1] = np.where(keep_raw, counts.counts[n - 1], continuation)
    adjusted[0][BOS_ID] = 0  # <s> is never predicted (and has no left context)
    return adjusted


def count_of_counts(counts: NgramCounts, adjusted: list[np.ndarray]) -> list[np.ndarray]:
    """t1..t4 per order as lmplz collects them (index 0 unused), including its last-entry quirk."""
    stats = []
    quirk: dict[int, int] = {}
    order = counts.order
    if order > 1 and len(counts.keys[-1]):
        # lmplz walks the highest order sorted by suffix (last word first, by word id); when it ends, the
        # lower-order n-grams still open (suffixes of the last one) are counted with their raw counts.
        words = counts.words_of(order, np.arange(len(counts.keys[-1])))
        last = int(np.lexsort(words.T)[-1])
        suffix = last
        for n in range(order, 1, -1):
            suffix = int(counts.suffixes[n - 1][suffix])
            quirk[n - 1] = suffix
    for n in range(1, order + 1):
        values = adjusted[n - 1]
        if n in quirk:
            values = values.copy()
            values[quirk[n]] = counts.counts[n - 1][quirk[n]]
        stats.append(np.bincount(np.minimum(values[values > 0], 5), minlength=6)[:5])
    return stats


def compute_discounts(stats: list[np.ndarray], fallback: tuple[float, float, float] | None) -> list[Discounts]:
    result = []
    for n, t in enumerate(stats, start=1):
        problem = None
        if (t[1:5] == 0).any():
            k = int(np.flatnonzero(t[1:5] == 0)[0]) + 1
            problem = f"no {n}-grams with adjusted count {k}"
        else:
            y = t[1] / (t[1] + 2.0 * t[2])
            d = [k - (k + 1) * y * t[k + 1] / t[k] for k in (1, 2, 3)]
            bad = [k for k, dk in zip((1, 2, 3), d, strict=True) if not 0.0 <= dk <= k]
            if bad:
                problem = f"{n}-gram discount D{bad[0]} = {d[bad[0] - 1]:.3f} is outside [0, {bad[0]}]"
        if problem is None:
            result.append(Discounts(*d))
        elif fallback is not None:
            result.append(Discounts(*fallback))
        else:
            raise UserError(
                f"cannot estimate Kneser-Ney discounts: {problem} (is the text tiny or duplicated?)",
                where="kneser-ney",
                hint="use more text, deduplicate it, or pass --discount-fallback (lmplz's 0.5 1 1.5)",
            )
    return result


def estimate_kneser_ney(counts: NgramCounts, discount_fallback: tuple[float, float, float] | None = None
                        ) -> tuple[BackoffModel, list[Discounts]]:
    """The interpolated modified Kneser-Ney backoff model of `counts`, equal to lmplz's ARPA output."""
    adjusted = adjusted_counts(counts)
    discounts = compute_discounts(count_of_counts(counts, adjusted), discount_fallback)
    order = counts.order
    uniform = 1.0 / (counts.vocab_size - 1)  # <unk> included, <s> excluded
    probs: list[np.ndarray] = []
    gammas: list[np.ndarray] = []  # gamma of each context, indexed by the context's id one order below
    for n in range(1, order + 1):
        a = adjusted[n - 1]
        context = counts.contexts(n)
        n_contexts = 1 if n == 1 else len(counts.keys[n - 2])
        denominator = np.bincount(context, weights=a, minlength=n_contexts)
        d = discounts[n - 1]
        mass = np.bincount(context, weights=d.apply(a) * (a > 0), minlength=n_contexts)
        with np.errstate(divide="ignore", invalid="ignore"):
            gamma = np.where(denominator > 0, mass / denominator, 0.0)
            u = (a - d.apply(a)) / denominator[context]
        lower = np.full(len(a), uniform) if n == 1 else probs[-1][counts.suffixes[n - 1]]
        p = u + gamma[context] * lower
        if n == 1:
            p[BOS_ID] = 1.0
        probs.append(p)
        gammas.append(gamma)
    log10_probs = [np.minimum(0.0, np.log10(p)) for p in probs]
    log10_backoffs = []
    for n in range(1, order + 1):
        backoff = np.zeros(len(counts.keys[n - 1]))
        if n < order:
            is_context = np.bincount(counts.contexts(n + 1), minlength=len(backoff)) > 0
            last = counts.last_words(n)
            is_context &= last != EOS_ID
            backoff[is_context] = np.log10(gammas[n][is_context])
        log10_backoffs.append(backoff)
    model = BackoffModel(counts.vocab, counts.keys, log10_probs, log10_backoffs)
    return model, discounts
