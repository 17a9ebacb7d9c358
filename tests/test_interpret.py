"""lm2llm.interpret: hooked activations equal transformers' on the same weights; lens, patching, induction, probes."""

from __future__ import annotations

import pytest
import torch

from lm2llm.errors import UserError
from lm2llm.interpret import run_with_cache
from lm2llm.interpret.induction import (
    head_scores,
    induction_pattern,
    induction_scores,
    repeated_random_tokens,
)
from lm2llm.interpret.logit_lens import lens_logits, lens_report
from lm2llm.interpret.patching import patch_residual_stream
from lm2llm.interpret.probing import control_labels, probe_layers
from lm2llm.models import build_model

CONFIGS = {
    "gpt": dict(vocab_size=97, context_length=32, n_layer=3, d_model=32, n_head=4),
    "llama": dict(vocab_size=97, context_length=32, n_layer=3, d_model=32, n_head=4, n_kv_head=2),
}


def tiny(family: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(family, **CONFIGS[family]).eval()
    with torch.no_grad():  # larger than the init so that layers differ visibly
        for p in model.parameters():
            p.mul_(5.0) if p.dim() > 1 else p.add_(0.1 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("family", ["gpt", "llama"])
def test_hooked_activations_equal_transformers(family):
    pytest.importorskip("transformers")
    from lm2llm.models.hf_compat import to_hf

    model = tiny(family)
    hf = to_hf(model)
    hf.set_attn_implementation("eager")
    ids = torch.randint(0, 97, (2, 11), generator=torch.Generator().manual_seed(1))
    trace = run_with_cache(model, ids, attention=True)
    with torch.no_grad():
        out = hf(input_ids=ids, output_hidden_states=True, output_attentions=True)
    hidden = out.hidden_states  # embeddings, each block's output; the last one after the final norm
    assert len(hidden) == trace.resid.size(0)
    for layer in range(len(hidden) - 1):
        assert (trace.resid[layer] - hidden[layer]).abs().max() < 1e-5
    assert (model.norm_f(trace.resid[-1]) - hidden[-1]).abs().max() < 1e-5
    for ours, theirs in zip(trace.attention, out.attentions, strict=True):
        assert ours.shape == theirs.shape
        assert (ours - theirs).abs().max() < 1e-5
    assert (trace.logits - out.logits).abs().max() < 1e-4


@pytest.mark.parametrize("family", ["gpt", "llama"])
def test_logit_lens_last_layer_is_the_model(family):
    model = tiny(family)
    trace = run_with_cache(model, torch.arange(3, 12).unsqueeze(0))
    lenses = {m: lens_logits(model, trace, m) for m in ("renorm", "cached_scale")}
    for lens in lenses.values():
        assert lens.shape[0] == CONFIGS[family]["n_layer"] + 1
        assert (lens[-1] - trace.logits).abs().max() < 1e-6 * max(1.0, trace.logits.abs().max().item())
    # earlier layers: the two lenses differ (each layer's own scale vs the final one)
    assert (lenses["renorm"][0] - lenses["cached_scale"][0]).abs().max() > 1e-3
    report = lens_report(model, trace, "renorm")
    assert report.answer_rank[-1] == 0 and report.answer_id == int(trace.logits[0, -1].argmax())
    assert len(report.top_ids) == CONFIGS[family]["n_layer"] + 1


def test_patching_restores_exactly_where_it_must():
    model = tiny("gpt")
    clean, corrupted = [5, 6, 7, 8, 9], [5, 6, 40, 8, 9]
    logits = model(torch.tensor([clean]))[0][0, -1]
    good, bad = int(logits.argmax()), int(model(torch.tensor([corrupted]))[0][0, -1].argmax())
    if good == bad:
        bad = int(logits.argsort()[-2])
    result = patch_residual_stream(model, clean, corrupted, good, bad)
    effect = torch.tensor(result.effect)
    assert effect.shape == (4, 5)
    # the embedding at the differing position is all that differs: patching it is running the clean prompt
    assert effect[0, 2] == pytest.approx(1.0, abs=1e-4)
    # positions before the corruption hold identical vectors in both runs: no effect at any layer
    assert effect[:, :2].abs().max() < 1e-4
    # the last residual point at the last position decides the logits alone
    assert effect[-1, -1] == pytest.approx(1.0, abs=1e-4)
    assert result.best()[2] == pytest.approx(float(effect.max()))
    with pytest.raises(UserError):
        patch_residual_stream(model, clean, corrupted[:-1], good, bad)


def test_induction_pattern_and_score():
    tokens = torch.tensor([1, 7, 8, 9, 7, 8, 9])
    pattern = induction_pattern(tokens)
    # the second 7 (position 4) should look at the token after the first 7 (position 2)
    assert pattern[4].tolist() == [0, 0, 1, 0, 0, 0, 0]
    assert pattern[5, 3] == 1 and pattern[6, 4] == 1 and pattern[6, 3] == 0
    assert pattern[:4].sum() == 0
    # a head that follows the pattern exactly (and the first token elsewhere) scores rows-that-match / rows
    perfect = pattern.clone()
    perfect[pattern.sum(-1) == 0, 0] = 1.0
    scores = head_scores([perfect.expand(1, 1, 7, 7)], tokens.unsqueeze(0))
    assert scores.item() == pytest.approx(3 / 7)
    ids = repeated_random_tokens(50, 6, 2, seed=3, prefix=0)
    assert ids.shape == (2, 13) and torch.equal(ids[:, 1:7], ids[:, 7:])
    model = tiny("llama")
    assert induction_scores(model, length=6, batch=2).shape == (3, 4)


def test_probes_read_a_linear_property_and_controls_do_not():
    generator = torch.Generator().manual_seed(0)
    types = torch.randint(0, 300, (1200,), generator=generator)
    labels = (torch.randn(1200, generator=generator) > 0).long()
    signal = torch.randn(1200, 16, generator=generator)
    signal[:, 0] += 3 * (2 * labels - 1)  # layer 1 carries the label, layer 0 is noise
    noise = torch.randn(1200, 16, generator=generator)
    result = probe_layers(torch.stack([noise, signal]), labels, types)
    assert result.accuracy[1] > 0.95 and abs(result.accuracy[0] - 0.5) < 0.1
    assert result.selectivity[1] > 0.3
    control = control_labels(types, labels)
    for t in types.unique()[:20]:  # one label per type
        assert control[types == t].unique().numel() == 1
