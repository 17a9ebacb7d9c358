"""`lm2llm ngram train|eval|generate|export-arpa`: n-gram language models from the command line."""

from __future__ import annotations

from pathlib import Path

import typer

from lm2llm.cli.inputs import old_spelling, the_input
from lm2llm.cli.output import FORCE_OPTION, JSON_OPTION, group, print_json, print_table
from lm2llm.errors import UserError
from lm2llm.records import read_text_file
from lm2llm.runs import check_out, check_out_file

MODEL_ARGUMENT = typer.Argument(None, metavar="MODEL", help="Run directory written by `ngram train` (required).")


def read_lines(text: str) -> list[str]:
    """A file (one sentence per line, KenLM's convention) or a registered corpus (its documents' lines)."""
    path = Path(text)
    if path.is_file():
        lines = read_text_file(path).splitlines()
    else:
        from lm2llm.data import load_documents

        lines = [line for doc in load_documents(text) for line in doc.splitlines()]
    if not any(line.strip() for line in lines):
        raise UserError("no text to read (the input is empty)", where=text)
    return lines


def train_command(
    text: str = typer.Argument(None, help="Training text file (one sentence per line) or corpus name (required)."),
    old_text: str = old_spelling("--text"),
    out: Path = typer.Option(Path("runs/ngram"), help="Run directory to write."),
    order: int = typer.Option(3, help="N: the model sees the last N-1 words (1..6)."),
    estimator: str = typer.Option("kneser-ney", help="kneser-ney | mle | add-k | stupid-backoff."),
    k: float = typer.Option(1.0, help="add-k: the pseudo-count (1 is Laplace)."),
    tokenize: str = typer.Option("whitespace", help="whitespace (KenLM's) | words (punctuation split off) | bpe:DIR (a saved tokenizer's ids)."),
    min_count: int = typer.Option(1, help="Words seen fewer times become <unk>."),
    max_vocab: int | None = typer.Option(None, help="Keep only this many most frequent words (specials included)."),
    discount_fallback: bool = typer.Option(False, help="Kneser-Ney: use 0.5/1/1.5 where lmplz's formula fails."),
    force: bool = FORCE_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Count TEXT and estimate a model; saves config.json and model.arpa (or counts.npz)."""
    from lm2llm import ngram as api

    text = the_input(text, old_text, "TEXT", "--text")
    check_out(out, "ngram", force=force, inputs=[text])

    config = api.NgramConfig(order=order, estimator=estimator, k=k, tokenize=tokenize, min_count=min_count, max_vocab=max_vocab,
                             discount_fallback=discount_fallback)
    model = api.train(read_lines(text), config)
    api.save(model, out, force=force)
    report = {"out": str(out), "order": order, "estimator": estimator, "vocab_size": len(model.vocab),
              "ngrams": model.sizes}
    if json_out:
        print_json(report)
    else:
        print_table("lm2llm ngram train", list(report.items()))

def eval_command(
    model_dir: Path = MODEL_ARGUMENT,
    text: str = typer.Option(..., help="Held-out text file (one sentence per line) or corpus name."),
    old_model: Path = old_spelling("--model"),
    json_out: bool = JSON_OPTION,
) -> None:
    """Perplexity of MODEL with KenLM's conventions (</s> scored, <s> not, OOV as <unk>)."""
    from lm2llm import ngram as api

    model_dir = the_input(model_dir, old_model, "MODEL", "--model")
    result = api.evaluate(api.load(model_dir), read_lines(text))
    if json_out:
        print_json(result)
    else:
        print_table("lm2llm ngram eval", list(vars(result).items()))

def generate_command(
    model_dir: Path = MODEL_ARGUMENT,
    prompt: str = typer.Option("", help="Words to continue."),
    max_words: int = typer.Option(30, min=1),
    temperature: float = typer.Option(1.0, min=0.0, help="0 is greedy."),
    top_k: int = typer.Option(0, min=0, help="Sample among the k most likely words (0: all)."),
    seed: int | None = typer.Option(None),
    old_model: Path = old_spelling("--model"),
    json_out: bool = JSON_OPTION,
) -> None:
    """Sample a continuation from MODEL through the shared sampler."""
    from lm2llm import ngram as api

    model_dir = the_input(model_dir, old_model, "MODEL", "--model")
    text = api.generate(api.load(model_dir), prompt, max_words=max_words, temperature=temperature, top_k=top_k, seed=seed)
    if json_out:
        print_json({"prompt": prompt, "text": text})
    else:
        typer.echo(text)

def export_command(
    model_dir: Path = typer.Argument(None, metavar="MODEL", help="A Kneser-Ney run directory written by `ngram train` (required)."),
    out: Path = typer.Option(..., help="ARPA file to write (KenLM, SRILM and others load it)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing ARPA file."),
    old_model: Path = old_spelling("--model"),
    json_out: bool = JSON_OPTION,
) -> None:
    """Write MODEL as an ARPA file."""
    from lm2llm import ngram as api
    from lm2llm.ngram.backoff import BackoffModel

    model_dir = the_input(model_dir, old_model, "MODEL", "--model")
    check_out_file(out, force=force, inputs=[model_dir], looks_ours=api.is_arpa_file)
    model = api.load(model_dir)
    if not isinstance(model.lm, BackoffModel):
        raise UserError(f"{model.config.estimator} is not a backoff model, so ARPA cannot hold it",
                        where=str(model_dir), hint="train with --estimator kneser-ney")
    api.write_arpa(model.lm, out)
    report = {"out": str(out), "ngrams": model.sizes}
    if json_out:
        print_json(report)
    else:
        print_table("lm2llm ngram export-arpa", list(report.items()))


def register(app: typer.Typer) -> None:
    ngram = group("N-gram language models (MLE, add-k, Kneser-Ney equal to KenLM, stupid backoff).")
    app.add_typer(ngram, name="ngram")
    ngram.command("train")(train_command)
    ngram.command("eval")(eval_command)
    ngram.command("generate")(generate_command)
    ngram.command("export-arpa")(export_command)
