"""`lm2llm reward`, `lm2llm dpo`, `lm2llm ppo`: alignment stages, each starting from an SFT run."""

from __future__ import annotations

from pathlib import Path

import typer

from lm2llm.cli.inputs import old_spelling, the_input
from lm2llm.cli.output import FORCE_OPTION, JSON_OPTION, print_json, print_table

SFT = typer.Argument(None, metavar="SFT_RUN", help="The SFT run directory (model + chat tokenizer); required.")
OLD_SFT = old_spelling("--sft")
OUT = typer.Option(..., "--out", help="The new run directory (new or empty; --force replaces an earlier run of this stage).")
FORCE = FORCE_OPTION
DATA = typer.Option("", "--data", help="Preference file (.jsonl {prompt, chosen, rejected} or an Alpaca .json "
                                       "array); default: synthetic pairs over the task suite.")
HELD_OUT = typer.Option(0.1, "--held-out", help="Share of a preference file held out for evaluation.")
TASKS = typer.Option("", "--tasks", help="Synthetic pairs: comma-separated tasks of the suite (default: all).")
SEED = typer.Option(0, "--seed")


def _pairs(data: str, held_out: float, seed: int, tasks: str):
    from lm2llm.align.stages import PreferenceData

    return PreferenceData(data=data, held_out=held_out, seed=seed, tasks=tasks.split(",") if tasks else None)


def reward(
    sft: Path = SFT, out: Path = OUT, data: str = DATA, held_out: float = HELD_OUT, tasks: str = TASKS,
    steps: int = typer.Option(200, "--steps"), lr: float = typer.Option(1e-4, "--lr"),
    batch_size: int = typer.Option(16, "--batch-size"),
    margin: float = typer.Option(0.0, "--margin", help="Bradley–Terry margin: −log σ(r_c − r_r − margin)."),
    seed: int = SEED, force: bool = FORCE, old_sft: Path = OLD_SFT, as_json: bool = JSON_OPTION,
) -> None:
    """Train a reward model (scalar head on the SFT transformer) on preference pairs."""
    sft = the_input(sft, old_sft, "SFT_RUN", "--sft")
    from lm2llm.align.stages import RewardStageConfig, pair_trainer, train_reward

    metrics, run = train_reward(RewardStageConfig(str(sft), str(out), _pairs(data, held_out, seed, tasks),
                                                  pair_trainer(steps, lr, batch_size=batch_size), margin, seed=seed),
                                force=force)
    _report(f"reward model → {run.path}", metrics, as_json)


def dpo(
    sft: Path = SFT, out: Path = OUT, data: str = DATA, held_out: float = HELD_OUT, tasks: str = TASKS,
    steps: int = typer.Option(200, "--steps"), lr: float = typer.Option(1e-5, "--lr"),
    batch_size: int = typer.Option(16, "--batch-size"), beta: float = typer.Option(0.1, "--beta"),
    loss: str = typer.Option("sigmoid", "--loss", help="sigmoid (DPO) or ipo."),
    seed: int = SEED, force: bool = FORCE, old_sft: Path = OLD_SFT, as_json: bool = JSON_OPTION,
) -> None:
    """Direct preference optimisation of the SFT model against itself as the frozen reference."""
    sft = the_input(sft, old_sft, "SFT_RUN", "--sft")
    from lm2llm.align.stages import DPOStageConfig, pair_trainer, train_dpo
    from lm2llm.errors import UserError

    if loss not in ("sigmoid", "ipo"):
        raise UserError(f"unknown loss {loss!r}", where="--loss", hint="sigmoid or ipo")
    metrics, run = train_dpo(DPOStageConfig(str(sft), str(out), _pairs(data, held_out, seed, tasks),
                                            pair_trainer(steps, lr, batch_size=batch_size), beta, loss, seed),
                             force=force)
    _report(f"DPO policy → {run.path}", metrics, as_json)


def ppo(
    sft: Path = SFT, reward_run: Path = typer.Option(..., "--reward", help="The reward-model run directory."),
    out: Path = OUT, data: str = typer.Option("", "--data", help="Prompts come from this preference file's "
                                                                   "training split; default: the task suite."),
    tasks: str = TASKS,
    steps: int = typer.Option(20, "--steps"), batch_size: int = typer.Option(16, "--batch-size"),
    minibatch_size: int = typer.Option(8, "--minibatch-size"), epochs: int = typer.Option(4, "--ppo-epochs"),
    lr: float = typer.Option(1e-5, "--lr"), temperature: float = typer.Option(1.0, "--temperature"),
    max_new_tokens: int = typer.Option(24, "--max-new-tokens"),
    kl_coef: float = typer.Option(0.05, "--kl-coef", help="β of the per-token KL penalty (initial value if adaptive)."),
    kl_target: float = typer.Option(0.0, "--kl-target", help="Adapt β towards this KL per response; 0: fixed β."),
    kl_estimator: str = typer.Option("k1", "--kl-estimator", help="k1 (log-ratio) or k3 (non-negative)."),
    seed: int = SEED, force: bool = FORCE, old_sft: Path = OLD_SFT, as_json: bool = JSON_OPTION,
) -> None:
    """PPO (InstructGPT recipe) of the SFT model against a reward model, with a KL penalty to the SFT model."""
    sft = the_input(sft, old_sft, "SFT_RUN", "--sft")
    from lm2llm.align.ppo import PPOConfig
    from lm2llm.align.stages import PPOStageConfig, run_ppo

    config = PPOConfig(batch_size=batch_size, minibatch_size=minibatch_size, ppo_epochs=epochs, lr=lr,
                       temperature=temperature, max_new_tokens=max_new_tokens, kl_coef=kl_coef,
                       kl_target=kl_target or None, kl_estimator=kl_estimator, seed=seed)
    history, run = run_ppo(PPOStageConfig(str(sft), str(reward_run), str(out), _pairs(data, 0.1, seed, tasks), steps,
                                        config), force=force)
    first, last = history[0], history[-1]
    summary = {"steps": len(history), "score_first": first["score"], "score_last": last["score"],
               "kl_last": last["kl"], "kl_coef_last": last["kl_coef"], "response_length_last": last["response_length"],
               "eot_rate_last": last["eot_rate"]}
    _report(f"PPO policy → {run.path}", summary | ({"history": history} if as_json else {}), as_json)


def _report(title: str, figures: dict, as_json: bool) -> None:
    if as_json:
        print_json(figures)
    else:
        print_table(title, [(k, f"{v:.4g}" if isinstance(v, float) else v) for k, v in figures.items()])


def register(app: typer.Typer) -> None:
    app.command("reward")(reward)
    app.command("dpo")(dpo)
    app.command("ppo")(ppo)
