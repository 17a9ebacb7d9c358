"""How varied and how repetitive generated text is: distinct-n and the repetition rate.

- distinct-n (Li et al. 2016): distinct n-grams / all n-grams, pooled over a set of samples. Low values
  mean the samples keep saying the same things.
- repetition rate (Welleck et al. 2019's seq-rep-n): within one sample, the share of n-grams that repeat
  an n-gram seen earlier in it, averaged over samples. Greedy decoding's loops push it towards 1.

Both work on token ids (or characters): what counts is the unit the model generates.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence


def ngrams(tokens: Sequence[Hashable], n: int) -> list[tuple]:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(samples: Sequence[Sequence[Hashable]], n: int) -> float:
    """Distinct n-grams over all n-grams in all samples (0 when there are none)."""
    pooled = [gram for sample in samples for gram in ngrams(sample, n)]
    return len(set(pooled)) / len(pooled) if pooled else 0.0


def repetition_rate(samples: Sequence[Sequence[Hashable]], n: int = 4) -> float:
    """Mean over samples of 1 − distinct/total n-grams within the sample (samples shorter than n skipped)."""
    rates = []
    for sample in samples:
        grams = ngrams(sample, n)
        if grams:
            rates.append(1 - len(set(grams)) / len(grams))
    return sum(rates) / len(rates) if rates else 0.0
