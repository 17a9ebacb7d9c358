"""Character-level tokenizer: one id per Unicode character seen in training, plus `<unk>`.

The early chapters use it because it needs no training beyond collecting the alphabet, and a model's
loss per character is directly comparable across corpora.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from lm2llm.errors import UserError
from lm2llm.runs import atomic_write_json, read_json

UNK = "<unk>"


class CharTokenizer:
    kind = "char"

    def __init__(self, chars: list[str]):
        if UNK in chars:
            raise ValueError("the alphabet must not contain the <unk> token")
        self.itos = [UNK, *chars]
        self.stoi = {ch: i for i, ch in enumerate(self.itos)}
        self.unk_id = 0

    @classmethod
    def train(cls, texts: Iterable[str], min_count: int = 1) -> CharTokenizer:
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(text)
        return cls(sorted(ch for ch, n in counts.items() if n >= min_count))

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        get = self.stoi.get
        return [get(ch, 0) for ch in text]

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.itos[i] if i > 0 else "\ufffd" for i in ids)

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        atomic_write_json(directory / "char_vocab.json", {"chars": self.itos[1:]})
        atomic_write_json(directory / "tokenizer_kind.json", {"kind": self.kind})
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> CharTokenizer:
        data = read_json(Path(directory) / "char_vocab.json")
        if not isinstance(data.get("chars"), list):
            raise UserError("field 'chars' must be a list", where=str(Path(directory) / "char_vocab.json"))
        return cls(data["chars"])
