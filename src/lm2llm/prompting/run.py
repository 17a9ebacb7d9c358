"""Score a prompt technique on a task: accuracy with its interval, chance level, and what the prompt costs.

Tasks are the synthetic suite of `lm2llm.finetune.tasks` (addition, facts, unit conversion, Korean number
words, ...): each test question has one canonical answer, and the few-shot pool is the task's training
split. A reply is right when the answer extracted by the technique's format equals the gold answer after
normalisation (case, punctuation, spaces); `lenient` counts the gold answer anywhere in the raw reply;
`follows_format` is the share of replies in the promised shape (one line, an "Answer:" line, JSON).
Chance level: 1/3 for `facts` (the answer is one of the three cities in the prompt), 0 for the rest
(open answers). Cost: prompt tokens through the model's own chat template, and generated tokens, per
question (self-consistency pays for every sample).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from lm2llm.inference.sampling import SamplingConfig
from lm2llm.inference.text import TextGenerator
from lm2llm.prompting.extract import EXTRACTORS, follows_format
from lm2llm.prompting.render import complete
from lm2llm.prompting.scoring import answer_match, exact_match, rate_stderr
from lm2llm.prompting.shots import random_shots, similar_shots
from lm2llm.prompting.techniques import Technique
from lm2llm.stats import wilson_interval

CHANCE = {"facts": 1 / 3}
POOL_SIZE = 200


def task_records(task: str, n: int, seed: int = 0):
    """(test records, few-shot pool as (question, answer) pairs) of a task of the synthetic suite."""
    from lm2llm.finetune.tasks import make_suite

    train, test = make_suite(POOL_SIZE, n, seed, [task])
    return test, [(r.prompt, r.answer) for r in train]


def majority(answers: Sequence[str]) -> str:
    """The most frequent normalised answer (the earliest among equals)."""
    from lm2llm.prompting.scoring import normalize

    counts = Counter(normalize(a) for a in answers)
    best = max(counts.values())
    return next(a for a in answers if counts[normalize(a)] == best)


def run_technique(generator: TextGenerator, technique: Technique, task: str, n: int = 50, seed: int = 0,
                  examples: int = 3) -> dict:
    test, pool = task_records(task, n, seed)
    questions = [r.prompt for r in test]
    if technique.shots == 0:
        shots = [[] for _ in questions]
    elif technique.shot_selection == "similar":
        shots = similar_shots(pool, technique.shots, questions)
    else:
        shots = random_shots(pool, technique.shots, len(questions), seed)
    conversations = [technique.messages(q, s) for q, s in zip(questions, shots, strict=True)]
    config = SamplingConfig(max_new_tokens=technique.max_new_tokens, temperature=technique.temperature, seed=seed)
    # Self-consistency: every conversation `samples` times in a row; rows of a batch draw their own tokens.
    # 64 rows per batch: on this CPU that ran about 1.6× faster than batches of 8 (bf16, 48 questions).
    replies = complete(generator, [c for c in conversations for _ in range(technique.samples)], config,
                       batch_size=64)
    extract = EXTRACTORS[technique.answer_format]
    rows = []
    for i, record in enumerate(test):
        group = replies[i * technique.samples:(i + 1) * technique.samples]
        answer = majority([extract(text) for text, _, _ in group])
        rows.append({"question": record.prompt, "gold": record.answer, "reply": group[0][0], "answer": answer,
                     "right": exact_match(answer, record.answer),
                     "lenient": any(answer_match(text, record.answer) for text, _, _ in group[:1]),
                     "follows_format": follows_format(technique.answer_format, group[0][0]),
                     "prompt_tokens": sum(t for _, t, _ in group), "completion_tokens": sum(t for _, _, t in group)})
    right = sum(r["right"] for r in rows)
    low, high = wilson_interval(right, len(rows))
    return {"technique": technique.name, "task": task, "n": len(rows), "accuracy": right / len(rows),
            "stderr": rate_stderr(right, len(rows)), "low": low, "high": high, "chance": CHANCE.get(task, 0.0),
            "lenient": sum(r["lenient"] for r in rows) / len(rows),
            "follows_format": sum(r["follows_format"] for r in rows) / len(rows),
            "rights": [r["right"] for r in rows],
            "prompt_tokens": sum(r["prompt_tokens"] for r in rows) / len(rows),
            "completion_tokens": sum(r["completion_tokens"] for r in rows) / len(rows),
            "examples": rows[:examples]}
