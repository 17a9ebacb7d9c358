"""Synthetic preference pairs over the synthetic task suite (`lm2llm.finetune.tasks`).

Every pair prefers the correct, concise answer to one of three failures a small chat model really shows:

- `wrong`: a plausible wrong answer (the suite's own, e.g. off by one, or the words unsorted);
- `rambling`: the right answer buried in hedging filler, so a reward model must not reward mere
  correctness but also brevity;
- `runs_on`: the right answer followed by more and more text instead of stopping, the way a model that
  has not learned to emit end-of-turn keeps going.

The rejection kinds cycle per task so each is equally common. Held-out pairs come from the suite's test
prompts, which never appear in training, so held-out reward accuracy measures generalisation, not recall.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from lm2llm.align.preference import PreferencePair
from lm2llm.finetune.tasks import TaskRecord, make_suite

REJECTION_KINDS = ("wrong", "rambling", "runs_on")
HANGUL = re.compile(r"[\uac00-\ud7a3]")

_RAMBLES = {
    "en": "Hmm, let me think about it carefully. I believe it may be {answer}, but I am not sure.",
    "ko": "음, 차근차근 생각해 볼게요. 아마 {answer}인 것 같지만 확실하지 않아요.",
}
_RUN_ONS = {
    "en": " Also {answer}. Again: {answer}, {answer}, {answer}",
    "ko": " 그리고 {answer}. 다시: {answer}, {answer}, {answer}",
}


def rejected_answer(record: TaskRecord, kind: str) -> str:
    """A worse reply to `record`'s prompt, in the prompt's language."""
    lang = "ko" if HANGUL.search(record.prompt) else "en"
    if kind == "wrong":
        return record.wrong
    if kind == "rambling":
        return _RAMBLES[lang].format(answer=record.answer)
    if kind == "runs_on":
        return record.answer + _RUN_ONS[lang].format(answer=record.answer)
    raise ValueError(f"unknown rejection kind {kind!r}; expected one of {REJECTION_KINDS}")


def pairs_from_records(records: Sequence[TaskRecord], kinds: Sequence[str] = REJECTION_KINDS,
                       seed: int = 0) -> list[PreferencePair]:
    """One pair per record: chosen = the exact answer, rejected = the next kind in the cycle for its task."""
    counters: dict[str, int] = {}
    offset = random.Random(f"lm2llm-preferences/{seed}").randrange(len(kinds))
    pairs = []
    for record in records:
        index = counters.get(record.task, offset)
        counters[record.task] = index + 1
        kind = kinds[index % len(kinds)]
        pairs.append(PreferencePair(record.prompt_messages, record.answer, rejected_answer(record, kind), kind))
    return pairs


def make_preference_suite(n_train: int, n_test: int, seed: int = 0, tasks: Sequence[str] | None = None,
                          kinds: Sequence[str] = REJECTION_KINDS) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """(train pairs, held-out pairs): `n_train`/`n_test` per task, prompts disjoint between the two."""
    train, test = make_suite(n_train, n_test, seed=seed, tasks=tasks)
    return pairs_from_records(train, kinds, seed), pairs_from_records(test, kinds, seed)
