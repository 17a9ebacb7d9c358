"""`lm2llm interpret`: every analysis on a small run writes figures and JSON; SmolLM2 through the registered name."""

from __future__ import annotations

import json

import pytest
import torch

from lm2llm.models import build_model, save_model
from lm2llm.tokenizer import BPETokenizer

TEXT = ["The capital of France is Paris. The capital of Italy is Rome.", "대한민국의 수도는 서울이다. 일본의 수도는 도쿄이다."]


@pytest.fixture(scope="module")
def bpe_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("interpret") / "run"
    tokenizer = BPETokenizer.train(TEXT, vocab_size=300)
    torch.manual_seed(0)
    save_model(build_model("gpt", vocab_size=tokenizer.vocab_size, n_layer=2, d_model=32, n_head=4,
                           context_length=64), run)
    tokenizer.save(run)
    return run


@pytest.mark.parametrize("what", ["attention", "lens", "patch", "heads"])
def test_every_analysis_writes_figures_and_json(cli, bpe_run, tmp_path, what):
    out = tmp_path / what
    prompts = ("The capital of Italy is", "The capital of Paris is") if what == "patch" else ("대한민국의 수도는", "")
    result = cli("interpret", bpe_run, "--prompt", prompts[0], "--corrupted", prompts[1], "--what", what,
                 "--out", out, "--json")
    assert result.code == 0, result.err
    numbers = json.loads(result.out)
    assert numbers["what"] == what and json.loads((out / "interpret.json").read_text()) == {
        k: v for k, v in numbers.items() if k != "files"}
    assert any(p.suffix == ".png" for p in out.iterdir())
    # a second run needs --force; a folder we did not write is never replaced
    assert cli("interpret", bpe_run, "--what", what, "--out", out).code == 2
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert cli("interpret", bpe_run, "--what", what, "--out", foreign, "--force").code == 2
    assert (foreign / "notes.txt").read_text() == "mine"


def test_patch_needs_equal_lengths_and_a_corruption(cli, bpe_run):
    no_corruption = cli("interpret", bpe_run, "--what", "patch")
    assert no_corruption.code == 2 and "--corrupted" in no_corruption.err
    unequal = cli("interpret", bpe_run, "--what", "patch", "--prompt", "The capital of France is",
                  "--corrupted", "The capital is")
    assert unequal.code == 2 and "equal" in unequal.err


def test_smollm2_lens_and_korean_attention(cli, smollm2_run):
    """The registered model: the last layer's lens is its own answer, and a Korean prompt's attention rows sum to 1."""
    lens = json.loads(cli("interpret", "smollm2-135m-instruct", "--what", "lens", "--json").out)
    assert lens["answer"] == " Paris"
    for method in ("renorm", "cached_scale"):
        assert lens[method]["answer_rank"][-1] == 0 and len(lens[method]["answer_rank"]) == 31
    attention = json.loads(cli("interpret", "smollm2-135m-instruct", "--what", "attention", "--prompt", "한국의 수도는",
                               "--layer", "3", "--json").out)
    rows = torch.tensor(attention["attention"]["3"])
    assert rows.shape[0] == 9 and torch.allclose(rows.sum(-1), torch.ones(rows.shape[:2]), atol=1e-5)
