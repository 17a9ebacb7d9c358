import json
import os
import shutil

import pytest

from lm2llm.runs import RunDir, atomic_dir, atomic_open, atomic_save, atomic_write_json, atomic_write_text


class Crash(Exception):
    pass


def test_atomic_write_replaces_whole_file(tmp_path):
    path = tmp_path / "a.txt"
    atomic_write_text(path, "old")
    atomic_write_text(path, "new")
    assert path.read_text() == "new"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_crash_mid_write_keeps_old_file_and_leaves_no_partial(tmp_path):
    path = tmp_path / "config.json"
    atomic_write_json(path, {"v": 1})
    with pytest.raises(Crash):
        with atomic_open(path, "w") as handle:
            handle.write('{"v": 2, "trunc')
            raise Crash()
    assert json.loads(path.read_text()) == {"v": 1}
    assert os.listdir(tmp_path) == ["config.json"]


def test_atomic_save_with_library_writer(tmp_path):
    path = tmp_path / "w.bin"

    def failing_writer(p):
        p.write_bytes(b"partial")
        raise Crash()

    with pytest.raises(Crash):
        atomic_save(path, failing_writer)
    assert not path.exists() and os.listdir(tmp_path) == []
    atomic_save(path, lambda p: p.write_bytes(b"ok"))
    assert path.read_bytes() == b"ok"


def test_atomic_dir_is_complete_or_absent(tmp_path):
    out = tmp_path / "runs" / "토크나이저"
    with pytest.raises(Crash):
        with atomic_dir(out) as build:
            (build / "half.json").write_text("{")
            raise Crash()
    assert not out.exists() and os.listdir(tmp_path / "runs") == []
    with atomic_dir(out) as build:
        (build / "tokenizer.json").write_text("{}")
    assert os.listdir(out) == ["tokenizer.json"] and os.listdir(tmp_path / "runs") == ["토크나이저"]
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask  # as mkdir makes it, not mkdtemp's 0o700
    with pytest.raises(OSError):  # an existing, non-empty directory is only replaced on request
        with atomic_dir(out) as build:
            (build / "other").write_text("x")
    assert os.listdir(out) == ["tokenizer.json"] and os.listdir(tmp_path / "runs") == ["토크나이저"]
    with pytest.raises(OSError):  # ... and only when it carries our marker of the same kind
        with atomic_dir(out, "tokenizer", replace=True) as build:
            (build / "other").write_text("x")
    assert os.listdir(out) == ["tokenizer.json"]
    shutil.rmtree(out)
    with atomic_dir(out, "tokenizer") as build:
        (build / "tokenizer.json").write_text("{}")
    with atomic_dir(out, "tokenizer", replace=True) as build:
        (build / "other").write_text("x")
    assert sorted(os.listdir(out)) == [".lm2llm-output", "other"] and os.listdir(tmp_path / "runs") == ["토크나이저"]


def test_run_dir_config_and_metrics(tmp_path):
    run = RunDir.create(tmp_path / "run", {"lr": 1e-3, "name": "한국어"})
    run.log_metrics({"step": 1, "loss": 2.5})
    run.log_metrics({"step": 2, "loss": 2.0})
    assert run.read_config() == {"lr": 1e-3, "name": "한국어"}
    assert [m["loss"] for m in run.read_metrics()] == [2.5, 2.0]


def test_metrics_stay_valid_json_when_a_value_is_not_finite(tmp_path):
    run = RunDir.create(tmp_path / "run")
    run.log_metrics({"val_bpb": float("nan"), "loss": float("inf")})
    line = (tmp_path / "run" / "metrics.jsonl").read_text().strip()
    assert json.loads(line, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))["val_bpb"] is None
