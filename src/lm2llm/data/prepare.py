"""`data prepare`: a corpus → cleaned, deduplicated, scrubbed, filtered documents, a train/val split, token
shards, `stats.json` and a dataset card.

The funnel, in order: read → clean (drop empties) → exact dedup → near dedup → quality filters → PII scrub
(replaces, never drops) → split by document hash. Every input document ends in exactly one bucket, and
`stats.json` checks that the buckets add up. Everything streams: documents are written as they pass, the
character alphabet is counted on the way, and a second pass over the written file encodes the shards; only
dedup state (a hash and a MinHash signature per kept document) stays in memory. The output directory is
built under a temporary name and renamed at the end, so a failure never leaves a half-written dataset.
"""

from __future__ import annotations

import glob
import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lm2llm.data.clean import clean_text
from lm2llm.data.dedup import ExactDeduplicator, NearDuplicateIndex, content_hash
from lm2llm.data.pii import scrub
from lm2llm.data.quality import QualityConfig, reject_reason
from lm2llm.data.readers import Document, ReadOptions
from lm2llm.data.shards import ShardWriter
from lm2llm.data.sources import describe, iter_documents
from lm2llm.errors import UserError
from lm2llm.runs import atomic_write_json, atomic_write_text, check_out, output_dir
from lm2llm.tokenizer import CharTokenizer, Tokenizer, load_tokenizer

DOCUMENTS_FILE = "documents.jsonl"
DOCUMENT_SEPARATOR = "\n\n"  # ends each document in the token stream of a tokenizer without an end-of-text token
SPLIT_BUCKETS = 10_000
EXAMPLE_PREVIEW = 300  # characters of each duplicate example written to stats.json


@dataclass
class DedupConfig:
    exact: bool = True
    near: bool = True
    threshold: float = 0.8  # Jaccard similarity of shingle sets
    shingle: str = "word"  # "word" or "char"
    shingle_size: int = 5
    num_perm: int = 128


@dataclass
class PrepareConfig:
    source: str
    text_field: str = "text"
    text_column: str = "text"
    strict: bool = False
    skip_bad_rows: bool = False
    trust_unverified: bool = False
    dedup: DedupConfig = field(default_factory=DedupConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    scrub_pii: bool = True
    val_fraction: float = 0.1
    tokenizer: str = "char"  # "char" (trained on the output) or the directory of a saved tokenizer
    limit: int | None = None  # read at most this many documents
    examples: int = 5  # near-duplicate pairs kept for the card and the tour


def split_of(text: str, val_fraction: float) -> str:
    """Deterministic split by content hash: the same text always lands in the same split."""
    bucket = int.from_bytes(content_hash(text)[:8], "big") % SPLIT_BUCKETS
    return "val" if bucket < val_fraction * SPLIT_BUCKETS else "train"


@dataclass
class Funnel:
    """Where every document went; `documents_in` equals the sum of all the other buckets."""

    documents_in: int = 0
    empty: int = 0
    exact_duplicates: int = 0
    near_duplicates: int = 0
    filtered: Counter = field(default_factory=Counter)  # by quality rule
    train: int = 0
    val: int = 0

    @property
    def cleaned(self) -> int:
        return self.documents_in - self.empty

    @property
    def deduplicated(self) -> int:
        return self.cleaned - self.exact_duplicates - self.near_duplicates

    @property
    def out(self) -> int:
        return self.train + self.val

    def stages(self) -> list[tuple[str, int]]:
        return [("in", self.documents_in), ("cleaned", self.cleaned), ("deduplicated", self.deduplicated),
                ("filtered", self.out), ("out", self.out)]

    def balanced(self) -> bool:
        removed = self.empty + self.exact_duplicates + self.near_duplicates + sum(self.filtered.values())
        return self.documents_in == removed + self.out


@dataclass
class PrepareStats:
    source: str
    funnel: Funnel = field(default_factory=Funnel)
    read: Counter = field(default_factory=Counter)  # files, binary_files_skipped, invalid_utf8_sequences, ...
    control_chars_removed: int = 0
    pii: Counter = field(default_factory=Counter)
    chars_in: int = 0
    chars_out: int = 0
    exact_examples: list[dict] = field(default_factory=list)
    near_examples: list[dict] = field(default_factory=list)
    tokens: dict = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        # asdict would rebuild each Counter from its (key, count) pairs, counting the pairs: convert by hand
        data = {**asdict(self), "read": dict(self.read), "pii": dict(self.pii)}
        for key in ("exact_examples", "near_examples"):  # full texts stay in memory; the file gets a preview
            data[key] = [{**example, "text": example["text"][:EXAMPLE_PREVIEW]} for example in data[key]]
        data["funnel"] = {**asdict(self.funnel), "filtered": dict(self.funnel.filtered),
                          "stages": dict(self.funnel.stages()), "balanced": self.funnel.balanced()}
        return data


def process(config: PrepareConfig, stats: PrepareStats) -> Iterator[tuple[str, Document]]:
    """The kept documents with their split, counting everything else into `stats` on the way."""
    options = ReadOptions(config.text_field, config.text_column, config.strict, config.skip_bad_rows,
                          config.trust_unverified, stats.read)
    exact = ExactDeduplicator() if config.dedup.exact else None
    d = config.dedup
    near = NearDuplicateIndex(d.threshold, d.num_perm, d.shingle, d.shingle_size) if d.near else None
    funnel = stats.funnel
    for document in iter_documents(config.source, options):
        if config.limit is not None and funnel.documents_in >= config.limit:
            break
        funnel.documents_in += 1
        stats.chars_in += len(document.text)
        cleaned = clean_text(document.text)
        stats.control_chars_removed += cleaned.removed_chars
        text = cleaned.text
        if not text:
            funnel.empty += 1
            continue
        if exact is not None and (earlier := exact.first_seen(text, document.origin)) is not None:
            funnel.exact_duplicates += 1
            if len(stats.exact_examples) < config.examples:
                stats.exact_examples.append({"removed": document.origin, "kept": earlier, "text": text})
            continue
        if near is not None and (match := near.match(text, document.origin)) is not None:
            funnel.near_duplicates += 1
            if len(stats.near_examples) < config.examples:
                stats.near_examples.append({"removed": document.origin, "kept": match[0],
                                            "estimated_jaccard": round(match[1], 3), "text": text})
            continue
        if (reason := reject_reason(text, config.quality)) is not None:
            funnel.filtered[reason] += 1
            continue
        if config.scrub_pii:
            text, found = scrub(text)
            stats.pii.update(found)
        split = split_of(text, config.val_fraction)
        funnel.train += split == "train"
        funnel.val += split == "val"
        stats.chars_out += len(text)
        yield split, Document(text, document.origin)


def _write_documents(config: PrepareConfig, stats: PrepareStats, path: Path) -> Counter:
    """Stream kept documents to JSONL; returns the character counts (the char tokenizer's alphabet)."""
    chars: Counter = Counter(DOCUMENT_SEPARATOR)
    with open(path, "w", encoding="utf-8") as out:
        for split, document in process(config, stats):
            chars.update(document.text)
            out.write(json.dumps({"split": split, "origin": document.origin, "text": document.text},
                                 ensure_ascii=False) + "\n")
    return chars


def _separator(tokenizer: Tokenizer) -> tuple[list[int], str]:
    """Ids that end each document: the end-of-text token when the tokenizer has one (BPE), else a blank line."""
    eos_id = getattr(tokenizer, "eos_id", None)
    if eos_id is not None:
        return [eos_id], "eos"
    return tokenizer.encode(DOCUMENT_SEPARATOR), DOCUMENT_SEPARATOR


def _write_shards(directory: Path, tokenizer: Tokenizer, source: str) -> dict:
    separator, separator_name = _separator(tokenizer)
    documents = Counter()
    with ShardWriter(directory, tokenizer.vocab_size) as writer:
        with open(directory / DOCUMENTS_FILE, encoding="utf-8") as lines:
            for line in lines:
                record = json.loads(line)
                writer.write(record["split"], tokenizer.encode(record["text"]) + separator)
                documents[record["split"]] += 1
        writer.close(tokenizer=tokenizer.kind, tokenizer_dir="tokenizer", documents=dict(documents),
                     separator=separator_name, source=source)
    return writer.counts


def prepare(config: PrepareConfig, out: str | Path, *, force: bool = False) -> PrepareStats:
    """Run the whole pipeline into `out` (see the module docstring); returns the statistics."""
    from lm2llm.data.card import dataset_card
    from lm2llm.data.lineage import local_source

    if not 0.0 <= config.val_fraction < 1.0:
        raise UserError("val_fraction must be in [0, 1)", where="--val-fraction")
    out = Path(out)
    inputs = [config.source, *glob.glob(config.source), None if config.tokenizer == "char" else config.tokenizer]
    check_out(out, "dataset", force=force, inputs=inputs)
    given_tokenizer = None if config.tokenizer == "char" else load_tokenizer(config.tokenizer)  # fail early
    start = time.perf_counter()
    stats = PrepareStats(source=config.source)
    with output_dir(out, "dataset", force=force, inputs=inputs) as build:
        chars = _write_documents(config, stats, build / DOCUMENTS_FILE)
        if stats.funnel.out == 0:
            raise UserError(f"the corpus is empty after cleaning, dedup and filtering ({stats.funnel.documents_in} "
                            "documents in)", where=config.source, hint="check the input or relax the quality thresholds")
        tokenizer = given_tokenizer or CharTokenizer(sorted(chars))
        tokenizer.save(build / "tokenizer")
        stats.tokens = _write_shards(build, tokenizer, config.source)
        stats.seconds = round(time.perf_counter() - start, 3)
        atomic_write_json(build / "config.json", config)
        atomic_write_json(build / "stats.json", stats.to_dict())
        source = describe(config.source)
        if source["kind"] == "local":  # licence and provenance from files beside the data, inputs by sha256
            source.update(local_source(config.source))
        atomic_write_text(build / "DATASET.md", dataset_card(config, stats.to_dict(), source))
    return stats
