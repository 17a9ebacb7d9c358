"""`lm2llm train` end to end on tiny GPTs: the run directory, errors, kill-and-resume, DDP, bf16."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SRC

from lm2llm.data.shards import ShardWriter
from lm2llm.runs import RunDir
from lm2llm.tokenizer import CharTokenizer, load_tokenizer

TEXT = ("def add(a, b):\n    return a + b  # 두 수를 더한다\n\nThe list type is mutable. 리스트는 바뀔 수 있다.\n" * 80)
TINY = ["--set", "model.n_layer=1", "--set", "model.n_head=2", "--set", "model.d_model=32",
        "--set", "model.context_length=32", "--set", "batch_size=8", "--set", "eval_batches=2",
        "--set", "log_every=1", "--set", "dtype=float32", "--set", "warmup_steps=2", "--set", "lr=1e-2",
        "--set", "threads=1"]  # one thread: tests share a busy machine

pytestmark = pytest.mark.usefixtures("known_peak")


@pytest.fixture
def data_dir(tmp_path):
    tok = CharTokenizer.train([TEXT])
    ids = tok.encode(TEXT)
    cut = int(0.9 * len(ids))
    writer = ShardWriter(tmp_path / "shards", tok.vocab_size)
    writer.write("train", ids[:cut])
    writer.write("val", ids[cut:])
    writer.close(tokenizer="char")
    tok.save(tmp_path / "shards" / "tokenizer")
    return tmp_path / "shards"


def losses(run) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in RunDir(run).read_metrics() if "loss" in r}


def test_train_writes_a_complete_run_directory(cli, data_dir, tmp_path):
    from lm2llm.models import load_model

    out = tmp_path / "run"
    result = cli("train", "--model", "gpt", "--data", data_dir, "--out", out, *TINY,
                 "--set", "max_steps=6", "--set", "eval_every=3", "--json")
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert summary["steps"] == 6 and summary["val_loss"] < 4.0 and summary["val_bpb"] > 0
    assert 0 < summary["train_s"] <= summary["seconds"]  # the training steps alone, evaluations excluded
    config = RunDir(out).read_config()
    assert config["train"]["trainer"]["max_steps"] == 6 and config["model"]["config"]["d_model"] == 32
    model = load_model(out)
    assert model.config.n_layer == 1
    assert load_tokenizer(out).encode("리스트") == load_tokenizer(data_dir / "tokenizer").encode("리스트")
    assert (out / "loss_curve.png").stat().st_size > 1000
    assert (out / "checkpoint" / "optimizer.safetensors").is_file()
    assert sorted(losses(out)) == [1, 2, 3, 4, 5, 6]
    lineage = json.loads((out / "lineage.json").read_text())  # the data this run was trained on
    files = {Path(f["path"]).name: f["sha256"] for f in lineage["data"][0]["files"]}
    assert files["train.bin"] == hashlib.sha256((data_dir / "train.bin").read_bytes()).hexdigest()
    assert "licence" in (out / "DATA.md").read_text()
    again = cli("train", "--model", "gpt", "--data", data_dir, "--out", out, *TINY)
    assert again.code == 2 and "--resume" in again.err


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "max_stpes=3"], "unknown key 'max_stpes'.*max_steps"),
    (["--set", "max_steps=many"], "'max_steps' must be int"),
    (["--set", "model.n_layers=2"], "unknown model key 'model.n_layers'"),
    (["--set", "block_size=64"], "block_size 64 is longer than the model's context \\(32\\)"),
    (["--set", "model.vocab_size=5"], "smaller than the data's vocabulary"),
    (["--set", "batch_size=6", "--set", "micro_batch_size=4"], "does not split"),
])
def test_train_rejects_bad_config_with_one_line(cli, data_dir, tmp_path, args, message):
    result = cli("train", "--model", "gpt", "--data", data_dir, "--out", tmp_path / "run", *TINY, *args)
    assert result.code == 2
    assert len(result.err.strip().splitlines()) == 1


    assert re.search(message, result.err), result.err


def test_train_rejects_tokenizer_that_does_not_match_the_data(cli, data_dir, tmp_path):
    other = CharTokenizer.train(["abc"]).save(tmp_path / "other")
    result = cli("train", "--model", "gpt", "--data", data_dir, "--out", tmp_path / "run", *TINY,
                 "--set", f"tokenizer={other}")
    assert result.code == 2 and "tokenizer has 4 tokens" in result.err


@pytest.mark.slow
def test_killed_run_resumes_with_the_same_losses(cli, data_dir, tmp_path):
    steps = ["--set", "max_steps=60", "--set", "eval_every=5"]
    cli("train", "--model", "gpt", "--data", data_dir, "--out", tmp_path / "whole", *TINY, *steps)
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen([sys.executable, "-m", "lm2llm", "train", "--model", "gpt", "--data", str(data_dir),
                             "--out", str(out), *TINY, *steps, "--set", "progress=false"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and max(losses(out) or [0]) < 8:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    result = cli("train", "--out", out, "--resume", "--json")
    assert result.code == 0, result.err
    whole, resumed = losses(tmp_path / "whole"), losses(out)
    assert sorted(resumed) == list(range(1, 61))
    restarts = [r["step"] for r in RunDir(out).read_metrics() if r.get("event") == "resumed"]
    assert restarts and 0 < restarts[0] < 60  # it was killed mid-run and continued from a checkpoint
    assert max(abs(whole[s] - resumed[s]) for s in whole) <= 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_two_processes_match_one_at_the_same_global_batch(cli, data_dir, tmp_path, optimizer):
    """DDP (gloo) over 2 CPU processes, each with half the batch, against 1 process: fp32 losses within 1e-5.

    Muon orthogonalises in bf16 (as the reference does), where the last bits of a two-process gradient sum
    can round the other way: within 1e-4 (measured 1.9e-5)."""
    args = ["--model", "gpt", "--data", str(data_dir), *TINY, "--set", "max_steps=4", "--set", "eval_every=2",
            "--set", f"optimizer={optimizer}"]
    assert cli("train", "--out", tmp_path / "one", *args).code == 0
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
                           "-m", "lm2llm", "train", "--out", str(tmp_path / "two"), *args, "--json"],
                          env=env, capture_output=True, text=True, timeout=300)
    # the children's own error lines come before torchrun's long report: show them first
    causes = [line for line in proc.stderr.splitlines() if "terminate" in line or "Error" in line][:10]
    assert proc.returncode == 0, "\n".join(causes) + "\n...\n" + proc.stderr[-1500:]
    assert json.loads(proc.stdout)["steps"] == 4  # only process 0 printed
    assert RunDir(tmp_path / "two").read_config()["processes"] == 2
    one, two = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert sorted(two) == [1, 2, 3, 4]
    assert max(abs(one[s] - two[s]) for s in one) <= (1e-5 if optimizer == "adamw" else 1e-4)


def test_bf16_autocast_tracks_fp32(cli, data_dir, tmp_path):
    args = ["--model", "gpt", "--data", str(data_dir), *TINY, "--set", "max_steps=3", "--set", "eval_every=3"]
    assert cli("train", "--out", tmp_path / "fp32", *args).code == 0
    assert cli("train", "--out", tmp_path / "bf16", *args, "--set", "dtype=bfloat16").code == 0
    assert RunDir(tmp_path / "bf16").read_config()["dtype"] == "bfloat16"
    fp32, bf16 = losses(tmp_path / "fp32"), losses(tmp_path / "bf16")
    assert max(abs(fp32[s] - bf16[s]) for s in fp32) < 0.05
