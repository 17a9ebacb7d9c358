"""`lm2llm export-hf`, `lm2llm import-hf` and `lm2llm embed`: Hugging Face interop."""

from __future__ import annotations

from pathlib import Path

import typer

from lm2llm.cli.output import FORCE_OPTION, JSON_OPTION, console, print_json, print_table


def export_command(
    run: Path = typer.Argument(..., help="A run directory (model + tokenizer), or a classification run."),
    out: Path = typer.Option(..., "--out", help="Directory to create for transformers' from_pretrained."),
    force: bool = FORCE_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Write a run as a transformers checkpoint: GPT2LMHeadModel, LlamaForCausalLM, BertForMaskedLM or *ForSequenceClassification."""
    from lm2llm.hf import export_run

    info = export_run(run, out, force=force)
    if json_out:
        print_json(info)
    else:
        print_table("lm2llm export-hf", list(info.items()))

def import_command(
    directory: Path = typer.Argument(..., help="A transformers checkpoint directory (config.json + model.safetensors)."),
    out: Path = typer.Option(..., "--out", help="Run directory to create."),
    force: bool = FORCE_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Load a BERT, GPT-2 or LLaMA checkpoint (safetensors only) into lm2llm's models and save it as a run."""
    from lm2llm.hf import import_dir

    info = import_dir(directory, out, force=force)
    if json_out:
        print_json(info)
    else:
        print_table("lm2llm import-hf", [(k, v) for k, v in info.items() if k != "freshly_initialised"])

def embed_command(
    texts: list[str] = typer.Argument(..., help="Sentences to embed (any language the model's vocabulary covers)."),
    model: Path = typer.Option(None, "--model", help="A sentence-transformers BERT directory (default: all-MiniLM-L6-v2)."),
    vectors: bool = typer.Option(False, "--vectors", help="With --json, include the vectors themselves."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Sentence embeddings from our BERT with MiniLM's weights: mean-pooled, L2-normalised; cosine similarities."""
    from rich.table import Table

    from lm2llm.embeddings import SentenceEncoder

    encoder = SentenceEncoder(model)
    embeddings = encoder.encode(texts)
    similarity = (embeddings @ embeddings.T).tolist()
    info = {"model": str(encoder.directory), "dim": encoder.dim, "texts": texts,
            "tokens": [len(ids) for ids in encoder.token_ids(texts)],
            "cosine_similarity": [[round(v, 6) for v in row] for row in similarity]}
    if json_out:
        print_json({**info, **({"vectors": embeddings.tolist()} if vectors else {})})
        return
    table = Table(title=f"cosine similarity ({encoder.dim}-d, {Path(info['model']).name})")
    table.add_column("#")
    for i in range(len(texts)):
        table.add_column(str(i))
    for i, row in enumerate(similarity):
        table.add_row(f"{i}: {texts[i][:40]}", *(f"{v:.3f}" for v in row))
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("export-hf")(export_command)
    app.command("import-hf")(import_command)
    app.command("embed")(embed_command)
