"""How much worse, how much faster: a compressed model scored against its full-precision original.

Quality is measured the way llama.cpp's `perplexity --kl-divergence` does: on the same held-out token
windows, the perplexity of each model, the KL divergence KL(original ‖ compressed) of the next-token
distributions at every position (mean and 99th percentile: a few badly broken positions show in the tail
before they move the mean), and how often both models rank the same token first. Perplexity alone can
hide damage: two models can have equal perplexity and disagree on many tokens.

Speed is batch-1 decoding: tokens per second generating greedily after a short prompt, on the KV cache.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lm2llm.data import load_documents
from lm2llm.inference.engine import generate_ids
from lm2llm.inference.sampling import SamplingConfig
from lm2llm.tokenizer import Tokenizer

# held out from what the tour trains on: python-docs past the first 200 documents, korean-law past the first 4
HELD_OUT = {"python-docs": (200, 260), "korean-law": (4, None)}
CORPORA = tuple(HELD_OUT)


def held_out_windows(tokenizer: Tokenizer, source: str, windows: int, length: int) -> torch.Tensor:
    """(windows, length) token ids cut from `source`'s held-out documents, one after another."""
    start, stop = HELD_OUT[source]
    ids: list[int] = []
    for text in load_documents(source, limit=stop)[start:]:
        ids += tokenizer.encode(text + "\n\n")
        if len(ids) >= windows * length:
            break
    if len(ids) < windows * length:
        windows = max(len(ids) // length, 1)
    return torch.tensor(ids[:windows * length]).view(windows, length)


@dataclass
class Reference:
    """The original model's log-probabilities on the windows (float32: the original scores KL 0 against itself)."""

    windows: torch.Tensor
    log_probs: torch.Tensor  # (windows, length, vocab)

    @classmethod
    @torch.no_grad()
    def of(cls, model: nn.Module, windows: torch.Tensor) -> Reference:
        return cls(windows, torch.stack([F.log_softmax(model(w[None])[0][0].float(), -1) for w in windows]))


@dataclass
class Quality:
    perplexity: float
    kl_mean: float
    kl_p99: float
    top1_agreement: float


@torch.no_grad()
def quality(model: nn.Module | None, reference: Reference) -> Quality:
    """Perplexity of `model` on the reference's windows and its KL divergence / top-1 agreement with the original.
    `None` stands for the original itself: its log-probabilities are the reference's (KL 0, agreement 1)."""
    nll, kls, agree = [], [], []
    for window, original in zip(reference.windows, reference.log_probs, strict=True):
        log_probs = original if model is None else F.log_softmax(model(window[None])[0][0].float(), -1)
        nll.append(-log_probs[:-1].gather(1, window[1:, None]).squeeze(1))
        p = original
        kls.append((p.exp() * (p - log_probs)).sum(-1))
        agree.append(log_probs.argmax(-1) == p.argmax(-1))
    kl = torch.cat(kls)
    return Quality(float(torch.cat(nll).mean().exp()), float(kl.mean()), float(torch.quantile(kl, 0.99)),
                   float(torch.cat(agree).float().mean()))


def decode_speed(model: nn.Module, prompt: Sequence[int], new_tokens: int, repeats: int = 2) -> float:
    """Batch-1 greedy decoding, tokens per second (the best of `repeats`, after one warm-up token)."""
    config = SamplingConfig(max_new_tokens=new_tokens, temperature=0.0)
    generate_ids(model, [list(prompt)], SamplingConfig(max_new_tokens=2, temperature=0.0))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        produced = len(generate_ids(model, [list(prompt)], config)[0].token_ids)
        best = min(best, (time.perf_counter() - start) / max(produced, 1))
    return 1 / best
