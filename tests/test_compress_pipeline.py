"""`lm2llm compress`: a new run per method that generate takes, measured against the original."""

from __future__ import annotations

import json

import pytest
import torch
from test_compress_gguf_export import make_run

from lm2llm.compress.variants import Method, apply_method, weight_bytes
from lm2llm.errors import UserError
from lm2llm.inference.text import TextGenerator
from lm2llm.models import build_model, load_model


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("base") / "run", "llama", d_model=64, d_ff=128)


def test_compress_evaluate_reports_size_speed_and_quality(cli, base_run, tmp_path):
    result = cli("compress", base_run, "--method", "q4_0", "--out", tmp_path / "q4", "--evaluate", "--windows", "1",
                 "--json")
    assert result.code == 0, result.err
    info = json.loads(result.out)
    original, variant = info["evaluation"]
    assert variant["weight_bytes"] < original["weight_bytes"] / 3
    assert original["python-docs"]["kl_mean"] == pytest.approx(0, abs=1e-3)
    assert original["korean-law"]["top1_agreement"] == pytest.approx(1.0, abs=0.01)
    assert variant["korean-law"]["kl_mean"] > 0
    reloaded = load_model(tmp_path / "q4")
    assert not torch.equal(reloaded.blocks[0].mlp.up.weight, load_model(base_run).blocks[0].mlp.up.weight)


def test_int8_run_is_quantized_when_loaded(cli, base_run, tmp_path):
    assert cli("compress", base_run, "--method", "int8", "--out", tmp_path / "int8").code == 0
    generator = TextGenerator.from_run(tmp_path / "int8")
    assert type(generator.model.blocks[0].attn.out_proj).__name__ == "Int8Linear"


def test_wanda_run_reaches_its_sparsity(cli, base_run, tmp_path):
    result = cli("compress", base_run, "--method", "wanda:2:4", "--out", tmp_path / "w", "--calibration", "4", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["sparsity"] == pytest.approx(0.5)


def test_method_names_and_sizes():
    assert Method.parse("2:4") == Method.parse("wanda:2:4") and Method.parse("sparsegpt:0.5").needs_calibration
    model = build_model("llama", "llama-tiny", vocab_size=64, d_ff=128)
    fp32 = weight_bytes(model, Method("fp32"))
    apply_method(model, Method("int8"))
    assert weight_bytes(model, Method("int8")) < fp32 / 2
    with pytest.raises(UserError, match="unknown compression method"):
        Method.parse("prune:0.5")


def test_compress_refuses_a_non_empty_out(cli, base_run, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    result = cli("compress", base_run, "--method", "bf16", "--out", tmp_path / "taken")
    assert result.code == 2 and (tmp_path / "taken" / "keep.txt").read_text() == "mine"


def fake_rows(q8_change: float, wanda_ppl: float) -> dict:
    """Rows shaped as `measure` returns them, with chosen perplexities (fp32 perplexity 10 everywhere)."""
    def row(ppl: float, size: int, kl: float = 0.001) -> dict:
        scores = {"perplexity": ppl, "kl_mean": kl, "kl_p99": kl * 5, "top1_agreement": 0.99}
        return {"weight_bytes": size, "python-docs": dict(scores), "korean-law": dict(scores)}

    rows = {"fp32": row(10, 400), "q8_0": row(10 * (1 + q8_change), 106), "q4_0": row(11, 60),
            "int8": row(10, 110), "magnitude:0.5": row(300, 400), "wanda:0.5": row(wanda_ppl, 400)}
    rows["q4_0"]["korean-law"]["perplexity"] = 13
    return rows


def test_chapter_8_claims_follow_the_measurements():
    from lm2llm.tour.chapters.ch08_efficiency import claims_of

    good = claims_of(fake_rows(0.004, 20))
    assert [c.holds for c in good] == [True, True, True, True]
    bad = claims_of(fake_rows(0.03, 500))
    assert bad[0].holds is False and bad[2].holds is False


def test_the_originals_own_row_comes_from_the_reference():
    """`quality(None, reference)` (the original's row, not computed again) equals scoring the original itself."""
    from lm2llm.compress.measure import Reference, quality

    torch.manual_seed(0)
    model = build_model("llama", "llama-tiny", vocab_size=64, d_ff=128).eval()
    reference = Reference.of(model, torch.randint(0, 64, (2, 12)))
    again, own = quality(model, reference), quality(None, reference)
    assert own.perplexity == pytest.approx(again.perplexity, rel=1e-6)
    assert own.kl_mean == 0 and own.top1_agreement == 1
