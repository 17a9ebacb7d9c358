"""Parameter accounting: our meta-device counts equal transformers' for the same architecture and the
published totals; FLOPs and memory follow their formulas; the `params` command."""

from __future__ import annotations

import json

import pytest
import torch

from lm2llm.models import build_model
from lm2llm.models.accounting import bert_components, count_by_component, param_report
from lm2llm.models.presets import BERT_PRESETS, PRESETS

transformers = pytest.importorskip("transformers")


def hf_count(model_cls, config) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in model_cls(config).parameters())


def ours(name: str) -> int:
    return param_report(name).total


@pytest.mark.parametrize("name", ["gpt2-small", "gpt2-medium", "gpt2-xl", "gpt3-2.7b", "llama2-7b", "llama2-70b",
                                  "llama3-8b", "solar-10.7b"])
def test_count_equals_transformers(name):
    from lm2llm.models.hf_compat import hf_config, hf_model_class

    with torch.device("meta"):
        model = build_model(PRESETS[name].family, name)
    assert model.num_params() == hf_count(hf_model_class(model.config), hf_config(model.config))


def test_mistral_count_equals_transformers_mistral():
    c = PRESETS["mistral-7b"].config
    config = transformers.MistralConfig(
        vocab_size=c["vocab_size"], hidden_size=c["d_model"], intermediate_size=c["d_ff"], num_hidden_layers=c["n_layer"],
        num_attention_heads=c["n_head"], num_key_value_heads=c["n_kv_head"], max_position_embeddings=c["context_length"])
    assert ours("mistral-7b") == hf_count(transformers.MistralForCausalLM, config)


@pytest.mark.parametrize("name", list(BERT_PRESETS))
def test_bert_formula_equals_transformers(name):
    c = BERT_PRESETS[name].config
    config = transformers.BertConfig(
        vocab_size=c["vocab_size"], hidden_size=c["d_model"], num_hidden_layers=c["n_layer"], num_attention_heads=c["n_head"],
        intermediate_size=c["d_ff"], max_position_embeddings=c["context_length"], type_vocab_size=c["type_vocab_size"])
    assert sum(bert_components(**c).values()) == hf_count(transformers.BertModel, config)


def test_gpt1_count_is_openai_gpt_plus_our_final_norm():
    config = transformers.OpenAIGPTConfig(vocab_size=40478, n_positions=512, n_embd=768, n_layer=12, n_head=12)
    assert ours("gpt-1") == hf_count(transformers.OpenAIGPTLMHeadModel, config) + 2 * 768


@pytest.mark.parametrize("name", [n for n, p in {**PRESETS, **BERT_PRESETS}.items() if p.published_params])
def test_published_totals(name):
    preset = PRESETS.get(name) or BERT_PRESETS[name]
    assert ours(name) == preset.published_params


def test_headline_totals():
    assert ours("gpt2-small") == 124_439_808
    assert ours("llama2-7b") == 6_738_415_616
    assert abs(ours("palm-540b") / 540.35e9 - 1) < 1e-3
    assert abs(ours("gpt3-175b") / 175e9 - 1) < 0.01


def test_components_flops_memory_and_chinchilla():
    report = param_report("gpt2-small", tokens=1e9)
    assert report.components["position_embedding"] == 1024 * 768
    assert "lm_head" not in report.components  # tied to the token embedding
    assert report.train_flops_6nd == 6 * report.total * 1e9
    assert report.train_flops_with_attention == report.train_flops_6nd + 6 * 12 * 1024 * 768 * 1e9
    assert report.chinchilla_tokens == 20 * report.total
    assert report.memory_bytes["fp32"]["total"] == 16 * report.total
    assert report.memory_bytes["bf16"]["total"] == 8 * report.total
    assert param_report("llama2-7b").tokens_source == "published"


def test_rnn_components():
    model = build_model("lstm", vocab_size=10, d_embed=4, d_hidden=8, n_layer=1)
    assert count_by_component(model) == {"token_embedding": 40, "recurrent": 4 * 8 * (4 + 8 + 2), "lm_head": 8 * 10 + 10}


def test_params_cli(cli):
    result = cli("params", "llama-tiny", "--json")
    assert result.code == 0
    data = json.loads(result.out)
    assert data["total"] == build_model("llama", "llama-tiny").num_params()
    assert cli("params", "gpt-4").code == 0
    assert "not published" in cli("params", "gpt-4").out
    bad = cli("params", "gpt-5")
    assert bad.code == 2 and "unknown preset" in bad.err
    assert cli("params", "gpt2-small", "--tokens", "-1").code == 2
