"""How a text longer than the model's context is cut into scored windows: three protocols users meet.

Published perplexities disagree partly because they are not computed the same way. For a token list
and a model that sees `L` tokens at once:

- **lm-eval's `loglikelihood_rolling`** (`rolling_windows`): the first window is
  [prefix] + tokens[:L−1] predicting tokens[:L]; each later window predicts the next ≤ L tokens, given
  as much preceding text as fits. Every token is scored exactly once, the early ones with little context.
- **llama.cpp's `llama-perplexity`** (`llama_cpp_chunks`): the token stream is cut into chunks of L
  (the first token of each chunk replaced by BOS); only the second half of each chunk is scored, so every
  scored token has at least L/2 tokens of context. The leftover tail shorter than L is not scored.
- **nanochat's bits per byte** (`nanochat_rows`): documents, each after a BOS token, are concatenated and
  cut into consecutive rows of L+1 tokens (inputs row[:-1], targets row[1:]; at batch size 1 its loader
  takes L+1 fresh tokens per row, so the first token of each row is never a target); a special-token
  target counts 0 bytes and is left out of the sum.
"""

from __future__ import annotations

from collections.abc import Sequence

Window = tuple[list[int], list[int]]  # (context tokens, continuation tokens to score)


def rolling_windows(tokens: Sequence[int], prefix: int, max_length: int) -> list[Window]:
    """lm-eval's rolling windows made disjoint (`get_rolling_token_windows` with context_len=1 followed by
    `make_disjoint_window`): each token appears in exactly one continuation."""
    if max_length < 1:
        raise ValueError("max_length must be at least 1")
    tokens = list(tokens)
    if not tokens:
        return []
    first = min(max_length, len(tokens))
    windows: list[Window] = [([prefix], tokens[:first])]
    predicted = first
    while predicted < len(tokens):
        length = min(len(tokens) - predicted, max_length)
        end = predicted + length
        context = tokens[max(end - max_length - 1, 0):end - 1]
        windows.append((context[:len(context) - (length - 1)], tokens[end - length:end]))
        predicted += length
    return windows


def llama_cpp_chunks(tokens: Sequence[int], n_ctx: int, bos: int | None) -> list[tuple[list[int], int]]:
    """llama-perplexity's chunks: (input of n_ctx tokens, index of its first scored prediction).

    Logit j of a chunk predicts input token j+1; positions first = n_ctx // 2 .. n_ctx−2 are scored."""
    if n_ctx < 4:
        raise ValueError("n_ctx must be at least 4")
    chunks = []
    for start in range(0, len(tokens) - n_ctx + 1, n_ctx):
        chunk = list(tokens[start:start + n_ctx])
        if bos is not None:
            chunk[0] = bos
        chunks.append((chunk, n_ctx // 2))
    return chunks


def nanochat_rows(documents: Sequence[Sequence[int]], bos: int, row_length: int) -> list[list[int]]:
    """Documents joined as [BOS] doc [BOS] doc ..., cut into consecutive rows of row_length + 1 tokens (the
    last partial row dropped), each row giving row_length (input, target) pairs."""
    stream = [token for document in documents for token in (bos, *document)]
    width = row_length + 1
    return [stream[start:start + width] for start in range(0, len(stream) - width + 1, width)]
