"""MFU's peak: per device and dtype, data sheet beside the measurement, and MFU never above 100 %."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from lm2llm import env
from lm2llm.data.shards import ShardWriter, TokenShards
from lm2llm.tokenizer import CharTokenizer
from lm2llm.training.trainer import flops_per_token


@pytest.fixture
def no_measuring(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the peak should have come from the cache")

    monkeypatch.setattr(env, "measure_matmul", refuse)


def write_peaks(tmp_path, monkeypatch, peaks: dict) -> None:
    monkeypatch.setenv("LM2LLM_CACHE", str(tmp_path))
    (tmp_path / "peaks.json").write_text(json.dumps(peaks))


def cached(gflops: float, dtype: str) -> dict:
    return {"dtype": dtype, "size": 8192, "gflops": gflops, "seconds": 1.0}


def test_the_cache_is_keyed_by_device_and_dtype(tmp_path, monkeypatch, no_measuring):
    write_peaks(tmp_path, monkeypatch, {
        "NVIDIA H200": {"bfloat16": cached(700_000, "bfloat16")},
        "NVIDIA L4": {"bfloat16": cached(90_000, "bfloat16"), "float32": cached(25_000, "float32")},
    })
    monkeypatch.setattr(env, "device_name", lambda device: "NVIDIA L4")
    assert env.peak("float32", "cpu").measured_gflops == 25_000
    assert env.peak("bfloat16", "cpu").measured_gflops == 90_000
    monkeypatch.setattr(env, "device_name", lambda device: "NVIDIA H200")
    h200 = env.peak("bfloat16", "cpu")
    # the data sheet's dense bf16 peak is what MFU divides by; the measured figure stays beside it
    assert (h200.measured_gflops, h200.datasheet_gflops, h200.gflops) == (700_000, 989_000, 989_000)


def test_a_device_missing_from_the_cache_is_measured_and_remembered(tmp_path, monkeypatch):
    write_peaks(tmp_path, monkeypatch, {"other machine (2 threads)": {"float32": cached(1.0, "float32")}})
    measured = env.peak("float32", "cpu", seconds=0.01)
    assert measured.device == env.device_name("cpu") and measured.measured_gflops > 1.0
    assert measured.datasheet_gflops is None  # CPUs have no data-sheet row: the measurement is the peak
    peaks = json.loads((tmp_path / "peaks.json").read_text())
    assert set(peaks) == {"other machine (2 threads)", env.device_name("cpu")}
    assert peaks[env.device_name("cpu")]["float32"]["size"] == env.MATMUL_SIZE["cpu"]


def test_data_sheet_lookup_prefers_the_specific_name():
    assert env.datasheet_gflops("NVIDIA H100 PCIe", "bfloat16") == 756_000
    assert env.datasheet_gflops("NVIDIA H100 80GB HBM3", "bfloat16") == 989_000
    assert env.datasheet_gflops("NVIDIA A100-SXM4-80GB", "tfloat32") == 156_000
    assert env.datasheet_gflops("Intel(R) Xeon(R) (2 threads)", "float32") is None


def test_mfu_arithmetic_and_its_ceiling():
    assert env.mfu(25e12, 100e12) == pytest.approx(0.25)
    assert env.mfu(5e12, 0.0) == 0.0
    with pytest.warns(RuntimeWarning, match="measured too low"):
        assert env.mfu(133e12, 100e12) == 1.0


@pytest.mark.usefixtures("one_torch_thread")
def test_trainer_mfu_divides_by_the_fake_device_peak(monkeypatch, tmp_path):
    """A 1 GFLOP/s fake peak: the trainer's MFU is flops/token × tokens/s ÷ 1e9, and capped at 1."""
    from test_training import TEXT, make_trainer  # the tiny model and config of the training tests

    tok = CharTokenizer.train([TEXT])
    ids = tok.encode(TEXT)
    writer = ShardWriter(tmp_path / "data", tok.vocab_size)
    writer.write("train", ids[:2000])
    writer.write("val", ids[2000:])
    writer.close(tokenizer="char")
    seen = {}

    def fake_peak(dtype="float32", device="cpu"):
        seen.update(dtype=dtype, device=device)
        return 1.0

    monkeypatch.setattr(env, "peak_gflops", fake_peak)
    trainer = make_trainer((TokenShards(tmp_path / "data"), tok), max_steps=3)
    assert seen == {"dtype": "float32", "device": "cpu"} and trainer.peak_flops == 1e9
    result = trainer.fit()
    expected = trainer.flops_per_token * result.tokens_per_second / 1e9
    assert result.mfu == pytest.approx(min(expected, 1.0))


def test_flops_per_token_counts_matmul_weights_not_lookups():
    model = nn.Sequential(nn.Embedding(100, 8), nn.Linear(8, 16), nn.Linear(16, 100))
    assert flops_per_token(model, block_size=4) == 6 * (8 * 16 + 16 * 100)


def test_measure_matmul_reports_its_size():
    result = env.measure_matmul(torch.float32, size=128, seconds=0.01)
    assert result.size == 128 and result.gflops > 0 and result.dtype == "float32"
