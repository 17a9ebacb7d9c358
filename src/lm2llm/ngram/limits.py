"""The limits of n-gram models, as numbers: sparsity, zero probabilities, diminishing returns of order,
and the fixed context window (a dependency longer than N-1 words is invisible by construction)."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from lm2llm.ngram.counts import NgramCounts
from lm2llm.ngram.model import NgramConfig, count, evaluate, sentence_scores, train
from lm2llm.ngram.vocab import BOS_ID, tokenize


def unseen_shares(train_lines: list[str], test_lines: list[str], max_order: int, kind: str = "whitespace") -> list[float]:
    """Per order n: the share of held-out n-grams (full windows, `<s>` included) never seen in training."""
    counts = count(train_lines, NgramConfig(order=max_order, tokenize=kind))
    tokens, starts = counts.vocab.encode(tokenize(test_lines, kind))
    windows = counts.window_ids(tokens, starts)
    positions = np.arange(len(tokens))
    shares = []
    for n in range(1, max_order + 1):
        full = (positions - n + 1 >= starts) & (tokens != BOS_ID)
        ids = windows[n - 1][full]
        if n == 1:
            ids = np.where(counts.counts[0][ids] > 0, ids, -1)
        shares.append(float((ids < 0).mean()) if len(ids) else 0.0)
    return shares


@dataclass
class OrderSweep:
    orders: list[int]
    perplexity: dict[str, list[float]]  # estimator -> per order
    zero_share: dict[str, list[float]]


def perplexity_by_order(train_lines: list[str], test_lines: list[str], orders: list[int],
                        estimators: tuple[str, ...] = ("mle", "add-k", "kneser-ney"), kind: str = "whitespace",
                        ) -> OrderSweep:
    """Held-out perplexity and share of zero-probability events for each estimator and order (counted once per order)."""
    perplexity: dict[str, list[float]] = {e: [] for e in estimators}
    zeros: dict[str, list[float]] = {e: [] for e in estimators}
    for order in orders:
        counts: NgramCounts | None = None
        for estimator in estimators:
            config = NgramConfig(order=order, estimator=estimator, tokenize=kind, discount_fallback=True)
            counts = counts if counts is not None else count(train_lines, config)
            result = evaluate(train(train_lines, config, counts=counts), test_lines)
            perplexity[estimator].append(result.perplexity)
            zeros[estimator].append(result.zero_probability_share)
    return OrderSweep(list(orders), perplexity, zeros)


def long_range_probe(orders: list[int], gap: int = 3, fillers: int = 4, train_size: int = 1500,
                     test_size: int = 200, seed: int = 0) -> dict[int, float]:
    """Accuracy of choosing the right closing word when only the first word decides it.

    Sentences are `open-K f1 .. f_gap close-K` (K red or blue, fillers random): the closing word depends
    on a word gap+1 positions back, so a model of order N < gap+2 cannot see it and scores 50%.
    """
    rng = random.Random(seed)
    filler_words = [f"w{i}" for i in range(fillers)]

    def sentence(key: str, close: str) -> str:
        return " ".join([f"open-{key}", *(rng.choice(filler_words) for _ in range(gap)), f"close-{close}"])

    train_lines = [sentence(k, k) for k in (rng.choice(["red", "blue"]) for _ in range(train_size))]
    keys = [rng.choice(["red", "blue"]) for _ in range(test_size)]
    right, wrong = [], []
    for key in keys:
        text = sentence(key, key)
        right.append(text)
        wrong.append(text.rsplit(" ", 1)[0] + f" close-{'blue' if key == 'red' else 'red'}")
    accuracy = {}
    for order in orders:
        model = train(train_lines, NgramConfig(order=order, discount_fallback=True))
        good, bad = sentence_scores(model, right), sentence_scores(model, wrong)
        accuracy[order] = float(np.mean(np.where(np.isclose(good, bad), 0.5, good > bad)))
    return accuracy


SPACE_MARK = "▁"  # stands for a space inside a character "word", as SentencePiece writes it


def character_lines(lines: list[str]) -> list[str]:
    """Each line as space-separated characters (spaces shown as ▁), so a word n-gram becomes a character one."""
    return [" ".join(SPACE_MARK if ch.isspace() else ch for ch in line) for line in lines]


@dataclass
class CharacterCost:
    bits_per_char: float  # end of line counted as one character
    bits_per_byte: float  # per UTF-8 byte: Hangul takes 3 bytes a syllable, ASCII 1
    unseen_char_share: float  # held-out characters never seen in training (scored as <unk>)


def character_cost(train_lines: list[str], test_lines: list[str], order: int) -> CharacterCost:
    """Held-out cross-entropy of a Kneser-Ney character n-gram, in bits per character and per byte: units
    that compare languages whose words differ in kind (an English word vs a Korean eojeol)."""
    model = train(character_lines(train_lines), NgramConfig(order=order, discount_fallback=True))
    result = evaluate(model, character_lines(test_lines))
    bits = -result.log10_prob * np.log2(10)
    utf8_bytes = sum(len(line.encode("utf-8")) + 1 for line in test_lines)
    return CharacterCost(float(bits / result.tokens), float(bits / utf8_bytes), result.oov / result.tokens)
