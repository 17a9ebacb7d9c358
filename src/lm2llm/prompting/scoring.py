"""How a generated answer is scored, and the interval around a rate; shared by prompting and RAG.

Kept in one small module so that it can give way to the evaluation harness's metrics when both exist.
- `answer_match`: the gold answer occurs in the prediction as a whole word, after lower-casing, removing
  punctuation and thousands separators and collapsing spaces ("It was founded in 1630 [1]." is right for
  gold "1630", "16300" is not; a Korean particle may follow: `6100명`).
- `exact_match`: the same normalisation, whole strings equal.
"""

from __future__ import annotations

import math

import regex


def normalize(text: str) -> str:
    text = regex.sub(r"(?<=\d),(?=\d{3})", "", text.lower())
    return " ".join(regex.sub(r"[\p{P}\p{S}]", " ", text).split())


def answer_match(prediction: str, gold: str) -> bool:
    gold_norm = normalize(gold)
    if not gold_norm:
        return False
    left = r"(?<![\p{Latin}\d])" if regex.match(r"[\p{Latin}\d]", gold_norm) else ""
    right = r"(?![\p{Latin}\d])" if regex.match(r"[\p{Latin}\d]", gold_norm[-1]) else ""
    return regex.search(left + regex.escape(gold_norm) + right, normalize(prediction)) is not None


def exact_match(prediction: str, gold: str) -> bool:
    return normalize(prediction) == normalize(gold)


def rate_stderr(successes: float, n: int) -> float:
    if n == 0:
        return 0.0
    p = successes / n
    return math.sqrt(p * (1 - p) / n)
