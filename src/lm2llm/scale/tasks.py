"""Synthetic in-context tasks, written as plain text lines to mix into a pre-training corpus.

- Key→value recall (`kv`): each line draws a fresh mapping of four two-letter keys to three-letter values,
  shows k of its pairs (keys drawn with replacement) and asks for one key. Nothing but the line itself
  says what a key means, so any accuracy above chance (1 in 10 values) is learned in context; a perfect
  copier scores 1 − (3/4)^k + (3/4)^k/10 at k shots (the query key was shown, or it guesses).
- Three-digit addition in three formats (Lee et al. 2023): `P` plain (answer as written), `R` reversed
  (answer digits least significant first, the order they are computed in) and `S` scratchpad (each column
  written out with its carry, then the answer). The test pairs never appear in training, in any format.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

KEYS_PER_LINE = 4
VALUES = ("red", "sun", "cat", "fog", "ink", "jam", "owl", "pie", "ray", "zip")
LETTERS = "abcdefghijklmnopqrstuvwxyz"
ADDITION_FORMATS = ("P", "R", "S")
SHOTS = (0, 1, 2, 4, 8)
TRAIN_SHOTS = 8


@dataclass(frozen=True)
class Example:
    prompt: str
    answer: str  # what follows the prompt, up to (not including) the newline
    task: str
    shots: int = 0
    seen: bool = False  # kv: the query key appears among the shots


def kv_example(rng: random.Random, shots: int) -> Example:
    keys = rng.sample([a + b for a in LETTERS for b in LETTERS], KEYS_PER_LINE)
    mapping = {k: rng.choice(VALUES) for k in keys}
    shown = [rng.choice(keys) for _ in range(shots)]
    query = rng.choice(keys)
    return Example(kv_prompt([(k, mapping[k]) for k in shown], query), mapping[query], "kv", shots, query in shown)


def kv_prompt(pairs: list[tuple[str, str]], query: str) -> str:
    """A key→value line's prompt: the shown pairs in order, then the query key."""
    return "kv " + "".join(f"{k}={v} " for k, v in pairs) + f"{query}="


def kv_pairs(prompt: str) -> tuple[list[tuple[str, str]], str]:
    """`kv_prompt` undone: the shown (key, value) pairs and the query key."""
    *shown, query = prompt.removeprefix("kv ").split(" ")
    return [tuple(pair.split("=")) for pair in shown], query.removesuffix("=")


def perfect_copier(shots: int) -> float:
    """Accuracy of a model that copies a shown value and otherwise guesses uniformly."""
    unseen = (1 - 1 / KEYS_PER_LINE) ** shots
    return 1 - unseen + unseen / len(VALUES)


def addition_answer(a: int, b: int, form: str) -> str:
    total = str(a + b)
    if form == "P":
        return total
    if form == "R":
        return total[::-1]
    columns, carry = [], 0
    for x, y in zip(reversed(str(a)), reversed(str(b)), strict=True):
        s = int(x) + int(y) + carry
        columns.append(f"{x}+{y}+{carry}={s:02d}")
        carry = s // 10
    return ",".join(columns) + ">" + total


def addition_example(a: int, b: int, form: str) -> Example:
    return Example(f"{form} {a}+{b}=", addition_answer(a, b, form), f"add_{form}")


def final_answer(text: str, form: str) -> str:
    """The sum a completion states (a scratchpad's after its '>', a reversed answer put back in order)."""
    if form == "S":
        text = text.rpartition(">")[2]
    return text[::-1] if form == "R" else text


def addition_test_pairs(count: int, seed: int = 1) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    pairs: set[tuple[int, int]] = set()
    while len(pairs) < count:
        pairs.add((rng.randint(100, 999), rng.randint(100, 999)))
    return sorted(pairs)


def training_lines(count: int, held_out: set[tuple[int, int]], seed: int = 0) -> list[str]:
    """`count` lines: half key→value recall (0..8 shots), half addition, the three formats equally often."""
    rng = random.Random(seed)
    lines = []
    for i in range(count):
        if i % 2 == 0:
            ex = kv_example(rng, rng.randint(0, TRAIN_SHOTS))
        else:
            while (pair := (rng.randint(100, 999), rng.randint(100, 999))) in held_out:
                pass
            ex = addition_example(*pair, ADDITION_FORMATS[(i // 2) % 3])
        lines.append(ex.prompt + ex.answer)
    return lines


def training_documents(count: int, held_out: set[tuple[int, int]], lines_per_doc: int = 16,
                       seed: int = 0) -> list[str]:
    lines = training_lines(count * lines_per_doc, held_out, seed)
    return ["\n".join(lines[i:i + lines_per_doc]) for i in range(0, len(lines), lines_per_doc)]
