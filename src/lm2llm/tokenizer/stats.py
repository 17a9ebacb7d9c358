"""Fertility: how many tokens a tokenizer spends on a text, overall and per language.

Tokens per character and per whitespace-separated word say how long a model's input gets (attention
cost grows with it, and API prices are per token); bytes per token says how much text each token
carries. The per-language split classifies each whitespace word by script (Hangul → "ko", Latin letters
→ "en", anything else → "other") and counts it with the leading space it has inside running text (BPE
merges that space into the word), so the figures show, for example, how badly an English-trained vocabulary splits Korean words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import regex

from lm2llm.tokenizer.base import Tokenizer

_HANGUL = regex.compile(r"\p{Hangul}")
_LATIN = regex.compile(r"\p{Latin}")


def language_of(word: str) -> str:
    if _HANGUL.search(word):
        return "ko"
    if _LATIN.search(word):
        return "en"
    return "other"


@dataclass
class Fertility:
    chars: int = 0
    words: int = 0
    bytes: int = 0
    tokens: int = 0

    @property
    def tokens_per_char(self) -> float:
        return self.tokens / self.chars if self.chars else 0.0

    @property
    def tokens_per_word(self) -> float:
        return self.tokens / self.words if self.words else 0.0

    @property
    def bytes_per_token(self) -> float:
        return self.bytes / self.tokens if self.tokens else 0.0

    def as_dict(self) -> dict:
        return {
            "chars": self.chars, "words": self.words, "bytes": self.bytes, "tokens": self.tokens,
            "tokens_per_char": round(self.tokens_per_char, 4),
            "tokens_per_word": round(self.tokens_per_word, 4),
            "bytes_per_token": round(self.bytes_per_token, 4),
        }


@dataclass
class FertilityReport:
    overall: Fertility
    by_language: dict[str, Fertility] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"overall": self.overall.as_dict(), "by_language": {k: v.as_dict() for k, v in self.by_language.items()}}


def fertility(tokenizer: Tokenizer, texts: Sequence[str]) -> FertilityReport:
    overall = Fertility()
    by_language: dict[str, Fertility] = {}
    word_tokens: dict[str, int] = {}  # words repeat: encode each distinct one once
    for text in texts:
        words = text.split()
        overall.chars += len(text)
        overall.words += len(words)
        overall.bytes += len(text.encode("utf-8"))
        overall.tokens += len(tokenizer.encode(text))
        for word in words:
            stats = by_language.setdefault(language_of(word), Fertility())
            spaced = " " + word
            stats.chars += len(spaced)
            stats.words += 1
            stats.bytes += len(spaced.encode("utf-8"))
            if spaced not in word_tokens:
                word_tokens[spaced] = len(tokenizer.encode(spaced))
            stats.tokens += word_tokens[spaced]
    return FertilityReport(overall, dict(sorted(by_language.items())))
