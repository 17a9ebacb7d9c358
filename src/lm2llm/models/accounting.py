"""What a model costs: parameters by component, training FLOPs, training memory, Chinchilla tokens.

Parameters are counted by building the model on PyTorch's meta device (shapes only, no memory), so a
540B-parameter PaLM is counted on a laptop in about a second, from the same code that builds the tiny
models we train. BERT (an encoder, built elsewhere) is counted by formula and tested against transformers.

Compute: a forward pass costs about 2 FLOPs per parameter per token (one multiply, one add), the backward
pass twice that, hence C ≈ 6·N·D for N parameters and D tokens. Attention adds a term that grows with the
context: 2·n_layer·n_ctx·d_attn per token forward (QKᵀ and the weighted sum of V), so
6·N·D + 6·n_layer·n_ctx·d_attn·D for training (Kaplan et al. 2020, table 1).
Chinchilla (Hoffmann et al. 2022): compute-optimal training uses about 20 tokens per parameter.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Any

import torch

from lm2llm.errors import UserError
from lm2llm.models.factory import build_model
from lm2llm.models.presets import BERT_PRESETS, CATALOG, PRESETS, CatalogEntry

CHINCHILLA_TOKENS_PER_PARAM = 20
BYTES = {"fp32": 4, "bf16": 2}
COMPONENTS = ("token_embedding", "position_embedding", "attention", "mlp", "recurrent", "norms", "lm_head", "pooler")


def component_of(name: str) -> str:
    """Which part of the model a parameter belongs to, from its name."""
    if name.startswith("tok_emb"):
        return "token_embedding"
    if name.startswith("pos_emb"):
        return "position_embedding"
    if ".attn." in name:
        return "attention"
    if ".mlp." in name:
        return "mlp"
    if name.startswith("cells."):
        return "recurrent"
    if "norm" in name:
        return "norms"
    if name.startswith("lm_head"):
        return "lm_head"
    raise ValueError(f"unclassified parameter {name}")


def count_by_component(model: torch.nn.Module) -> dict[str, int]:
    """Parameter counts per component (a tied output matrix counts once, as the token embedding)."""
    counts = dict.fromkeys(COMPONENTS, 0)
    for name, p in model.named_parameters():  # named_parameters skips the second name of a shared tensor
        counts[component_of(name)] += p.numel()
    return {k: v for k, v in counts.items() if v}


def bert_components(vocab_size: int, context_length: int, type_vocab_size: int, n_layer: int, d_model: int,
                    d_ff: int, **_: Any) -> dict[str, int]:
    """BERT's parameters by formula (post-norm encoder with biases everywhere, plus the pooler).

    `token_embedding` includes the segment (token type) embeddings.
    """
    d = d_model
    per_layer_attention = 4 * (d * d + d)
    per_layer_mlp = d * d_ff + d_ff + d_ff * d + d
    return {
        "token_embedding": vocab_size * d + type_vocab_size * d,
        "position_embedding": context_length * d,
        "attention": n_layer * per_layer_attention,
        "mlp": n_layer * per_layer_mlp,
        "norms": 2 * d + n_layer * 2 * (2 * d),
        "pooler": d * d + d,
    }


@dataclass
class ParamReport:
    name: str
    family: str
    config: dict[str, Any]
    components: dict[str, int]
    total: int
    non_embedding: int
    published_params: int | None
    stated_params: str | None
    source: str
    tokens: float
    tokens_source: str  # "given", "published" or "chinchilla"
    chinchilla_tokens: float
    train_flops_6nd: float
    train_flops_with_attention: float
    memory_bytes: dict[str, dict[str, float]] = field(default_factory=dict)


def training_memory(n_params: int) -> dict[str, dict[str, float]]:
    """Bytes to train with Adam: weights, gradients, and Adam's two moments (activations not included).

    `mixed` is the usual bf16 recipe: bf16 weights and gradients plus fp32 master weights and moments.
    """
    table = {}
    for dtype, b in BYTES.items():
        table[dtype] = {"weights": n_params * b, "gradients": n_params * b, "adam_states": 2 * n_params * b}
    table["mixed"] = {"weights": n_params * 2 + n_params * 4, "gradients": n_params * 2, "adam_states": 2 * n_params * 4}
    for row in table.values():
        row["total"] = sum(row.values())
    return table


def preset_names() -> list[str]:
    return [*PRESETS, *BERT_PRESETS]


@functools.cache
def _count(name: str) -> tuple[dict[str, int], dict[str, Any]]:
    """Components and full config of a preset (cached: presets never change while the process runs)."""
    preset = PRESETS.get(name) or BERT_PRESETS[name]
    if preset.family == "bert":
        return bert_components(**preset.config), dict(preset.config)
    with torch.device("meta"):
        model = build_model(preset.family, name)
    return count_by_component(model), dataclasses.asdict(model.config)


def param_report(name: str, tokens: float | None = None) -> ParamReport:
    """Count a preset on the meta device and derive compute and memory for training it on `tokens`."""
    preset = PRESETS.get(name) or BERT_PRESETS.get(name)
    if preset is None:
        unpublished = ", ".join(e.name for e in CATALOG)
        raise UserError(f"unknown preset {name!r}", where="PRESET",
                        hint=f"choose from {', '.join(preset_names())}; without a published architecture: {unpublished}")
    components, config = _count(name)
    return _report(name, preset.family, dict(config), dict(components), tokens, preset)


def model_param_report(name: str, model: torch.nn.Module, tokens: float | None = None) -> ParamReport:
    """The same report for a model (built on the meta device from a run's config, say)."""
    from lm2llm.models.factory import family_of

    return _report(name, family_of(model), dataclasses.asdict(model.config), count_by_component(model), tokens)


def _report(name: str, family: str, config: dict[str, Any], components: dict[str, int], tokens: float | None,
            preset: Any = None) -> ParamReport:
    if family in ("rnn", "lstm", "gru"):
        n_layer = n_ctx = d_attn = 0
    else:
        d_attn = config["d_model"] if family == "bert" else config["n_head"] * config["head_dim"]
        n_layer, n_ctx = config["n_layer"], config["context_length"]
    total = sum(components.values())
    non_embedding = total - components.get("token_embedding", 0) - components.get("position_embedding", 0)
    chinchilla = CHINCHILLA_TOKENS_PER_PARAM * total
    if tokens is not None:
        if tokens <= 0:
            raise UserError(f"--tokens must be positive, got {tokens:g}", where="--tokens")
        used, used_source = tokens, "given"
    elif preset is not None and preset.trained_tokens is not None:
        used, used_source = preset.trained_tokens, "published"
    else:
        used, used_source = chinchilla, "chinchilla"
    flops = 6 * total * used
    return ParamReport(
        name=name, family=family, config=config, components=components, total=total,
        non_embedding=non_embedding, published_params=preset.published_params if preset else None,
        stated_params=preset.stated_params if preset else None, source=preset.source if preset else "run directory",
        tokens=used, tokens_source=used_source,
        chinchilla_tokens=chinchilla, train_flops_6nd=flops,
        train_flops_with_attention=flops + 6 * n_layer * n_ctx * d_attn * used,
        memory_bytes=training_memory(total),
    )


def catalog_entry(name: str) -> CatalogEntry | None:
    """The catalog entry whose name matches (case- and punctuation-insensitive), if any."""
    key = "".join(ch for ch in name.lower() if ch.isalnum())
    for entry in CATALOG:
        if "".join(ch for ch in entry.name.lower() if ch.isalnum()).startswith(key):
            return entry
    return None
