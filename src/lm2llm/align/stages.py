"""The alignment stages behind `lm2llm reward`, `lm2llm dpo` and `lm2llm ppo`; each starts from an SFT run.

An SFT run directory holds `model.safetensors` + `model_config.json` and the tokenizer (with its chat
template). Each stage builds its own run directory under a temporary name and renames it when complete:

- `reward`: `reward_model.safetensors` + `reward_model_config.json`, the tokenizer, `config.json`,
  `metrics.jsonl` (training curve, held-out pairwise accuracy, the normalisation it applied);
- `dpo` and `ppo`: a policy run (`model.safetensors`, `model_config.json`, tokenizer) that `lm2llm chat`
  can talk to, plus `config.json` and `metrics.jsonl` (per-step statistics).

Preference data is a file (`read_preferences`) split into train and held-out pairs, or, by default, the
synthetic pairs over the task suite, whose held-out prompts never appear in training.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lm2llm.align.evaluate import generate_answers, prompt_ids
from lm2llm.align.objectives import (
    DPOObjective,
    RewardObjective,
    evaluate_dpo,
    evaluate_reward_model,
    reference_logprobs,
)
from lm2llm.align.pairs import PreferenceBatches, encode_pairs
from lm2llm.align.ppo import PPOConfig, PPOTrainer
from lm2llm.align.preference import Message, PreferencePair, read_preferences, split_held_out
from lm2llm.align.reward_model import RewardModel, load_reward_model, save_reward_model
from lm2llm.align.synthetic import make_preference_suite
from lm2llm.data.lineage import record_lineage
from lm2llm.errors import UserError
from lm2llm.inference.sampling import SamplingConfig
from lm2llm.models import load_model, save_model
from lm2llm.runs import RunDir, check_out, output_dir
from lm2llm.tokenizer import load_tokenizer
from lm2llm.training import Trainer, TrainerConfig
from lm2llm.training.config import fine_tuning


@dataclass
class PreferenceData:
    """Where pairs come from: a file split by `held_out`, or the synthetic suite (per-task counts)."""

    data: str = ""
    held_out: float = 0.1
    synthetic_train: int = 60
    synthetic_held_out: int = 10
    tasks: list[str] | None = None  # synthetic: which tasks of the suite (default: all)
    seed: int = 0

    def load(self) -> tuple[list[PreferencePair], list[PreferencePair]]:
        if self.data:
            return split_held_out(read_preferences(self.data), self.held_out, seed=self.seed)
        return make_preference_suite(self.synthetic_train, self.synthetic_held_out, seed=self.seed, tasks=self.tasks)


def pair_trainer(max_steps: int = 200, lr: float = 1e-4, **knobs: Any) -> TrainerConfig:
    """The trainer of the stages that train on pairs: the shared fine-tuning preset with 16 pairs a step, a
    warm-up of a tenth of the steps (1 to 20), a log line every twentieth step, no weight decay, and device
    and dtype "auto" (bf16 autocast where the CPU has it); `knobs` set any other field."""
    return fine_tuning(max_steps, lr, **{"batch_size": 16, "warmup_steps": max(1, min(20, max_steps // 10)),
                                         "log_every": max(1, max_steps // 20), "weight_decay": 0.0,
                                         "dtype": "auto", "device": "auto", **knobs})


@dataclass
class PairStageConfig:
    """What the stages that train on pairs (reward, DPO) share: the SFT run they start from, the run they
    write, the pairs and the trainer. Each adds its loss settings, then its seed."""

    sft: str
    out: str
    pairs: PreferenceData = field(default_factory=PreferenceData)
    trainer: TrainerConfig = field(default_factory=pair_trainer)


@dataclass
class RewardStageConfig(PairStageConfig):
    margin: float = 0.0
    reference_samples: int = 64  # SFT answers scored to normalise the reward to mean 0, std 1
    seed: int = 0


@dataclass
class DPOStageConfig(PairStageConfig):
    # a policy moves less than a fresh reward head
    trainer: TrainerConfig = field(default_factory=lambda: pair_trainer(lr=1e-5))
    beta: float = 0.1
    loss_type: str = "sigmoid"
    seed: int = 0


@dataclass
class PPOStageConfig:
    """PPO runs its own loop (rollouts, then several epochs over them: `PPOTrainer`), so besides the step
    count its optimiser settings live in `ppo`."""

    sft: str
    reward: str
    out: str
    pairs: PreferenceData = field(default_factory=PreferenceData)  # its train prompts are PPO's prompts
    max_steps: int = 20
    ppo: PPOConfig = field(default_factory=PPOConfig)

    def __post_init__(self) -> None:
        if self.max_steps < 1:
            raise UserError(f"must be at least 1, got {self.max_steps}", where="--steps")


def load_sft_run(path: str | Path) -> tuple[nn.Module, Any]:
    """The SFT model and its chat tokenizer."""
    model, tokenizer = load_model(path), load_tokenizer(path)
    if not hasattr(tokenizer, "render_chat"):
        raise UserError("the run's tokenizer has no chat template", where=str(path),
                        hint="alignment starts from an SFT run trained with the BPE chat tokenizer")
    return model, tokenizer


def unique_prompts(pairs: list[PreferencePair]) -> list[list[Message]]:
    seen, prompts = set(), []
    for pair in pairs:
        key = repr(pair.messages())
        if key not in seen:
            seen.add(key)
            prompts.append(pair.messages())
    return prompts


def _encode(tokenizer, train: list[PreferencePair], held: list[PreferencePair], context: int):
    (train_enc, dropped_train), (held_enc, dropped_held) = (encode_pairs(tokenizer, train, context),
                                                            encode_pairs(tokenizer, held, context))
    counts = {"train_pairs": len(train_enc), "held_out_pairs": len(held_enc),
              "dropped_too_long": dropped_train + dropped_held}
    return train_enc, held_enc, counts


def _stage_inputs(cfg: PairStageConfig | PPOStageConfig) -> list[str | None]:
    return [cfg.sft, getattr(cfg, "reward", None), cfg.pairs.data]


def claim_stage_out(cfg: PairStageConfig | PPOStageConfig, kind: str, force: bool) -> None:
    """The output policy (`lm2llm.runs.check_out`) for the stage's `out`, before any work (its numbers were
    checked when its config was made)."""
    check_out(cfg.out, kind, force=force, inputs=_stage_inputs(cfg))


@contextmanager
def staging_run(cfg: PairStageConfig | PPOStageConfig, kind: str, force: bool) -> Iterator[RunDir]:
    """A run directory built under a temporary sibling name and renamed into place only when complete;
    on failure the partial directory is removed, so `out` never holds half a run. An earlier run of the
    same kind is replaced only with `force`."""
    with output_dir(cfg.out, kind, force=force, inputs=_stage_inputs(cfg)) as tmp:
        yield RunDir(tmp)


def train_reward(cfg: RewardStageConfig, *, force: bool = False) -> tuple[dict[str, float], RunDir]:
    """Train a reward model from an SFT run; returns held-out metrics and the run directory."""
    claim_stage_out(cfg, "reward", force)
    backbone, tokenizer = load_sft_run(cfg.sft)
    context = backbone.config.context_length
    train_pairs, held_pairs = cfg.pairs.load()
    train, held, counts = _encode(tokenizer, train_pairs, held_pairs, context)
    with staging_run(cfg, "reward", force) as run:
        run.write_config({"stage": "reward", **dataclasses.asdict(cfg), **counts})
        record_lineage(run.path, [cfg.pairs.data or "synthetic preference pairs"], parents=[cfg.sft])
        torch.manual_seed(cfg.seed)
        model = RewardModel(backbone)
        data = PreferenceBatches(train, held, pad_id=tokenizer.pad_id, batch_size=cfg.trainer.batch_size,
                                 seed=cfg.seed, block_size=context)
        before = evaluate_reward_model(model, data.eval_set(), cfg.margin)
        Trainer(model, RewardObjective(cfg.margin), data, cfg.trainer, run=run,
                write_weights=save_reward_model).fit()
        after = evaluate_reward_model(model, data.eval_set(), cfg.margin)
        # normalise on answers the SFT model itself gives to held-out prompts: the distribution PPO starts from
        prompts = [prompt_ids(tokenizer, m) for m in unique_prompts(held_pairs)][:cfg.reference_samples]
        answers = generate_answers(load_model(cfg.sft), tokenizer, prompts,
                                   SamplingConfig(max_new_tokens=context // 2, seed=cfg.seed))
        with torch.no_grad():
            model.eval()
            raw = model.score(answers.ids, answers.attention)
            model.normalise(raw)
        metrics = {"held_out_accuracy_before": before["accuracy"], "held_out_accuracy": after["accuracy"],
                   "held_out_loss": after["loss"], "held_out_margin": after["margin"],
                   "reference_mean_raw": raw.mean().item(), "reference_std_raw": raw.std().item(), **counts}
        run.log_metrics({"event": "finished", **metrics})
        save_reward_model(model, run.path)
        tokenizer.save(run.path)
    return metrics, RunDir(cfg.out)


def train_dpo(cfg: DPOStageConfig, *, force: bool = False) -> tuple[dict[str, float], RunDir]:
    """DPO (or IPO) from an SFT run, the SFT model itself being the frozen reference."""
    claim_stage_out(cfg, "dpo", force)
    policy, tokenizer = load_sft_run(cfg.sft)
    context = policy.config.context_length
    train, held, counts = _encode(tokenizer, *cfg.pairs.load(), context)
    with staging_run(cfg, "dpo", force) as run:
        run.write_config({"stage": "dpo", **dataclasses.asdict(cfg), **counts})
        record_lineage(run.path, [cfg.pairs.data or "synthetic preference pairs"], parents=[cfg.sft])
        objective = DPOObjective(cfg.beta, cfg.loss_type)
        data = PreferenceBatches(train, held, pad_id=tokenizer.pad_id, batch_size=cfg.trainer.batch_size,
                                 seed=cfg.seed, block_size=context, extra_train=reference_logprobs(policy, train, tokenizer.pad_id),
                                 extra_held_out=reference_logprobs(policy, held, tokenizer.pad_id))
        before = evaluate_dpo(policy, data.eval_set(), objective)
        Trainer(policy, objective, data, cfg.trainer, run=run, write_weights=save_model).fit()
        after = evaluate_dpo(policy, data.eval_set(), objective)
        metrics = {"held_out_loss_before": before["loss"],
                   **{f"held_out_{k}": v for k, v in after.items() if k != "pairs"}, **counts}
        run.log_metrics({"event": "finished", **metrics})
        save_model(policy, run.path)
        tokenizer.save(run.path)
    return metrics, RunDir(cfg.out)


def run_ppo(cfg: PPOStageConfig, *, force: bool = False) -> tuple[list[dict[str, float]], RunDir]:
    """PPO from an SFT run against a trained reward model; returns the per-step statistics."""
    claim_stage_out(cfg, "ppo", force)
    policy, tokenizer = load_sft_run(cfg.sft)
    reward_model = load_reward_model(cfg.reward)
    if reward_model.config.vocab_size != policy.config.vocab_size:
        raise UserError("the reward model and the SFT model use different vocabularies", where=str(cfg.reward),
                        hint="train the reward model from the same SFT run")
    prompts = [prompt_ids(tokenizer, m) for m in unique_prompts(cfg.pairs.load()[0])]
    if len(prompts) < cfg.ppo.batch_size:
        raise UserError(f"{len(prompts)} distinct prompts, fewer than batch_size {cfg.ppo.batch_size}",
                        where="prompts", hint="use more data or a smaller batch")
    with staging_run(cfg, "ppo", force) as run:
        run.write_config({"stage": "ppo", **dataclasses.asdict(cfg), "prompts": len(prompts)})
        record_lineage(run.path, [], parents=[cfg.sft, cfg.reward])
        torch.manual_seed(cfg.ppo.seed)
        trainer = PPOTrainer(policy, reward_model, cfg.ppo, end_of_turn_id=tokenizer.end_of_turn_id,
                             pad_id=tokenizer.pad_id)
        order = random.Random(cfg.ppo.seed)
        history = []
        for _ in range(cfg.max_steps):
            stats = trainer.step(order.sample(prompts, cfg.ppo.batch_size))
            run.log_metrics(stats)
            history.append(stats)
        save_model(policy, run.path)
        tokenizer.save(run.path)
    return history, RunDir(cfg.out)
