"""`lm2llm safety check|eval|train`: the safety filter on its own, and the `--safety-filter` option that
`generate`, `chat` and `serve` share."""

from __future__ import annotations

from pathlib import Path

import typer

from lm2llm.cli.output import FORCE_OPTION, JSON_OPTION, print_json, print_table

SAFETY_FILTER = typer.Option(None, "--safety-filter", help="Refuse flagged input and withhold flagged output: "
                             "'rules' (a small English/Korean lexicon) or a run from 'lm2llm safety train'.")
FILTER = typer.Option("rules", "--filter", help="'rules' or a classifier run from 'lm2llm safety train'.")
DATA_DIR = typer.Option(None, "--data-dir", help="A folder with korean-hate-speech/dev.tsv (default: "
                        "$LM2LLM_DATA_DIR).")

safety_app = typer.Typer(help="A safety classifier: check texts, measure it, train one on Korean hate speech.",
                         no_args_is_help=True)


def _rate(rate: dict) -> str:
    low, high = rate["interval"]
    return f"{rate['value']:.3f} ({rate['hits']}/{rate['n']}, 95 % CI {low:.2f}–{high:.2f})"


def _print_score(title: str, score: dict) -> None:
    rows = [("examples", score["examples"]), ("unsafe share (chance precision)", f"{score['unsafe_share']:.3f}"),
            ("recall", _rate(score["recall"])), ("false-positive rate", _rate(score["false_positive_rate"])),
            ("precision", _rate(score["precision"])), ("F1", f"{score['f1']:.3f}")]
    for group, split in score.get("by_group", {}).items():
        rows.append((f"group {group}: missed / false alarms",
                     f"{_rate(split['missed'])} / {_rate(split['false_alarms'])}"))
    print_table(title, rows)


@safety_app.command("check")
def check_command(texts: list[str] = typer.Argument(..., help="Texts to check."), spec: str = FILTER,
                  json_out: bool = JSON_OPTION) -> None:
    """Flag each text and say why."""
    from dataclasses import asdict

    from lm2llm.safety.classifier import load_classifier_spec

    verdicts = load_classifier_spec(spec).check(texts)
    if json_out:
        print_json([{"text": t, **asdict(v)} for t, v in zip(texts, verdicts, strict=True)])
    else:
        for text, verdict in zip(texts, verdicts, strict=True):
            typer.echo(f"{'FLAGGED' if verdict.flagged else 'ok':8} {text}  {'; '.join(verdict.reasons)}")


@safety_app.command("eval")
def eval_command(spec: str = FILTER, data_dir: Path = DATA_DIR, json_out: bool = JSON_OPTION) -> None:
    """Precision, recall and false positives on our bilingual lines, and on the hate-speech comments when
    present (all of them, split by target group)."""
    from lm2llm.safety.classifier import load_classifier_spec
    from lm2llm.safety.data import hate_speech, hate_speech_file, shipped_set
    from lm2llm.safety.evaluate import error_split, evaluate_filter

    classifier = load_classifier_spec(spec)
    sets = {"lm2llm-bilingual": shipped_set()}
    if hate_speech_file(data_dir) is not None:
        sets["korean-hate-speech"] = hate_speech(data_dir)
    report = {}
    for name, data in sets.items():
        score, flagged = evaluate_filter(classifier, data)
        report[name] = {**score.to_dict(), "by_group": error_split(data, flagged)}
    if json_out:
        print_json(report)
        return
    for name, score in report.items():
        _print_score(f"{classifier.name} on {name}", score)


@safety_app.command("train")
def train_command(out: Path = typer.Option(..., "--out", help="Run directory to write."), data_dir: Path = DATA_DIR,
                  steps: int = typer.Option(300, "--steps", min=1), seed: int = typer.Option(0, "--seed"),
                  force: bool = FORCE_OPTION, json_out: bool = JSON_OPTION) -> None:
    """Fine-tune our BERT on 70 % of the Korean hate-speech comments; score it and the lexicon on the rest."""
    from lm2llm.safety.train import train_safety

    report = train_safety(data_dir, out, steps=steps, seed=seed, force=force)
    if json_out:
        print_json(report)
        return
    for name, score in report["filters"].items():
        _print_score(f"{name} on {report['held_out_lines']} held-out comments", score)


def register(app: typer.Typer) -> None:
    app.add_typer(safety_app, name="safety")
