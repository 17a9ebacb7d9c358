"""`build_model(family, preset, **overrides)`: a family's defaults, then a preset, then the overrides."""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import nn

from lm2llm.errors import UserError
from lm2llm.models.bert import Bert, BertConfig
from lm2llm.models.presets import BERT_PRESETS, PRESETS
from lm2llm.models.rnn import CELLS, RNNConfig, RNNLanguageModel
from lm2llm.models.transformer import Transformer, TransformerConfig

# What each family starts from before a preset or overrides change it.
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "rnn": {"cell": "rnn"},
    "lstm": {"cell": "lstm"},
    "gru": {"cell": "gru"},
    "gpt": {},  # TransformerConfig's defaults are GPT-2's choices
    "llama": {"norm": "rmsnorm", "mlp": "swiglu", "positional": "rope", "bias": False, "tie_embeddings": False},
    "bert": {},  # BertConfig's defaults are the paper's choices, small
}
FAMILIES = tuple(FAMILY_DEFAULTS)


ModelConfig = RNNConfig | TransformerConfig | BertConfig


def config_for(family: str, preset: str | None = None, **overrides: Any) -> ModelConfig:
    """The config `build_model` would use, without building anything."""
    if family not in FAMILY_DEFAULTS:
        raise UserError(f"unknown model family {family!r}", where="family", hint=f"choose from {', '.join(FAMILIES)}")
    fields = dict(FAMILY_DEFAULTS[family])
    if preset is not None:
        entry = PRESETS.get(preset) or BERT_PRESETS.get(preset)
        if entry is None:
            family_presets = [name for name, e in {**PRESETS, **BERT_PRESETS}.items() if e.family == family]
            raise UserError(f"unknown preset {preset!r}", where="preset",
                            hint=f"{family}'s presets: {', '.join(family_presets) or 'none'}")
        if entry.family != family:
            raise UserError(f"preset {preset!r} belongs to family {entry.family!r}, not {family!r}", where="preset")
        fields.update(entry.config)
    fields.update(overrides)
    config_cls = RNNConfig if family in CELLS else BertConfig if family == "bert" else TransformerConfig
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise UserError(f"unknown {family} config field(s) {', '.join(unknown)}", where="overrides",
                        hint=f"known fields: {', '.join(sorted(known))}")
    return config_cls(**fields)


def build_model(family: str, preset: str | None = None, **overrides: Any) -> nn.Module:
    """A freshly initialised model. Build under `with torch.device("meta"):` to count without memory."""
    config = config_for(family, preset, **overrides)
    return model_from_config(config)


def model_from_config(config: ModelConfig) -> nn.Module:
    if isinstance(config, BertConfig):
        return Bert(config)
    return RNNLanguageModel(config) if isinstance(config, RNNConfig) else Transformer(config)


def family_of(model: nn.Module) -> str:
    """The family name saved with a model: the cell for RNNs, bert, llama for RoPE+RMSNorm decoders, else gpt."""
    config = model.config
    if isinstance(config, BertConfig):
        return "bert"
    if isinstance(config, RNNConfig):
        return config.cell
    return "llama" if (config.positional, config.norm) == ("rope", "rmsnorm") else "gpt"
