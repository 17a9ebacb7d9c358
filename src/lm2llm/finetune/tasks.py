"""A deterministic synthetic instruction suite: small tasks a tiny model can learn on a CPU.

Each task draws a short prompt and its one canonical answer, so a model is scored by exact match (only
whitespace is normalised), with no judge and no ambiguity. Held-out prompts never appear in training:
prompts are drawn without repetition, the first `n_test` of a task go to the test set and the next
`n_train` to training, so the test set depends only on the seed and `n_test`, not on how much training
data is asked for. Every record also carries a plausible wrong answer, which the preference-tuning
chapter uses as the rejected reply.

Tasks: multi-digit addition, reversing words, sorting words, unit conversion, answering from facts given
in the prompt, and Korean (Sino-Korean) number words to digits and back (삼백이십일 ↔ 321).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lm2llm.errors import UserError

WORDS = ("apple", "river", "stone", "cloud", "tiger", "lemon", "piano", "train", "green", "house",
         "moon", "bread", "chair", "ocean", "zebra", "maple", "kite", "honey", "snow", "fox")
NAMES = ("Minji", "Jun", "Sora", "Hana", "Dohyun", "Yuna", "Seojun", "Jiwoo")
CITIES = ("Seoul", "Busan", "Daegu", "Incheon", "Gwangju", "Daejeon", "Ulsan", "Suwon")
CONVERSIONS = (("km", "m", 1000), ("m", "cm", 100), ("kg", "g", 1000),
               ("h", "min", 60), ("min", "s", 60), ("L", "mL", 1000))

KOREAN_DIGITS = "영일이삼사오육칠팔구"
KOREAN_UNITS = (("천", 1000), ("백", 100), ("십", 10))
KOREAN_MAX = 10**8  # numbers below 억: digits and the units 십 백 천 만


def number_to_korean(n: int) -> str:
    """Sino-Korean number words: 321 → 삼백이십일, 10010 → 만십. A leading 일 before 십/백/천/만 is dropped."""
    if not 0 <= n < KOREAN_MAX:
        raise ValueError(f"{n} is outside 0..{KOREAN_MAX - 1}")
    if n == 0:
        return KOREAN_DIGITS[0]

    def below_10000(group: int) -> str:
        words = ""
        for unit, value in KOREAN_UNITS:
            digit = group // value % 10
            if digit:
                words += ("" if digit == 1 else KOREAN_DIGITS[digit]) + unit
        return words + (KOREAN_DIGITS[group % 10] if group % 10 else "")

    high, low = divmod(n, 10000)
    words = ("" if high == 1 else below_10000(high)) + "만" if high else ""
    return words + below_10000(low)


def korean_to_number(words: str) -> int:
    """The inverse of `number_to_korean`, strict: 이이, 십백 or 만만 are rejected with ValueError."""
    if words == KOREAN_DIGITS[0]:
        return 0
    unit_values = dict(KOREAN_UNITS)
    total, group, digit, last_unit, seen_man = 0, 0, None, 10**4, False
    for ch in words:
        if ch in KOREAN_DIGITS[1:]:
            if digit is not None:
                raise ValueError(f"two digits in a row in {words!r}")
            digit = KOREAN_DIGITS.index(ch)
        elif ch in unit_values:
            if unit_values[ch] >= last_unit:
                raise ValueError(f"unit {ch} out of order in {words!r}")
            group += (digit or 1) * unit_values[ch]
            digit, last_unit = None, unit_values[ch]
        elif ch == "만" and not seen_man:
            total = (group + (digit or 0) or 1) * 10000
            group, digit, last_unit, seen_man = 0, None, 10**4, True
        else:
            raise ValueError(f"unexpected {ch!r} in {words!r}")
    if not words:
        raise ValueError("empty number word")
    return total + group + (digit or 0)


# Each task draws (prompt, answer, wrong answer) from a random generator.
TaskFn = Callable[[random.Random], tuple[str, str, str]]


def _near(rng: random.Random, n: int) -> int:
    """A plausible wrong number: off by one or ten, never negative, never `n`."""
    return n + rng.choice((-10, -1, 1, 10)) if n >= 10 else n + rng.choice((1, 2))


def _addition(rng: random.Random) -> tuple[str, str, str]:
    a, b = (rng.randint(0, 10 ** rng.randint(1, 3) - 1) for _ in range(2))
    return f"What is {a} + {b}?", str(a + b), str(_near(rng, a + b))


def _reverse_words(rng: random.Random) -> tuple[str, str, str]:
    words = rng.sample(WORDS, rng.randint(3, 5))
    return f"Reverse the words: {' '.join(words)}", " ".join(reversed(words)), " ".join(words)


def _sort_words(rng: random.Random) -> tuple[str, str, str]:
    words = rng.sample(WORDS, rng.randint(3, 5))
    ordered = sorted(words)
    return f"Sort the words: {' '.join(words)}", " ".join(ordered), " ".join(reversed(ordered))


def _convert_units(rng: random.Random) -> tuple[str, str, str]:
    source, target, factor = rng.choice(CONVERSIONS)
    value = rng.randint(1, 999)
    wrong_factor = rng.choice([f for _, _, f in CONVERSIONS if f != factor])
    return f"Convert {value} {source} to {target}.", str(value * factor), str(value * wrong_factor)


def _facts(rng: random.Random) -> tuple[str, str, str]:
    names = rng.sample(NAMES, 3)
    cities = rng.sample(CITIES, 3)
    asked = rng.randrange(3)
    facts = " ".join(f"{name} lives in {city}." for name, city in zip(names, cities, strict=True))
    wrong = cities[(asked + 1) % 3]
    return f"{facts} Where does {names[asked]} live?", cities[asked], wrong


def _korean_to_digits(rng: random.Random) -> tuple[str, str, str]:
    n = rng.randint(1, 9999)
    return f"숫자로 쓰세요: {number_to_korean(n)}", str(n), str(_near(rng, n))


def _digits_to_korean(rng: random.Random) -> tuple[str, str, str]:
    n = rng.randint(1, 9999)
    return f"한글로 쓰세요: {n}", number_to_korean(n), number_to_korean(_near(rng, n))


TASKS: dict[str, TaskFn] = {
    "addition": _addition,
    "reverse_words": _reverse_words,
    "sort_words": _sort_words,
    "unit_conversion": _convert_units,
    "facts": _facts,
    "korean_to_digits": _korean_to_digits,
    "digits_to_korean": _digits_to_korean,
}


@dataclass(frozen=True)
class TaskRecord:
    """One example: the task's name, the chat (user prompt, assistant answer), the answer, a wrong answer."""

    task: str
    messages: tuple[dict[str, str], ...]
    answer: str
    wrong: str

    @property
    def prompt(self) -> str:
        return self.messages[0]["content"]

    @property
    def prompt_messages(self) -> list[dict[str, str]]:
        """The conversation up to the reply a model must generate."""
        return [dict(m) for m in self.messages[:-1]]


def _record(task: str, prompt: str, answer: str, wrong: str) -> TaskRecord:
    messages = ({"role": "user", "content": prompt}, {"role": "assistant", "content": answer})
    return TaskRecord(task, messages, answer, wrong)


def make_suite(
    n_train: int, n_test: int, seed: int = 0, tasks: Sequence[str] | None = None
) -> tuple[list[TaskRecord], list[TaskRecord]]:
    """(train, test): `n_train` and `n_test` records *per task*, with no prompt in both.

    Training records are shuffled across tasks (so a batch mixes tasks); test records stay grouped by task.
    The same arguments always give the same records, on any machine and Python version.
    """
    names = list(TASKS) if tasks is None else list(tasks)
    unknown = [name for name in names if name not in TASKS]
    if unknown:
        raise UserError(f"unknown task(s) {', '.join(unknown)}", hint=f"known: {', '.join(TASKS)}")
    if n_train < 0 or n_test < 0:
        raise UserError("n_train and n_test must be non-negative")
    train: list[TaskRecord] = []
    test: list[TaskRecord] = []
    for name in names:
        rng = random.Random(f"lm2llm-tasks/{seed}/{name}")
        seen: set[str] = set()
        drawn: list[TaskRecord] = []
        for _ in range(20 * (n_train + n_test) + 1000):
            if len(drawn) == n_train + n_test:
                break
            prompt, answer, wrong = TASKS[name](rng)
            if prompt not in seen:
                seen.add(prompt)
                drawn.append(_record(name, prompt, answer, wrong))
        else:
            raise UserError(f"task {name!r} could not draw {n_train + n_test} distinct prompts",
                            hint="ask for fewer examples")
        test.extend(drawn[:n_test])
        train.extend(drawn[n_test:])
    random.Random(f"lm2llm-tasks/{seed}/shuffle").shuffle(train)
    return train, test


def pretraining_documents(n_per_task: int, reserve: int, seed: int = 0, tasks: Sequence[str] | None = None,
                          per_document: int = 8) -> list[str]:
    """The suite's training prompts written as plain "Q: ... / A: ..." text, the way Q&A pages sit in a web corpus.

    A pre-training corpus that contains such text gives a base model the tasks' content before it ever
    sees the chat template; supervised fine-tuning then only has to teach the format and when to stop.
    No document holds any of the first `reserve` prompts per task, so every held-out set of
    `make_suite(..., n_test <= reserve, seed)` stays unseen. Documents group `per_document` records.
    """
    train, _ = make_suite(n_per_task, reserve, seed, tasks)
    pages = [qa_prompt(r.prompt) + " " + r.answer for r in train]
    return ["\n\n".join(pages[i:i + per_document]) for i in range(0, len(pages), per_document)]


def qa_prompt(prompt: str) -> str:
    """A prompt in the Q&A-page form of `pretraining_documents`, up to where the answer starts: a base model
    that read such pages can be asked in the form it saw, not in a chat template it never met."""
    return f"Q: {prompt}\nA:"


def guess_chance(tasks: Sequence[str]) -> float:
    """Exact match of a uniform guess among the answers a prompt itself offers, averaged over `tasks`:
    one of the three cities named (facts), one order of the 3–5 words given (sorting, reversing); an open
    answer (a number, a sum, Korean number words) has no such set, and its chance is taken as 0."""
    offered = {"facts": 1 / 3, "sort_words": sum(1 / math.factorial(n) for n in (3, 4, 5)) / 3}
    offered["reverse_words"] = offered["sort_words"]
    return sum(offered.get(task, 0.0) for task in tasks) / len(tasks) if tasks else 0.0


def normalize_answer(text: str) -> str:
    """Collapse runs of whitespace and strip the ends; nothing else (case and punctuation count)."""
    return " ".join(text.split())


def exact_match(prediction: str, answer: str) -> bool:
    return normalize_answer(prediction) == normalize_answer(answer)


def score_exact_match(records: Sequence[TaskRecord], predictions: Sequence[str]) -> dict:
    """{"accuracy", "n", "per_task": {task: accuracy}} for predictions aligned with `records`."""
    if len(records) != len(predictions):
        raise ValueError(f"{len(records)} records but {len(predictions)} predictions")
    hits: dict[str, list[bool]] = {}
    for record, prediction in zip(records, predictions, strict=True):
        hits.setdefault(record.task, []).append(exact_match(prediction, record.answer))
    every = [hit for task_hits in hits.values() for hit in task_hits]
    return {
        "accuracy": sum(every) / len(every) if every else 0.0,
        "n": len(every),
        "per_task": {task: sum(h) / len(h) for task, h in hits.items()},
    }
