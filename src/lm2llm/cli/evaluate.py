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


def eval_command(
    models: list[str] = typer.Argument(None, help=MODELS.help), task: list[str] = TASKS,
    shots: int = typer.Option(None, "--shots", help="Few-shot examples in each prompt (default: the task's)."),
    limit: int = LIMIT, batch_size: int = BATCH, dtype: str = DTYPE,
    max_length: int = typer.Option(None, "--max-length", help="Score in windows of at most N tokens."),
    list_tasks: bool = typer.Option(False, "--list", help="List the shipped tasks with size and chance."),
    protocols: int = typer.Option(None, "--protocols", help="Also score bits-per-byte tasks with lm-eval's, "
                                  "llama.cpp's and nanochat's perplexity protocols at this context length."),
    data_dir: str = typer.Option(None, "--data-dir", help="A folder with nsmc/ and korean-hate-speech/ for "
                                 "the tasks built from local data (like ../shared/data)."),
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
                              max_length=max_length, data_dir=data_dir)
    compared = _protocols(models, task, protocols, limit, dtype) if protocols else {}
    if json_out:
        print_json({"results": results, **({"protocols": compared} if compared else {})})
        return
    from lm2llm.evaluate.report import result_rows

    for name, rows in result_rows(results).items():
        _print_rows(name, rows)
    for name, by_protocol in compared.items():
        _print_rows(f"{name}: three perplexity protocols, n_ctx={protocols}",
                    [{"protocol": p, **{k: f"{v:.4f}" if isinstance(v, float) else v for k, v in row.items()}}
                     for p, row in by_protocol.items()])


def lm_eval_command(ctx: typer.Context) -> None:
    """lm-evaluation-harness's own command line, with '--model lm2llm' and the shipped tasks available:
    lm2llm lm-eval --model lm2llm --model_args run=RUN --tasks python-cloze."""
    from lm2llm.evaluate.harness import run_lm_eval

    run_lm_eval(ctx.args)


def select_command(
    models: list[str] = typer.Argument(..., help=MODELS.help),
    task: str = typer.Option("python-cloze", "--task", "-t", help="The quality task (a score, higher is better)."),
    limit: int = typer.Option(100, "--limit", help="Documents of the quality task."),
    dtype: str = DTYPE,
    price: float = typer.Option(0.10, "--price-per-hour", help="What an hour of this machine costs, in USD."),
    weights: str = typer.Option(None, "--weights", help="e.g. quality=2,latency=1,throughput=1,memory=0.5,"
                                                       "size=0.5,cost=1 (criteria not named keep these)."),
    out: str = typer.Option("selection", "--out", help="Folder for select.json and pareto.png."),
    force: bool = typer.Option(False, "--force", help="Replace an earlier selection in --out."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Measure models side by side (quality, time to first token, decode speed at batch 1 and 8, peak
    memory, file size, cost per million tokens) and recommend one under --weights."""
    from pathlib import Path

    from lm2llm.evaluate.selection import parse_weights, selection_report

    report = selection_report(models, Path(out), task=task, limit=limit, dtype=dtype, price_per_hour=price,
                              weights=parse_weights(weights), force=force)
    if json_out:
        print_json(report)
        return
    rows = [{"model": m["model"], "quality": f"{m['quality']:.3f} ± {m['quality_stderr']:.3f}",
             "TTFT ms": f"{m['ttft_ms']:.1f}", "tok/s b1": f"{m['decode_tps_batch1']:.1f}",
             "tok/s b8": f"{m['decode_tps_batch8']:.1f}", "peak RSS MB": f"{m['peak_rss_mb']:.0f}",
             "file MB": f"{m['file_mb']:.1f}", "USD/M tok": f"{m['usd_per_million_tokens']:.3f}",
             "Pareto": "yes" if m["model"] in report["pareto_front"] else ""}
            for m in report["measurements"]]
    _print_rows(f"model selection ({task} {report['measurements'][0]['metric']}; "
                f"{price:.2f} USD/hour)", rows)
    console.print(f"recommended: {report['recommendation']['why']}")
    console.print(f"wrote {Path(out) / 'select.json'} and {Path(out) / 'pareto.png'}")


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
    app.command("lm-eval", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(lm_eval_command)
    app.command("select")(select_command)


def _protocols(models: list[str], tasks: list[str], n_ctx: int, limit: int | None, dtype: str) -> dict:
    from lm2llm.evaluate import find_task, load_scorer
    from lm2llm.evaluate.protocols import compare_protocols

    rolling = [t for t in map(find_task, tasks) if t.output_type == "loglikelihood_rolling"]
    out = {}
    for model in models:
        scorer = load_scorer(model, dtype=dtype)
        if not hasattr(scorer, "token_logprobs"):
            continue  # the protocols cut token streams: neural models only
        for task in rolling:
            texts = [task.target(doc) for doc in task.docs()[:limit]]
            out[f"{scorer.name} / {task.name}"] = compare_protocols(scorer, texts, n_ctx)
    return out


def _print_rows(title: str, rows: list[dict]) -> None:
    from rich.table import Table

    table = Table(title=title)
    for column in rows[0] if rows else []:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    console.print(table)
