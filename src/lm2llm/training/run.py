"""`train(...)`: a training run from a config — data, tokenizer, model, Trainer, run directory.

This is what `lm2llm train` calls. It checks everything that can be checked before training starts
(the data/tokenizer vocabularies agree, the context fits the model, the batch splits over processes),
writes `config.json`, the tokenizer and, at the end, `model.safetensors` + `model_config.json` and
`loss_curve.png`. Under `torchrun` every process runs this; only process 0 writes.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from pathlib import Path
from typing import Any

import torch

from lm2llm.data.lineage import record_lineage
from lm2llm.data.shards import TokenShards
from lm2llm.errors import UserError
from lm2llm.runs import RunDir, check_out, claim_out
from lm2llm.tokenizer import Tokenizer, load_tokenizer
from lm2llm.tokenizer.chat import CLS_TOKEN, ENCODER_TOKENS, MASK_TOKEN
from lm2llm.training.checkpoint import find_checkpoint
from lm2llm.training.config import RunConfig, build_config, coerce_value
from lm2llm.training.curves import plot_loss_curve
from lm2llm.training.data import ShardBatches
from lm2llm.training.distributed import close_world, init_world
from lm2llm.training.masking import MaskedBatches
from lm2llm.training.objectives import make_objective
from lm2llm.training.sharded import full_model
from lm2llm.training.trainer import Trainer, TrainResult, resolve_device, seed_everything

RNN_DEFAULT_BLOCK = 128  # recurrent models have no context limit; this is how far back gradients flow


def find_tokenizer(cfg: RunConfig) -> Tokenizer:
    data = Path(cfg.data)
    recorded = TokenShards(data).meta.get("tokenizer_dir", "tokenizer")  # 'data prepare' records where it is
    candidates = [Path(cfg.tokenizer)] if cfg.tokenizer else [data / recorded, data]
    for candidate in candidates:
        if (candidate / "tokenizer_kind.json").is_file() or (candidate / "tokenizer.json").is_file():
            return load_tokenizer(candidate)
    raise UserError("no tokenizer found", where=str(candidates[0]),
                    hint="save it with the shards as <data>/tokenizer, or pass --set tokenizer=DIR")


def _model_overrides(cfg: RunConfig, vocab_size: int) -> dict[str, Any]:
    """`model.X` values (strings from --set) converted to the model config's field types."""
    from lm2llm.models import config_for

    config_cls = type(config_for(cfg.model, cfg.preset))
    hints = typing.get_type_hints(config_cls)
    out = {}
    for key, value in cfg.model_overrides.items():
        if key not in hints:
            names = ", ".join(f.name for f in dataclasses.fields(config_cls))
            raise UserError(f"unknown model key 'model.{key}'", where="--set", hint=f"{cfg.model} has: {names}")
        out[key] = coerce_value(f"model.{key}", value, hints[key], "--set")
    if out.setdefault("vocab_size", vocab_size) < vocab_size:
        raise UserError(f"model.vocab_size {out['vocab_size']} is smaller than the data's vocabulary ({vocab_size})",
                        where="model.vocab_size")
    return out


def prepare(cfg: RunConfig) -> tuple[torch.nn.Module, ShardBatches, Tokenizer]:
    """Validated data, tokenizer and a freshly initialised model for `cfg` (seeded, so every process agrees)."""
    from lm2llm.models import build_model

    if not cfg.data:
        raise UserError("no training data given", where="--data", hint="a token-shard directory (train.bin, val.bin, meta.json)")
    shards = TokenShards(cfg.data)
    tokenizer = find_tokenizer(cfg)
    if tokenizer.vocab_size != shards.vocab_size:
        raise UserError(f"the tokenizer has {tokenizer.vocab_size} tokens but the shards were written for "
                        f"{shards.vocab_size}", where=str(cfg.data), hint="use the tokenizer the shards were made with")
    seed_everything(cfg.seed)
    model = build_model(cfg.model, cfg.preset, **_model_overrides(cfg, shards.vocab_size))
    context = getattr(model.config, "context_length", None)
    block_size = cfg.block_size or context or RNN_DEFAULT_BLOCK
    if context is not None and block_size > context:
        raise UserError(f"block_size {block_size} is longer than the model's context ({context})", where="block_size",
                        hint=f"use block_size <= {context} or set model.context_length")
    for split in ("train", "val"):
        if shards.num_tokens(split) < block_size + 1:
            raise UserError(f"the {split} split has {shards.num_tokens(split)} tokens, too few for block_size {block_size}",
                            where=str(cfg.data), hint="use more data or a shorter block_size")
    data = ShardBatches(shards, block_size=block_size, batch_size=cfg.trainer.batch_size, seed=cfg.seed,
                        eval_batches=cfg.trainer.eval_batches, eval_batch_size=cfg.trainer.eval_batch_size or None,
                        tokenizer=tokenizer)
    if (cfg.model == "bert") != (cfg.objective == "masked_lm"):
        raise UserError(f"model {cfg.model!r} does not train with objective {cfg.objective!r}", where="objective",
                        hint="bert pre-trains with --set objective=masked_lm; decoders with causal_lm")
    if cfg.objective == "masked_lm":
        data = masked_lm_batches(data, tokenizer, cfg.seed, rate=model.config.mask_rate)
    return model, data, tokenizer


def masked_lm_batches(data: ShardBatches, tokenizer: Tokenizer, seed: int, rate: float = 0.15) -> MaskedBatches:
    """BERT's view of the same windows (each starting with <|cls|>, `rate` of the rest hidden; the model's
    `BertConfig.mask_rate`); needs the encoder's tokens."""
    fast = getattr(tokenizer, "fast", None)
    missing = [token for token in ENCODER_TOKENS if fast is None or fast.token_to_id(token) is None]
    if missing:
        raise UserError(f"BERT needs the special token{'s' * (len(missing) > 1)} {' and '.join(missing)}, "
                        "which this tokenizer lacks", where="tokenizer",
                        hint="train one with 'lm2llm tokenizer train --encoder-tokens ...' and prepare the data with it")
    special = [fast.token_to_id(token) for token in tokenizer.special_tokens]
    return MaskedBatches(data, mask_id=fast.token_to_id(MASK_TOKEN), vocab_size=tokenizer.vocab_size,
                         special_ids=special, seed=seed, rate=rate, cls_id=fast.token_to_id(CLS_TOKEN))


def train(cfg: RunConfig, *, resume: bool = False, force: bool = False) -> tuple[TrainResult, RunDir]:
    """Run (or resume) a training run into `cfg.out`; returns the result and the run directory. `force`
    replaces an earlier training run there (see `lm2llm.runs.check_out`)."""
    if not cfg.out:
        raise UserError("no output directory given", where="--out")
    out = Path(cfg.out)
    if not resume and not force and find_checkpoint(out) is not None:
        raise UserError("this run directory already holds a checkpoint", where=str(out),
                        hint="add --resume to continue it, --force to replace it, or choose another --out")
    check_out(out, "train", force=force, reuse=resume, inputs=[cfg.data])
    knobs = cfg.trainer
    device_type = "cuda" if knobs.device == "cuda" or (knobs.device == "auto" and torch.cuda.is_available()) else "cpu"
    world = init_world(device_type)
    try:
        if world.distributed or knobs.threads:
            # processes on one machine share its cores: give each its share instead of oversubscribing
            torch.set_num_threads(knobs.threads or max(1, (os.cpu_count() or 1) // world.local_size))
        model, data, tokenizer = prepare(cfg)
        from lm2llm.models import save_model

        run = RunDir(out)
        device = resolve_device(knobs.device, world)
        trainer = Trainer(model, make_objective(cfg.objective), data, knobs, run=run, world=world, device=device,
                          write_weights=save_model)
        if world.is_main:
            claim_out(out, "train", force=force, reuse=resume)
            if not resume:  # metrics of an earlier attempt that died before its first checkpoint
                (run / RunDir.METRICS).unlink(missing_ok=True)
            run.write_config({"stage": "train", "train": cfg.to_dict(),
                              "model": {"family": cfg.model, "config": dataclasses.asdict(model.config),
                                        "num_params": sum(p.numel() for p in model.parameters())},
                              "block_size": data.block_size, "processes": world.size,
                              "micro_steps": trainer.micro_steps, "device": str(trainer.device),
                              "dtype": str(trainer.dtype).removeprefix("torch."),
                              "threads": torch.get_num_threads()})
            record_lineage(run.path, [cfg.data])
            tokenizer.save(run.path)
        world.barrier()
        if resume:
            step = trainer.resume()
            if world.is_main:
                run.log_metrics({"event": "resumed", "step": step})
        result = trainer.fit()
        model = full_model(trainer.model, world)  # with fsdp: gathered from the shards, on process 0 only
        if world.is_main:
            save_model(model, run.path)
            run.log_metrics({"event": "finished", "step": trainer.step, "tokens_per_s": result.tokens_per_second,
                             "ms_per_step": result.ms_per_step, "mfu": result.mfu, "seconds": result.seconds})
            plot_loss_curve(run.read_metrics(), run / "loss_curve.png",
                            title=f"{cfg.model} {cfg.preset or ''} on {Path(cfg.data).name}")
            if cfg.sample_tokens and cfg.objective != "masked_lm":  # an encoder does not generate
                result.sample = sample_text(model, tokenizer, cfg.sample_tokens, cfg.seed)
                run.log_metrics({"event": "sample", "step": trainer.step, "text": result.sample})
        # the other processes wait for process 0's writing instead of leaving the group while it still works
        # (suspected cause of a gloo abort seen once in CI)
        world.barrier()
        return result, run
    finally:
        close_world(world)


def sample_text(model: torch.nn.Module, tokenizer: Tokenizer, tokens: int, seed: int, prompt: str = "\n") -> str:
    """A short sample (temperature 0.8) so a run shows what it learned, not only a loss."""
    from lm2llm.inference.sampling import SamplingConfig
    from lm2llm.inference.text import TextGenerator

    config = SamplingConfig(max_new_tokens=tokens, temperature=0.8, top_k=50, seed=seed)
    return TextGenerator(model.cpu().float(), tokenizer).generate([prompt], config)[0].text or ""


def resume_config(out: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    """The config a run was started with (from its config.json), with command-line overrides on top. Reads
    today's record (the trainer's knobs under "trainer") and the flat one of runs from before the split."""
    where = str(Path(out) / "config.json")
    saved = RunDir(out).read_config().get("train")
    if not isinstance(saved, dict):
        raise UserError("config.json has no 'train' section", where=where)
    saved = dict(saved)
    model_overrides = saved.pop("model_overrides", {})
    return build_config(saved, overrides, where=where, model_overrides=model_overrides)
