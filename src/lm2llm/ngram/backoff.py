"""A backoff language model (what an ARPA file holds), scored with KenLM's conventions.

p(w | h) = p(h w) if the n-gram `h w` is listed, else b(h) * p(w | h minus its first word), in log10.
`Model.score(sentence, bos=True, eos=True)` in KenLM is the sum of log10 p over the words and `</s>`
(`<s>` is context only); an unknown word is scored as `<unk>`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lm2llm.ngram.counts import NgramTable
from lm2llm.ngram.vocab import BOS_ID


@dataclass
class BackoffModel(NgramTable):
    """Per order n (index n-1): log10 probability and log10 backoff of each listed n-gram."""

    log10_probs: list[np.ndarray]
    log10_backoffs: list[np.ndarray]

    def token_log10_probs(self, tokens: np.ndarray, sentence_start: np.ndarray) -> np.ndarray:
        """log10 p of every token after `<s>` (positions where tokens != `<s>`), vectorised over the corpus."""
        windows = self.window_ids(tokens, sentence_start)
        targets = np.flatnonzero(tokens != BOS_ID)
        # longest listed n-gram ending at each target
        best = np.zeros(len(targets), dtype=np.float64)
        matched = np.zeros(len(targets), dtype=np.int64)
        for n in range(1, self.order + 1):
            ids = windows[n - 1][targets]
            hit = ids >= 0
            best[hit] = self.log10_probs[n - 1][ids[hit]]
            matched[hit] = n
        # plus the backoffs of the contexts longer than the match
        backoff = np.zeros(len(targets), dtype=np.float64)
        for k in range(1, self.order):
            context_ids = windows[k - 1][targets - 1]
            use = (context_ids >= 0) & (matched <= k) & (targets - k >= sentence_start[targets])
            backoff[use] += self.log10_backoffs[k - 1][context_ids[use]]
        return best + backoff

    def next_log10_probs(self, context: list[int]) -> np.ndarray:
        """log10 p(w | context) for every word w of the vocabulary (used by generation)."""
        size = self.vocab_size
        result = self.log10_probs[0].copy()
        context = context[-(self.order - 1):] if self.order > 1 else []
        for k in range(1, len(context) + 1):
            suffix = context[-k:]
            context_id = suffix[0]
            for m in range(2, k + 1):
                found = self.lookup(m, np.array([context_id]), np.array([suffix[m - 1]]))[0]
                if found < 0:
                    return result
                context_id = found
            keys = self.keys[k]
            lo, hi = np.searchsorted(keys, [context_id * size, (context_id + 1) * size])
            result = result + self.log10_backoffs[k - 1][context_id]
            result[keys[lo:hi] % size] = self.log10_probs[k][lo:hi]
        return result
