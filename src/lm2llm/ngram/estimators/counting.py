"""The count-based estimators that do not back off: maximum likelihood and add-k (Laplace at k = 1),
and stupid backoff (Brants et al. 2007), which backs off but gives scores, not probabilities.

All use the context of the full order N (clipped at `<s>`): p(w | h) from the order-|h|+1 table.
|V| for add-k counts every word that can follow (`<unk>` and `</s>` included, `<s>` excluded), as KenLM does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lm2llm.ngram.counts import NgramCounts
from lm2llm.ngram.vocab import BOS_ID

STUPID_BACKOFF_ALPHA = 0.4


def _context_totals(counts: NgramCounts, n: int) -> np.ndarray:
    """Σ_x c(h x) for every context h of order n, indexed by h's id one order below (order 1: one context)."""
    size = 1 if n == 1 else len(counts.keys[n - 2])
    return np.bincount(counts.contexts(n), weights=counts.counts[n - 1], minlength=size)


@dataclass
class CountEstimator:
    """What the estimators here share: they read the counts directly, so vocabulary and order are theirs."""

    counts: NgramCounts

    @property
    def vocab(self):
        return self.counts.vocab

    @property
    def order(self) -> int:
        return self.counts.order


@dataclass
class AdditiveModel(CountEstimator):
    """p(w | h) = (c(h w) + k) / (c(h) + k |V|); k = 0 is maximum likelihood (zero for any unseen n-gram)."""

    k: float = 0.0

    def _table(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        return self.counts.counts[n - 1].astype(np.float64), _context_totals(self.counts, n)

    def token_log10_probs(self, tokens: np.ndarray, sentence_start: np.ndarray) -> np.ndarray:
        windows = self.counts.window_ids(tokens, sentence_start)
        targets = np.flatnonzero(tokens != BOS_ID)
        span = np.minimum(targets - sentence_start[targets] + 1, self.order)  # n-gram length used at each target
        size = self.counts.vocab_size - 1
        result = np.empty(len(targets))
        for n in range(1, self.order + 1):
            at = span == n
            if not at.any():
                continue
            counts, totals = self._table(n)
            ids = windows[n - 1][targets[at]]
            context = np.zeros(at.sum(), dtype=np.int64) if n == 1 else windows[n - 2][targets[at] - 1]
            numerator = np.where(ids >= 0, counts[np.maximum(ids, 0)], 0.0) + self.k
            denominator = np.where(context >= 0, totals[np.maximum(context, 0)], 0.0) + self.k * size
            with np.errstate(divide="ignore", invalid="ignore"):
                result[at] = np.where(denominator > 0, np.log10(numerator / denominator), -np.inf)
        return result

    def next_log10_probs(self, context: list[int]) -> np.ndarray:
        n = min(len(context), self.order - 1) + 1
        suffix = context[len(context) - n + 1:] if n > 1 else []
        size = self.counts.vocab_size
        scores = np.full(size, self.k)
        total = self.k * (size - 1)
        context_id = 0
        if suffix:
            context_id = suffix[0]
            for m in range(2, n):
                context_id = int(self.counts.lookup(m, np.array([context_id]), np.array([suffix[m - 1]]))[0])
        if context_id >= 0:
            counts, totals = self._table(n)
            keys = self.counts.keys[n - 1]
            lo, hi = np.searchsorted(keys, [context_id * size, (context_id + 1) * size])
            scores[keys[lo:hi] % size] += counts[lo:hi]
            total += totals[context_id]
        scores[BOS_ID] = 0.0
        with np.errstate(divide="ignore"):
            return np.log10(scores / total) if total > 0 else np.full(size, -np.inf)


@dataclass
class StupidBackoffModel(CountEstimator):
    """S(w | h) = c(h w)/c(h) if seen, else 0.4 · S(w | shorter h); S(w) = c(w)/N. Not normalised: a score."""

    alpha: float = STUPID_BACKOFF_ALPHA

    def token_log10_probs(self, tokens: np.ndarray, sentence_start: np.ndarray) -> np.ndarray:
        windows = self.counts.window_ids(tokens, sentence_start)
        targets = np.flatnonzero(tokens != BOS_ID)
        with np.errstate(divide="ignore"):
            score = np.log10(self.counts.counts[0][tokens[targets]] / self.counts.n_tokens())
        penalty = np.log10(self.alpha)
        for n in range(2, self.order + 1):
            ids = windows[n - 1][targets]
            context = windows[n - 2][targets - 1]
            valid = context >= 0
            seen = ids >= 0
            totals = _context_totals(self.counts, n)
            with np.errstate(divide="ignore"):
                relative = np.log10(self.counts.counts[n - 1][np.maximum(ids, 0)] / totals[np.maximum(context, 0)])
            # a longer context that exists replaces the score if seen, or multiplies in alpha once more
            score = np.where(valid & seen, relative, np.where(valid, score + penalty, score))
        return score
