"""`lm2llm export-gguf` and `lm2llm compress`: a run as a GGUF file for llama.cpp; quantized and pruned runs."""

from __future__ import annotations

from pathlib import Path

import typer

from lm2llm.cli.output import JSON_OPTION, print_json, print_table
from lm2llm.errors import UserError


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


def compress_command(
    model: str = typer.Argument(..., help="A run directory or a registered model name (smollm2-135m-instruct)."),
    method: str = typer.Option(..., "--method", help="bf16, q8_0, q4_0, q4_1, int8, int4, w8a8, w4a8, magnitude:0.5, "
                               "wanda:0.5, sparsegpt:0.5, wanda:2:4 (or 2:4)."),
    out: Path = typer.Option(..., "--out", help="The run directory to create."),
    calibration: int = typer.Option(64, "--calibration", help="Wanda/SparseGPT: python-docs sequences of "
                                    "128 tokens to score the weights on."),
    evaluate: bool = typer.Option(False, "--evaluate", help="Measure against the original: size, decode "
                                  "tokens/s, perplexity, KL divergence and top-1 agreement on held-out text."),
    windows: int = typer.Option(4, "--windows", help="With --evaluate: held-out windows per corpus."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Quantize or prune a model into a new run that generate, chat, serve and export-gguf take."""
    from lm2llm.compress.pipeline import compress_run

    if calibration < 1 or windows < 1:
        raise UserError("--calibration and --windows must be at least 1")
    info = compress_run(model, method, out, calibration=calibration, evaluate=evaluate, windows=windows)
    if json_out:
        print_json(info)
        return
    print_table("lm2llm compress", [(k, v) for k, v in info.items() if k != "evaluation"])
    for row in info.get("evaluation", []):
        cells = [(k, v) for k, v in row.items() if k != "method"]
        print_table(f"{row['method']}", cells)


def register(app: typer.Typer) -> None:
    app.command("export-gguf")(export_gguf_command)
    app.command("compress")(compress_command)
