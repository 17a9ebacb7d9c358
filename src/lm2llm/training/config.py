"""The training configuration: two small dataclasses, filled from defaults, a TOML/JSON file and `--set` flags.

`TrainerConfig` holds the trainer's knobs (optimiser, schedule, batch, evaluation, checkpoints, device and
dtype) and is all the `Trainer` reads; `RunConfig` is the recipe of one `lm2llm train` run (model, data,
output, objective, seed) holding a `trainer`. Every value is checked when either is made (`__post_init__`),
however it is made, before any model is built, so a typo fails in a second with the key's name rather than
after an hour of training. Files and `--set` stay flat (`lr=3e-4`, `max_steps=50`): each key belongs to
exactly one of the two. `fine_tuning` is the one preset the short trainings share (SFT, reward model, DPO,
classification, the tour's small runs). Model-shape overrides live under `model.`
(`model.n_layer=4`) and are checked against the model's own config when it is built.

A run's `config.json` records `RunConfig.to_dict()` under "train", the trainer's knobs nested under
"trainer"; `build_config` reads that table as flat keys, so the flat records runs wrote before the split
load the same way (`lm2llm.training.run.resume_config`).
"""

from __future__ import annotations

import difflib
import json
import math
import tomllib
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from lm2llm.errors import UserError

SCHEDULES = ("cosine", "wsd", "constant")
OPTIMIZERS = ("adamw", "muon")
CLOCKS = ("wall", "cpu")
DTYPES = ("auto", "float32", "bfloat16", "float16")
DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass
class TrainerConfig:
    """What the `Trainer` needs besides the model, objective and data; `batch_size` is the *global* batch in
    sequences."""

    batch_size: int = 12  # sequences per optimizer step, summed over processes and accumulation
    micro_batch_size: int = 0  # sequences per forward pass; 0: batch_size / processes (no accumulation)
    max_steps: int = 2000
    max_seconds: float = 0.0  # stop early after this much training time (see `clock`); 0: no limit
    time_schedule: bool = False  # with max_seconds: the lr schedule follows the time spent when that is further
    # along than the steps, so a run stopped by the clock has still decayed to min_lr (time counts from the
    # start or the resume of this run, as max_seconds does)
    clock: str = "wall"  # what max_seconds counts: wall time, or "cpu" time of this process (fair on a shared machine)
    lr: float = 1e-3
    min_lr: float = 1e-4
    schedule: str = "cosine"
    warmup_steps: int = 100
    decay_fraction: float = 0.2  # WSD: the last fraction of steps that decays to min_lr
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    eps: float = 1e-8
    optimizer: str = "adamw"  # or "muon": Muon on the hidden matrices, AdamW (the settings above) on the rest
    muon_lr: float = 0.02  # Muon's peak learning rate; it follows the same schedule, scaled by muon_lr / lr
    muon_momentum: float = 0.95
    grad_clip: float = 1.0  # 0: no clipping
    dtype: str = "auto"  # auto: bf16 where the CPU/GPU supports it, else fp32
    compile: bool = False
    fsdp: bool = False  # under torchrun: shard weights, grads and AdamW state over processes (FSDP2); DCP checkpoints
    device: str = "auto"
    threads: int = 0  # torch threads per process; 0: cores / local processes
    eval_every: int = 250
    eval_batches: int = 20
    eval_batch_size: int = 0  # sequences per validation batch; 0: batch_size (fix it to compare runs of other batches)
    target_loss: float = 0.0  # stop at the first evaluation whose val loss is at or below this; 0: never
    log_every: int = 10
    checkpoint_every: int = 0  # 0: at every evaluation
    progress: bool = True

    def __post_init__(self) -> None:
        check_ranges(self)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunConfig:
    """One pre-training run: which model, on which data, into which directory, and its trainer's knobs."""

    model: str = "gpt"  # family: rnn, lstm, gru, gpt, llama, bert (whose objective defaults to masked_lm)
    preset: str | None = None
    model_overrides: dict[str, Any] = field(default_factory=dict)
    data: str = ""  # a token-shard directory (train.bin, val.bin, meta.json)
    tokenizer: str | None = None  # default: <data>/tokenizer
    out: str = ""
    objective: str = "causal_lm"
    block_size: int = 0  # 0: the model's context length
    seed: int = 1337
    sample_tokens: int = 200  # after training, sample this many tokens into metrics.jsonl (0: none)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def __post_init__(self) -> None:
        for key in ("block_size", "sample_tokens"):
            if getattr(self, key) < 0:
                raise UserError(f"'{key}' must not be negative", where="config")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fine_tuning(max_steps: int, lr: float, **knobs: Any) -> TrainerConfig:
    """The trainer of a short fine-tuning run: `max_steps` optimizer steps at peak `lr`, warm-up over a tenth
    of them, cosine decay to lr/10, an evaluation every quarter of the run, fp32 on the CPU (bf16 autocast
    costs more than it saves at these widths), no progress bar; `knobs` set any other field (or override
    these)."""
    return TrainerConfig(**{"max_steps": max_steps, "lr": lr, "min_lr": lr / 10, "warmup_steps": max_steps // 10,
                            "eval_every": max(1, max_steps // 4), "dtype": "float32", "device": "cpu",
                            "progress": False, **knobs})


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def coerce_value(key: str, value: Any, tp: Any, where: str) -> Any:
    """Check (and, for strings from the command line, convert) one value against its field type."""
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        options = typing.get_args(tp)
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null") and type(None) in options):
            return None
        tp = next(t for t in options if t is not type(None))
        origin = typing.get_origin(tp)
    if origin is dict:
        if not isinstance(value, dict):
            raise UserError(f"'{key}' must be a table of values, got {value!r}", where=where)
        return dict(value)
    if isinstance(value, str) and tp is not str:
        text = value.strip()
        try:
            if tp is bool:
                if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                return text.lower() in ("true", "1", "yes")
            return tp(float(text)) if tp is int and float(text).is_integer() else tp(text)
        except ValueError:
            raise UserError(f"'{key}' must be {_type_name(tp)}, got {value!r}", where=where) from None
    ok = (
        isinstance(value, bool) if tp is bool
        else isinstance(value, int) and not isinstance(value, bool) if tp is int
        else isinstance(value, (int, float)) and not isinstance(value, bool) if tp is float
        else isinstance(value, tp)
    )
    if not ok:
        raise UserError(f"'{key}' must be {_type_name(tp)}, got {type(value).__name__} {value!r}", where=where)
    return float(value) if tp is float else value


def check_ranges(cfg: TrainerConfig) -> None:
    """Every numeric and choice setting in its range (NaN included), before any work is done."""
    def bad(key: str, why: str, hint: str | None = None) -> UserError:
        return UserError(f"'{key}' {why}", where="config", hint=hint)

    choices = {"schedule": SCHEDULES, "optimizer": OPTIMIZERS, "dtype": DTYPES, "device": DEVICES, "clock": CLOCKS}
    for key, allowed in choices.items():
        if getattr(cfg, key) not in allowed:
            raise bad(key, f"is {getattr(cfg, key)!r}", hint=f"choose from {', '.join(allowed)}")
    for key in ("batch_size", "max_steps", "eval_batches", "log_every", "eval_every"):
        if getattr(cfg, key) < 1:
            raise bad(key, "must be at least 1")
    for key in ("micro_batch_size", "warmup_steps", "threads", "checkpoint_every", "eval_batch_size"):
        if getattr(cfg, key) < 0:
            raise bad(key, "must not be negative")
    for key in ("lr", "min_lr", "weight_decay", "grad_clip", "max_seconds", "eps", "muon_lr", "target_loss"):
        value = getattr(cfg, key)
        if not value >= 0 or (key != "max_seconds" and not math.isfinite(value)):  # NaN fails every comparison
            raise bad(key, f"must be a finite number >= 0, got {value!r}")
    if cfg.min_lr > cfg.lr:
        raise bad("min_lr", f"({cfg.min_lr}) is above lr ({cfg.lr})")
    if not 0 <= cfg.decay_fraction <= 1:
        raise bad("decay_fraction", "must be between 0 and 1")
    if not (0 <= cfg.beta1 < 1 and 0 <= cfg.beta2 < 1):
        raise bad("beta1/beta2", "must be in [0, 1)")
    if not 0 <= cfg.muon_momentum < 1:
        raise bad("muon_momentum", "must be in [0, 1)")


RUN_KEYS = {f.name for f in fields(RunConfig)} - {"trainer", "model_overrides"}
TRAINER_KEYS = {f.name for f in fields(TrainerConfig)}


def build_config(file_values: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None,
                 where: str = "config", *, model_overrides: dict[str, Any] | None = None) -> RunConfig:
    """Defaults, then a config file's values, then command-line overrides; `model.X` keys go to the model,
    on top of `model_overrides` (model-shape values a caller already holds as a dict). Keys are flat; a
    `[trainer]` table (as a run's config.json records it) is read as its keys."""
    types_of = {**typing.get_type_hints(TrainerConfig), **typing.get_type_hints(RunConfig)}
    run_values: dict[str, Any] = {}
    trainer_values: dict[str, Any] = {}
    model_overrides = dict(model_overrides or {})
    for source, items in ((where, file_values or {}), ("--set", overrides or {})):
        items = dict(items)
        if isinstance(items.get("model"), dict):  # a [model] table in TOML
            model_overrides.update(items.pop("model"))
        if isinstance(items.get("trainer"), dict):  # a [trainer] table, or a config.json record
            items = {**items.pop("trainer"), **items}
        for key, value in items.items():
            if key.startswith("model."):
                model_overrides[key.removeprefix("model.")] = value
                continue
            if key not in RUN_KEYS | TRAINER_KEYS:
                close = difflib.get_close_matches(key, sorted(RUN_KEYS | TRAINER_KEYS), n=1)
                raise UserError(f"unknown key '{key}'", where=source,
                                hint=f"did you mean '{close[0]}'?" if close else "see 'lm2llm train --help'")
            target = trainer_values if key in TRAINER_KEYS else run_values
            target[key] = coerce_value(key, value, types_of[key], source)
    if run_values.get("model") == "bert" and "objective" not in run_values:
        run_values["objective"] = "masked_lm"  # each family pre-trains with its own objective unless told otherwise
    return RunConfig(**run_values, model_overrides=model_overrides, trainer=TrainerConfig(**trainer_values))


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A TOML or JSON file of config keys (a `[model]` table holds model overrides)."""
    p = Path(path)
    if not p.is_file():
        raise UserError("config file not found", where=str(p))
    text = p.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if p.suffix == ".json" else tomllib.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"invalid JSON at line {exc.lineno}: {exc.msg}", where=str(p)) from exc
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"invalid TOML: {exc}", where=str(p)) from exc
    if not isinstance(data, dict):
        raise UserError("the config must be an object of keys", where=str(p))
    return data


def parse_set(pairs: list[str]) -> dict[str, str]:
    """`--set key=value` flags into a dict (values stay strings; `build_config` converts them)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"expected key=value, got {pair!r}", where="--set")
        out[key.strip()] = value
    return out
