"""`lm2llm data`: list the corpora, prepare one into cleaned text and token shards, and show its statistics."""

from __future__ import annotations

from pathlib import Path

import typer

from lm2llm.cli.output import FORCE_OPTION, JSON_OPTION, console, group, print_json, print_table
from lm2llm.errors import UserError
from lm2llm.runs import read_json

TRUST_OPTION = typer.Option(False, "--trust-unverified",
                            help="Accept and pin a downloaded file that has no published sha256.")


def sources_command(json_out: bool = JSON_OPTION) -> None:
    """The registered corpora, their language and licence (any local file, folder or glob works too)."""
    from lm2llm import data as data_api  # lm2llm.data imports torch: only when a command runs

    sources = data_api.list_sources()
    if json_out:
        print_json([data_api.describe(s.name) for s in sources])
        return
    from rich.table import Table

    table = Table(title="lm2llm data sources")
    for column in ("name", "kind", "language", "licence", "description"):
        table.add_column(column)
    for s in sources:
        table.add_row(s.name, s.kind, s.language, s.licence, s.description)
    console.print(table)

def prepare_command(
    source: str = typer.Argument(..., help="A registered source (see 'data sources') or a file, folder or glob."),
    out: Path = typer.Option(..., "--out", help="Output directory (built under a temporary name, then renamed)."),
    tokenizer: str = typer.Option("char", help="'char' (trained on the output) or a saved tokenizer directory."),
    text_field: str = typer.Option("text", help="JSONL/JSON field holding the text."),
    text_column: str = typer.Option("text", help="CSV/TSV column holding the text."),
    strict: bool = typer.Option(False, "--strict", help="Invalid UTF-8 is an error (file and byte offset)."),
    skip_bad_rows: bool = typer.Option(False, "--skip-bad-rows", help="Count and skip malformed JSONL/CSV rows."),
    trust_unverified: bool = TRUST_OPTION,
    near_threshold: float = typer.Option(0.8, min=0.01, max=1.0, help="Near-duplicate Jaccard threshold."),
    shingle: str = typer.Option("word", help="Near-dedup shingles: 'word' or 'char' n-grams."),
    shingle_size: int = typer.Option(5, min=1, help="Words or characters per shingle."),
    no_near_dedup: bool = typer.Option(False, "--no-near-dedup", help="Only exact deduplication."),
    no_scrub_pii: bool = typer.Option(False, "--no-scrub-pii", help="Keep e-mails, phone numbers, etc."),
    min_chars: int = typer.Option(32, min=0, help="Drop documents shorter than this."),
    max_chars: int = typer.Option(1_000_000, min=1, help="Drop documents longer than this."),
    max_symbol_ratio: float = typer.Option(0.35, min=0.0, max=1.0, help="Drop documents with more symbols."),
    max_repeated_line_ratio: float = typer.Option(0.3, min=0.0, max=1.0, help="Drop documents with more repeated lines."),
    val_fraction: float = typer.Option(0.1, min=0.0, max=0.99, help="Share of documents in the val split."),
    limit: int | None = typer.Option(None, min=1, help="Read at most this many documents."),
    force: bool = FORCE_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Clean, deduplicate, scrub PII, filter, split and tokenize a corpus into DIR (with DATASET.md)."""
    from lm2llm.data.prepare import DedupConfig, PrepareConfig, prepare
    from lm2llm.data.quality import QualityConfig

    if shingle not in ("word", "char"):
        raise UserError(f"unknown shingle kind {shingle!r}", where="--shingle", hint="use 'word' or 'char'")
    config = PrepareConfig(
        source=source, text_field=text_field, text_column=text_column, strict=strict,
        skip_bad_rows=skip_bad_rows, trust_unverified=trust_unverified, scrub_pii=not no_scrub_pii, val_fraction=val_fraction,
        tokenizer=tokenizer, limit=limit,
        dedup=DedupConfig(threshold=near_threshold, shingle=shingle, shingle_size=shingle_size,
                          near=not no_near_dedup),
        quality=QualityConfig(min_chars, max_chars, max_symbol_ratio, max_repeated_line_ratio),
    )
    stats = prepare(config, out, force=force)
    _show(out, stats.to_dict(), json_out)

def download_command(name: str = typer.Argument(..., help="A downloadable source (see 'data sources')."),
                     trust_unverified: bool = TRUST_OPTION, json_out: bool = JSON_OPTION) -> None:
    """Fetch a public corpus into the cache (or copy it from $LM2LLM_DATA_MIRROR), checking its sha256."""
    from lm2llm.data.download import file_sha256
    from lm2llm.data.sources import download_source

    files = [{"path": str(path), "sha256": file_sha256(path)} for path in download_source(name, trust_unverified)]
    if json_out:
        print_json(files)
        return
    print_table(f"lm2llm data download {name}", [(f["path"], f["sha256"]) for f in files])

def stats_command(directory: Path = typer.Argument(..., help="A directory made by 'data prepare'."),
                  json_out: bool = JSON_OPTION) -> None:
    """The funnel, PII counts and token counts of a prepared dataset."""
    _show(directory, read_json(directory / "stats.json"), json_out)


def register(app: typer.Typer) -> None:
    data_app = group("Corpora: sources, prepare (clean, dedup, scrub, filter, split, tokenize), download, stats.")
    app.add_typer(data_app, name="data")
    data_app.command("sources")(sources_command)
    data_app.command("prepare")(prepare_command)
    data_app.command("download")(download_command)
    data_app.command("stats")(stats_command)

def _show(directory: Path, stats: dict, json_out: bool) -> None:
    if json_out:
        print_json(stats)
        return
    from rich.table import Table

    from lm2llm.data.card import funnel_rows

    table = Table(title=f"{stats['source']} → {directory}")
    for column in ("stage", "documents", "removed", "why"):
        table.add_column(column)
    for row in funnel_rows(stats["funnel"]):
        table.add_row(*map(str, row))
    console.print(table)
    pii = ", ".join(f"{kind} {n}" for kind, n in sorted(stats["pii"].items())) or "none"
    tokens = stats["tokens"]
    print_table("details", [("PII replaced", pii), ("tokens train / val", f"{tokens['train']:,} / {tokens['val']:,}"),
                            ("seconds", stats["seconds"])])
