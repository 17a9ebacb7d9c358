"""Deduplication: exact (a content hash) and near-duplicate (MinHash signatures + LSH banding).

Near duplicates are documents whose shingle sets (word or character n-grams) have Jaccard similarity at or
above a threshold (default 0.8). Comparing every pair is quadratic, so each document gets a MinHash
signature — for `num_perm` random hash functions, the minimum hash over its shingles; two signatures agree
in one position with probability equal to the sets' Jaccard similarity — and LSH cuts the signature into
`bands` of `rows`: documents sharing one whole band become candidates, with probability
1 - (1 - J^rows)^bands, a steep S-curve around the threshold. Candidates are confirmed by the fraction of
agreeing signature positions. The index keeps only signatures and band keys, so memory grows with the
number of kept documents, not with their length.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from dataclasses import dataclass, field

import numpy as np

MERSENNE_PRIME = np.uint64((1 << 61) - 1)
MAX_HASH = np.uint64(0xFFFFFFFF)
WORD_TOKEN = re.compile(r"\w+|[^\w\s]")  # words and single punctuation marks
_ROLL = np.uint64(1_000_003)  # multiplier of the polynomial hash that turns n consecutive ids into one shingle


def content_hash(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


class ExactDeduplicator:
    """Remembers a 16-byte content hash per kept text, with where it came from."""

    def __init__(self) -> None:
        self._seen: dict[bytes, str] = {}

    def first_seen(self, text: str, origin: str) -> str | None:
        """The origin of an identical earlier text, or None (and this text is remembered)."""
        digest = content_hash(text)
        earlier = self._seen.get(digest)
        if earlier is None:
            self._seen[digest] = origin
        return earlier


def _fold32(values: np.ndarray) -> np.ndarray:
    return (values ^ (values >> np.uint64(32))) & MAX_HASH


def _roll(ids: np.ndarray, size: int) -> np.ndarray:
    """32-bit hashes of every window of `size` consecutive ids (the whole sequence when it is shorter)."""
    size = max(1, min(size, len(ids)))
    windows = len(ids) - size + 1
    combined = np.zeros(windows, dtype=np.uint64)
    with np.errstate(over="ignore"):  # wrap-around modulo 2^64 is the intended arithmetic
        for offset in range(size):
            combined = combined * _ROLL + ids[offset : offset + windows]
    return _fold32(combined)


def shingles(text: str, kind: str = "word", size: int = 5) -> np.ndarray:
    """The distinct 32-bit hashes of the text's word n-grams (lower-cased; punctuation marks count as words)
    or character n-grams."""
    if kind == "word":
        words = WORD_TOKEN.findall(text.lower())
        word_hash = {w: zlib.crc32(w.encode("utf-8")) for w in set(words)}  # hash each distinct word once
        ids = np.fromiter(map(word_hash.__getitem__, words), dtype=np.uint64, count=len(words))
    elif kind == "char":
        ids = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    else:
        raise ValueError(f"unknown shingle kind {kind!r} (word or char)")
    if ids.size == 0:
        return ids
    return np.unique(_roll(ids, size))


class MinHasher:
    """`num_perm` universal hash functions h(x) = (a·x + b) mod (2^61 - 1), truncated to 32 bits."""

    def __init__(self, num_perm: int = 128, seed: int = 1):
        rng = np.random.default_rng(seed)
        self.num_perm = num_perm
        self.a = rng.integers(1, 1 << 32, size=num_perm, dtype=np.uint64)
        self.b = rng.integers(0, 1 << 32, size=num_perm, dtype=np.uint64)

    def signature(self, shingle_hashes: np.ndarray, chunk: int = 8192) -> np.ndarray:
        """Per hash function, the minimum over the shingles (all MAX_HASH for an empty set)."""
        result = np.full(self.num_perm, MAX_HASH, dtype=np.uint64)
        for start in range(0, len(shingle_hashes), chunk):  # bounded temporary memory for long documents
            x = shingle_hashes[start : start + chunk]
            # a, x < 2^32 and b < 2^32, so a·x + b < 2^64: no overflow before the modulus
            hashed = ((np.outer(self.a, x) + self.b[:, None]) % MERSENNE_PRIME) & MAX_HASH
            np.minimum(result, hashed.min(axis=1), out=result)
        return result


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    union = len(np.union1d(a, b))
    return len(np.intersect1d(a, b)) / union if union else 1.0


def candidate_probability(similarity: np.ndarray | float, bands: int, rows: int) -> np.ndarray | float:
    """Probability that two documents of this Jaccard similarity share at least one LSH band."""
    return 1.0 - (1.0 - np.asarray(similarity) ** rows) ** bands


def optimal_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) with bands·rows ≤ num_perm that minimise the missed plus spurious candidate mass."""
    grid = np.linspace(0.0, 1.0, 1001)
    below, above = grid <= threshold, grid >= threshold
    best, best_error = (1, num_perm), float("inf")
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            p = candidate_probability(grid, bands, rows)
            error = np.trapezoid(p[below], grid[below]) + np.trapezoid(1 - p[above], grid[above])
            if error < best_error:
                best, best_error = (bands, rows), error
    return best


@dataclass
class NearDuplicateIndex:
    """Streaming near-duplicate detection: `match` returns the key of a kept near-duplicate, else keeps the doc."""

    threshold: float = 0.8
    num_perm: int = 128
    shingle: str = "word"
    shingle_size: int = 5
    seed: int = 1
    _tables: list[dict[bytes, list[int]]] = field(default_factory=list, init=False, repr=False)
    _signatures: list[np.ndarray] = field(default_factory=list, init=False, repr=False)
    _keys: list[str] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError("the near-duplicate threshold is a Jaccard similarity in (0, 1]")
        self.hasher = MinHasher(self.num_perm, self.seed)
        self.bands, self.rows = optimal_bands(self.threshold, self.num_perm)
        self._tables = [{} for _ in range(self.bands)]

    def match(self, text: str, key: str) -> tuple[str, float] | None:
        """(key of the kept document, estimated Jaccard) when `text` nearly duplicates one; else index it."""
        hashes = shingles(text, self.shingle, self.shingle_size)
        if hashes.size == 0:
            return None  # nothing to compare; exact dedup still covers such texts
        signature = self.hasher.signature(hashes)
        band_keys = [signature[i * self.rows : (i + 1) * self.rows].tobytes() for i in range(self.bands)]
        candidates = {c for table, band in zip(self._tables, band_keys, strict=True) for c in table.get(band, ())}
        for candidate in sorted(candidates):
            similarity = float(np.mean(self._signatures[candidate] == signature))
            if similarity >= self.threshold:
                return self._keys[candidate], similarity
        index = len(self._signatures)
        self._signatures.append(signature)
        self._keys.append(key)
        for table, band in zip(self._tables, band_keys, strict=True):
            table.setdefault(band, []).append(index)
        return None
