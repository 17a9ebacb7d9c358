"""Reading local text files into documents: .txt/.md (one document per file), .jsonl/.json (one per
record), .csv/.tsv (one per row).

Every reader works on bytes so it can tell the user exactly where a problem is: binary files (a NUL byte in
the first 8 KiB, the test git uses) are skipped and counted; invalid UTF-8 is replaced with U+FFFD and
counted, or with `strict=True` raises an error naming the file and byte offset; a malformed JSONL/CSV row
raises an error naming the file and line, or with `skip_bad_rows=True` is skipped and counted.
"""

from __future__ import annotations

import csv
import glob
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from lm2llm.errors import UserError

TEXT_SUFFIXES = (".txt", ".md")
RECORD_SUFFIXES = (".jsonl", ".json")
TABLE_SUFFIXES = (".csv", ".tsv")
SUPPORTED_SUFFIXES = TEXT_SUFFIXES + RECORD_SUFFIXES + TABLE_SUFFIXES
BINARY_SNIFF_BYTES = 8192
REPLACEMENT = "\ufffd"


@dataclass
class Document:
    text: str
    origin: str  # where it came from: "path", "path:line", or "module:qualname"


@dataclass
class ReadOptions:
    text_field: str = "text"  # JSONL/JSON records
    text_column: str = "text"  # CSV/TSV header name
    strict: bool = False  # invalid UTF-8 is an error instead of a counted replacement
    skip_bad_rows: bool = False  # malformed JSONL/CSV rows are counted and skipped instead of an error
    trust_unverified: bool = False  # accept (and pin) a downloaded file that has no published sha256
    counts: Counter = field(default_factory=Counter)  # events: files, binary_files_skipped, ...


def decode_utf8(data: bytes, where: str, options: ReadOptions, base_offset: int = 0) -> str:
    """UTF-8 text of `data`; invalid sequences are replaced and counted, or raise in strict mode."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if options.strict:
            raise UserError(
                f"invalid UTF-8 at byte offset {base_offset + exc.start}", where=where,
                hint="fix the file, or leave out --strict to replace bad bytes with U+FFFD and count them",
            ) from exc
    text = data.decode("utf-8", errors="replace")
    options.counts["invalid_utf8_sequences"] += text.count(REPLACEMENT) - data.count(REPLACEMENT.encode())
    return text


def is_binary(data: bytes) -> bool:
    return b"\0" in data[:BINARY_SNIFF_BYTES]


def _open(path: Path) -> BinaryIO:
    try:
        return open(path, "rb")
    except OSError as exc:
        raise UserError(f"cannot read file: {exc.strerror}", where=str(path)) from exc


def _lines(handle: BinaryIO, path: Path, options: ReadOptions) -> Iterator[str]:
    """Decoded lines, one at a time (a JSONL or CSV file may be larger than memory)."""
    offset = 0
    for number, raw in enumerate(handle, start=1):
        yield decode_utf8(raw, f"{path}:{number}", options, base_offset=offset)
        offset += len(raw)


def expand_paths(spec: str) -> list[Path]:
    """The files named by a path, a directory (searched recursively) or a glob, sorted for determinism."""
    path = Path(spec).expanduser()
    if any(ch in spec for ch in "*?["):
        candidates = [Path(p) for p in glob.glob(str(path), recursive=True)
                      if Path(p).suffix.lower() in SUPPORTED_SUFFIXES]
    elif path.is_dir():
        candidates = [p for p in path.rglob("*") if p.suffix.lower() in SUPPORTED_SUFFIXES]
    elif path.exists():
        candidates = [path]
    else:
        raise UserError("no such file, directory or registered source", where=spec,
                        hint="see 'lm2llm data sources' for the registered names")
    files = sorted(p for p in candidates if p.is_file())
    if not files:
        raise UserError(f"no {'/'.join(SUPPORTED_SUFFIXES)} files found", where=spec)
    return files


def read_file(path: Path, options: ReadOptions) -> Iterator[Document]:
    """The documents of one local file, by its suffix."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UserError(f"unsupported file type {suffix or '(none)'}", where=str(path),
                        hint=f"supported: {', '.join(SUPPORTED_SUFFIXES)}")
    with _open(path) as handle:
        options.counts["files"] += 1
        if is_binary(handle.read(BINARY_SNIFF_BYTES)):
            options.counts["binary_files_skipped"] += 1
            return
        handle.seek(0)
        if suffix in TEXT_SUFFIXES:
            yield Document(decode_utf8(handle.read(), str(path), options), str(path))
        elif suffix == ".jsonl":
            yield from _read_jsonl(path, _lines(handle, path, options), options)
        elif suffix == ".json":  # one JSON value: parsed whole
            yield from _read_json(path, handle.read(), options)
        else:
            yield from _read_table(path, _lines(handle, path, options), options)


def _record_text(record: object, key: str, where: str, options: ReadOptions) -> str | None:
    text = record.get(key) if isinstance(record, dict) else None
    if isinstance(text, str):
        return text
    problem = f"no string field {key!r}" if isinstance(record, dict) else "record is not a JSON object"
    return _bad_row(problem, where, options, hint="choose the field with --text-field")


def _bad_row(problem: str, where: str, options: ReadOptions, hint: str) -> None:
    if not options.skip_bad_rows:
        raise UserError(problem, where=where, hint=f"{hint}; 'lm2llm data prepare --skip-bad-rows' counts and skips such rows")
    options.counts["bad_rows_skipped"] += 1
    return None


def _read_jsonl(path: Path, lines: Iterator[str], options: ReadOptions) -> Iterator[Document]:
    for number, line in enumerate(lines, start=1):
        where = f"{path}:{number}"
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            _bad_row(f"malformed JSON: {exc.msg} at column {exc.colno}", where, options, hint="fix the line")
            continue
        text = _record_text(record, options.text_field, where, options)
        if text is not None:
            yield Document(text, where)


def _read_json(path: Path, data: bytes, options: ReadOptions) -> Iterator[Document]:
    try:
        records = json.loads(decode_utf8(data, str(path), options))
    except json.JSONDecodeError as exc:
        raise UserError(f"malformed JSON: {exc.msg}", where=f"{path}:{exc.lineno}") from exc
    if not isinstance(records, list):
        raise UserError("a .json source must hold a list of records", where=str(path),
                        hint="use .jsonl for one record per line")
    for index, record in enumerate(records):
        text = _record_text(record, options.text_field, f"{path}[{index}]", options)
        if text is not None:
            yield Document(text, f"{path}[{index}]")


def _read_table(path: Path, lines: Iterator[str], options: ReadOptions) -> Iterator[Document]:
    tsv = path.suffix.lower() == ".tsv"
    # TSV files in the wild rarely quote; quoting would swallow the `"` inside reviews (NSMC).
    reader = csv.reader(lines, delimiter="\t" if tsv else ",",
                        quoting=csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL)
    try:
        header = next(reader)
    except StopIteration:
        return
    if options.text_column not in header:
        raise UserError(f"no column {options.text_column!r} (columns: {', '.join(header)})", where=f"{path}:1",
                        hint="choose the column with --text-column")
    column = header.index(options.text_column)
    try:
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if not row:
                continue
            if len(row) != len(header):
                _bad_row(f"row has {len(row)} fields, the header has {len(header)}", where, options,
                         hint="fix the row")
                continue
            yield Document(row[column], where)
    except csv.Error as exc:
        raise UserError(f"malformed {'TSV' if tsv else 'CSV'}: {exc}", where=f"{path}:{reader.line_num}") from exc
