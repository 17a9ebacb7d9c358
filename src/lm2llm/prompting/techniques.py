"""Prompt techniques as data (`techniques.json`), turned into chat messages for one question.

A technique is a system prompt, an instruction added after the question, solved examples as earlier chat
turns (k of them, drawn at random or the most similar by MiniLM cosine), an answer format to extract
from (plain, chain-of-thought "Answer: …", JSON) and a number of samples (self-consistency: majority
vote over sampled chains). Adding a technique means adding a JSON entry, not code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path

from lm2llm.errors import UserError
from lm2llm.prompting.render import Messages

TECHNIQUES_FILE = Path(__file__).with_name("techniques.json")
SELECTIONS = ("random", "similar")
FORMATS = ("plain", "cot", "json")


@dataclass(frozen=True)
class Technique:
    name: str
    description: str
    system: str | None = None
    instruction: str = ""
    shots: int = 0
    shot_selection: str = "random"
    answer_format: str = "plain"
    samples: int = 1
    temperature: float = 0.0
    max_new_tokens: int = 32

    def __post_init__(self) -> None:
        if self.shot_selection not in SELECTIONS or self.answer_format not in FORMATS or self.samples < 1:
            raise UserError(f"technique {self.name!r}: shot_selection must be one of {SELECTIONS}, answer_format "
                            f"one of {FORMATS}, samples >= 1", where=str(TECHNIQUES_FILE))

    def messages(self, question: str, shots: list[tuple[str, str]] = ()) -> Messages:
        """The conversation for one question: system prompt, solved examples, then the question."""
        def ask(text: str) -> str:
            return f"{text}\n{self.instruction}" if self.instruction else text

        out: Messages = [{"role": "system", "content": self.system}] if self.system else []
        for shot_question, shot_answer in shots:
            out += [{"role": "user", "content": ask(shot_question)}, {"role": "assistant", "content": shot_answer}]
        return out + [{"role": "user", "content": ask(question)}]


@lru_cache(maxsize=1)
def techniques() -> dict[str, Technique]:
    known = {f.name for f in fields(Technique)} - {"name"}
    table = json.loads(TECHNIQUES_FILE.read_text(encoding="utf-8"))
    for name, entry in table.items():
        if set(entry) - known:
            raise UserError(f"technique {name!r} has unknown fields {sorted(set(entry) - known)}",
                            where=str(TECHNIQUES_FILE))
    return {name: Technique(name, **entry) for name, entry in table.items()}


def get_technique(name: str) -> Technique:
    table = techniques()
    if name not in table:
        raise UserError(f"unknown technique {name!r}", where="--technique", hint=", ".join(table))
    return table[name]
