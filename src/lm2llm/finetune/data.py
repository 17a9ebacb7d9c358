"""Instruction data: chat (`messages`) or Alpaca (`instruction`, `input`, `output`) records → conversations.

Every record becomes one conversation, a list of `{"role", "content"}` messages with roles `system`,
`user` and `assistant`, the shape a chat template renders. A file is either JSON Lines (one record per
line) or one JSON array of records (the layout of the public Alpaca-style files), read by `lm2llm.records`.
A malformed record stops the load with its file, line and field, unless the caller asks to skip it:
silently dropping data is how a fine-tune quietly goes wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lm2llm.errors import UserError
from lm2llm.records import RecordError, read_records

Message = dict[str, str]
Conversation = list[Message]

ROLES = ("system", "user", "assistant")


@dataclass
class InstructionData:
    """The conversations of one file, and why each skipped record was skipped (`file:line: reason`)."""

    conversations: list[Conversation]
    skipped: list[str] = field(default_factory=list)


def alpaca_to_messages(instruction: str, input_text: str, output: str) -> Conversation:
    """The usual chat form of an Alpaca record: the input, when present, follows the instruction."""
    prompt = f"{instruction}\n\n{input_text}" if input_text.strip() else instruction
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}]


def _text_field(record: dict, name: str, *, required: bool = True) -> str:
    value = record.get(name, None if required else "")
    if value is None:
        raise RecordError("missing", name)
    if not isinstance(value, str):
        raise RecordError(f"must be a string, got {type(value).__name__}", name)
    return value


def _check_messages(messages: Any) -> Conversation:
    if not isinstance(messages, list) or not messages:
        raise RecordError("must be a non-empty list of {role, content} objects", "messages")
    checked: Conversation = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise RecordError(f"must be an object, got {type(message).__name__}", where)
        role = message.get("role")
        if role not in ROLES:
            raise RecordError(f"unknown role {role!r} (expected one of {', '.join(ROLES)})", f"{where}.role")
        if role == "system" and i > 0:
            raise RecordError("a system message may only come first", f"{where}.role")
        content = message.get("content")
        if not isinstance(content, str):
            raise RecordError(f"must be a string, got {type(content).__name__}", f"{where}.content")
        if role == "assistant" and not content.strip():
            raise RecordError("an assistant message must not be empty", f"{where}.content")
        checked.append({"role": role, "content": content})
    if not any(m["role"] == "assistant" for m in checked):
        raise RecordError("has no assistant message, so there is nothing to learn from", "messages")
    return checked


def record_to_messages(record: Any) -> Conversation:
    """Normalise one parsed record to a conversation, or raise `RecordError` naming the bad field."""
    if not isinstance(record, dict):
        raise RecordError(f"a record must be a JSON object, got {type(record).__name__}")
    if "messages" in record:
        return _check_messages(record["messages"])
    if "instruction" in record or "output" in record:
        instruction = _text_field(record, "instruction")
        input_text = _text_field(record, "input", required=False)
        output = _text_field(record, "output")
        if not instruction.strip():
            raise RecordError("must not be empty", "instruction")
        if not output.strip():
            raise RecordError("must not be empty", "output")
        return alpaca_to_messages(instruction, input_text, output)
    raise RecordError("needs either 'messages' or the Alpaca fields 'instruction' and 'output'")


def load_instructions(path: str | Path, *, skip_invalid: bool = False) -> InstructionData:
    """Read a JSONL or JSON-array instruction file into conversations.

    A malformed record raises `UserError` with `file:line` and the field; with `skip_invalid=True` it is
    counted in `skipped` instead. A file with no usable record is always an error.
    """
    path = Path(path)
    data = InstructionData(conversations=[])
    for line, record in read_records(path, "instruction file"):
        try:
            if isinstance(record, RecordError):
                raise record
            data.conversations.append(record_to_messages(record))
        except RecordError as exc:
            message = f"field '{exc.field}' {exc}" if exc.field else str(exc)
            if not skip_invalid:
                raise UserError(message, where=f"{path}:{line}", hint="fix the record, or pass --skip-invalid to skip and count such records") from exc
            data.skipped.append(f"{path}:{line}: {message}")
    if not data.conversations:
        raise UserError("no usable instruction records", where=str(path))
    return data
