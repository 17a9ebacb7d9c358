"""`lm2llm train`: pre-train a model on token shards (one process, or many under torchrun)."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from typer.core import TyperCommand

from lm2llm.cli.output import FORCE_OPTION, JSON_OPTION, console, print_json, print_table

REQUIRED = "Required (unless the --config file or, with --resume, the run gives it)."


class SettingsCommand(TyperCommand):
    """`train`: besides the closest real option (`lm2llm.cli.unknown_option_hint`), an unknown option points
    to `--set key=value`, spelled out when the option is a config key (e.g. --warmup-steps)."""

    def unknown_option_hint(self, flag: str) -> str:
        from dataclasses import fields

        from lm2llm.training.config import RunConfig, TrainerConfig

        key = flag.lstrip("-").replace("-", "_")
        if key in {f.name for f in (*fields(RunConfig), *fields(TrainerConfig))} - {"trainer"}:
            return f"'{key}' is a setting: --set {key}=VALUE"
        return "settings without an option of their own take --set key=value (e.g. --set warmup_steps=100)"


def train_command(
    model: str = typer.Option(None, "--model", help="Model family: rnn, lstm, gru, gpt, llama, bert (masked-LM)."),
    preset: str = typer.Option(None, "--preset", help="A preset of that family (see 'lm2llm params')."),
    data: Path = typer.Option(None, "--data", help=f"Token-shard directory (train.bin, val.bin, meta.json). {REQUIRED}"),
    out: Path = typer.Option(None, "--out", help=f"Run directory to write. {REQUIRED}"),
    max_steps: int = typer.Option(None, "--max-steps", min=1, help="Optimizer steps (default 2000)."),
    lr: float = typer.Option(None, "--lr", help="Peak learning rate (default 1e-3)."),
    batch_size: int = typer.Option(None, "--batch-size", min=1, help="Sequences per optimizer step (default 12)."),
    max_seconds: float = typer.Option(None, "--max-seconds", min=0.0, help="Stop after this much training time "
                                      "(default 0: no limit)."),
    config: Path = typer.Option(None, "--config", help="TOML or JSON file of config keys ([model] table for the model)."),
    set_: list[str] = typer.Option(None, "--set", metavar="KEY=VALUE", help="Any other setting: --set "
                                   "warmup_steps=100 --set model.n_layer=4 (repeatable)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
    force: bool = FORCE_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Train with AdamW, warm-up + cosine/WSD, bf16 where supported; logs metrics.jsonl, checkpoints, loss_curve.png.

    Multi-process: torchrun --nproc_per_node=N -m lm2llm train ...
    """
    from lm2llm.training.config import build_config, parse_set, read_config_file
    from lm2llm.training.run import resume_config, train

    flags = {k: v for k, v in {"model": model, "preset": preset, "data": data and str(data),
                                "out": out and str(out), "max_steps": max_steps, "lr": lr, "batch_size": batch_size,
                                "max_seconds": max_seconds}.items() if v is not None}
    overrides = {**parse_set(set_ or []), **flags}
    if resume and out is not None and (out / "config.json").is_file():
        cfg = resume_config(out, overrides)
    else:
        cfg = build_config(read_config_file(config) if config else None, overrides,
                           where=str(config) if config else "config")
    if json_out:
        cfg.trainer.progress = False
    result, run = train(cfg, resume=resume, force=force)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only process 0 reports
        return
    final = result.evals[-1] if result.evals else {}
    summary = {
        "run": str(run.path), "steps": result.steps, "seconds": round(result.seconds, 2),
        "tokens_per_s": round(result.tokens_per_second, 1), "ms_per_step": round(result.ms_per_step, 2),
        "mfu": round(result.mfu, 4), "stopped_early": result.stopped_early,
        **{k: v for k, v in final.items() if k.startswith("val_") or k == "train_s"},  # train_s: time to that loss
    }
    if json_out:
        print_json({**summary, "sample": result.sample})
    else:
        print_table("lm2llm train", list(summary.items()))
        if result.sample:
            console.rule("sample")
            console.print(result.sample, markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("train", cls=SettingsCommand)(train_command)
