"""Labelled texts: read from a CSV/TSV/JSONL file, or built from real corpora, and batched for the Trainer.

Built-in sets:
- `docstring_families()`: standard-library docstrings labelled by the top-level package they belong to
  (asyncio, email, tkinter, ...), from the `python-docs` corpus — real text with a real label, no download.
- `nsmc()`: Korean movie reviews labelled negative/positive (Naver sentiment corpus), from a local copy
  or an earlier `lm2llm data download nsmc` (never fetched here).
"""

from __future__ import annotations

import csv
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from lm2llm.data.clean import clean_text
from lm2llm.data.embedded import stdlib_dir
from lm2llm.errors import UserError
from lm2llm.models.padding import pad
from lm2llm.records import RecordError, parse_records, read_text_file
from lm2llm.training.objectives import Batch


@dataclass
class LabelledSet:
    texts: list[str]
    labels: list[int]  # indexes into `names`
    names: list[str]

    def __len__(self) -> int:
        return len(self.texts)

    def counts(self) -> dict[str, int]:
        counted = Counter(self.labels)
        return {name: counted[i] for i, name in enumerate(self.names)}

    def split(self, test_fraction: float, seed: int) -> tuple[LabelledSet, LabelledSet]:
        """A seeded, stratified split: each label keeps its share in both parts."""
        if not 0 < test_fraction < 1:
            raise UserError(f"the held-out fraction must be between 0 and 1, got {test_fraction}", where="--val-fraction")
        rng = random.Random(seed)
        train, test = [], []
        for label in range(len(self.names)):
            rows = [i for i, y in enumerate(self.labels) if y == label]
            rng.shuffle(rows)
            cut = max(1, round(len(rows) * test_fraction)) if len(rows) > 1 else 0
            test += rows[:cut]
            train += rows[cut:]
        return self.subset(sorted(train)), self.subset(sorted(test))

    def subset(self, rows: Sequence[int]) -> LabelledSet:
        return LabelledSet([self.texts[i] for i in rows], [self.labels[i] for i in rows], self.names)

    def relabelled(self, names: list[str], where: str) -> LabelledSet:
        """The same texts with label indexes into `names` (a trained classifier's label order)."""
        unknown = sorted(set(self.names) - set(names))
        if unknown:
            raise UserError(f"labels {unknown} were not seen in training", where=where, hint=f"known: {names}")
        index = {name: i for i, name in enumerate(names)}
        return LabelledSet(self.texts, [index[self.names[y]] for y in self.labels], list(names))


def from_pairs(pairs: Sequence[tuple[str, str]], where: str) -> LabelledSet:
    """(text, label) pairs → a set whose label names are sorted (so their ids do not depend on row order)."""
    if not pairs:
        raise UserError("no labelled rows", where=where)
    names = sorted({label for _, label in pairs})
    if len(names) < 2:
        raise UserError(f"only one label ({names[0]!r}) in the data; classification needs two or more", where=where)
    index = {name: i for i, name in enumerate(names)}
    return LabelledSet([t for t, _ in pairs], [index[y] for _, y in pairs], names)


def read_labelled(path: str | Path, text_column: str = "text", label_column: str = "label") -> LabelledSet:
    """Rows of a .csv/.tsv (header row) or a .jsonl/.json (JSON Lines or one JSON array) file with a text and
    a label column; empty texts skipped."""
    path = Path(path)
    content = read_text_file(path)
    suffix = path.suffix.lower()
    pairs: list[tuple[str, str]] = []
    if suffix in (".csv", ".tsv"):
        pairs = _table_pairs(path, content, text_column, label_column)
    elif suffix in (".jsonl", ".json"):
        for line, record in parse_records(content, path):
            if isinstance(record, RecordError):
                raise UserError(str(record), where=f"{path}:{line}")
            if not isinstance(record, dict) or text_column not in record or label_column not in record:
                raise UserError(f"record needs {text_column!r} and {label_column!r}", where=f"{path}:{line}")
            text, label = record[text_column], record[label_column]
            if not isinstance(text, str):
                raise UserError(f"field {text_column!r} must be a string, got {type(text).__name__}",
                                where=f"{path}:{line}")
            if isinstance(label, bool) or not isinstance(label, (str, int)):
                raise UserError(f"field {label_column!r} must be a string or a whole number, got {label!r}",
                                where=f"{path}:{line}")
            if text.strip():
                pairs.append((text, str(label)))
    else:
        raise UserError(f"unsupported file type {suffix!r}", where=str(path), hint="use .csv, .tsv, .jsonl or .json")
    return from_pairs(pairs, str(path))


def _table_pairs(path: Path, content: str, text_column: str, label_column: str) -> list[tuple[str, str]]:
    """(text, label) of each CSV/TSV row; a row with more or fewer fields than the header, or a quote left
    open (which would swallow the rest of the file), is an error naming the line."""
    tsv = path.suffix.lower() == ".tsv"
    rows = csv.DictReader(content.splitlines(keepends=True), delimiter="\t" if tsv else ",",
                          quoting=csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL, strict=True)
    pairs = []
    try:
        missing = [c for c in (text_column, label_column) if c not in (rows.fieldnames or [])]
        if missing:
            raise UserError(f"no column {missing[0]!r}; the header has {rows.fieldnames}", where=f"{path}:1",
                            hint="pass --text-column / --label-column")
        for row in rows:
            if None in row or None in row.values():
                raise UserError(f"row has a different number of fields than the header's {len(rows.fieldnames)}",
                                where=f"{path}:{rows.line_num}")
            if row[text_column].strip():
                pairs.append((row[text_column], row[label_column].strip()))
    except csv.Error as exc:
        raise UserError(f"malformed {'TSV' if tsv else 'CSV'}: {exc}", where=f"{path}:{rows.line_num}") from exc
    return pairs


def stdlib_packages() -> set[str]:
    """Top-level standard-library packages (directories with an __init__.py)."""
    return {p.parent.name for p in stdlib_dir().glob("*/__init__.py")}


def docstring_families(n_families: int = 4, per_family: int | None = None, min_chars: int = 40) -> LabelledSet:
    """Docstrings of the `n_families` largest standard-library packages, labelled by package, balanced.

    Each docstring (module, class or function) is labelled with the top-level package its module lives
    in. Repeated texts are dropped (an inherited docstring would otherwise carry two labels), and every
    family keeps the same number of docstrings (the smallest family's, or `per_family`).
    """
    from lm2llm.data import iter_documents

    packages = stdlib_packages()
    by_family: dict[str, list[str]] = {}
    seen: Counter = Counter()
    documents = []
    for document in iter_documents("python-docs"):
        family = document.origin.split(".")[0]
        if ":" in document.origin or family not in packages:
            continue
        text = clean_text(document.text).text
        if len(text) >= min_chars:
            documents.append((family, text))
            seen[text] += 1
    for family, text in documents:
        if seen[text] == 1:
            by_family.setdefault(family, []).append(text)
    largest = sorted(by_family, key=lambda f: (-len(by_family[f]), f))[:n_families]
    size = min(len(by_family[f]) for f in largest)
    size = min(size, per_family) if per_family else size
    rng = random.Random(0)
    pairs = [(text, family) for family in largest for text in rng.sample(by_family[family], size)]
    return from_pairs(pairs, "python-docs")


NSMC_LABELS = {"0": "negative", "1": "positive"}


def nsmc_files(directory: str | Path | None = None) -> tuple[Path, Path] | None:
    """(train, test) files of a local NSMC copy (`train.tsv`/`test.tsv` in `directory`), or of the `nsmc`
    download in the cache when `directory` is None; None when they are not there (nothing is fetched)."""
    if directory is not None:
        pair = Path(directory) / "train.tsv", Path(directory) / "test.tsv"
    else:
        from lm2llm.data.download import dataset_dir

        pair = dataset_dir("nsmc") / "ratings_train.tsv", dataset_dir("nsmc") / "ratings_test.tsv"
    return pair if all(p.is_file() for p in pair) else None


def nsmc(directory: str | Path | None = None, limit: int | None = None) -> tuple[LabelledSet, LabelledSet]:
    """(train, test) Korean sentiment sets (see `nsmc_files`); `limit` keeps that many rows of each."""
    files = nsmc_files(directory)
    if files is None:
        raise UserError("NSMC is not available locally", where=str(directory or "nsmc"),
                        hint="run 'lm2llm data download nsmc' first")
    out = []
    for path in files:
        raw = read_labelled(path, "document", "label")
        named = LabelledSet(raw.texts, raw.labels, [NSMC_LABELS.get(n, n) for n in raw.names])
        out.append(named.subset(range(min(limit, len(named)))) if limit else named)
    return out[0], out[1]


# -- batches for the Trainer -------------------------------------------------------------------------------

def encode_texts(tokenizer, texts: Sequence[str], block_size: int, *, first_id: int | None = None,
                 last_id: int | None = None) -> list[list[int]]:
    """Token ids of each text, cut to fit `block_size` with the optional first ([CLS]) / last (end) token."""
    room = block_size - (first_id is not None) - (last_id is not None)
    encoded = []
    for text in texts:
        ids = tokenizer.encode(text)[:room]
        encoded.append(([first_id] if first_id is not None else []) + ids + ([last_id] if last_id is not None else []))
    return encoded


class ClassificationBatches:
    """Random training batches and a fixed validation set of padded (ids, attention_mask, labels)."""

    def __init__(self, encoded: list[list[int]], labels: list[int], *, pad_id: int, block_size: int,
                 batch_size: int, seed: int, val_encoded: list[list[int]], val_labels: list[int]):
        if not encoded or not val_encoded:
            raise UserError("classification needs training and validation examples", where="data")
        self.encoded, self.labels = encoded, labels
        self.val_encoded, self.val_labels = val_encoded, val_labels
        self.pad_id, self.block_size, self.batch_size = pad_id, block_size, batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.eval_bytes = 0  # bits per byte is a language-model measure

    def _batch(self, rows: Sequence[list[int]], labels: Sequence[int]) -> Batch:
        ids, mask = pad(rows, self.pad_id)
        return {"ids": ids, "attention_mask": mask, "labels": torch.tensor(list(labels), dtype=torch.long)}

    def next_batch(self) -> Batch:
        picks = torch.randint(len(self.encoded), (self.batch_size,), generator=self.generator).tolist()
        return self._batch([self.encoded[i] for i in picks], [self.labels[i] for i in picks])

    def eval_set(self) -> list[Batch]:
        size = self.batch_size
        return [self._batch(self.val_encoded[i:i + size], self.val_labels[i:i + size])
                for i in range(0, len(self.val_encoded), size)]

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {"data.generator": self.generator.get_state()}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.generator.set_state(tensors["data.generator"])
