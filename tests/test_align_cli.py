"""`lm2llm reward|dpo|ppo` end to end from an SFT-shaped run directory (model + chat tokenizer)."""

from __future__ import annotations

import json

import pytest
import torch

from lm2llm.align.reward_model import load_reward_model
from lm2llm.align.synthetic import make_preference_suite
from lm2llm.models import build_model, load_model, save_model
from lm2llm.tokenizer.hf_bpe import BPETokenizer

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory):
    """The files an SFT run leaves: `model.safetensors`, `model_config.json` and the chat tokenizer."""
    train, _ = make_preference_suite(30, 0, seed=5)
    texts = [m["content"] for p in train for m in p.prompt] + [p.chosen for p in train] + [p.rejected for p in train]
    run = tmp_path_factory.mktemp("sft")
    tokenizer = BPETokenizer.train(texts, vocab_size=400)
    tokenizer.save(run)
    torch.manual_seed(0)
    save_model(build_model("gpt", "gpt-tiny", vocab_size=tokenizer.vocab_size, context_length=128), run)
    return run


def test_reward_dpo_ppo_commands(cli, sft_run, tmp_path):
    reward = cli("reward", sft_run, "--out", tmp_path / "rm", "--steps", 4, "--lr", "1e-3",
                 "--tasks", "addition,korean_to_digits", "--json")
    assert reward.code == 0, reward.err
    metrics = json.loads(reward.out)
    assert metrics["held_out_pairs"] > 0 and 0 <= metrics["held_out_accuracy"] <= 1
    model = load_reward_model(tmp_path / "rm")
    assert (tmp_path / "rm" / "tokenizer.json").is_file() and float(model.gain) > 0
    assert not list(tmp_path.glob(".*building"))

    dpo = cli("dpo", sft_run, "--out", tmp_path / "dpo", "--steps", 3, "--loss", "ipo", "--json")
    assert dpo.code == 0, dpo.err
    assert "held_out_rewards_accuracy" in json.loads(dpo.out)
    load_model(tmp_path / "dpo")
    generated = cli("generate", tmp_path / "dpo", "--prompt", "안녕", "-n", 3, "--seed", 1)
    assert generated.code == 0, generated.err  # an aligned run is an ordinary policy run

    ppo = cli("ppo", sft_run, "--reward", tmp_path / "rm", "--out", tmp_path / "ppo", "--steps", 2,
              "--batch-size", 4, "--minibatch-size", 2, "--max-new-tokens", 6, "--kl-target", "0.5", "--json")
    assert ppo.code == 0, ppo.err
    summary = json.loads(ppo.out)
    assert summary["steps"] == 2 and len(summary["history"]) == 2
    assert len((tmp_path / "ppo" / "metrics.jsonl").read_text().splitlines()) == 2
    load_model(tmp_path / "ppo")


def test_user_errors(cli, sft_run, tmp_path):
    existing = cli("reward", sft_run, "--out", sft_run, "--steps", 1)
    assert existing.code == 2 and "contains the input" in existing.err
    bad_loss = cli("dpo", sft_run, "--out", tmp_path / "x", "--loss", "hinge")
    assert bad_loss.code == 2 and "--loss" in bad_loss.err
    (tmp_path / "bad.jsonl").write_text('{"prompt": "질문", "chosen": "답"}\n', encoding="utf-8")
    bad_data = cli("dpo", sft_run, "--out", tmp_path / "y", "--data", tmp_path / "bad.jsonl")
    assert bad_data.code == 2 and "bad.jsonl:1" in bad_data.err
    assert not (tmp_path / "y").exists() and not list(tmp_path.glob(".*building"))
