"""`logprobs` on /v1/completions (OpenAI's legacy format), which lm-eval's `local-completions` backend
uses to score log-likelihoods: `echo=True, max_tokens=1, logprobs=1` returns the log-probability of every
prompt token given the tokens before it.

The numbers come from one teacher-forced forward pass over prompt + generated tokens (in a worker thread;
the weights are only read), so they are the model's own distribution, as a sampler with temperature 1
would see it: `token_logprobs[i]` = log p(token i | tokens < i) (None for the first token, which nothing
predicts), `top_logprobs[i]` = the `k` most likely tokens at that position, by their text.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lm2llm.tokenizer import Tokenizer


@torch.inference_mode()
def completion_logprobs(model: nn.Module, tokenizer: Tokenizer, prompt: list[int], generated: list[int],
                        top: int, echo: bool) -> dict:
    ids = prompt + generated
    device = next(model.parameters()).device
    logits, _ = model(torch.tensor([ids], device=device))
    logprobs = F.log_softmax(logits[0, :-1].float(), dim=-1)
    picked = [None, *logprobs.gather(1, torch.tensor(ids[1:], device=device).unsqueeze(1)).squeeze(1).tolist()]
    best = [None] + ([{tokenizer.decode([int(t)]): float(v) for t, v in zip(*reversed(row.topk(top)), strict=True)}
                      for row in logprobs] if top else [{} for _ in ids[1:]])
    start = 0 if echo else len(prompt)
    tokens = [tokenizer.decode([t]) for t in ids[start:]]
    offsets, at = [], 0
    for text in tokens:
        offsets.append(at)
        at += len(text)
    return {"tokens": tokens, "token_logprobs": picked[start:], "top_logprobs": best[start:], "text_offset": offsets}
