"""`lm2llm eval MODEL... --task T...` (our harness), `lm2llm lm-eval ...` (lm-evaluation-harness itself)
and `lm2llm select MODEL...` (the selection report)."""

from __future__ import annotations

import typer

from lm2llm.cli.output import JSON_OPTION, console, print_json

MODELS = typer.Argument(..., help="Run directories, n-gram model directories or registered model names.")
TASKS = typer.Option(["python-cloze", "pydocs-bpb"], "--task", "-t",
                     help="A shipped task (see 'lm2llm eval --list') or a task .yaml file (repeatable).")
LIMIT = typer.Option(None, "--limit", help="Score only the first N documents of each task.")
BATCH = typer.Option(8, "--batch-size", help="Requests scored together.")
DTYPE = typer.Option("float32", "--dtype", help="float32 or bfloat16.")


def register(app: typer.Typer) -> None:
    @app.command("eval")
    def eval_command(
        models: list[str] = typer.Argument(None, help=MODELS.help), task: list[str] = TASKS,
        shots: int = typer.Option(None, "--shots", help="Few-shot examples in each prompt (default: the task's)."),
        limit: int = LIMIT, batch_size: int = BATCH, dtype: str = DTYPE,
        max_length: int = typer.Option(None, "--max-length", help="Score in windows of at most N tokens."),
        list_tasks: bool = typer.Option(False, "--list", help="List the shipped tasks with size and chance."),
        json_out: bool = JSON_OPTION,
    ) -> None:
        """Score models on tasks (lm-eval's request kinds and metrics); write eval.json in each run."""
        from lm2llm.evaluate import evaluate_models, shipped_task_table

        if list_tasks:
            rows = shipped_task_table()
            if json_out:
                print_json(rows)
            else:
                _print_rows("shipped tasks", rows)
            return
        if not models:
            raise typer.BadParameter("give at least one MODEL", param_hint="MODEL")
        results = evaluate_models(models, task, shots=shots, limit=limit, batch_size=batch_size, dtype=dtype,
                                  max_length=max_length)
        if json_out:
            print_json({"results": results})
            return
        from lm2llm.evaluate.report import result_rows

        for name, rows in result_rows(results).items():
            _print_rows(name, rows)

    @app.command("lm-eval", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def lm_eval_command(ctx: typer.Context) -> None:
        """lm-evaluation-harness's own command line, with '--model lm2llm' and the shipped tasks available:
        lm2llm lm-eval --model lm2llm --model_args run=RUN --tasks python-cloze."""
        from lm2llm.evaluate.harness import run_lm_eval

        run_lm_eval(ctx.args)


def _print_rows(title: str, rows: list[dict]) -> None:
    from rich.table import Table

    table = Table(title=title)
    for column in rows[0] if rows else []:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    console.print(table)
