"""Our decoders as Hugging Face transformers models: the config and the weights, renamed.

This is how fidelity is proven (same weights → same logits as `GPT2LMHeadModel`/`LlamaForCausalLM`) and
how parameter counts are cross-checked (the transformers model built on the meta device). It also lets a
model trained here be used with the transformers ecosystem. transformers is imported lazily: it is an
optional dependency.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from lm2llm.errors import UserError
from lm2llm.models.transformer import Transformer, TransformerConfig


def hf_kind(config: TransformerConfig) -> str:
    """"gpt2" or "llama": which transformers architecture expresses this config exactly."""
    gpt2 = dict(norm="layernorm", mlp="gelu_tanh", positional="learned", bias=True, tie_embeddings=True,
                parallel_block=False)
    llama = dict(norm="rmsnorm", mlp="swiglu", positional="rope", bias=False, parallel_block=False)
    if all(getattr(config, k) == v for k, v in gpt2.items()) and config.n_kv_head == config.n_head \
            and config.head_dim * config.n_head == config.d_model:
        return "gpt2"
    if all(getattr(config, k) == v for k, v in llama.items()):
        return "llama"
    raise UserError("this decoder has no exact transformers counterpart",
                    hint="GPT-2 style (learned positions, LayerNorm, GELU) or LLaMA style (RoPE, RMSNorm, SwiGLU)")


def hf_config(config: TransformerConfig) -> Any:
    """The transformers config describing the same architecture."""
    import transformers

    if hf_kind(config) == "gpt2":
        return transformers.GPT2Config(
            vocab_size=config.vocab_size, n_positions=config.context_length, n_embd=config.d_model,
            n_layer=config.n_layer, n_head=config.n_head, n_inner=config.d_ff, activation_function="gelu_new",
            layer_norm_epsilon=config.norm_eps, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
            bos_token_id=None, eos_token_id=None,
        )
    return transformers.LlamaConfig(
        vocab_size=config.vocab_size, hidden_size=config.d_model, intermediate_size=config.d_ff,
        num_hidden_layers=config.n_layer, num_attention_heads=config.n_head, num_key_value_heads=config.n_kv_head,
        head_dim=config.head_dim, max_position_embeddings=config.context_length, rms_norm_eps=config.norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": config.rope_theta},
        tie_word_embeddings=config.tie_embeddings, attention_bias=False, mlp_bias=False,
    )


def hf_model_class(config: TransformerConfig) -> Any:
    import transformers

    return transformers.GPT2LMHeadModel if hf_kind(config) == "gpt2" else transformers.LlamaForCausalLM


class WeightName(NamedTuple):
    """One weight under both names, the single table both directions of the conversion read.

    `ours` holds several names where transformers stores one fused tensor (GPT-2's `c_attn` is q, k and v
    stacked on the output axis); `transposed` marks GPT-2's Conv1D, which stores (in, out) where
    `nn.Linear` stores (out, in).
    """

    ours: tuple[str, ...]
    theirs: str
    transposed: bool = False


def decoder_weight_names(config: TransformerConfig) -> list[WeightName]:
    """Every decoder weight but the LM head (tied or absent in some checkpoints: each direction decides)."""
    names: list[WeightName] = []

    def add(ours: str | tuple[str, ...], theirs: str, transposed: bool = False) -> None:
        names.append(WeightName((ours,) if isinstance(ours, str) else ours, theirs, transposed))

    if hf_kind(config) == "gpt2":
        add("tok_emb.weight", "transformer.wte.weight")
        add("pos_emb.table.weight", "transformer.wpe.weight")
        for i in range(config.n_layer):
            b, h = f"blocks.{i}.", f"transformer.h.{i}."
            add(tuple(f"{b}attn.{p}_proj.weight" for p in "qkv"), h + "attn.c_attn.weight", transposed=True)
            add(tuple(f"{b}attn.{p}_proj.bias" for p in "qkv"), h + "attn.c_attn.bias")
            for ours, theirs in (("attn.out_proj", "attn.c_proj"), ("mlp.up", "mlp.c_fc"), ("mlp.down", "mlp.c_proj")):
                add(f"{b}{ours}.weight", f"{h}{theirs}.weight", transposed=True)
                add(f"{b}{ours}.bias", f"{h}{theirs}.bias")
            for ours, theirs in (("norm_attn", "ln_1"), ("norm_mlp", "ln_2")):
                add(f"{b}{ours}.weight", f"{h}{theirs}.weight")
                add(f"{b}{ours}.bias", f"{h}{theirs}.bias")
        add("norm_f.weight", "transformer.ln_f.weight")
        add("norm_f.bias", "transformer.ln_f.bias")
        return names
    add("tok_emb.weight", "model.embed_tokens.weight")
    for i in range(config.n_layer):
        b, h = f"blocks.{i}.", f"model.layers.{i}."
        for p in "qkv":
            add(f"{b}attn.{p}_proj.weight", f"{h}self_attn.{p}_proj.weight")
        add(b + "attn.out_proj.weight", h + "self_attn.o_proj.weight")
        for p in ("gate", "up", "down"):
            add(f"{b}mlp.{p}.weight", f"{h}mlp.{p}_proj.weight")
        add(b + "norm_attn.weight", h + "input_layernorm.weight")
        add(b + "norm_mlp.weight", h + "post_attention_layernorm.weight")
    add("norm_f.weight", "model.norm.weight")
    return names


def rename_to_hf(sd: dict[str, torch.Tensor], names: list[WeightName]) -> dict[str, torch.Tensor]:
    """Our state dict under transformers' names: fused weights concatenated, Conv1D weights transposed."""
    out = {}
    for name in names:
        weight = sd[name.ours[0]] if len(name.ours) == 1 else torch.cat([sd[n] for n in name.ours], dim=0)
        out[name.theirs] = weight.t().contiguous() if name.transposed else weight
    return out


def rename_from_hf(sd: dict[str, torch.Tensor], names: list[WeightName]) -> dict[str, torch.Tensor]:
    """The inverse of `rename_to_hf`: transformers' tensors split and transposed back under our names."""
    out = {}
    for name in names:
        weight = sd[name.theirs].t() if name.transposed else sd[name.theirs]
        for ours, part in zip(name.ours, weight.chunk(len(name.ours)), strict=True):
            out[ours] = part.contiguous()
    return out


def to_hf_state_dict(model: Transformer) -> dict[str, torch.Tensor]:
    """Our weights under transformers' names, the LM head included (GPT-2's is always the tied embedding)."""
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    out = rename_to_hf(sd, decoder_weight_names(model.config))
    out["lm_head.weight"] = sd["tok_emb.weight" if hf_kind(model.config) == "gpt2" else "lm_head.weight"]
    return out


def to_hf(model: Transformer) -> Any:
    """A transformers model holding exactly our weights (in eval mode)."""
    hf = hf_model_class(model.config)(hf_config(model.config))
    missing, unexpected = hf.load_state_dict(to_hf_state_dict(model), strict=False)
    # buffers such as rotary frequencies or GPT-2's causal mask are not weights
    missing = [k for k in missing if not k.endswith(("inv_freq", "attn.bias", "masked_bias"))]
    if missing or unexpected:
        raise RuntimeError(f"weight mapping incomplete: missing {missing}, unexpected {unexpected}")
    return hf.eval()
