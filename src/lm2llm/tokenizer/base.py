"""The tokenizer interface every stage relies on, and loading a saved tokenizer by its recorded kind."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

from lm2llm.errors import UserError
from lm2llm.runs import read_json

KIND_FILE = "tokenizer_kind.json"  # {"kind": "char" | ...}: which class reads this directory


@runtime_checkable
class Tokenizer(Protocol):
    kind: str

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...

    def save(self, directory: str | Path) -> Path: ...


def _loaders() -> dict[str, type]:
    from lm2llm.tokenizer.char import CharTokenizer

    return {"char": CharTokenizer}


def load_tokenizer(directory: str | Path) -> Tokenizer:
    """Load a tokenizer saved with `.save(directory)`."""
    directory = Path(directory)
    kind_path = directory / KIND_FILE
    if not kind_path.is_file():
        raise UserError("not a saved tokenizer (no tokenizer_kind.json)", where=str(directory))
    kind = read_json(kind_path).get("kind")
    loaders = _loaders()
    if kind not in loaders:
        raise UserError(f"unknown tokenizer kind {kind!r}", where=str(kind_path), hint=f"known: {', '.join(loaders)}")
    return loaders[kind].load(directory)
