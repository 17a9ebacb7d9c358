"""FSDP2 through torchrun: 2 CPU processes (gloo) follow 1 process's losses, and their DCP checkpoint resumes in 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import SRC
from test_train_cli import TINY, data_dir, losses  # noqa: F401  (data_dir: the tiny corpus fixture)

from lm2llm import env
from lm2llm.runs import RunDir

pytestmark = pytest.mark.usefixtures("known_peak")

# a constant learning rate after warm-up, so a run of 4 steps resumed to 6 follows the same schedule as 6 steps
ARGS = [*TINY, "--set", "model.n_layer=2", "--set", "schedule=constant", "--set", "eval_every=2",
        "--set", "sample_tokens=0", "--set", "progress=false"]


def test_two_sharded_processes_match_one_and_resume_in_one(cli, data_dir, tmp_path):  # noqa: F811
    args = ["--model", "gpt", "--data", str(data_dir), *ARGS]
    assert cli("train", "--out", tmp_path / "one", *args, "--set", "max_steps=6").code == 0
    # the children's MFU peak (1 thread each) from the cache rather than a second of matmuls in each
    env._remember(env._cpu_name() + " (1 threads)", env.MatmulResult("float32", 2048, 100.0, 1.0))
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
                           "-m", "lm2llm", "train", "--out", str(tmp_path / "two"), *args, "--set", "max_steps=4",
                           "--set", "fsdp=true", "--json"],
                          env={**os.environ, "PYTHONPATH": str(SRC)}, capture_output=True, text=True, timeout=300)
    causes = [line for line in proc.stderr.splitlines() if "terminate" in line or "Error" in line][:10]
    assert proc.returncode == 0, "\n".join(causes) + "\n...\n" + proc.stderr[-1500:]
    assert json.loads(proc.stdout)["steps"] == 4
    two = tmp_path / "two"
    assert RunDir(two).read_config()["processes"] == 2
    assert len(list((two / "checkpoint" / "dcp").glob("*.distcp"))) == 2  # each process wrote its own shards
    one, sharded = losses(tmp_path / "one"), losses(two)
    assert sorted(sharded) == [1, 2, 3, 4]
    assert max(abs(one[s] - sharded[s]) for s in sharded) <= 1e-5
    from lm2llm.models import load_model

    assert load_model(two).config.n_layer == 2  # the final weights, gathered from the shards into one file

    # the 2-process checkpoint continues in 1 process (another world size) where the 6-step run went
    result = cli("train", "--out", two, "--resume", "--set", "max_steps=6", "--json")
    assert result.code == 0, result.err
    resumed = losses(two)
    assert sorted(resumed) == [1, 2, 3, 4, 5, 6]
    assert max(abs(one[s] - resumed[s]) for s in (5, 6)) <= 1e-5


def test_fsdp_refuses_muon(cli, data_dir, tmp_path):  # noqa: F811
    result = cli("train", "--model", "gpt", "--data", data_dir, "--out", tmp_path / "run", *ARGS,
                 "--set", "fsdp=true", "--set", "optimizer=muon")
    assert result.code == 2 and "optimizer=adamw" in result.err
