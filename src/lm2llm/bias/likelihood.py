"""Sentence log-likelihoods, the quantity every bias probe compares, and a bootstrap interval for means.

A sentence is scored as lm-eval scores a continuation with an empty context: the sum of log p(token)
over all its tokens, each conditioned on a document-start token (our end-of-text id, which separates
documents in training) and the tokens before it.
"""

from __future__ import annotations

import numpy as np
import torch


@torch.no_grad()
def sentence_logliks(model: torch.nn.Module, tokenizer, sentences: list[str], batch_size: int = 16) -> list[float]:
    """Σ log p(token | start, earlier tokens) for each sentence, in nats."""
    start = tokenizer.eos_id
    encoded = [[start, *tokenizer.encode(s)] for s in sentences]
    scores: list[float] = []
    for first in range(0, len(encoded), batch_size):
        chunk = encoded[first:first + batch_size]
        width = max(len(ids) for ids in chunk)
        ids = torch.tensor([ids + [start] * (width - len(ids)) for ids in chunk])  # right padding: never attended
        logprobs = model(ids)[0].float().log_softmax(-1)[:, :-1].gather(-1, ids[:, 1:, None])[..., 0]
        lengths = torch.tensor([len(ids) - 1 for ids in chunk])
        real = torch.arange(width - 1)[None] < lengths[:, None]
        scores += (logprobs * real).sum(-1).tolist()
    return scores


def bootstrap_interval(values: list[float] | np.ndarray, statistic=np.mean, resamples: int = 2000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of `statistic` over the items."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(values), size=(resamples, len(values)))
    stats = np.array([statistic(values[row]) for row in draws])
    tail = (1 - level) / 2
    return float(np.quantile(stats, tail)), float(np.quantile(stats, 1 - tail))
