"""Preference data: a prompt with a chosen and a rejected answer, the raw material of RLHF and DPO.

Records are read from JSON Lines or from one JSON array (told apart by the first character, by
`lm2llm.records`, so every error names its file and line), in two shapes:

- a `{"prompt", "chosen", "rejected"}` record, where `prompt` is either plain text or
  a list of chat messages `[{"role": "system"|"user"|"assistant", "content": "..."}]` ending with a
  user turn (the answers are the assistant's next turn). This is the format lm2llm writes.
- an Alpaca record `{"instruction", "input", "output", "chosen", "rejected"}`, as in the
  instruction-data-with-preference.json file of "Build a Large Language Model (From Scratch)"; the
  instruction (and input, when present) becomes a single user message.

A malformed record is a `UserError` naming the file and line, so a user can fix the data instead of
reading a traceback.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from lm2llm.errors import UserError
from lm2llm.finetune.data import ROLES, alpaca_to_messages
from lm2llm.records import RecordError, read_records
from lm2llm.runs import atomic_write_text

Message = dict[str, str]
Prompt = str | list[Message]


@dataclass(frozen=True)
class PreferencePair:
    """One human (or synthetic) judgement: for `prompt`, `chosen` is preferred over `rejected`."""

    prompt: Prompt
    chosen: str
    rejected: str
    kind: str = ""  # optional label of how `rejected` is worse (e.g. "wrong", "rambling"), for per-kind reports

    def to_json(self) -> dict:
        record = {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected}
        return record | {"kind": self.kind} if self.kind else record

    def messages(self) -> list[Message]:
        """The prompt as chat messages (plain text becomes one user turn)."""
        if isinstance(self.prompt, str):
            return [{"role": "user", "content": self.prompt}]
        return [dict(m) for m in self.prompt]


def _check_messages(messages: list, where: str) -> list[Message]:
    if not messages:
        raise UserError("'prompt' is an empty list of messages", where=where)
    checked = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or set(message) != {"role", "content"}:
            raise UserError(f"prompt message {i} must be an object with exactly 'role' and 'content'", where=where)
        if message["role"] not in ROLES:
            raise UserError(f"prompt message {i} has role {message['role']!r}", where=where,
                            hint=f"use one of {', '.join(ROLES)}")
        if not isinstance(message["content"], str):
            raise UserError(f"prompt message {i} 'content' must be a string", where=where)
        checked.append({"role": message["role"], "content": message["content"]})
    if checked[-1]["role"] != "user":
        raise UserError("the last prompt message must be a user turn (the answers reply to it)", where=where)
    return checked


def pair_from_record(record: object, where: str) -> PreferencePair:
    """Validate one `{prompt, chosen, rejected}` object; `where` names it in errors."""
    if not isinstance(record, dict):
        raise UserError(f"expected a JSON object, got {type(record).__name__}", where=where)
    missing = [key for key in ("prompt", "chosen", "rejected") if key not in record]
    if missing:
        raise UserError(f"missing field(s) {', '.join(missing)}", where=where,
                        hint='each record needs "prompt", "chosen" and "rejected"')
    for key in ("chosen", "rejected"):
        if not isinstance(record[key], str) or not record[key].strip():
            raise UserError(f"'{key}' must be a non-empty string", where=where)
    prompt = record["prompt"]
    if isinstance(prompt, list):
        prompt = _check_messages(prompt, where)
    elif not isinstance(prompt, str) or not prompt.strip():
        raise UserError("'prompt' must be a non-empty string or a list of chat messages", where=where)
    kind = record.get("kind", "")
    if not isinstance(kind, str):
        raise UserError("'kind' must be a string", where=where)
    return PreferencePair(prompt, record["chosen"], record["rejected"], kind)


def alpaca_prompt(instruction: str, input_text: str = "") -> list[Message]:
    """An Alpaca instruction (plus optional input) as one user message, formatted as SFT formats it."""
    return alpaca_to_messages(instruction, input_text, output="")[:1]


def _alpaca_pair(record: dict, where: str) -> PreferencePair:
    instruction, input_text = record.get("instruction"), record.get("input", "")
    if not isinstance(instruction, str) or not instruction.strip():
        raise UserError("'instruction' must be a non-empty string", where=where)
    if not isinstance(input_text, str):
        raise UserError("'input' must be a string", where=where)
    answers = {key: record[key] for key in ("chosen", "rejected") if key in record}
    return pair_from_record({"prompt": alpaca_prompt(instruction, input_text), **answers}, where)


def read_preferences(path: str | Path) -> list[PreferencePair]:
    """Read JSONL or a JSON array (told apart by the first character, as SFT data is) of
    `{prompt, chosen, rejected}` or Alpaca `{instruction, input, chosen, rejected}` records."""
    path = Path(path)
    pairs = []
    for line, record in read_records(path, "preference file"):
        where = f"{path}:{line}"
        if isinstance(record, RecordError):
            raise UserError(str(record), where=where)
        if isinstance(record, dict) and "prompt" not in record and "instruction" in record:
            pairs.append(_alpaca_pair(record, where))
        else:
            pairs.append(pair_from_record(record, where))
    if not pairs:
        raise UserError("no preference records in file", where=str(path))
    return pairs


def write_preference_jsonl(pairs: list[PreferencePair], path: str | Path) -> Path:
    """Write pairs as JSONL atomically (UTF-8, Korean kept as is)."""
    text = "".join(json.dumps(pair.to_json(), ensure_ascii=False) + "\n" for pair in pairs)
    return atomic_write_text(path, text)


def split_held_out(pairs: list[PreferencePair], fraction: float, *, seed: int = 0
                   ) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """Shuffle with `seed` and hold out `fraction` of the pairs (at least one) for evaluation."""
    if not 0.0 < fraction < 1.0:
        raise UserError(f"held-out fraction must be in (0, 1), got {fraction}", where="held_out")
    if len(pairs) < 2:
        raise UserError("need at least two pairs to hold some out", where="held_out")
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    n_held = max(1, round(len(pairs) * fraction))
    held = sorted(order[:n_held])
    train = sorted(order[n_held:])
    return [pairs[i] for i in train], [pairs[i] for i in held]
