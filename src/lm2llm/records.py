"""Reading the record files users hand to lm2llm: instruction, preference and labelled data.

A file is either JSON Lines (one record per line) or one JSON array of records (the layout of the public
Alpaca-style files); which one is read from the first character, not the extension. Every record comes
with the line it starts on, so whatever the caller finds wrong with it can be reported as `file:line`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lm2llm.errors import UserError


class RecordError(ValueError):
    """What is wrong with one record; `field` names the offending field."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def read_text_file(path: str | os.PathLike, what: str = "file") -> str:
    """The UTF-8 text of `path`; a missing file or other bytes is a `UserError` naming the `what`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} not found", where=str(path))
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"not UTF-8 text (byte {exc.start})", where=str(path)) from exc


def read_records(path: str | os.PathLike, what: str = "file") -> Iterator[tuple[int, Any]]:
    """(line number, record) for each record of a JSON Lines or JSON-array file.

    The file is read at once (a missing or non-UTF-8 file fails here); records are decoded as the caller
    iterates. A JSON Lines line that does not parse yields a `RecordError` in place of its record, so the
    caller may skip it; a syntax error in a JSON array is a `UserError`, since nothing after it can be trusted.
    """
    return parse_records(read_text_file(path, what), path)


def parse_records(text: str, path: str | os.PathLike) -> Iterator[tuple[int, Any]]:
    """`read_records` on text already read from `path` (which only names it in errors)."""
    if text.lstrip().startswith("["):
        return _json_array(text, Path(path))
    return _json_lines(text)


def _json_lines(text: str) -> Iterator[tuple[int, Any]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, RecordError(f"invalid JSON at column {exc.colno}: {exc.msg}")
        except RecursionError:
            yield number, RecordError("JSON nested too deeply")


def _json_array(text: str, path: Path) -> Iterator[tuple[int, Any]]:
    """Decoding element by element keeps the line of every record, so a bad one is reported where a person
    can find it."""
    decoder = json.JSONDecoder()

    def skip_space(pos: int) -> int:
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        return pos

    def fail(pos: int, message: str) -> UserError:
        line = text.count("\n", 0, pos) + 1
        return UserError(message, where=f"{path}:{line}", hint="the file is a JSON array; fix its syntax")

    pos = skip_space(text.index("[") + 1)
    if pos < len(text) and text[pos] == "]":
        return
    while True:
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise fail(exc.pos, f"invalid JSON: {exc.msg}") from exc
        except RecursionError as exc:
            raise fail(pos, "JSON nested too deeply") from exc
        yield text.count("\n", 0, pos) + 1, value
        pos = skip_space(end)
        if pos < len(text) and text[pos] == ",":
            pos = skip_space(pos + 1)
        elif pos < len(text) and text[pos] == "]":
            if skip_space(pos + 1) != len(text):
                raise fail(pos + 1, "unexpected text after the closing ']'")
            return
        else:
            raise fail(pos, "expected ',' or ']' between records")
