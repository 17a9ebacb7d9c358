"""`lm2llm export-gguf` and `lm2llm compress`: a run as a GGUF file for llama.cpp; quantized, pruned runs."""

from __future__ import annotations

from pathlib import Path

import typer

from lm2llm.cli.output import JSON_OPTION, print_json, print_table


def register(app: typer.Typer) -> None:
    @app.command("export-gguf")
    def export_gguf_command(
        run: Path = typer.Argument(..., help="A run directory: a GPT-2- or LLaMA-style model with a BPE tokenizer."),
        out: Path = typer.Option(..., "--out", help="The .gguf file to write."),
        kind: str = typer.Option("f16", "--type", help="f32, f16, q8_0, q4_0 or q4_1 for the matrices "
                                 "(norms and biases stay f32)."),
        force: bool = typer.Option(False, "--force", help="Replace an existing GGUF file at --out."),
        json_out: bool = JSON_OPTION,
    ) -> None:
        """Write a run as GGUF (llama.cpp, ollama, LM Studio): weights, tokenizer, chat template."""
        from lm2llm.compress.gguf_export import export_gguf

        info = export_gguf(run, out, kind, force=force)
        if json_out:
            print_json(info)
        else:
            print_table("lm2llm export-gguf", list(info.items()))
