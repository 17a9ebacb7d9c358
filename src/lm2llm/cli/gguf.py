"""`lm2llm import-gguf FILE --out RUN` and `lm2llm models`: GGUF files and registered models as runs."""

from __future__ import annotations

from pathlib import Path

import typer

from lm2llm.cli.output import FORCE_OPTION, JSON_OPTION, print_json, print_table


def import_gguf_command(
    file: Path = typer.Argument(..., help="A GGUF file of a LLaMA-architecture chat model (F32/F16/BF16/Q8_0/Q4_0/Q4_1)."),
    out: Path = typer.Option(..., "--out", help="Run directory to create."),
    force: bool = FORCE_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Read a GGUF file with lm2llm's own reader into our LLaMA and tokenizer, and save it as a run."""
    from lm2llm.gguf.llama import import_gguf

    info = import_gguf(file, out, force=force)
    if json_out:
        print_json(info)
    else:
        print_table("lm2llm import-gguf", [(k, str(v)) for k, v in info.items()])


def models_command(json_out: bool = JSON_OPTION) -> None:
    """The registered models: names that work wherever a run directory does (generate, chat, serve, ...)."""
    from lm2llm.errors import UserError
    from lm2llm.gguf.registry import MODELS, gguf_path, model_cache

    rows = []
    for model in MODELS.values():
        try:
            installed = str(gguf_path(model.name))
        except UserError:
            installed = f"not installed: {model.install_command}"
        imported = (model_cache(model.name) / "model.safetensors").is_file()
        rows.append({"name": model.name, "description": model.description, "file": installed,
                     "imported": str(model_cache(model.name)) if imported else "on first use"})
    if json_out:
        print_json({"models": rows})
    else:
        print_table("registered models", [(row["name"], f"{row['description']}\nfile: {row['file']}\n"
                                            f"run: {row['imported']}") for row in rows])


def register(app: typer.Typer) -> None:
    app.command("import-gguf")(import_gguf_command)
    app.command("models")(models_command)
