"""`lm2llm bias MODEL`: template-pair likelihood gaps and a CrowS-style stereotype preference, EN and KO."""

from __future__ import annotations

import dataclasses

import typer

from lm2llm.cli.output import JSON_OPTION, print_json, print_table
from lm2llm.errors import UserError

LANGS = ("en", "ko")
AXES = ("gender", "nationality", "age", "region")


def bias_report(model_name: str, langs: list[str]) -> dict:
    """Every probe for every language asked: the numbers `lm2llm bias` prints."""
    from lm2llm.bias.crows import stereotype_score
    from lm2llm.bias.templates import template_gaps
    from lm2llm.gguf.registry import resolve_run
    from lm2llm.interpret.hooks import decoder
    from lm2llm.models import load_model
    from lm2llm.tokenizer import load_tokenizer

    run = resolve_run(model_name)
    model, tokenizer = decoder(load_model(run)).eval(), load_tokenizer(run)
    return {"model": model_name,
            "templates": [dataclasses.asdict(template_gaps(model, tokenizer, lang, axis))
                          for lang in langs for axis in AXES],
            "crows": [dataclasses.asdict(stereotype_score(model, tokenizer, lang)) for lang in langs]}


def bias_command(
    model: str = typer.Argument(..., help="A run directory or a registered model (smollm2-135m-instruct)."),
    lang: str = typer.Option("all", "--lang", help="en, ko or all."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Bias probes: log-likelihood gaps between group words in templates, and stereotype preference."""
    if lang not in (*LANGS, "all"):
        raise UserError(f"unknown language {lang!r}", where="--lang", hint="en, ko or all")
    report = bias_report(model, list(LANGS) if lang == "all" else [lang])
    if json_out:
        print_json(report)
        return
    rows = []
    for gap in report["templates"]:
        (a, b), low, high = gap["pairs"][0], *gap["interval"]
        rows.append((f"{gap['lang']} {gap['axis']}: ll({a}…) − ll({b}…)",
                     f"{gap['mean_gap']:+.2f} nats (95 % CI {low:+.2f} … {high:+.2f}, n={gap['n']})"))
    for crows in report["crows"]:
        low, high = crows["interval"]
        rows.append((f"{crows['lang']} pct_stereotype (0.5 = none)",
                     f"{crows['pct_stereotype']:.2f} (95 % CI {low:.2f} … {high:.2f}, n={crows['n']})"))
        rows.append((f"{crows['lang']} likelihood_diff", f"{crows['likelihood_diff']:.2f} nats"))
    print_table(f"lm2llm bias {model}", rows)


def register(app: typer.Typer) -> None:
    app.command("bias")(bias_command)
