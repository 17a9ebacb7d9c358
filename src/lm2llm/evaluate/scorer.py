"""The three request kinds for the neural models (GPT, LLaMA, RNNs), batched by length.

Scoring follows lm-eval's `HFLM`: a (context, continuation) pair is tokenised as context + continuation
and split where the context's own tokens end; the model reads the last max_length + 1 tokens minus one,
and the log-probabilities of the continuation's tokens are summed. Requests are sorted by length (longest
first, as lm-eval's `Collator` does) and cut into batches; rows are right-padded, which a causal model
cannot see, so no attention mask is needed.

Batch invariance (a known lm-eval pain): the padding a causal model cannot see still changes the shapes
of its matrix products, and with them the rounding (measured: ~1e-7 in logits, up to 1.5e-5 in a summed
log-likelihood). So a row is always padded to its own length rounded up to `PAD_MULTIPLE`, and a batch
only holds rows of one such width: a row's numbers are then the same at batch size 1 and 8 (fp32, CPU).
`generate_until` is greedy decoding through `inference.TextGenerator` with stop strings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from lm2llm.errors import UserError
from lm2llm.evaluate.requests import Generation, split_trailing_space
from lm2llm.evaluate.windows import rolling_windows
from lm2llm.inference import SamplingConfig, TextGenerator
from lm2llm.inference.engine import context_limit

TokenPair = tuple[list[int], list[int]]
DEFAULT_MAX_LENGTH = 2048  # windows for a model without a context limit (an RNN): lm-eval's HFLM default
PAD_MULTIPLE = 16


def padded_width(length: int) -> int:
    return -(-length // PAD_MULTIPLE) * PAD_MULTIPLE


def by_length(items: Sequence, length: Callable[[object], int], batch_size: int,
              same: Callable[[int], int] = lambda n: 0) -> list[list[int]]:
    """Indices of `items` grouped into batches, longest first, a batch only holding items of one
    `same(length)`; the callers put results back in request order."""
    order = sorted(range(len(items)), key=lambda i: -length(items[i]))
    batches: list[list[int]] = []
    for i in order:
        if batches and len(batches[-1]) < batch_size and same(length(items[batches[-1][0]])) == same(length(items[i])):
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


class ModelScorer:
    """A `TextGenerator` (model + tokenizer) answering lm-eval's requests."""

    def __init__(self, generator: TextGenerator, *, name: str = "model", batch_size: int = 8,
                 max_length: int | None = None):
        self.generator, self.name, self.batch_size = generator, name, max(1, batch_size)
        self.model, self.tokenizer = generator.model, generator.tokenizer
        bounds = [x for x in (max_length, context_limit(self.model)) if x]
        self.max_length = min(bounds) if bounds else DEFAULT_MAX_LENGTH
        eos = getattr(self.tokenizer, "eos_id", None)
        bos = getattr(self.tokenizer, "bos_id", None)
        self.prefix_id = bos if bos is not None else (eos if eos is not None else 0)

    # -- tokenisation ------------------------------------------------------------------------------------
    def encode_pair(self, context: str, continuation: str) -> TokenPair:
        if not context:
            return [self.prefix_id], self.tokenizer.encode(continuation)
        context, continuation = split_trailing_space(context, continuation)
        whole = self.tokenizer.encode(context + continuation)
        context_ids = self.tokenizer.encode(context)
        return context_ids, whole[len(context_ids):]

    # -- the three request kinds -------------------------------------------------------------------------
    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[tuple[float, bool]]:
        return self.score_tokens([self.encode_pair(context, continuation) for context, continuation in requests])

    def loglikelihood_rolling(self, texts: Sequence[str]) -> list[float]:
        windows, owner = [], []
        for index, text in enumerate(texts):
            for window in rolling_windows(self.tokenizer.encode(text), self.prefix_id, self.max_length):
                windows.append(window)
                owner.append(index)
        totals = [0.0] * len(texts)
        for index, (logprob, _) in zip(owner, self.score_tokens(windows), strict=True):
            totals[index] += logprob
        return totals

    def generate_until(self, requests: Sequence[Generation]) -> list[str]:
        out = [""] * len(requests)
        prompts = [self.tokenizer.encode(r.context) or [self.prefix_id] for r in requests]
        groups: dict[tuple, list[int]] = {}
        for index, request in enumerate(requests):  # one batch shares stop strings and length, as in lm-eval
            groups.setdefault((request.until, request.max_tokens), []).append(index)
        for (until, max_tokens), members in groups.items():
            room = max(1, self.max_length - max_tokens)
            for batch in by_length(members, lambda i: len(prompts[i]), self.batch_size):
                config = SamplingConfig(temperature=0, max_new_tokens=max_tokens, stop=until)
                done = self.generator.generate([prompts[members[j]][-room:] for j in batch], config)
                for j, completion in zip(batch, done, strict=True):
                    out[members[j]] = completion.text
        return out

    # -- token level -------------------------------------------------------------------------------------
    @torch.inference_mode()
    def score_tokens(self, pairs: Sequence[TokenPair]) -> list[tuple[float, bool]]:
        """(sum of log-probs of the continuation, whether every continuation token is the argmax) per pair."""
        results: list[tuple[float, bool]] = [(0.0, True)] * len(pairs)
        longest = max((len(continuation) for _, continuation in pairs), default=0)
        if longest > self.max_length:
            raise UserError(f"a continuation of {longest} tokens is longer than the {self.max_length} tokens "
                            "the model sees", where=self.name, hint="shorter choices or a larger --max-length")
        inputs = [(context + continuation)[-(self.max_length + 1):][:-1] for context, continuation in pairs]
        device = next(self.model.parameters()).device
        width_of = lambda n: min(padded_width(n), self.max_length)  # noqa: E731 - never past the context
        for batch in by_length(inputs, len, self.batch_size, width_of):
            width = width_of(len(inputs[batch[0]]))
            ids = torch.zeros(len(batch), width, dtype=torch.long)
            for row, i in enumerate(batch):
                ids[row, :len(inputs[i])] = torch.tensor(inputs[i], dtype=torch.long)
            logits, _ = self.model(ids.to(device))
            for row, i in enumerate(batch):
                continuation = pairs[i][1]
                end = len(inputs[i])
                logprobs = F.log_softmax(logits[row, end - len(continuation):end].float(), dim=-1)
                target = torch.tensor(continuation, dtype=torch.long, device=device)
                total = logprobs.gather(1, target.unsqueeze(1)).sum()
                results[i] = (float(total), bool((logprobs.argmax(-1) == target).all()))
        return results
