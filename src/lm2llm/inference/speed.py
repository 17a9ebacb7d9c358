"""What a KV cache buys: the time to produce one token at a given context length, with and without it.

Without a cache every new token reruns the model over the whole context (as nanoGPT's sampler does), so
its cost grows with the context; with one, a step feeds a single token and attends over stored keys and
values, so the cost stays nearly flat. RNNs are measured the same way (carrying the hidden state vs
rerunning the sequence).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
from torch import nn


@torch.inference_mode()
def token_latency_ms(model: nn.Module, context: int, *, cached: bool, repeats: int = 3, seed: int = 0) -> float:
    """Best-of-`repeats` milliseconds for the forward pass that yields the next token after `context` tokens."""
    vocab = model.config.vocab_size
    ids = torch.randint(0, vocab, (1, context), generator=torch.Generator().manual_seed(seed))
    ids = ids.to(next(model.parameters()).device)
    best = float("inf")
    for _ in range(repeats):
        if cached:
            state = model.new_state(1, context)
            if context > 1:
                model(ids[:, :-1], state=state)  # the prompt already in the cache (not timed)
            start = time.perf_counter()
            model(ids[:, -1:], state=state)
        else:
            start = time.perf_counter()
            model(ids)
        best = min(best, time.perf_counter() - start)
    return 1000 * best


def latency_curve(model: nn.Module, contexts: Sequence[int], repeats: int = 3) -> list[dict[str, float]]:
    """Per-token latency with and without the cache at each context length, and the speed-up."""
    rows = []
    for context in contexts:
        with_cache = token_latency_ms(model, context, cached=True, repeats=repeats)
        without = token_latency_ms(model, context, cached=False, repeats=repeats)
        rows.append({"context": context, "cached_ms": with_cache, "uncached_ms": without,
                     "speedup": without / with_cache})
    return rows
