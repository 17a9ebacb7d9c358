"""Byte-level BPE from scratch: the tokenizer GPT-2/GPT-4 and most LLMs use, in one readable file.

How it works
------------
1. **Pre-tokenization.** Text is cut into "words" by the GPT-4 regex `SPLIT_PATTERN`: a letter run with
   at most one leading non-letter (`" hello"`, `" 안녕하세요"` — `\\p{L}` covers Hangul, so Korean
   words stay whole), digits in groups of up to three, punctuation runs, and whitespace. Merges never
   cross a word boundary, so " the" and "the " are learned separately and numbers do not fuse.
2. **Bytes.** Each word becomes its UTF-8 bytes; the 256 byte values are the base vocabulary, so any
   string (emoji, Hangul, code) can be encoded without an unknown token. A Hangul syllable is 3 bytes.
3. **Training** repeatedly merges the most frequent adjacent pair of tokens into a new token until the
   vocabulary reaches `vocab_size`.
4. **Encoding** a word applies the learned merges in the order they were learned (lowest rank first).
5. **Special tokens** (`<|endoftext|>`, chat roles, ...) are cut out of the text before step 1 and map
   straight to their ids: they are never split, and never merged with their neighbours.

Matching Hugging Face `tokenizers` exactly
------------------------------------------
The fast path (`lm2llm.tokenizer.fast`) trains the same model with the `tokenizers` library; a test pins
the two to the identical merge list and identical ids. That needs the library's conventions, read from
`tokenizers/src/models/bpe/trainer.rs` (`BpeTrainer::do_train`) and `models/bpe/word.rs`:

- **Id layout.** Special tokens come first (ids 0..k-1, in the order given), then the 256 byte tokens
  sorted by the code point of their printable stand-in character (GPT-2's `bytes_to_unicode` map, which
  is how byte-level tokens are spelled in `tokenizer.json`), then one id per *new* merged token.
- **Which pair is merged.** The pair with the highest count (summed over word frequencies); ties go to
  the *smallest pair of ids* `(left_id, right_id)` — not to the first pair seen, nor to the strings.
- **Incremental counts.** Counts are computed once; a merge only touches the words that contain the
  pair (`where` index), and each occurrence reports count changes for its neighbouring pairs (the pair
  itself is never decremented). A max-heap holds (count, pair, word set); an entry whose count is out of
  date when popped is pushed back with the current count ("lazy invalidation"). Newly formed pairs are
  pushed with the set of words where they appeared in this step.
- **Duplicate strings.** Two different merges can spell the same token ("a"+"bc" and "ab"+"c"); the
  second reuses the first token's id, adds a merge but no new vocabulary entry, and training continues
  until the vocabulary (not the merge list) reaches `vocab_size`.
- **Stopping.** When the vocabulary is full, no pair is left, or the best count is below `min_frequency`.
- **Encoding** merges the lowest-rank adjacent pair first, leftmost on ties, one at a time (the library's
  per-word priority queue); when a pair appears twice in the merge list the later rank is used.
- **Training text** is pre-tokenized without cutting out special tokens (the library's trainer does the
  same), so a literal "<|endoftext|>" in training text counts as ordinary characters.

Limitation: `regex` may know newer Unicode letters than the library's Oniguruma; text with characters
assigned after Unicode 14 can pre-tokenize differently (the fidelity tests draw from Unicode 14).
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache

import regex

# GPT-4's (cl100k) split: contractions, letter runs with one optional leading non-letter, 1-3 digits,
# punctuation runs, newlines, and whitespace (trailing spaces stay with the whitespace, not the next word).
SPLIT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*"""
    r"""|\s*[\r\n]|\s+(?!\S)|\s+"""
)
_SPLIT = regex.compile(SPLIT_PATTERN)


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-in character for each byte (printable bytes map to themselves).

    `tokenizer.json` spells byte-level tokens with these characters, and the library orders the 256
    base tokens by them.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            mapping[byte] = chr(byte)
        else:
            mapping[byte] = chr(256 + extra)
            extra += 1
    return mapping


def pretokenize(text: str) -> list[str]:
    """Cut text into the words BPE merges within (step 1)."""
    return _SPLIT.findall(text)


def _merge_word(word: list[int], left: int, right: int, new_id: int) -> list[tuple[tuple[int, int], int]]:
    """Replace every (left, right) in `word`, left to right, in place; return the pair-count changes.

    Mirrors `Word::merge` in the library: for each occurrence the pairs it breaks with its neighbours
    lose one and the pairs the new token forms with them gain one.
    """
    changes = []
    i = 0
    while i < len(word) - 1:
        if word[i] == left and word[i + 1] == right:
            if i > 0:
                changes.append(((word[i - 1], left), -1))
                changes.append(((word[i - 1], new_id), 1))
            word[i : i + 2] = [new_id]
            if i < len(word) - 1:
                changes.append(((right, word[i + 1]), -1))
                changes.append(((new_id, word[i + 1]), 1))
        i += 1
    return changes


class ByteLevelBPE:
    """A trained byte-level BPE: `vocab[id]` is the token's bytes (or a special token's UTF-8 text)."""

    def __init__(self, vocab: list[bytes], merges: list[tuple[int, int]], special_tokens: list[str]):
        self.vocab = vocab
        self.merges = merges
        self.special_tokens = {token: i for i, token in enumerate(special_tokens)}
        # Rank of each pair and the id it becomes; a later duplicate pair overrides (as in the library).
        self.ranks: dict[tuple[int, int], tuple[int, int]] = {}
        ids: dict[bytes, int] = {}
        for i, token in enumerate(vocab):
            ids.setdefault(token, i)
        for rank, (left, right) in enumerate(merges):
            self.ranks[left, right] = (rank, ids[vocab[left] + vocab[right]])
        self.byte_ids = [ids[bytes([b])] for b in range(256)]
        specials = sorted(special_tokens, key=len, reverse=True)  # longest first: "<|end|>" vs "<|endoftext|>"
        self._special_split = regex.compile("(" + "|".join(map(regex.escape, specials)) + ")") if specials else None
        self._cache: dict[str, list[int]] = {}

    @staticmethod
    def base_vocab(special_tokens: list[str]) -> list[bytes]:
        """Special tokens, then the 256 bytes ordered by their stand-in character (the library's layout)."""
        stand_in = bytes_to_unicode()
        byte_order = sorted(range(256), key=lambda b: ord(stand_in[b]))
        return [token.encode("utf-8") for token in special_tokens] + [bytes([b]) for b in byte_order]

    @classmethod
    def train(
        cls, texts: Iterable[str], vocab_size: int, special_tokens: list[str] = (), min_frequency: int = 0
    ) -> ByteLevelBPE:
        special_tokens = list(special_tokens)
        vocab = cls.base_vocab(special_tokens)
        token_id = {token: i for i, token in enumerate(vocab)}

        # Word frequencies: merges happen inside words, so each distinct word is processed once.
        word_counts: Counter[str] = Counter()
        for text in texts:
            word_counts.update(pretokenize(text))
        words = [[token_id[bytes([b])] for b in word.encode("utf-8")] for word in word_counts]
        counts = list(word_counts.values())

        # Initial pair counts, and which words hold each pair.
        pair_counts: dict[tuple[int, int], int] = {}
        where: dict[tuple[int, int], set[int]] = {}
        for index, word in enumerate(words):
            for pair in zip(word, word[1:], strict=False):
                pair_counts[pair] = pair_counts.get(pair, 0) + counts[index]
                where.setdefault(pair, set()).add(index)

        # Max-heap on count, then min on pair ids: heapq is a min-heap, so store -count. `seq` orders
        # entries that tie on both (only possible after a duplicate-string merge) by insertion.
        heap: list[tuple[int, int, int, int, set[int]]] = []
        seq = 0
        for pair, positions in where.items():
            if pair_counts[pair] > 0:
                heap.append((-pair_counts[pair], pair[0], pair[1], seq, positions))
                seq += 1
        heapq.heapify(heap)

        merges: list[tuple[int, int]] = []
        while len(token_id) < vocab_size and heap:
            neg_count, left, right, _, positions = heapq.heappop(heap)
            current = pair_counts[left, right]
            if -neg_count != current:  # out of date: put it back with the true count
                heapq.heappush(heap, (-current, left, right, seq, positions))
                seq += 1
                continue
            if current < 1 or current < min_frequency:
                break
            new_token = vocab[left] + vocab[right]
            if new_token not in token_id:
                token_id[new_token] = len(vocab)
                vocab.append(new_token)
            new_id = token_id[new_token]
            merges.append((left, right))

            # Merge in the affected words only and apply the count changes they report.
            formed: dict[tuple[int, int], set[int]] = {}  # new pairs -> the words they appeared in
            for index in positions:
                for pair, change in _merge_word(words[index], left, right, new_id):
                    pair_counts[pair] = pair_counts.get(pair, 0) + change * counts[index]
                    if change > 0:
                        formed.setdefault(pair, set()).add(index)
            for pair, new_positions in formed.items():
                if pair_counts[pair] > 0:
                    heapq.heappush(heap, (-pair_counts[pair], pair[0], pair[1], seq, new_positions))
                    seq += 1
        return cls(vocab, merges, special_tokens)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def _encode_word(self, word: str) -> list[int]:
        """Merge the lowest-rank adjacent pair (leftmost on ties) until no learned pair is left."""
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        parts = [self.byte_ids[b] for b in word.encode("utf-8")]
        ranks = self.ranks
        while len(parts) > 1:
            best = None
            for i in range(len(parts) - 1):
                found = ranks.get((parts[i], parts[i + 1]))
                if found is not None and (best is None or found[0] < best[1]):
                    best = (i, found[0], found[1])
            if best is None:
                break
            i, _, new_id = best
            parts[i : i + 2] = [new_id]
        if len(self._cache) < 100_000:
            self._cache[word] = parts
        return parts

    def encode(self, text: str) -> list[int]:
        chunks = self._special_split.split(text) if self._special_split else [text]
        ids: list[int] = []
        for chunk in chunks:
            special = self.special_tokens.get(chunk)
            if special is not None:
                ids.append(special)
                continue
            for word in pretokenize(chunk):
                ids.extend(self._encode_word(word))
        return ids

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        return b"".join(self.vocab[i] for i in ids)

    def decode(self, ids: Iterable[int]) -> str:
        """Text of the ids; bytes that do not form whole UTF-8 characters become U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")
