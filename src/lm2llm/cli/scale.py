"""`lm2llm scale`: the compute sweep with its fitted scaling laws, and the emergence runs (guide §3)."""

from __future__ import annotations

from pathlib import Path

import typer

from lm2llm.cli.output import JSON_OPTION, group, print_json, print_table
from lm2llm.errors import UserError


def _numbers(text: str, where: str, kind: type = float) -> list:
    try:
        values = [kind(float(v)) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"expected comma-separated numbers, got {text!r}", where=where) from None
    if not values:
        raise UserError("give at least one value", where=where)
    return values


def _check_out(out: Path, marker: str) -> None:
    """Our own earlier output is continued (finished runs reused); anything else in --out is refused."""
    if out.resolve() in (Path("/").resolve(), Path.home().resolve(), Path.cwd().resolve()):
        raise UserError("refusing to write into this folder", where=str(out), hint="choose a new --out")
    if out.is_dir() and any(out.iterdir()) and not (out / marker).is_file() and not (out / "runs").is_dir():
        raise UserError("--out is not empty and holds no earlier output of this command", where=str(out),
                        hint="choose a new --out")


def sweep_command(
    data: Path = typer.Option(None, "--data", help="Token shards (default: python-docs, BPE 512, built in OUT/data)."),
    out: Path = typer.Option(Path("runs/scale"), "--out", help="Sweep folder: runs/, sweep.json, fits.json."),
    budgets: str = typer.Option("1e11,3e11,1e12,3e12", "--budgets", help="Compute budgets C in FLOPs."),
    sizes: str = typer.Option("16,32,48,64,96", "--sizes",
                              help="Widths; n_layer = round(width/32), 16-dimensional heads."),
    count: str = typer.Option("all", "--count", help="Parameters D = C/6N is planned with: all, non_embedding, blocks."),
    holdout: bool = typer.Option(True, "--holdout/--no-holdout",
                                 help="Hold out the largest budget: predict its optimal model, then train it."),
    parallel: int = typer.Option(1, "--parallel", help="Runs side by side (one torch thread each)."),
    bootstrap: int = typer.Option(100, "--bootstrap", help="Bootstrap resamples per fit."),
    context: int = typer.Option(64, "--context", help="Block size of every run."),
    batch_size: int = typer.Option(16, "--batch-size", help="Sequences per step."),
    lr: float = typer.Option(3e-3, "--lr", help="Peak learning rate (cosine to lr/10 at each run's last step)."),
    tokens_per_param: str = typer.Option("", "--tokens-per-param",
                                         help="LOW,HIGH: train only the runs whose D/N lies within (default: all)."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Train budgets × sizes (D = C/6N, each run decayed at its budget), fit L(N), L(D), iso-FLOP and L(N, D)."""
    from lm2llm.runs import atomic_write_json
    from lm2llm.scale.analysis import analyse
    from lm2llm.scale.corpus import prose_shards
    from lm2llm.scale.prediction import prediction_test
    from lm2llm.scale.shapes import CONVENTIONS
    from lm2llm.scale.sweep import SweepSettings, sweep

    grid = sorted(_numbers(budgets, "--budgets"))
    widths = _numbers(sizes, "--sizes", int)
    if holdout and len(grid) < 3:
        raise UserError("the prediction test needs at least two budgets to fit and one to hold out",
                        where="--budgets", hint="give three or more budgets, or --no-holdout")
    if parallel < 1 or bootstrap < 1:
        raise UserError("--parallel and --bootstrap must be at least 1", where="--parallel/--bootstrap")
    window = _numbers(tokens_per_param, "--tokens-per-param") if tokens_per_param else None
    if window is not None and (len(window) != 2 or not 0 < window[0] < window[1]):
        raise UserError("give two positive numbers, the lower first", where="--tokens-per-param", hint="e.g. 1,500")
    _check_out(out, "sweep.json")
    shards = data or prose_shards(out / "data")
    settings = SweepSettings(data=str(shards), context=context, batch_size=batch_size, lr=lr, count=count)
    fitted = grid[:-1] if holdout else grid
    record = sweep(fitted, widths, settings, out, parallel=parallel,
                   tokens_per_param=tuple(window) if window else None)
    fits = {c: analyse(record["runs"], c, samples=bootstrap) for c in CONVENTIONS}
    prediction = prediction_test(record["runs"], grid[-1], settings, out) if holdout else None
    atomic_write_json(out / "fits.json", {"fits": fits, "prediction": prediction})
    if json_out:
        print_json({"sweep": record, "fits": fits, "prediction": prediction})
        return
    rows = [(f"{r['budget']:.0e} {r['shape']}", f"N={r['params'][count]:,} D={r['tokens']:,} loss {r['val_loss']:.4f}")
            for r in record["runs"]]
    for c in CONVENTIONS:
        a2, a3 = fits[c]["approach2"], fits[c]["approach3"]
        rows.append((f"fit ({c})", f"N*∝C^{a2['a']:.2f} D*∝C^{a2['b']:.2f}, D/N at {fitted[-1]:.0e}: "
                     f"{a2['tokens_per_param']:.1f} (approach 2), {a3['tokens_per_param']:.1f} (approach 3); "
                     f"α={a3['alpha']:.2f} β={a3['beta']:.2f} E={a3['E']:.2f}"))
    if prediction:
        rows.append(("prediction", f"{prediction['shape']} at {grid[-1]:.0e}: predicted {prediction['predicted_loss']:.4f}, "
                     f"measured {prediction['measured_loss']:.4f} ({prediction['relative_error']:+.2%})"))
    print_table("lm2llm scale sweep", rows)


def emergence_command(
    out: Path = typer.Option(Path("runs/emergence"), "--out", help="Folder: data/, runs/, emergence.json."),
    sizes: str = typer.Option("32,48,64,96,128", "--sizes", help="Widths of the family (the sweep's shape rule)."),
    steps: int = typer.Option(600, "--steps", help="Training steps of every size (16 × 128 characters each)."),
    docs: int = typer.Option(3000, "--docs", help="python-docs documents in the mixture."),
    task_docs: int = typer.Option(1600, "--task-docs", help="Synthetic task documents (16 lines each)."),
    examples: int = typer.Option(100, "--examples", help="Test examples per shot count and per addition format."),
    parallel: int = typer.Option(1, "--parallel", help="Runs side by side (one torch thread each)."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Train a family of sizes on python-docs + in-context tasks; ICL accuracy vs shots, induction, addition formats."""
    from lm2llm.scale.emergence import EmergenceSettings, emergence

    if min(steps, docs, task_docs, examples, parallel) < 1:
        raise UserError("--steps, --docs, --task-docs, --examples and --parallel must be at least 1", where="options")
    _check_out(out, "emergence.json")
    settings = EmergenceSettings(widths=tuple(_numbers(sizes, "--sizes", int)), steps=steps, docs=docs,
                                 task_docs=task_docs, test_examples=examples)
    record = emergence(settings, out, parallel=parallel)
    if json_out:
        print_json(record)
        return
    rows = []
    for m in record["models"]:
        kv = m["kv"]
        rows.append((f"{m['shape']} ({m['params']['all']:,})",
                     "kv choice acc by shots " + " ".join(f"{k}:{v['choice']:.2f}" for k, v in kv.items())
                     + f"; induction {m['induction_score']:.2f}; addition exact "
                     + " ".join(f"{f}:{v['exact']:.2f}" for f, v in m["addition"].items())))
    print_table("lm2llm scale emergence", rows)


def register(app: typer.Typer) -> None:
    scale_app = group("Scaling laws and emergence measured here: sweep, emergence.")
    app.add_typer(scale_app, name="scale")
    scale_app.command("sweep")(sweep_command)
    scale_app.command("emergence")(emergence_command)
