"""The training engine on a tiny model: exact resume, accumulation-invariant loss, safe checkpoints, config errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lm2llm.data.shards import ShardWriter, TokenShards
from lm2llm.errors import UserError
from lm2llm.runs import RunDir
from lm2llm.tokenizer import CharTokenizer
from lm2llm.training import checkpoint as ckpt
from lm2llm.training.config import build_config, parse_set, read_config_file
from lm2llm.training.data import ShardBatches
from lm2llm.training.objectives import IGNORE_INDEX, CausalLM
from lm2llm.training.optim import Muon, MuonAdamW, build_optimizer, decay_groups, hidden_matrices
from lm2llm.training.schedule import learning_rate
from lm2llm.training.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_torch_thread", "known_peak")

TEXT = ("The quick brown fox jumps over the lazy dog. 다람쥐 헌 쳇바퀴에 타고파. " * 60)


class TinyLM(nn.Module):
    """A causal model small enough for unit tests of the loop (the real ones live in lm2llm.models)."""

    def __init__(self, vocab: int, dim: int = 16, block: int = 8):
        super().__init__()
        self.tok = nn.Embedding(vocab, dim)
        self.pos = nn.Embedding(block, dim)
        self.norm = nn.LayerNorm(dim)
        self.mix = nn.Linear(dim, dim)
        self.drop = nn.Dropout(0.1)  # uses the global RNG, so resume must restore it
        self.head = nn.Linear(dim, vocab, bias=False)
        self.head.weight = self.tok.weight

    def forward(self, ids, targets=None):
        t = ids.shape[1]
        x = self.tok(ids) + self.pos(torch.arange(t))
        h = torch.tanh(self.mix(self.norm(x)))
        x = x + self.drop(h.cumsum(1) / torch.arange(1, t + 1).view(1, t, 1))  # causal: a running mean
        logits = self.head(x)
        loss = None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return logits, loss


@pytest.fixture
def shards(tmp_path):
    tok = CharTokenizer.train([TEXT])
    ids = tok.encode(TEXT)
    writer = ShardWriter(tmp_path / "data", tok.vocab_size)
    cut = int(0.9 * len(ids))
    writer.write("train", ids[:cut])
    writer.write("val", ids[cut:])
    writer.close(tokenizer="char")
    tok.save(tmp_path / "data" / "tokenizer")
    return TokenShards(tmp_path / "data"), tok


def make_trainer(shards, run_path=None, **overrides):
    data_shards, tok = shards
    values = {"batch_size": 8, "max_steps": 10, "warmup_steps": 2, "lr": 3e-2, "min_lr": 3e-3,
              "eval_every": 5, "eval_batches": 2, "log_every": 1, "dtype": "float32", "device": "cpu",
              "progress": False, "seed": 7, **overrides}
    cfg = build_config(values)
    torch.manual_seed(cfg.seed)
    model = TinyLM(data_shards.vocab_size)
    data = ShardBatches(data_shards, block_size=8, batch_size=cfg.trainer.batch_size, seed=cfg.seed,
                        eval_batches=cfg.trainer.eval_batches, eval_batch_size=cfg.trainer.eval_batch_size or None,
                        tokenizer=tok)
    run = RunDir.create(run_path) if run_path else None
    return Trainer(model, CausalLM(), data, cfg.trainer, run=run)


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_resumed_run_repeats_the_uninterrupted_loss_sequence(shards, tmp_path, optimizer):
    whole = make_trainer(shards, optimizer=optimizer).fit()
    first = make_trainer(shards, tmp_path / "run", checkpoint_every=3, optimizer=optimizer)
    first.fit(stop_at=6)  # "killed" after step 6; its last checkpoint is at step 6
    second = make_trainer(shards, tmp_path / "run", checkpoint_every=3, optimizer=optimizer)
    assert second.resume() == 6
    rest = second.fit()
    resumed = dict(rest.losses)
    for step, loss in whole.losses:
        if step > 6:
            assert abs(resumed[step] - loss) <= 1e-6, (step, resumed[step], loss)
    assert rest.evals[-1]["val_loss"] == pytest.approx(whole.evals[-1]["val_loss"], abs=1e-6)


def test_loss_scale_does_not_depend_on_accumulation(shards):
    one = make_trainer(shards, max_steps=4).fit()
    four = make_trainer(shards, max_steps=4, micro_batch_size=2).fit()
    for (_, a), (_, b) in zip(one.losses, four.losses, strict=True):
        assert abs(a - b) < 1e-5


def test_masked_targets_count_only_their_tokens():
    torch.manual_seed(0)
    model = TinyLM(10).eval()
    ids = torch.randint(0, 10, (2, 8))
    targets = torch.randint(0, 10, (2, 8))
    targets[:, :5] = IGNORE_INDEX
    objective = CausalLM()
    batch = {"ids": ids, "targets": targets}
    assert objective.weight(batch) == 6
    logits, _ = model(ids)
    expected = F.cross_entropy(logits[:, 5:].flatten(0, 1), targets[:, 5:].flatten(), reduction="sum")
    assert objective.loss_sum(model, batch).item() == pytest.approx(expected.item(), rel=1e-6)


def test_metrics_eval_and_bits_per_byte(shards, tmp_path):
    trainer = make_trainer(shards, tmp_path / "run", max_steps=5)
    result = trainer.fit()
    records = RunDir(tmp_path / "run").read_metrics()
    steps = [r for r in records if "loss" in r]
    evals = [r for r in records if "val_loss" in r]
    assert [r["step"] for r in steps] == [1, 2, 3, 4, 5] and evals[-1]["step"] == 5
    ev = evals[-1]
    assert ev["val_ppl"] == pytest.approx(np.exp(ev["val_loss"]))
    # 16 windows × 8 target chars; Korean characters take 3 UTF-8 bytes, so bpb < loss / ln 2 per char
    assert 0 < ev["val_bpb"] < ev["val_loss"] / np.log(2)
    assert result.tokens_per_second > 0 and result.mfu > 0


def test_time_budget_counts_wall_or_cpu_time(shards, monkeypatch):
    """`clock="cpu"` spends the budget in this process's CPU time: a machine busy with others does not shrink it."""
    import time

    ticks = iter(range(1000))
    monkeypatch.setattr(time, "process_time", lambda: float(next(ticks)))  # one CPU second per reading
    result = make_trainer(shards, max_steps=100, max_seconds=3.0, clock="cpu", eval_every=100).fit()
    assert result.steps == 3 and result.stopped_early
    assert result.evals[-1]["cpu_s"] == 3.0 and "elapsed_s" in result.evals[-1]
    assert make_trainer(shards, max_steps=4, max_seconds=3600.0).fit().steps == 4  # wall clock by default
    with pytest.raises(UserError, match="clock"):
        build_config({"clock": "gpu"})


def test_target_loss_ends_the_run_at_the_first_evaluation_that_reaches_it(shards):
    """Time to quality: `train_s` counts the training steps alone, so evaluation does not inflate it."""
    full = make_trainer(shards, max_steps=20, eval_every=2).fit()
    target = full.evals[3]["val_loss"]  # step 8's, or an earlier evaluation's if one was as low
    first = next(e for e in full.evals if e["val_loss"] <= target)
    stopped = make_trainer(shards, max_steps=20, eval_every=2, target_loss=target).fit()
    assert stopped.steps == first["step"] and stopped.stopped_early
    assert [e["val_loss"] for e in stopped.evals] == [e["val_loss"] for e in full.evals[:len(stopped.evals)]]
    spent = [e["train_s"] for e in stopped.evals]
    assert spent == sorted(spent) and 0 < spent[-1] <= stopped.evals[-1]["elapsed_s"]
    assert make_trainer(shards, max_steps=6, eval_every=2).fit().steps == 6  # target_loss 0: never
    with pytest.raises(UserError, match="target_loss"):
        build_config({"target_loss": -1.0})


def test_eval_batch_size_fixes_the_validation_windows_across_batch_sizes(shards):
    def windows(batch_size):
        trainer = make_trainer(shards, batch_size=batch_size, eval_batch_size=6)
        return torch.cat([b["ids"] for b in trainer.data.eval_set()])

    assert windows(8).shape == (12, 8) and torch.equal(windows(8), windows(4))


def test_time_schedule_decays_by_the_clock_when_time_runs_out_first(shards, monkeypatch):
    import time

    ticks = iter(range(1000))
    monkeypatch.setattr(time, "process_time", lambda: float(next(ticks)))  # one CPU second per reading
    settings = {"max_steps": 1000, "max_seconds": 8.0, "clock": "cpu", "warmup_steps": 2, "lr": 1e-2, "min_lr": 1e-3}
    by_steps = make_trainer(shards, **settings)
    by_steps.fit()
    ticks = iter(range(1000))
    by_time = make_trainer(shards, **settings, time_schedule=True)
    by_time.fit()
    assert by_steps.step == by_time.step == 8
    assert by_steps.lr == pytest.approx(1e-2, rel=1e-3)  # 8 of 1,000 steps: the cosine has barely begun
    # the 8th step starts with 7 of 8 seconds spent: 7/8 of the way down the cosine
    assert by_time.lr == pytest.approx(learning_rate(875, lr=1e-2, min_lr=1e-3, warmup_steps=2, max_steps=1000))


def test_checkpoint_killed_mid_write_keeps_the_last_good_one(shards, tmp_path):
    trainer = make_trainer(shards, tmp_path / "run", max_steps=4, eval_every=2)
    trainer.fit(stop_at=2)
    good = (tmp_path / "run" / "checkpoint" / "model.safetensors").read_bytes()

    def dies_midway(model, directory):
        (directory / "model.safetensors").write_bytes(b"partial")
        raise KeyboardInterrupt  # what a kill looks like from inside the process

    trainer.write_weights = dies_midway
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    run = tmp_path / "run"
    assert ckpt.find_checkpoint(run) == run / "checkpoint"
    assert (run / "checkpoint" / "model.safetensors").read_bytes() == good
    assert not list(run.glob(".checkpoint.tmp-*"))
    again = make_trainer(shards, run, max_steps=4)
    assert again.resume() == 2


def test_weight_decay_groups_skip_embeddings_biases_norms():
    model = TinyLM(10)
    decay, no_decay = decay_groups(model)
    assert [p is model.mix.weight for p in decay] == [True]
    names = {id(p): n for n, p in model.named_parameters()}
    assert sorted(names[id(p)] for p in no_decay) == ["mix.bias", "norm.bias", "norm.weight", "pos.weight", "tok.weight"]


def test_muon_matches_torch_muon_and_batches_by_shape():
    """Our batched Muon against torch.optim.Muon: the same bf16 Newton–Schulz, so the same parameters."""
    torch.manual_seed(0)
    shapes = [(16, 16), (16, 16), (48, 16), (16, 48), (48, 16)]
    ours = [nn.Parameter(0.1 * torch.randn(*s)) for s in shapes]
    theirs = [nn.Parameter(p.detach().clone()) for p in ours]
    mine = Muon(ours, lr=0.02, weight_decay=0.1, momentum=0.9)
    reference = torch.optim.Muon(theirs, lr=0.02, weight_decay=0.1, momentum=0.9, adjust_lr_fn="original")
    for _ in range(3):
        for a, b in zip(ours, theirs, strict=True):
            a.grad = torch.randn_like(a)
            b.grad = a.grad.clone()
        mine.step()
        reference.step()
    assert max((a - b).abs().max().item() for a, b in zip(ours, theirs, strict=True)) <= 1e-6
    with pytest.raises(ValueError, match="matrices only"):
        Muon([nn.Parameter(torch.zeros(3))])


def test_muon_takes_hidden_matrices_and_adamw_the_rest(shards):
    model = TinyLM(10)
    assert hidden_matrices(model) == [model.mix.weight]  # the head is the tied embedding: AdamW's
    trainer = make_trainer(shards, optimizer="muon", lr=1e-3, min_lr=1e-4, muon_lr=0.05)
    assert isinstance(trainer.optimizer, MuonAdamW)
    muon_group, *adamw_groups = trainer.optimizer.param_groups
    assert muon_group["params"] == [trainer.model.mix.weight]
    assert sum(len(g["params"]) for g in adamw_groups) == 5
    trainer.fit(stop_at=3)
    assert muon_group["lr"] == pytest.approx(50 * adamw_groups[0]["lr"])  # one schedule, scaled
    with pytest.raises(UserError, match="no trainable hidden linear layer"):
        build_optimizer(nn.Embedding(4, 4), lr=1e-3, weight_decay=0.1, betas=(0.9, 0.99), eps=1e-8,
                        device_type="cpu", name="muon")


def test_schedules():
    kw = {"lr": 1.0, "min_lr": 0.1, "warmup_steps": 10, "max_steps": 100}
    assert learning_rate(0, **kw) == pytest.approx(0.1)
    assert learning_rate(9, **kw) == pytest.approx(1.0)
    assert learning_rate(100, **kw) == pytest.approx(0.1)
    assert learning_rate(55, **kw) == pytest.approx(0.55)
    wsd = {**kw, "schedule": "wsd", "decay_fraction": 0.2}
    assert learning_rate(79, **wsd) == 1.0
    assert learning_rate(90, **wsd) == pytest.approx(0.55)
    assert learning_rate(100, **wsd) == pytest.approx(0.1)


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(UserError, match="unknown key 'max_step'.*did you mean 'max_steps'"):
        build_config({"max_step": 1})
    with pytest.raises(UserError, match="'max_steps' must be int"):
        build_config(overrides=parse_set(["max_steps=ten"]))
    with pytest.raises(UserError, match="'lr' must be float"):
        build_config({"lr": "fast"})
    with pytest.raises(UserError, match="schedule"):
        build_config({"schedule": "linear"})
    with pytest.raises(UserError, match="key=value"):
        parse_set(["lr"])
    path = tmp_path / "train.toml"
    path.write_text('lr = 3e-4\nmax_steps = 50\n# 한국어 주석\n[model]\nn_layer = 2\n', encoding="utf-8")
    cfg = build_config(read_config_file(path), parse_set(["model.n_head=2", "compile=false", "max_steps=60"]))
    assert (cfg.trainer.lr, cfg.trainer.max_steps, cfg.trainer.compile) == (3e-4, 60, False)
    assert cfg.model_overrides == {"n_layer": 2, "n_head": "2"}
    bad = tmp_path / "bad.toml"
    bad.write_text("lr = = 1", encoding="utf-8")
    with pytest.raises(UserError, match="invalid TOML"):
        read_config_file(bad)


# the "train" section of a run's config.json as `lm2llm train` wrote it before TrainerConfig was split off
PRE_SPLIT_RECORD = {
    "model": "lstm", "preset": None, "model_overrides": {"d_embed": 128, "d_hidden": 256, "n_layer": 2,
                                                         "use_torch": True},
    "data": "runs/data", "tokenizer": None, "out": "runs/lstm", "objective": "causal_lm", "block_size": 128,
    "batch_size": 8, "micro_batch_size": 0, "max_steps": 100000, "max_seconds": 90.0, "time_schedule": False,
    "clock": "cpu", "lr": 0.003, "min_lr": 0.0003, "schedule": "constant", "warmup_steps": 20, "decay_fraction": 0.2,
    "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.99, "eps": 1e-08, "optimizer": "adamw", "muon_lr": 0.02,
    "muon_momentum": 0.95, "grad_clip": 1.0, "dtype": "float32", "compile": False, "device": "cpu", "threads": 0,
    "seed": 0, "eval_every": 100, "eval_batches": 4, "log_every": 100, "checkpoint_every": 100000,
    "progress": False, "sample_tokens": 0,
}


def test_run_records_load_in_the_old_flat_and_the_new_nested_layout(tmp_path):
    from lm2llm.training.config import RunConfig, TrainerConfig
    from lm2llm.training.run import resume_config

    old, new = RunDir.create(tmp_path / "old"), RunDir.create(tmp_path / "new")
    old.write_config({"stage": "train", "train": PRE_SPLIT_RECORD})
    loaded = resume_config(old.path, parse_set(["max_steps=7"]))
    assert isinstance(loaded, RunConfig) and isinstance(loaded.trainer, TrainerConfig)
    assert (loaded.model, loaded.data, loaded.block_size, loaded.seed) == ("lstm", "runs/data", 128, 0)
    assert loaded.model_overrides["d_hidden"] == 256
    assert (loaded.trainer.max_steps, loaded.trainer.lr, loaded.trainer.clock) == (7, 0.003, "cpu")
    new.write_config({"stage": "train", "train": loaded.to_dict()})  # today's record: the knobs under "trainer"
    assert new.read_config()["train"]["trainer"]["max_steps"] == 7
    assert resume_config(new.path) == loaded
    flat = {k: v for k, v in PRE_SPLIT_RECORD.items() if k != "model_overrides"}
    assert build_config(flat, model_overrides=PRE_SPLIT_RECORD["model_overrides"]).to_dict() == {
        **{k: v for k, v in loaded.to_dict().items() if k != "trainer"},
        "trainer": {**loaded.trainer.to_dict(), "max_steps": 100000}}


def test_trainer_and_run_configs_check_themselves():
    from lm2llm.training.config import RunConfig, TrainerConfig, fine_tuning

    with pytest.raises(UserError, match="'batch_size' must be at least 1"):
        TrainerConfig(batch_size=0)
    with pytest.raises(UserError, match="'lr' must be a finite number"):
        fine_tuning(10, float("nan"))
    with pytest.raises(UserError, match="'block_size' must not be negative"):
        RunConfig(block_size=-1)
    preset = fine_tuning(40, 1e-3)
    assert (preset.max_steps, preset.min_lr, preset.warmup_steps, preset.eval_every) == (40, 1e-4, 4, 10)


def test_batch_must_split_evenly(shards):
    with pytest.raises(UserError, match="does not split"):
        make_trainer(shards, micro_batch_size=3)
