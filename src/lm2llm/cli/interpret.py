"""`lm2llm interpret MODEL --prompt ... --what attention|lens|patch|heads`: look inside a decoder."""

from __future__ import annotations

from pathlib import Path

import typer

from lm2llm.cli.output import FORCE_OPTION, JSON_OPTION, print_json, print_table

RESULT = "interpret.json"


def interpret_command(
    model: str = typer.Argument(..., help="A run directory or a registered model (smollm2-135m-instruct)."),
    prompt: str = typer.Option("The capital of France is", "--prompt", help="The text to look at."),
    what: str = typer.Option("lens", "--what", help="attention, lens, patch or heads."),
    corrupted: str = typer.Option(None, "--corrupted", help="For patch: the same prompt with one thing changed."),
    answer: str = typer.Option(None, "--answer", help="The expected next token (default: the model's own)."),
    wrong: str = typer.Option(None, "--wrong", help="For patch: the corrupted prompt's answer (default: its own)."),
    layer: list[int] = typer.Option(None, "--layer", help="For attention: layers to draw (default: first, middle, last)."),
    out: Path = typer.Option(None, "--out", help="Write figures (PNG) and interpret.json here."),
    force: bool = FORCE_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Attention maps, the logit lens, activation patching or induction heads of a decoder."""
    from lm2llm.gguf.registry import resolve_run
    from lm2llm.interpret.analyse import analyse
    from lm2llm.models import load_model
    from lm2llm.runs import atomic_write_json, check_out, output_dir
    from lm2llm.tokenizer import load_tokenizer

    if out is not None:  # refuse a folder we may not write before the work, not after it
        check_out(out, "interpret", force=force)
    run = resolve_run(model)
    numbers, figures = analyse(load_model(run), load_tokenizer(run), prompt, what, corrupted=corrupted,
                               answer=answer, wrong=wrong, layers=layer or None)
    numbers = {"model": model, "prompt": prompt, **numbers}
    if out is not None:
        with output_dir(out, "interpret", force=force) as folder:
            for name, fig in figures.items():
                fig.savefig(folder / f"{name}.png", dpi=110, bbox_inches="tight")
            atomic_write_json(folder / RESULT, numbers)
        numbers["files"] = [str(out / f"{name}.png") for name in figures] + [str(out / RESULT)]
    from lm2llm.tour.plots import plt

    plt.close("all")
    if json_out:
        print_json(numbers)
        return
    print_table(f"lm2llm interpret {model} --what {what}", summary_rows(numbers))


def summary_rows(numbers: dict) -> list[tuple[str, object]]:
    """The few numbers worth a terminal line; the rest is in the JSON."""
    rows: list[tuple[str, object]] = [("prompt", numbers["prompt"])]
    what = numbers["what"]
    if what == "lens":
        rows.append(("answer", repr(numbers["answer"])))
        for method in ("renorm", "cached_scale"):
            lens = numbers[method]
            rows.append((f"{method}: answer rank per layer", " ".join(map(str, lens["answer_rank"]))))
            rows.append((f"{method}: top from layer", lens["first_top_layer"]))
    elif what == "patch":
        rows += [("answer / wrong", f"{numbers['answer']!r} / {numbers['wrong']!r}"),
                 ("logit diff clean / corrupted", f"{numbers['clean_logit_diff']:.3f} / "
                                                  f"{numbers['corrupted_logit_diff']:.3f}"),
                 ("strongest patch (layer, position, effect)", numbers["best"])]
    elif what == "heads":
        rows.append(("best induction head", numbers["best"]))
    else:
        rows.append(("tokens", " | ".join(numbers["tokens"])))
        rows += [(f"layer {i}: mean entropy per head (nats)", " ".join(f"{e:.2f}" for e in numbers["entropy"][i]))
                 for i in numbers["layers"]]
    rows += [("file", f) for f in numbers.get("files", [])]
    return rows


def register(app: typer.Typer) -> None:
    app.command("interpret")(interpret_command)
