"""Weights and configs between our models and transformers', in both directions.

The decoders' name table (GPT-2's fused, transposed Conv1D weights, LLaMA's renames) lives in
`lm2llm.models.hf_compat` and serves both directions; this module adds BERT (a pure rename, both ways),
the decoders' import side, and the sequence-classification heads. transformers is imported lazily: it is
optional.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from lm2llm.classify.model import SequenceClassifier
from lm2llm.errors import UserError
from lm2llm.models import Bert, BertConfig, TransformerConfig, config_for
from lm2llm.models.hf_compat import decoder_weight_names, hf_config, rename_from_hf, rename_to_hf


def require_transformers_bert(config: BertConfig) -> None:
    """A clear error for a BERT built with options transformers' `BertModel` lacks (`positional`, `norm_placement`)."""
    if not config.like_transformers:
        raise UserError(f"this BERT has {config.positional} positions and {config.norm_placement}-LN blocks; "
                        "transformers' BERT has learned positions and post-LN only", where="model_config.json",
                        hint="only BERTs with the default positional and norm_placement can be exported")


def bert_names(config: BertConfig, prefix: str = "bert.") -> list[tuple[str, str]]:
    """(our name, transformers' name) for every encoder weight; `prefix` is "" for a bare `BertModel`."""
    require_transformers_bert(config)
    names = [("tok_emb.weight", "embeddings.word_embeddings.weight"),
             ("pos_emb.weight", "embeddings.position_embeddings.weight"),
             ("type_emb.weight", "embeddings.token_type_embeddings.weight"),
             ("norm_emb.weight", "embeddings.LayerNorm.weight"), ("norm_emb.bias", "embeddings.LayerNorm.bias"),
             ("pooler.weight", "pooler.dense.weight"), ("pooler.bias", "pooler.dense.bias")]
    parts = [("attn.q_proj", "attention.self.query"), ("attn.k_proj", "attention.self.key"),
             ("attn.v_proj", "attention.self.value"), ("attn.out_proj", "attention.output.dense"),
             ("norm_attn", "attention.output.LayerNorm"), ("up", "intermediate.dense"),
             ("down", "output.dense"), ("norm_mlp", "output.LayerNorm")]
    for i in range(config.n_layer):
        for ours, theirs in parts:
            for p in ("weight", "bias"):
                names.append((f"layers.{i}.{ours}.{p}", f"encoder.layer.{i}.{theirs}.{p}"))
    return [(ours, prefix + theirs) for ours, theirs in names]


MLM_HEAD_NAMES = [("mlm_dense.weight", "cls.predictions.transform.dense.weight"),
                  ("mlm_dense.bias", "cls.predictions.transform.dense.bias"),
                  ("mlm_norm.weight", "cls.predictions.transform.LayerNorm.weight"),
                  ("mlm_norm.bias", "cls.predictions.transform.LayerNorm.bias"),
                  ("mlm_bias", "cls.predictions.bias")]


# -- configs ---------------------------------------------------------------------------------------------

def bert_hf_config(config: BertConfig, **extra: Any) -> Any:
    import transformers

    require_transformers_bert(config)

    return transformers.BertConfig(
        vocab_size=config.vocab_size, hidden_size=config.d_model, num_hidden_layers=config.n_layer,
        num_attention_heads=config.n_head, intermediate_size=config.d_ff, hidden_act="gelu",
        max_position_embeddings=config.context_length, type_vocab_size=config.type_vocab_size,
        layer_norm_eps=config.norm_eps, hidden_dropout_prob=config.dropout, attention_probs_dropout_prob=config.dropout,
        initializer_range=config.init_std, tie_word_embeddings=True, **extra,
    )


def _require(condition: bool, what: str, where: str) -> None:
    if not condition:
        raise UserError(f"this checkpoint uses {what}, which lm2llm's models do not implement", where=where)


def _check_fields(hf: Any, where: str, sizes: tuple[str, ...], positives: tuple[str, ...]) -> None:
    """Sizes must be whole numbers >= 1 and the others finite and > 0 (absent optional fields are None)."""
    for name in sizes:
        value = getattr(hf, name, None)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise UserError(f"{name} is {value!r}, not a whole number >= 1", where=where)
    for name in positives:
        value = getattr(hf, name, None)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
            raise UserError(f"{name} is {value!r}, not a finite number > 0", where=where)


HF_SIZES = {"bert": ("vocab_size", "max_position_embeddings", "type_vocab_size", "num_hidden_layers",
                     "num_attention_heads", "hidden_size", "intermediate_size"),
            "gpt2": ("vocab_size", "n_positions", "n_layer", "n_head", "n_embd", "n_inner"),
            "llama": ("vocab_size", "max_position_embeddings", "num_hidden_layers", "num_attention_heads",
                      "num_key_value_heads", "hidden_size", "intermediate_size", "head_dim")}
HF_POSITIVES = {"bert": ("layer_norm_eps",), "gpt2": ("layer_norm_epsilon",), "llama": ("rms_norm_eps",)}


def config_from_hf(hf: Any, where: str = "config.json") -> tuple[str, BertConfig | TransformerConfig]:
    """(family, our config) for a transformers `BertConfig`, `GPT2Config` or `LlamaConfig`; every size the
    translation reads is checked first, so a hostile config fails with the field's name."""
    kind = hf.model_type
    if kind in HF_SIZES:
        _check_fields(hf, where, HF_SIZES[kind], HF_POSITIVES[kind])
    if kind == "bert":
        _require(hf.hidden_act == "gelu", f"activation {hf.hidden_act!r}", where)
        _require(getattr(hf, "position_embedding_type", "absolute") in (None, "absolute"), "relative positions", where)
        return "bert", config_for("bert", vocab_size=hf.vocab_size, context_length=hf.max_position_embeddings,
                                  type_vocab_size=hf.type_vocab_size, n_layer=hf.num_hidden_layers,
                                  n_head=hf.num_attention_heads, d_model=hf.hidden_size, d_ff=hf.intermediate_size,
                                  norm_eps=hf.layer_norm_eps)
    if kind == "gpt2":
        _require(hf.activation_function in ("gelu_new", "gelu_pytorch_tanh"), f"activation {hf.activation_function!r}", where)
        return "gpt", config_for("gpt", vocab_size=hf.vocab_size, context_length=hf.n_positions, n_layer=hf.n_layer,
                                 n_head=hf.n_head, d_model=hf.n_embd, d_ff=hf.n_inner or 4 * hf.n_embd,
                                 norm_eps=hf.layer_norm_epsilon)
    if kind == "llama":
        _require(hf.hidden_act == "silu", f"activation {hf.hidden_act!r}", where)
        _require(not hf.attention_bias and not hf.mlp_bias, "biases", where)
        rope = hf.rope_parameters or {}
        _require(rope.get("rope_type", "default") == "default", f"RoPE scaling {rope.get('rope_type')!r}", where)
        return "llama", config_for("llama", vocab_size=hf.vocab_size, context_length=hf.max_position_embeddings,
                                   n_layer=hf.num_hidden_layers, n_head=hf.num_attention_heads,
                                   n_kv_head=hf.num_key_value_heads, d_model=hf.hidden_size, d_ff=hf.intermediate_size,
                                   head_dim=getattr(hf, "head_dim", None), norm_eps=hf.rms_norm_eps,
                                   rope_theta=float(rope.get("rope_theta", 10000.0)),
                                   tie_embeddings=bool(hf.tie_word_embeddings))
    raise UserError(f"model type {kind!r} is not supported", where=where, hint="bert, gpt2 or llama checkpoints")


# -- weights: ours → transformers -------------------------------------------------------------------------

def bert_to_hf(model: Bert, prefix: str = "bert.", mlm_head: bool = True) -> dict[str, torch.Tensor]:
    sd = model.state_dict()
    names = bert_names(model.config, prefix) + (MLM_HEAD_NAMES if mlm_head else [])
    return {theirs: sd[ours].detach() for ours, theirs in names}


def classifier_to_hf(model: SequenceClassifier) -> dict[str, torch.Tensor]:
    """`BertForSequenceClassification` (`classifier`) or `GPT2/LlamaForSequenceClassification` (`score`)."""
    if isinstance(model.backbone, Bert):
        return {**bert_to_hf(model.backbone, mlm_head=False), "classifier.weight": model.head.weight.detach(),
                "classifier.bias": model.head.bias.detach()}
    backbone = {k: v.detach() for k, v in model.backbone.state_dict().items()}
    return {**rename_to_hf(backbone, decoder_weight_names(model.config)), "score.weight": model.head.weight.detach()}


# -- weights: transformers → ours -------------------------------------------------------------------------

def bert_from_hf(sd: dict[str, torch.Tensor], config: BertConfig, prefix: str = "bert.") -> dict[str, torch.Tensor]:
    """Our encoder's weights from a transformers state dict; the pooler and the MLM head only when the
    checkpoint has them (`BertForMaskedLM` has no pooler, `BertModel` no MLM head)."""
    names = [(ours, theirs) for ours, theirs in bert_names(config, prefix)
             if not ours.startswith("pooler.") or theirs in sd]
    if "cls.predictions.bias" in sd:
        names += MLM_HEAD_NAMES
    missing = [theirs for _, theirs in names if theirs not in sd]
    if missing:
        raise UserError(f"the checkpoint lacks {len(missing)} BERT weight(s), e.g. {missing[0]}", where="model.safetensors")
    return {ours: sd[theirs] for ours, theirs in names}


def decoder_from_hf(sd: dict[str, torch.Tensor], config: TransformerConfig) -> dict[str, torch.Tensor]:
    """Our decoder's weights from a GPT-2 or LLaMA state dict (the inverse of hf_compat.to_hf_state_dict)."""
    out = rename_from_hf(sd, decoder_weight_names(config))
    if "lm_head.weight" in sd or config.tie_embeddings:
        out["lm_head.weight"] = sd.get("lm_head.weight", out["tok_emb.weight"])
    return out


def hf_decoder_config(config: TransformerConfig, **extra: Any) -> Any:
    """hf_compat's config with extra fields (labels, special-token ids) set."""
    hf = hf_config(config)
    for key, value in extra.items():
        setattr(hf, key, value)
    return hf
