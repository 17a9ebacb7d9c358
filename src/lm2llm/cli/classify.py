"""`lm2llm classify train|eval`: fine-tune BERT or GPT to label texts; accuracy, macro-F1, confusion matrix."""

from __future__ import annotations

from pathlib import Path

import typer

from lm2llm.cli.output import FORCE_OPTION, JSON_OPTION, console, group, print_json, print_table

DATA_HELP = ".csv/.tsv (header row) or .jsonl/.json (JSON Lines or a JSON array) with a text and a label column."
TRAIN_DATA_HELP = DATA_HELP + " Default: standard-library docstrings labelled by package family."


def _print_report(title: str, report: dict) -> None:
    from rich.table import Table

    print_table(title, [(k, round(v, 4) if isinstance(v, float) else v) for k, v in report.items()
                        if k not in ("per_label", "confusion", "labels")])
    table = Table(title="confusion (rows: true, columns: predicted)")
    table.add_column("")
    for name in report["labels"]:
        table.add_column(name)
    table.add_column("F1")
    for name, row in zip(report["labels"], report["confusion"], strict=True):
        table.add_row(name, *map(str, row), f"{report['per_label'][name]['f1']:.3f}")
    console.print(table)


def train_command(
    out: Path = typer.Option(..., "--out", help="Run directory to write."),
    data: Path = typer.Option(None, "--data", help=TRAIN_DATA_HELP),
    text_column: str = typer.Option("text", "--text-column"),
    label_column: str = typer.Option("label", "--label-column"),
    val_data: Path = typer.Option(None, "--val-data", help="Held-out file (default: a stratified share of --data)."),
    val_fraction: float = typer.Option(0.2, "--val-fraction"),
    model: str = typer.Option("bert", "--model", help="Family of a fresh model: bert, gpt or llama."),
    init: Path = typer.Option(None, "--init", help="A pre-trained run (model + tokenizer) to fine-tune instead."),
    steps: int = typer.Option(200, "--steps", min=1),
    batch_size: int = typer.Option(16, "--batch-size", min=1),
    lr: float = typer.Option(1e-3, "--lr"),
    block_size: int = typer.Option(64, "--block-size", min=2),
    seed: int = typer.Option(1337, "--seed"),
    force: bool = FORCE_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Fine-tune a classifier with the Trainer and report accuracy, macro-F1 and the confusion matrix."""
    from lm2llm.classify.data import docstring_families, read_labelled
    from lm2llm.classify.train import ClassifyConfig, classify_trainer, train_classifier
    from lm2llm.runs import check_out

    check_out(out, "classify", force=force, inputs=[data, val_data, init])

    labelled = read_labelled(data, text_column, label_column) if data else docstring_families()
    if val_data:
        train, val = labelled, read_labelled(val_data, text_column, label_column).relabelled(labelled.names,
                                                                                             str(val_data))
    else:
        train, val = labelled.split(val_fraction, seed)
    cfg = ClassifyConfig(model=model, init=str(init) if init else None, block_size=block_size, seed=seed,
                         trainer=classify_trainer(steps, lr, batch_size=batch_size))
    report = train_classifier(cfg, train, val, out, force=force, sources=[data or "python-docs", val_data])
    if json_out:
        print_json(report)
    else:
        _print_report("lm2llm classify train (validation)", report)

def eval_command(
    run: Path = typer.Argument(..., help="A run written by 'lm2llm classify train'."),
    data: Path = typer.Option(..., "--data", help=DATA_HELP),
    text_column: str = typer.Option("text", "--text-column"),
    label_column: str = typer.Option("label", "--label-column"),
    json_out: bool = JSON_OPTION,
) -> None:
    """Score a trained classifier on a labelled file."""
    from lm2llm.classify.data import read_labelled
    from lm2llm.classify.model import load_classifier
    from lm2llm.classify.train import evaluate_classifier
    from lm2llm.runs import RunDir
    from lm2llm.tokenizer import load_tokenizer

    model, tokenizer = load_classifier(run), load_tokenizer(run)
    block_size = RunDir(run).read_config().get("classify", {}).get("block_size", 64)
    report = evaluate_classifier(model, tokenizer, read_labelled(data, text_column, label_column), block_size)
    if json_out:
        print_json(report)
    else:
        _print_report("lm2llm classify eval", report)


def register(app: typer.Typer) -> None:
    classify_app = group("Sequence classification with BERT ([CLS]) or GPT (last token).")
    app.add_typer(classify_app, name="classify")
    classify_app.command("train")(train_command)
    classify_app.command("eval")(eval_command)
