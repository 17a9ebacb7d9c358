"""N-gram counting with numpy: every n-gram of a corpus gets an integer id, order by order.

An n-gram of order n is a pair (id of its first n-1 words, last word); packed as the int64 key
`context_id * V + word`, one `np.unique` per order counts a million tokens in well under a second.
Sorted keys double as the lookup table (`np.searchsorted`), and all n-grams sharing a context are
contiguous, which is what smoothing needs.

Windows follow lmplz's padding: a sentence is `<s> w1 .. wk </s>` and a window never reaches left of
its `<s>` (lmplz pads with N-1 `<s>` and then collapses `<s> <s> w` to `<s> w`, which is the same set).
The unigram table holds the whole vocabulary with id = word id, so `<s>` and `<unk>` exist with count 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lm2llm.errors import UserError
from lm2llm.ngram.vocab import BOS_ID, Vocabulary

MAX_ORDER = 6


@dataclass
class NgramTable:
    """The n-gram inventory of a model: per order n (index n-1) the sorted keys `context_id * V + word`."""

    vocab: Vocabulary
    keys: list[np.ndarray]

    @property
    def order(self) -> int:
        return len(self.keys)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def contexts(self, n: int) -> np.ndarray:
        """Id (in the order n-1 table) of the first n-1 words of each n-gram of order n."""
        return self.keys[n - 1] // self.vocab_size

    def last_words(self, n: int) -> np.ndarray:
        return self.keys[n - 1] % self.vocab_size

    def words_of(self, n: int, ids: np.ndarray) -> np.ndarray:
        """The n words of n-grams `ids` at order n, as an array [len(ids), n] of word ids."""
        columns = []
        ids = np.asarray(ids, dtype=np.int64)
        for m in range(n, 0, -1):
            columns.append(self.keys[m - 1][ids] % self.vocab_size)
            ids = self.keys[m - 1][ids] // self.vocab_size
        return np.stack(columns[::-1], axis=1)

    def lookup(self, n: int, context_ids: np.ndarray, words: np.ndarray) -> np.ndarray:
        """Ids of the n-grams (context, word) at order n, -1 where absent or where the context is -1."""
        if n == 1:
            return np.asarray(words, dtype=np.int64).copy()
        keys = self.keys[n - 1]
        context_ids = np.asarray(context_ids, dtype=np.int64)
        query = context_ids * self.vocab_size + words
        if len(keys) == 0:
            return np.full(len(query), -1, dtype=np.int64)
        pos = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
        return np.where((keys[pos] == query) & (context_ids >= 0), pos, -1)

    def window_ids(self, tokens: np.ndarray, sentence_start: np.ndarray) -> list[np.ndarray]:
        """For every position i and order n: id of the n-gram ending at i, -1 if absent or crossing `<s>`."""
        positions = np.arange(len(tokens))
        out = [tokens.astype(np.int64)]
        for n in range(2, self.order + 1):
            ids = np.full(len(tokens), -1, dtype=np.int64)
            valid = (positions - n + 1 >= sentence_start) & (tokens != BOS_ID)
            where = positions[valid]
            ids[where] = self.lookup(n, out[-1][where - 1], tokens[where])
            out.append(ids)
        return out


@dataclass
class NgramCounts(NgramTable):
    """Counted n-grams: keys plus, per order, raw counts and the id of each n-gram's suffix (last n-1 words)."""

    counts: list[np.ndarray]
    suffixes: list[np.ndarray]  # order 1: empty

    @classmethod
    def from_ids(cls, vocab: Vocabulary, tokens: np.ndarray, sentence_start: np.ndarray, order: int) -> NgramCounts:
        if not 1 <= order <= MAX_ORDER:
            raise UserError(f"order must be 1..{MAX_ORDER}, got {order}", where="order")
        size = len(vocab)
        positions = np.arange(len(tokens))
        targets = tokens != BOS_ID
        keys = [np.arange(size, dtype=np.int64)]
        counts = [np.bincount(tokens[targets], minlength=size).astype(np.int64)]
        suffixes = [np.zeros(0, dtype=np.int64)]
        ids_here = tokens.astype(np.int64)  # id of the (n-1)-gram ending at each position
        for n in range(2, order + 1):
            where = positions[(positions - n + 1 >= sentence_start) & targets]
            packed = ids_here[where - 1] * size + tokens[where]
            unique, inverse = np.unique(packed, return_inverse=True)
            suffix = np.empty(len(unique), dtype=np.int64)
            suffix[inverse] = ids_here[where]
            keys.append(unique)
            counts.append(np.bincount(inverse, minlength=len(unique)).astype(np.int64))
            suffixes.append(suffix)
            ids_next = np.full(len(tokens), -1, dtype=np.int64)
            ids_next[where] = inverse
            ids_here = ids_next
        return cls(vocab, keys, counts, suffixes)

    def starts_with_bos(self, n: int) -> np.ndarray:
        """Whether each n-gram of order n begins with `<s>` (follow the context chain down to order 1)."""
        ids = np.arange(len(self.keys[n - 1]))
        for m in range(n, 1, -1):
            ids = self.keys[m - 1][ids] // self.vocab_size
        return ids == BOS_ID

    def n_tokens(self) -> int:
        """Scored tokens (words and `</s>`), the denominator lmplz and perplexity use."""
        return int(self.counts[0].sum())
