"""`lm2llm tokenizer train|encode|decode|stats`: byte-level BPE tokenizers, trained, used and measured."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from lm2llm.cli.inputs import old_spelling, the_inputs
from lm2llm.cli.output import FORCE_OPTION, JSON_OPTION, console, group, print_json, print_table
from lm2llm.errors import UserError
from lm2llm.records import read_text_file
from lm2llm.runs import atomic_write_json, check_out, output_dir

IMPL_OPTION = typer.Option("fast", "--impl", help="fast (HF tokenizers) or scratch (lm2llm's own BPE); same ids.")
SOURCE_HELP = "A registered corpus (python-docs, korean-law, ...) or a local text file/folder; repeatable."


def _sources_texts(sources: list[str], limit: int | None) -> dict[str, list[str]]:
    if not sources:
        raise UserError("give at least one --source", where="--source", hint=SOURCE_HELP)
    from lm2llm.data import load_documents  # imports torch: only when a command runs, not for --help

    corpora = {source: load_documents(source, limit=limit) for source in sources}
    for source, texts in corpora.items():
        if not any(text.strip() for text in texts):
            raise UserError("no text to read (empty, or only binary files, which are skipped)", where=source)
    return corpora


def train_command(
    source: list[str] = typer.Argument(None, help=SOURCE_HELP + " Required."),
    out: Path = typer.Option(..., "--out", help="Directory to create (Hugging Face format)."),
    vocab_size: int = typer.Option(8000, "--vocab-size", min=1, help="Vocabulary size, special tokens included."),
    limit: int = typer.Option(None, "--limit", min=1, help="At most this many documents per source."),
    min_frequency: int = typer.Option(0, "--min-frequency", min=0, help="Stop when the best pair is rarer."),
    encoder_tokens: bool = typer.Option(False, "--encoder-tokens",
                                        help="Add BERT's <|mask|> and <|cls|> (needed by 'train --model bert')."),
    special_token: list[str] = typer.Option(None, "--special-token",
                                            help="Another special token, never split or merged; repeatable."),
    impl: str = IMPL_OPTION,
    force: bool = FORCE_OPTION,
    old_source: list[str] = old_spelling("--source"),
    json_out: bool = JSON_OPTION,
) -> None:
    """Train a byte-level BPE on SOURCE... and save tokenizer.json + tokenizer_config.json (with the chat
    template)."""
    from lm2llm.tokenizer import BPETokenizer
    from lm2llm.tokenizer.chat import ENCODER_TOKENS

    source = the_inputs(source, old_source, "SOURCE", "--source")
    check_out(out, "tokenizer", force=force, inputs=source or [])
    extra = [*(ENCODER_TOKENS if encoder_tokens else ()), *(special_token or [])]
    if any(not token or token.isspace() for token in extra):
        raise UserError("a special token must not be empty or only spaces", where="--special-token")
    corpora = _sources_texts(source, limit)
    texts = [text for docs in corpora.values() for text in docs]
    start = time.perf_counter()
    tokenizer = BPETokenizer.train(texts, vocab_size, impl=impl, min_frequency=min_frequency,
                                   extra_special_tokens=extra)
    seconds = time.perf_counter() - start
    info = {
        "out": str(out), "impl": impl, "vocab_size": tokenizer.vocab_size, "requested_vocab_size": vocab_size,
        "special_tokens": tokenizer.special_tokens,
        "sources": {name: len(docs) for name, docs in corpora.items()},
        "chars": sum(map(len, texts)), "train_seconds": round(seconds, 3),
    }
    # Build under a temporary name, then rename: readers never see a half-written tokenizer.
    with output_dir(out, "tokenizer", force=force, inputs=source or []) as building:
        tokenizer.save(building)
        atomic_write_json(building / "training.json", info)
    if json_out:
        print_json(info)
    else:
        print_table("tokenizer train", list(info.items()))


def encode_command(
    directory: Path = typer.Argument(..., help="A saved tokenizer directory."),
    text: str = typer.Argument(None, help="Text to encode (or use --file)."),
    file: Path = typer.Option(None, "--file", help="Encode this UTF-8 file instead."),
    impl: str = IMPL_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Print the token ids (and, with --json, each token's text) of a text."""
    from lm2llm.tokenizer import load_tokenizer

    if (text is None) == (file is None):
        raise UserError("give either TEXT or --file", where="encode")
    if file is not None:
        text = read_text_file(file)
    tokenizer = load_tokenizer(directory, impl=impl)
    ids = tokenizer.encode(text)
    if json_out:
        print_json({"ids": ids, "tokens": [tokenizer.decode([i]) for i in ids], "count": len(ids)})
    else:
        typer.echo(" ".join(map(str, ids)))


def decode_command(
    directory: Path = typer.Argument(..., help="A saved tokenizer directory."),
    ids: list[int] = typer.Argument(..., help="Token ids."),
    impl: str = IMPL_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Print the text of token ids."""
    from lm2llm.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(directory, impl=impl)
    bad = [i for i in ids if not 0 <= i < tokenizer.vocab_size]
    if bad:
        raise UserError(f"token ids outside [0, {tokenizer.vocab_size}): {bad[:5]}", where="IDS")
    text = tokenizer.decode(ids)
    if json_out:
        print_json({"text": text})
    else:
        typer.echo(text)


def stats_command(
    directory: Path = typer.Argument(..., help="A saved tokenizer directory."),
    source: list[str] = typer.Option(None, "--source", help=SOURCE_HELP),
    limit: int = typer.Option(None, "--limit", min=1, help="At most this many documents per source."),
    impl: str = IMPL_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Fertility per corpus and language: tokens per character, per word, and bytes per token."""
    from lm2llm.tokenizer import load_tokenizer
    from lm2llm.tokenizer.stats import fertility

    tokenizer = load_tokenizer(directory, impl=impl)
    reports = {name: fertility(tokenizer, texts).as_dict() for name, texts in _sources_texts(source, limit).items()}
    if json_out:
        print_json({"vocab_size": tokenizer.vocab_size, "sources": reports})
        return
    from rich.table import Table

    table = Table(title=f"tokenizer stats (vocab {tokenizer.vocab_size})")
    for column in ("source", "language", "words", "tokens", "tokens/char", "tokens/word", "bytes/token"):
        table.add_column(column)
    for name, report in reports.items():
        for language, row in [("all", report["overall"]), *report["by_language"].items()]:
            table.add_row(name, language, str(row["words"]), str(row["tokens"]), f"{row['tokens_per_char']:.3f}",
                          f"{row['tokens_per_word']:.3f}", f"{row['bytes_per_token']:.3f}")
    console.print(table)


def register(app: typer.Typer) -> None:
    tokenizer_app = group("Train, use and measure byte-level BPE tokenizers.")
    app.add_typer(tokenizer_app, name="tokenizer")
    tokenizer_app.command("train")(train_command)
    tokenizer_app.command("encode")(encode_command)
    tokenizer_app.command("decode")(decode_command)
    tokenizer_app.command("stats")(stats_command)
