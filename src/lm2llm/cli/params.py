"""`lm2llm params [PRESET]`: parameters by component, training FLOPs and memory, Chinchilla tokens."""

from __future__ import annotations

import dataclasses

import typer

from lm2llm.cli.output import JSON_OPTION, console, print_json, print_table


def human(n: float, unit: str = "") -> str:
    for scale, suffix in ((1e12, "T"), (1e9, "G" if unit else "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:,.2f}{suffix}{unit}"
    return f"{n:,.0f}{unit}"


def params_command(
    preset: str = typer.Argument(None, help="A preset (e.g. gpt2-small, llama2-7b), a run directory or a "
                                            "registered model (smollm2-135m-instruct); omit to list the presets."),
    tokens: float = typer.Option(None, "--tokens", help="Training tokens (default: published, else Chinchilla's 20/param)."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Count a model on the meta device: parameters by component, training FLOPs and memory."""
    from lm2llm.models import accounting  # imports torch: only when the command runs

    if preset is None:
        _list_presets(json_out)
        return
    entry = accounting.catalog_entry(preset) if preset not in accounting.preset_names() else None
    if entry is not None:
        if json_out:
            print_json(entry)
        else:
            print_table(f"{entry.name} ({entry.maker}, {entry.year}) — architecture not published",
                        [("public", fact) for fact in entry.public_facts]
                        + [("unconfirmed", fact) for fact in entry.unconfirmed])
        return
    report = run_param_report(preset, tokens) if preset not in accounting.preset_names() else None
    report = report or accounting.param_report(preset, tokens)
    if json_out:
        print_json(dataclasses.asdict(report))
        return
    rows = [(f"params: {k}", f"{v:,}") for k, v in report.components.items()]
    rows += [
        ("params: total", f"{report.total:,} ({human(report.total)})"),
        ("params: non-embedding", f"{report.non_embedding:,}"),
        ("published total", f"{report.published_params:,}" if report.published_params else "—"),
        ("paper's figure", report.stated_params or "—"),
        ("training tokens", f"{human(report.tokens)} ({report.tokens_source})"),
        ("Chinchilla-optimal tokens (20/param)", human(report.chinchilla_tokens)),
        ("training FLOPs 6ND", f"{report.train_flops_6nd:.3e}"),
        ("training FLOPs with attention", f"{report.train_flops_with_attention:.3e}"),
    ]
    for dtype, mem in report.memory_bytes.items():
        rows.append((f"memory {dtype}: weights / grads / Adam / total",
                     " / ".join(human(mem[k], "B") for k in ("weights", "gradients", "adam_states", "total"))))
    rows.append(("source", report.source))
    print_table(f"{report.name} ({report.family})", rows)


def register(app: typer.Typer) -> None:
    app.command("params")(params_command)

def run_param_report(run: str, tokens: float | None):
    """The report for a run directory or a registered model (its saved config built on the meta device),
    or None when `run` is neither."""
    from pathlib import Path

    import torch

    from lm2llm.gguf.registry import MODELS, resolve_run
    from lm2llm.models import accounting
    from lm2llm.models.io import CONFIG, WEIGHTS, saved_backbone

    if run not in MODELS and not (Path(run) / CONFIG).is_file():
        return None
    directory = resolve_run(run)
    with torch.device("meta"):
        model, _ = saved_backbone(directory, CONFIG, WEIGHTS, hint="give a run directory with a model")
    return accounting.model_param_report(run, model, tokens)


def _list_presets(json_out: bool) -> None:
    from lm2llm.models import accounting
    from lm2llm.models.presets import CATALOG

    reports = [accounting.param_report(name) for name in accounting.preset_names()]
    if json_out:
        print_json({"presets": [{"name": r.name, "family": r.family, "total": r.total,
                                 "published_params": r.published_params, "stated_params": r.stated_params}
                                for r in reports],
                    "unpublished": CATALOG})
        return
    from rich.table import Table

    table = Table(title="lm2llm presets")
    for column in ("preset", "family", "parameters", "published", "paper"):
        table.add_column(column)
    for r in reports:
        table.add_row(r.name, r.family, f"{r.total:,}", f"{r.published_params:,}" if r.published_params else "—",
                      r.stated_params or "—")
    for entry in CATALOG:
        table.add_row(entry.name, "—", "not published", "—", "—")
    console.print(table)
