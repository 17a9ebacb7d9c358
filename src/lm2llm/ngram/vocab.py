"""Words in, ids out: the tokenisations an n-gram model sees, and its vocabulary.

KenLM's convention (`lmplz`, and `Model.score`): one sentence per line, split on ASCII whitespace,
nothing else changed. Ids follow lmplz's numbering: `<unk>`=0, `<s>`=1, `</s>`=2, then words in order
of first appearance (that order decides one detail of lmplz's discount statistics, see counts.py).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lm2llm.errors import UserError

UNK, BOS, EOS = "<unk>", "<s>", "</s>"
UNK_ID, BOS_ID, EOS_ID = 0, 1, 2

_KENLM_SPACE = re.compile(r"[ \t\n\r\f\v\0]+")  # KenLM's kSpaces; unlike str.split, U+3000 is not a space
_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)  # words (Hangul, Latin, digits) and single punctuation marks


def split_whitespace(line: str) -> list[str]:
    """KenLM's `--tokenize whitespace`: split on ASCII whitespace only."""
    return [t for t in _KENLM_SPACE.split(line) if t]


def split_words(line: str) -> list[str]:
    """Unicode-aware words: letter/digit runs (Korean included) and each punctuation mark on its own."""
    return _WORD.findall(line)


TOKENIZERS = {"whitespace": split_whitespace, "words": split_words}
BPE_PREFIX = "bpe:"  # "bpe:DIR": the ids of a tokenizer saved in DIR (lm2llm.tokenizer), as tokens


def check_kind(kind: str) -> None:
    if kind.startswith(BPE_PREFIX):
        if not Path(kind[len(BPE_PREFIX):]).is_dir():
            raise UserError("tokenizer directory not found", where=kind[len(BPE_PREFIX):])
    elif kind not in TOKENIZERS:
        raise UserError(f"unknown tokenisation {kind!r}", where="tokenize",
                        hint=f"one of {', '.join(TOKENIZERS)} or {BPE_PREFIX}DIR")


def tokenize(lines: Iterable[str], kind: str = "whitespace") -> list[list[str]]:
    """One sentence per line; an empty line stays an empty sentence (`<s> </s>`), as in lmplz."""
    check_kind(kind)
    if kind.startswith(BPE_PREFIX):
        from lm2llm.tokenizer import load_tokenizer

        tokenizer = load_tokenizer(kind[len(BPE_PREFIX):])
        return [[str(i) for i in tokenizer.encode(line)] for line in lines]
    split = TOKENIZERS[kind]
    return [split(line) for line in lines]


def detokenize(tokens: list[str], kind: str) -> str:
    """Text of generated tokens: BPE ids decoded, words joined by spaces."""
    if kind.startswith(BPE_PREFIX):
        from lm2llm.tokenizer import load_tokenizer

        return load_tokenizer(kind[len(BPE_PREFIX):]).decode([int(t) for t in tokens if t.isdigit()])
    return " ".join(tokens)


@dataclass
class Vocabulary:
    """Word <-> id, with the three specials first; words outside it map to `<unk>`."""

    words: list[str] = field(default_factory=lambda: [UNK, BOS, EOS])

    def __post_init__(self) -> None:
        if self.words[:3] != [UNK, BOS, EOS]:
            raise UserError("a vocabulary must start with <unk>, <s>, </s>", where="vocabulary")
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    @classmethod
    def build(cls, sentences: list[list[str]], min_count: int = 1, max_size: int | None = None) -> Vocabulary:
        """Words seen at least `min_count` times (the `max_size` most frequent), in first-seen order."""
        counts = Counter(w for s in sentences for w in s)
        for special in (BOS, EOS):
            if special in counts:
                raise UserError(f"the text contains the reserved token {special}", where="training text",
                                hint="remove sentence markers; they are added per line")
        keep = {w for w, c in counts.items() if c >= min_count and w != UNK}
        if max_size is not None and len(keep) > max_size - 3:
            ranked = sorted(keep, key=lambda w: (-counts[w], w))
            keep = set(ranked[: max(0, max_size - 3)])
        words = [UNK, BOS, EOS]
        seen = set(words)
        for sentence in sentences:
            for w in sentence:
                if w in keep and w not in seen:
                    seen.add(w)
                    words.append(w)
        return cls(words)

    def encode(self, sentences: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
        """Concatenate `<s> w1 .. wk </s>` per sentence: token ids and, per token, its sentence's `<s>` position."""
        get = self.index.get
        ids: list[int] = []
        starts: list[int] = []
        for sentence in sentences:
            start = len(ids)
            ids.append(BOS_ID)
            ids.extend(get(w, UNK_ID) for w in sentence)
            ids.append(EOS_ID)
            starts.append(start)
        tokens = np.asarray(ids, dtype=np.int64)
        lengths = np.diff(np.asarray(starts + [len(ids)], dtype=np.int64))
        sentence_start = np.repeat(np.asarray(starts, dtype=np.int64), lengths)
        return tokens, sentence_start
