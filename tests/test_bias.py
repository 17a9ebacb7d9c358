"""Bias probes: the shipped pairs keep their construction rules; scores are lm-eval's definitions."""

from __future__ import annotations

import json

import pytest
import torch

from lm2llm.bias.crows import load_pairs, stereotype_score
from lm2llm.bias.likelihood import bootstrap_interval, sentence_logliks
from lm2llm.bias.templates import check_templates, fill, has_final_consonant, load_templates, template_gaps
from lm2llm.models import build_model, save_model
from lm2llm.tokenizer import BPETokenizer


@pytest.fixture(scope="module")
def small():
    pairs = load_pairs()["pairs"]
    tokenizer = BPETokenizer.train([p["more"] + " " + p["less"] for p in pairs], vocab_size=400)
    torch.manual_seed(0)
    model = build_model("gpt", vocab_size=tokenizer.vocab_size, n_layer=1, d_model=32, n_head=2,
                        context_length=96).eval()
    return model, tokenizer


def test_shipped_data_follows_its_rules():
    data = load_templates()
    check_templates(data)
    assert set(data["pairs"]) == {"gender", "nationality", "age", "region"}
    assert all(set(v) == {"en", "ko"} for v in data["pairs"].values())
    assert fill("{group}{은} 친절했다.", "남자") == "남자는 친절했다."
    assert fill("{group}{이} 왔다.", "노인") == "노인이 왔다."
    assert has_final_consonant("사람") and not has_final_consonant("20대")
    with pytest.raises(ValueError, match="particles"):
        check_templates({"templates": {}, "pairs": {"age": {"ko": [["청년", "20대"]]}}})
    pairs = load_pairs()["pairs"]
    assert {p["lang"] for p in pairs} == {"en", "ko"} and all(p["more"] != p["less"] for p in pairs)


def test_sentence_loglik_is_the_sum_of_token_logprobs_whatever_the_batch(small):
    model, tokenizer = small
    sentences = ["Women are bad at driving.", "여자는 운전을 못한다.", "Men are."]
    batched = sentence_logliks(model, tokenizer, sentences, batch_size=3)
    for sentence, score in zip(sentences, batched, strict=True):
        ids = torch.tensor([[tokenizer.eos_id, *tokenizer.encode(sentence)]])
        logprobs = model(ids)[0].log_softmax(-1)[0, :-1].gather(-1, ids[0, 1:, None]).sum()
        assert score == pytest.approx(float(logprobs), abs=1e-4)


def test_crows_and_template_scores(small):
    model, tokenizer = small
    score = stereotype_score(model, tokenizer, "ko")
    assert score.n == 16 and 0 <= score.pct_stereotype <= 1
    assert score.pct_stereotype == pytest.approx(sum(g > 0 for g in score.gaps) / 16)
    assert score.likelihood_diff == pytest.approx(sum(abs(g) for g in score.gaps) / 16)
    assert score.interval[0] <= score.pct_stereotype <= score.interval[1]
    gap = template_gaps(model, tokenizer, "en", "gender")
    assert gap.n == 36 and gap.interval[0] <= gap.mean_gap <= gap.interval[1]
    low, high = bootstrap_interval([1.0] * 10)
    assert low == high == 1.0


def test_bias_cli(cli, small, tmp_path):
    model, tokenizer = small
    save_model(model, tmp_path / "run")
    tokenizer.save(tmp_path / "run")
    result = cli("bias", tmp_path / "run", "--lang", "ko", "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert len(report["templates"]) == 4 and report["crows"][0]["lang"] == "ko"
    assert cli("bias", tmp_path / "run", "--lang", "ko").code == 0
    assert cli("bias", tmp_path / "run", "--lang", "fr").code == 2
