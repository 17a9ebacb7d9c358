"""`lm2llm sft`: supervised fine-tuning of a pre-trained run, fully or with LoRA, scored before and after."""

from __future__ import annotations

from pathlib import Path

import typer

from lm2llm.cli.output import FORCE_OPTION, JSON_OPTION, print_json, print_table


def sft_command(
    base_run: Path = typer.Argument(..., help="Pre-trained run directory (model + BPE tokenizer)."),
    data: str = typer.Option("synthetic", "--data", help="'synthetic' (the task suite) or a JSONL/JSON instruction file."),
    out: Path = typer.Option(..., "--out", help="Run directory to write (new or empty; --force replaces an earlier SFT run)."),
    lora: str = typer.Option(None, "--lora", help="Train a LoRA adapter instead of all weights; any subset of r=R,alpha=A,"
                              "dropout=D,targets=NAME+NAME, e.g. 'r=4,targets=q_proj+v_proj'. Left out: r=8, "
                              "alpha=2r, dropout=0, and without targets every linear layer but the output head is "
                              "wrapped (targets=all-linear)."),
    lora_train_tokens: str = typer.Option("chat", "--lora-train-tokens", help="With --lora: tokens whose embedding rows train too: 'chat' (the chat template's tokens, which pre-training never saw), 'none', or tokens/ids like '<|end|>,17'."),
    steps: int = typer.Option(300, "--steps", help="Optimizer steps."),
    batch_size: int = typer.Option(16, "--batch-size", help="Conversations per step."),
    micro_batch_size: int = typer.Option(0, "--micro-batch-size", help="Conversations per forward pass (0: the whole batch)."),
    lr: float = typer.Option(1e-3, "--lr", help="Peak learning rate."),
    n_train: int = typer.Option(300, "--n-train", help="Synthetic data: training examples per task."),
    n_test: int = typer.Option(20, "--n-test", help="Held-out prompts (per task for synthetic data)."),
    task: list[str] = typer.Option(None, "--task", help="Synthetic data: only this task (repeatable)."),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help="Skip malformed records instead of stopping."),
    max_new_tokens: int = typer.Option(24, "--max-new-tokens", help="Longest answer generated when scoring."),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, mps or auto."),
    force: bool = FORCE_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Fine-tune on instructions (loss on the assistant's tokens only); exact match on held-out prompts
    before and after. The result is a normal run: `lm2llm chat OUT` talks to it."""
    from lm2llm.finetune.sft import SFTConfig, sft, sft_trainer

    result = sft(SFTConfig(
        base=str(base_run), out=str(out), data=data, lora=lora, lora_train_tokens=lora_train_tokens,
        n_train=n_train, n_test=n_test, tasks=task or None, skip_invalid=skip_invalid, max_new_tokens=max_new_tokens,
        seed=seed, trainer=sft_trainer(steps, lr, batch_size=batch_size, micro_batch_size=micro_batch_size,
                                       device=device, progress=not json_out),
    ), force=force)
    summary = {
        "run": str(result.run), "exact_match_before": round(result.before["accuracy"], 4),
        "exact_match_after": round(result.after["accuracy"], 4), "held_out": result.after["n"],
        "ended_turn_after": round(result.after["ended_turn"], 4),
        "distinct_answers_after": result.after["distinct_answers"],
        "trainable_params": result.trainable_params, "total_params": result.total_params,
        "train_seconds": round(result.train_seconds, 2), "final_loss": round(result.final_loss, 4),
        "adapter_bytes": result.adapter_bytes, "skipped_invalid": result.skipped_invalid,
    }
    if json_out:
        print_json({**summary, "per_task_before": result.before["per_task"],
                    "per_task_after": result.after["per_task"], "samples": result.samples})
    else:
        print_table("lm2llm sft", list(summary.items()))


def register(app: typer.Typer) -> None:
    app.command("sft")(sft_command)
