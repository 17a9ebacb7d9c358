"""`lm2llm prompt run MODEL --technique T --task T`: score prompt techniques on tasks of the synthetic suite."""

from __future__ import annotations

import typer

from lm2llm.cli.output import JSON_OPTION, console, group, print_json


def run_command(
    model: str = typer.Argument(..., help="A run directory (a chat-tuned model)."),
    technique: list[str] = typer.Option(["zero_shot"], "--technique", help="A technique of "
                                        "prompting/techniques.json, or 'all'; repeatable."),
    task: list[str] = typer.Option(["addition"], "--task", help="A task of the synthetic suite (addition, "
                                   "facts, unit_conversion, korean_to_digits, ...); repeatable."),
    n: int = typer.Option(50, "--n", min=1, max=2000, help="Test questions per task."),
    seed: int = typer.Option(0, "--seed"),
    json_out: bool = JSON_OPTION,
) -> None:
    """Accuracy (95 % interval, chance level) and prompt/generated tokens per question, per technique × task."""
    from rich.table import Table

    from lm2llm.finetune.tasks import make_suite
    from lm2llm.prompting.render import load_generator
    from lm2llm.prompting.run import run_technique
    from lm2llm.prompting.techniques import get_technique, techniques

    chosen = list(techniques()) if "all" in technique else [get_technique(t).name for t in technique]
    make_suite(0, 0, seed, task)  # unknown task names fail here, before the model loads
    generator = load_generator(model)
    results = [run_technique(generator, get_technique(t), name, n, seed) for name in task for t in chosen]
    if json_out:
        print_json(results)
        return
    table = Table(title=f"lm2llm prompt run {model}")
    for column in ("task", "technique", "accuracy", "95% interval", "chance", "lenient", "prompt tok", "gen tok"):
        table.add_column(column)
    for r in results:
        table.add_row(r["task"], r["technique"], f"{r['accuracy']:.3f}", f"[{r['low']:.3f}, {r['high']:.3f}]",
                      f"{r['chance']:.3f}", f"{r['lenient']:.3f}", f"{r['prompt_tokens']:.0f}",
                      f"{r['completion_tokens']:.0f}")
    console.print(table)


def register(app: typer.Typer) -> None:
    prompt_app = group("Prompt engineering, measured: techniques as data, scored on tasks.")
    app.add_typer(prompt_app, name="prompt")
    prompt_app.command("run")(run_command)
