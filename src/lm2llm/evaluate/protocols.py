"""One model, one text, three perplexity protocols (`windows.py` says how each cuts the text).

Token perplexity depends on the tokenizer and on how much context each scored token had; bits per byte
removes the first dependency, not the second. Putting lm-eval's, llama.cpp's and nanochat's numbers for
the same model and text side by side shows a learner why published figures disagree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from lm2llm.evaluate.scorer import ModelScorer
from lm2llm.evaluate.windows import llama_cpp_chunks, nanochat_rows, rolling_windows


def _token_byte_counts(scorer: ModelScorer, tokens: Sequence[int], specials: set[int]) -> list[int]:
    table = getattr(scorer.tokenizer, "token_bytes", None)
    return [0 if t in specials else len(table(t)) if table else len(scorer.tokenizer.decode([t]).encode("utf-8"))
            for t in tokens]


def _summary(nats: float, tokens: int, byte_count: int, **extra) -> dict:
    return {"tokens_scored": tokens, "bytes": byte_count, "token_perplexity": math.exp(-nats / tokens),
            "bits_per_byte": -nats / byte_count / math.log(2), **extra}


def compare_protocols(scorer: ModelScorer, texts: Sequence[str], n_ctx: int) -> dict[str, dict]:
    """lm-eval rolling (each text alone), llama-perplexity (texts joined by blank lines, n_ctx chunks, second
    halves scored) and nanochat bpb (texts after a document token, rows of n_ctx) for the same model."""
    start = scorer.prefix_id
    encoded = [scorer.tokenizer.encode(text) for text in texts]
    out = {}
    pairs = [w for tokens in encoded for w in rolling_windows(tokens, start, n_ctx)]
    nats = sum(ll for ll, _ in scorer.score_tokens(pairs))
    out["lm-eval rolling"] = _summary(nats, sum(map(len, encoded)), sum(len(t.encode("utf-8")) for t in texts),
                                      note="every token once; each text alone; bytes of the text")
    stream = [start, *scorer.tokenizer.encode("\n\n".join(texts))]
    chunks = llama_cpp_chunks(stream, n_ctx, start)
    if chunks:
        scored = [(chunk[:first + 1], stream[index * n_ctx + first + 1:(index + 1) * n_ctx])
                  for index, (chunk, first) in enumerate(chunks)]
        nats = sum(ll for ll, _ in scorer.score_tokens(scored))
        targets = [t for _, continuation in scored for t in continuation]
        out["llama.cpp perplexity"] = _summary(nats, len(targets), sum(_token_byte_counts(scorer, targets, set())),
                                               note=f"{len(chunks)} chunks of {n_ctx}; second halves only; "
                                                    f"{len(stream) - len(chunks) * n_ctx} tail tokens unscored")
    rows = nanochat_rows(encoded, start, n_ctx)
    if rows:
        logprobs = scorer.token_logprobs([(row[:1], row[1:]) for row in rows])
        nats, byte_count, tokens = 0.0, 0, 0
        for row, (values, _) in zip(rows, logprobs, strict=True):
            sizes = _token_byte_counts(scorer, row[1:], {start})
            for value, size in zip(values.tolist(), sizes, strict=True):
                if size:  # a document token is a target of 0 bytes: left out
                    nats, byte_count, tokens = nats + value, byte_count + size, tokens + 1
        out["nanochat bpb"] = _summary(nats, tokens, byte_count,
                                       note=f"{len(rows)} rows of {n_ctx}; document tokens count 0 bytes")
    return out
