"""The tokenizer interface every stage relies on, and loading a saved tokenizer by its recorded kind."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

from lm2llm.errors import UserError
from lm2llm.runs import read_json

KIND_FILE = "tokenizer_kind.json"  # {"kind": "char" | "bpe"}: which class reads this directory
HF_FILE = "tokenizer.json"  # a Hugging Face tokenizer directory without our marker is read as "bpe"


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
    from lm2llm.tokenizer.hf_bpe import BPETokenizer

    return {"char": CharTokenizer, "bpe": BPETokenizer}


def load_tokenizer(directory: str | Path, impl: str = "fast") -> Tokenizer:
    """Load a tokenizer saved with `.save(directory)` (or any byte-level BPE `tokenizer.json` directory).

    `impl` picks the BPE engine ("fast" or "scratch"); other kinds ignore it.
    """
    directory = Path(directory)
    kind_path = directory / KIND_FILE
    if kind_path.is_file():
        kind = read_json(kind_path).get("kind")
    elif (directory / HF_FILE).is_file():
        kind = "bpe"
    else:
        raise UserError("not a saved tokenizer (no tokenizer_kind.json or tokenizer.json)", where=str(directory))
    loaders = _loaders()
    if kind not in loaders:
        raise UserError(f"unknown tokenizer kind {kind!r}", where=str(kind_path), hint=f"known: {', '.join(loaders)}")
    if kind == "bpe":
        return loaders[kind].load(directory, impl=impl)
    return loaders[kind].load(directory)
