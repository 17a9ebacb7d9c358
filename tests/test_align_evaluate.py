"""Policy-vs-SFT evaluation: a policy equal to SFT ties everything at zero KL; a different one moves."""

from __future__ import annotations

import pytest
import torch

from lm2llm.align.evaluate import compare_with_sft
from lm2llm.align.reward_model import RewardModel
from lm2llm.finetune.tasks import make_suite
from lm2llm.models import build_model
from lm2llm.tokenizer.hf_bpe import BPETokenizer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_compare_with_sft():
    train, test = make_suite(20, 4, seed=3, tasks=["addition", "digits_to_korean"])
    tokenizer = BPETokenizer.train([m["content"] for r in train for m in r.messages], vocab_size=300)
    torch.manual_seed(0)
    sft, other = (build_model("gpt", "gpt-tiny", vocab_size=tokenizer.vocab_size) for _ in range(2))
    reward_model = RewardModel(build_model("gpt", "gpt-tiny", vocab_size=tokenizer.vocab_size))
    same, transcripts = compare_with_sft(sft, sft, reward_model, tokenizer, test, max_new_tokens=6)
    assert same["win_rate_reward"] == same["win_rate_exact"] == 0.5
    assert same["reward"] == same["reward_sft"] and same["kl_to_sft"] == pytest.approx(0.0, abs=1e-5)
    assert len(transcripts) == len(test) and all(t["sft"] == t["aligned"] for t in transcripts)
    assert any("한글로" in t["prompt"] for t in transcripts)
    with torch.no_grad():
        other.tok_emb.weight.mul_(40)  # a peaked policy, far from the near-uniform SFT stand-in
    moved, _ = compare_with_sft(other, sft, reward_model, tokenizer, test, max_new_tokens=6)
    assert moved["kl_to_sft"] > 0.1 and 0 <= moved["win_rate_reward"] <= 1 and moved["answer_tokens"] <= 7
