"""Our decoders as Hugging Face transformers models: the config and the weights, renamed.

This is how fidelity is proven (same weights → same logits as `GPT2LMHeadModel`/`LlamaForCausalLM`) and
how parameter counts are cross-checked (the transformers model built on the meta device). It also lets a
model trained here be used with the transformers ecosystem. transformers is imported lazily: it is an
optional dependency.
"""

from __future__ import annotations

from typing import Any

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


def to_hf_state_dict(model: Transformer) -> dict[str, torch.Tensor]:
    """Our weights under transformers' names (GPT-2's Conv1D stores weights transposed: (in, out))."""
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    out: dict[str, torch.Tensor] = {}
    if hf_kind(model.config) == "gpt2":
        out["transformer.wte.weight"] = sd["tok_emb.weight"]
        out["transformer.wpe.weight"] = sd["pos_emb.table.weight"]
        for i in range(model.config.n_layer):
            b, h = f"blocks.{i}.", f"transformer.h.{i}."
            qkv = [sd[f"{b}attn.{p}_proj.weight"] for p in "qkv"]
            out[h + "attn.c_attn.weight"] = torch.cat(qkv, dim=0).t().contiguous()
            out[h + "attn.c_attn.bias"] = torch.cat([sd[f"{b}attn.{p}_proj.bias"] for p in "qkv"])
            out[h + "attn.c_proj.weight"] = sd[b + "attn.out_proj.weight"].t().contiguous()
            out[h + "attn.c_proj.bias"] = sd[b + "attn.out_proj.bias"]
            out[h + "mlp.c_fc.weight"] = sd[b + "mlp.up.weight"].t().contiguous()
            out[h + "mlp.c_fc.bias"] = sd[b + "mlp.up.bias"]
            out[h + "mlp.c_proj.weight"] = sd[b + "mlp.down.weight"].t().contiguous()
            out[h + "mlp.c_proj.bias"] = sd[b + "mlp.down.bias"]
            for ours, theirs in (("norm_attn", "ln_1"), ("norm_mlp", "ln_2")):
                out[f"{h}{theirs}.weight"] = sd[f"{b}{ours}.weight"]
                out[f"{h}{theirs}.bias"] = sd[f"{b}{ours}.bias"]
        out["transformer.ln_f.weight"] = sd["norm_f.weight"]
        out["transformer.ln_f.bias"] = sd["norm_f.bias"]
        out["lm_head.weight"] = sd["tok_emb.weight"]
        return out
    out["model.embed_tokens.weight"] = sd["tok_emb.weight"]
    for i in range(model.config.n_layer):
        b, h = f"blocks.{i}.", f"model.layers.{i}."
        for p in "qkv":
            out[f"{h}self_attn.{p}_proj.weight"] = sd[f"{b}attn.{p}_proj.weight"]
        out[h + "self_attn.o_proj.weight"] = sd[b + "attn.out_proj.weight"]
        for p in ("gate", "up", "down"):
            out[f"{h}mlp.{p}_proj.weight"] = sd[f"{b}mlp.{p}.weight"]
        out[h + "input_layernorm.weight"] = sd[b + "norm_attn.weight"]
        out[h + "post_attention_layernorm.weight"] = sd[b + "norm_mlp.weight"]
    out["model.norm.weight"] = sd["norm_f.weight"]
    out["lm_head.weight"] = sd["lm_head.weight"]
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
