"""The answer inside a reply: what a technique's output format promises, read back leniently.

- plain: the first non-empty line, without a leading "Answer:" and trailing period or quotes;
- cot: the text after the last "Answer:" (or the last line when there is none), then as plain;
- json: the "answer" field of the first JSON object in the reply, else as plain.
"""

from __future__ import annotations

import json

import regex

_ANSWER = regex.compile(r"(?:answer|답)\s*[:：]\s*(.+)", regex.IGNORECASE)
_OBJECT = regex.compile(r"\{[^{}]*\}")


def extract_plain(text: str) -> str:
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    found = _ANSWER.match(line)
    line = found.group(1) if found else line
    return line.strip().strip("\"'`*").rstrip(".").strip()


def extract_cot(text: str) -> str:
    found = _ANSWER.findall(text)
    if found:
        return extract_plain(found[-1])
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return extract_plain(lines[-1]) if lines else ""


def extract_json(text: str) -> str:
    for candidate in _OBJECT.findall(text):
        if _is_answer_object(candidate):
            return str(json.loads(candidate)["answer"]).strip()
    return extract_plain(text)


def follows_format(answer_format: str, text: str) -> bool:
    """Did the reply keep the promised shape? plain: one non-empty line; cot: an "Answer:" line; json: an
    object with an "answer" field."""
    if answer_format == "cot":
        return bool(_ANSWER.search(text))
    if answer_format == "json":
        return any(_is_answer_object(c) for c in _OBJECT.findall(text))
    return len([ln for ln in text.splitlines() if ln.strip()]) == 1


def _is_answer_object(candidate: str) -> bool:
    try:
        value = json.loads(candidate)
    except json.JSONDecodeError:
        return False
    return isinstance(value, dict) and "answer" in value


EXTRACTORS = {"plain": extract_plain, "cot": extract_cot, "json": extract_json}
