"""LoRA (low-rank adaptation), from scratch: fine-tune a few small matrices instead of the whole model.

A frozen linear layer `W` gets a trainable update `ΔW = B·A·(alpha/r)` with `A: r×in` and `B: out×r`,
so a layer of `in·out` weights trains only `r·(in+out)`. `A` starts Kaiming-uniform and `B` at zero,
so the wrapped model computes exactly what the base did until training moves `B`. After training the
update can be merged into `W` (no extra cost at inference) or kept apart as a small adapter file.

LoRA cannot teach the model a token it never saw: embeddings are lookups, not linear layers. Trainable
token rows fill that gap (PEFT's `trainable_token_indices`): a few listed rows of the input embedding
become trainable copies while the rest stays frozen, and an output head tied to the embedding uses the
same rows. Fine-tuning for chat uses them for the chat template's special tokens, whose rows pre-training
never trained.

The layout follows PEFT, which practitioners use: each wrapped layer keeps the original as `base_layer`
next to `lora_A`/`lora_B`, and adapters are saved as `adapter_model.safetensors` + `adapter_config.json`
with PEFT's key names, so an adapter trained here loads in PEFT and one trained in PEFT loads here.
Limitations: one adapter per model, no bias training, no DoRA/rsLoRA/per-layer ranks, trainable token
rows on the input embedding (and heads tied to it) only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from lm2llm.errors import UserError
from lm2llm.runs import atomic_save, atomic_write_json, read_json

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
KEY_PREFIX = "base_model.model."  # PEFT's prefix for the wrapped model's parameter names
TOKEN_ROWS_KEY = "token_adapter.trainable_tokens_delta"  # PEFT's name for the rows, after the embedding's name


@dataclass
class LoraConfig:
    """rank `r`, `alpha` (the update is scaled by alpha/r), input `dropout`, and which layers to wrap.

    `targets`: None wraps every linear layer except the output head; a string is a regular expression
    that must match a layer's full name; a list holds names or glob patterns, each matching a full name
    or its last dotted components (`"q_proj"` matches `blocks.0.attn.q_proj`), as PEFT's lists do.
    `trainable_tokens`: token ids whose input-embedding rows train too (PEFT's `trainable_token_indices`).
    """

    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    targets: str | list[str] | None = None
    trainable_tokens: list[int] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.r, int) or self.r < 1:
            raise UserError(f"LoRA rank must be a positive integer, got {self.r!r}", where="r")
        if self.alpha <= 0:
            raise UserError(f"LoRA alpha must be positive, got {self.alpha!r}", where="alpha")
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"LoRA dropout must be in [0, 1), got {self.dropout!r}", where="dropout")
        if self.trainable_tokens is not None:
            _check_token_ids(self.trainable_tokens)

    @property
    def scaling(self) -> float:
        return self.alpha / self.r

    @classmethod
    def from_spec(cls, spec: str) -> LoraConfig:
        """Parse the command line's `r=8,alpha=16,dropout=0.05,targets=q_proj+v_proj` (any subset).

        `targets` lists names or globs joined by `+`; left out (or `all-linear`), every linear layer but
        the output head is wrapped.
        """
        fields: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in spec.split(","))):
            key, sep, value = item.partition("=")
            if not sep or key not in ("r", "alpha", "dropout", "targets") or not value:
                raise UserError(f"bad LoRA setting {item!r}", where="--lora",
                                hint="write r=8,alpha=16,dropout=0.05,targets=q_proj+v_proj")
            fields[key] = value
        try:
            r = int(fields.get("r", cls.r))
            alpha = float(fields.get("alpha", 2 * r))
            dropout = float(fields.get("dropout", cls.dropout))
        except ValueError as exc:
            raise UserError(f"bad LoRA number: {exc}", where="--lora") from exc
        targets = fields.get("targets", "all-linear")
        return cls(r=r, alpha=alpha, dropout=dropout,
                   targets=None if targets == "all-linear" else targets.split("+"))


def _is_conv1d(module: nn.Module) -> bool:
    """transformers' GPT-2 `Conv1D`: a linear layer whose weight is stored (in, out) instead of (out, in)."""
    return type(module).__name__ == "Conv1D" and getattr(module, "weight", None) is not None \
        and module.weight.dim() == 2


def _is_linear(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or _is_conv1d(module)


def _in_out(module: nn.Module) -> tuple[int, int]:
    """(in_features, out_features) of an nn.Linear or a Conv1D."""
    rows, cols = module.weight.shape
    return (rows, cols) if _is_conv1d(module) else (cols, rows)


class LoraLinear(nn.Module):
    """`base_layer(x) + B(A(dropout(x))) · alpha/r`, with the base layer frozen."""

    def __init__(self, base_layer: nn.Module, r: int, alpha: float, dropout: float = 0.0):
        super().__init__()
        self.base_layer = base_layer
        self.fan_in_fan_out = _is_conv1d(base_layer)  # Conv1D stores W transposed
        weight = base_layer.weight
        in_features, out_features = _in_out(base_layer)
        self.r, self.alpha, self.scaling = r, alpha, alpha / r
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.lora_A = nn.Linear(in_features, r, bias=False, device=weight.device, dtype=weight.dtype)
        self.lora_B = nn.Linear(r, out_features, bias=False, device=weight.device, dtype=weight.dtype)
        self.merged = False
        self.reset_lora_parameters()

    def reset_lora_parameters(self) -> None:
        """A as nn.Linear's own default (Kaiming-uniform, a=√5), B = 0: the update starts at exactly zero."""
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)

    def delta_weight(self) -> torch.Tensor:
        """ΔW = B·A·scaling, in the base weight's layout."""
        delta = self.lora_B.weight @ self.lora_A.weight
        return (delta.T if self.fan_in_fan_out else delta) * self.scaling

    @torch.no_grad()
    def merge(self) -> None:
        if not self.merged:
            self.base_layer.weight += self.delta_weight()
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        if self.merged:
            self.base_layer.weight -= self.delta_weight()
            self.merged = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base_layer(x)
        if self.merged:
            return out
        return out + self.lora_B(self.lora_A(self.dropout(x))) * self.scaling

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha}, merged={self.merged}"


def _check_token_ids(token_ids: Sequence[int]) -> None:
    if not token_ids:
        raise UserError("no trainable tokens listed", where="trainable_tokens", hint="list token ids, or leave it out")
    if any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in token_ids):
        raise UserError(f"token ids must be non-negative integers, got {list(token_ids)!r}", where="trainable_tokens")
    if len(set(token_ids)) != len(token_ids):
        raise UserError(f"token ids listed twice in {list(token_ids)!r}", where="trainable_tokens")


class TrainableTokens(nn.Module):
    """An embedding, or an output head sharing its weight, whose listed rows train while the rest stays frozen.

    The trainable rows start as copies of the frozen ones, so the model is unchanged until training moves
    them. Each forward writes them over the frozen matrix (`index_copy`) and looks up (or projects) with
    the result, so only those rows get gradients. As in PEFT, the rows hold the new values themselves, not
    differences. A head tied to the embedding gets a wrapper `tied_to` the embedding's: it reads the same
    rows and owns no parameter, so the rows learn from both uses and are counted and saved once.
    """

    def __init__(self, base_layer: nn.Module, token_ids: Sequence[int] = (), tied_to: TrainableTokens | None = None):
        super().__init__()
        if not isinstance(base_layer, (nn.Embedding, nn.Linear)):
            raise UserError(f"trainable tokens need an embedding or a linear head, not {type(base_layer).__name__}")
        self.base_layer = base_layer
        self._tied_to = (tied_to,) if tied_to is not None else ()  # a tuple, so not registered as a submodule
        if tied_to is None:
            weight = base_layer.weight.detach()
            self.register_buffer("token_ids", torch.tensor(list(token_ids), dtype=torch.long, device=weight.device),
                                 persistent=False)
            self.register_buffer("original_rows", weight[self.token_ids].clone(), persistent=False)  # for unmerge
            self.token_rows = nn.Parameter(weight[self.token_ids].clone())
            self.merged = False

    @property
    def owner(self) -> TrainableTokens:
        """The wrapper that holds the rows: this one, or the embedding's for a tied head."""
        return self._tied_to[0] if self._tied_to else self

    @property
    def weight(self) -> torch.Tensor:
        """The whole matrix with the trainable rows written in (models that read `.weight` see the update)."""
        owner = self.owner
        if owner.merged:
            return self.base_layer.weight
        return self.base_layer.weight.index_copy(0, owner.token_ids, owner.token_rows)

    @torch.no_grad()
    def merge(self) -> None:
        """Write the rows into the frozen matrix (shared with a tied head, so both follow)."""
        owner = self.owner
        if not owner.merged:
            owner.base_layer.weight.index_copy_(0, owner.token_ids, owner.token_rows)
            owner.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        owner = self.owner
        if owner.merged:
            owner.base_layer.weight.index_copy_(0, owner.token_ids, owner.original_rows)
            owner.merged = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = self.base_layer
        if isinstance(base, nn.Embedding):
            return F.embedding(x, self.weight, base.padding_idx, base.max_norm, base.norm_type,
                               base.scale_grad_by_freq, base.sparse)
        return F.linear(x, self.weight, base.bias)

    def extra_repr(self) -> str:
        return f"tied={bool(self._tied_to)}, tokens={self.owner.token_ids.tolist()}"


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name), child, module)


def token_layers(model: nn.Module) -> dict[str, TrainableTokens]:
    """Every trainable-token wrapper: the embedding's first, then the heads tied to it."""
    return {name: m for name, m in model.named_modules() if isinstance(m, TrainableTokens)}


def input_embedding_name(model: nn.Module) -> str:
    """The token embedding's name: transformers' `get_input_embeddings()`, or our models' `tok_emb`."""
    get_input_embeddings = getattr(model, "get_input_embeddings", None)
    embedding = get_input_embeddings() if callable(get_input_embeddings) else None
    for name, module in model.named_modules():
        if module is embedding or (embedding is None and name.rpartition(".")[2] == "tok_emb"):
            if isinstance(module, (nn.Embedding, TrainableTokens)):
                return name
    raise UserError(f"{type(model).__name__} has no token embedding for trainable tokens",
                    hint="the model needs get_input_embeddings() or a tok_emb layer")


def _token_embedding(model: nn.Module, token_ids: Sequence[int], where: str) -> tuple[str, nn.Embedding]:
    """(name, layer) of the input embedding, checked to be plain and to hold rows `token_ids`."""
    name = input_embedding_name(model)
    embedding = model.get_submodule(name)
    if isinstance(embedding, TrainableTokens):
        raise UserError("this model already has trainable tokens", hint="merge_and_unload() it first")
    if max(token_ids) >= embedding.num_embeddings:
        raise UserError(f"token id {max(token_ids)} is past the embedding's {embedding.num_embeddings} rows",
                        where=where)
    return name, embedding


def _tied_to(model: nn.Module, embedding: nn.Embedding) -> list[str]:
    """Names of the other layers that share the embedding's weight (a tied output head)."""
    return [name for name, m in model.named_modules()
            if m is not embedding and isinstance(m, (nn.Linear, nn.Embedding)) and m.weight is embedding.weight]


def _refuse_lora_on_tied_heads(heads: Sequence[str]) -> None:
    """LoRA's merge would add its update to the shared matrix under the token rows: the two do not mix."""
    if heads:
        raise UserError(f"{heads[0].removesuffix('.base_layer')} shares the embedding's weight, so it cannot have a "
                        "LoRA adapter next to trainable tokens", hint="leave the tied output head out of the LoRA targets")


def add_trainable_tokens(model: nn.Module, token_ids: Sequence[int]) -> list[str]:
    """Make rows `token_ids` of the input embedding (and of every layer sharing its weight) trainable.

    The embedding's own matrix is frozen; other parameters keep their `requires_grad`. Returns the wrapped
    layers' names, the embedding first.
    """
    _check_token_ids(token_ids)
    name, embedding = _token_embedding(model, token_ids, "trainable_tokens")
    tied = _tied_to(model, embedding)
    _refuse_lora_on_tied_heads([head for head in tied
                                if isinstance(model.get_submodule(head.rpartition(".")[0]), LoraLinear)])
    embedding.weight.requires_grad_(False)
    owner = TrainableTokens(embedding, token_ids)
    _replace(model, name, owner)
    for head in tied:
        _replace(model, head, TrainableTokens(model.get_submodule(head), tied_to=owner))
    return [name, *tied]


def _token_owner(model: nn.Module) -> tuple[str, TrainableTokens] | None:
    """(name, wrapper) of the embedding whose rows train, if any."""
    return next(((name, m) for name, m in token_layers(model).items() if m.owner is m), None)


def _output_head(model: nn.Module) -> nn.Module | None:
    """The layer that maps hidden states to vocabulary logits: LoRA leaves it alone by default."""
    get_output_embeddings = getattr(model, "get_output_embeddings", None)
    head = get_output_embeddings() if callable(get_output_embeddings) else getattr(model, "lm_head", None)
    return head.base_layer if isinstance(head, TrainableTokens) else head


def _matches(name: str, targets: str | Sequence[str]) -> bool:
    if isinstance(targets, str):
        return re.fullmatch(targets, name) is not None
    return any(fnmatchcase(name, pattern) or fnmatchcase(name, f"*.{pattern}") for pattern in targets)


def select_targets(model: nn.Module, targets: str | Sequence[str] | None = None) -> list[str]:
    """Names of the linear layers LoRA would wrap (only linear layers are candidates)."""
    head = _output_head(model)
    names = []
    for name, module in model.named_modules():
        if not _is_linear(module) or isinstance(module, LoraLinear):
            continue
        if (module is not head) if targets is None else _matches(name, targets):
            names.append(name)
    return names


def lora_layers(model: nn.Module) -> dict[str, LoraLinear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, LoraLinear)}


def _check_no_adapters(model: nn.Module) -> None:
    if lora_layers(model) or token_layers(model):
        raise UserError("this model already has LoRA adapters", hint="merge_and_unload() it first")


def add_lora(model: nn.Module, config: LoraConfig) -> list[str]:
    """Wrap the selected layers (and the token rows, if any) in place, freeze everything else.

    Returns the names of the layers that got adapters.
    """
    _check_no_adapters(model)
    names = select_targets(model, config.targets)
    if not names:
        raise UserError(f"no linear layer matches LoRA targets {config.targets!r}",
                        hint=f"linear layers: {', '.join(select_targets(model, '.*')[:8])}, ...")
    if config.trainable_tokens:  # checked before any change, so a refusal leaves the model untouched
        _, embedding = _token_embedding(model, config.trainable_tokens, "trainable_tokens")
        _refuse_lora_on_tied_heads([name for name in names if name in _tied_to(model, embedding)])
    for param in model.parameters():
        param.requires_grad_(False)
    for name in names:
        layer = model.get_submodule(name)
        _replace(model, name, LoraLinear(layer, config.r, config.alpha, config.dropout))
    if config.trainable_tokens:
        add_trainable_tokens(model, config.trainable_tokens)
    return names


def _adapted_layers(model: nn.Module) -> dict[str, LoraLinear | TrainableTokens]:
    return {**lora_layers(model), **token_layers(model)}


def merge_lora(model: nn.Module) -> None:
    for layer in _adapted_layers(model).values():
        layer.merge()


def unmerge_lora(model: nn.Module) -> None:
    for layer in _adapted_layers(model).values():
        layer.unmerge()


def merge_and_unload(model: nn.Module) -> nn.Module:
    """Fold every update into its base weight and put the plain layers back: a normal model again."""
    for name, layer in _adapted_layers(model).items():
        layer.merge()
        _replace(model, name, layer.base_layer)
    return model


def trainable_share(model: nn.Module) -> tuple[int, int]:
    """(trainable parameters, all parameters), counting each shared tensor once."""
    params = {id(p): p for p in model.parameters()}.values()
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapter weights under PEFT's names: `base_model.model.<layer>.lora_A.weight`, and the token rows
    as `base_model.model.<embedding>.token_adapter.trainable_tokens_delta`."""
    weights = {
        f"{KEY_PREFIX}{name}.{part}.weight": getattr(layer, part).weight.detach().contiguous()
        for name, layer in lora_layers(model).items()
        for part in ("lora_A", "lora_B")
    }
    if owner := _token_owner(model):
        weights[f"{KEY_PREFIX}{owner[0]}.{TOKEN_ROWS_KEY}"] = owner[1].token_rows.detach().contiguous()
    return weights


def save_adapter(model: nn.Module, directory: str | Path) -> Path:
    """Write the adapter (weights, then the config that marks it complete) into `directory`, atomically."""
    layers = lora_layers(model)
    if not layers:
        raise UserError("the model has no LoRA adapters to save")
    first = next(iter(layers.values()))
    dropout = first.dropout.p if isinstance(first.dropout, nn.Dropout) else 0.0
    directory = Path(directory)
    weights = lora_state_dict(model)
    owner = _token_owner(model)
    atomic_save(directory / ADAPTER_WEIGHTS, lambda tmp: save_file(weights, str(tmp), metadata={"format": "pt"}))
    atomic_write_json(directory / ADAPTER_CONFIG, {
        "peft_type": "LORA",
        "r": first.r,
        "lora_alpha": first.alpha,
        "lora_dropout": dropout,
        "target_modules": list(layers),
        "fan_in_fan_out": any(layer.fan_in_fan_out for layer in layers.values()),
        "bias": "none",
        "init_lora_weights": True,
        "inference_mode": True,
        # PEFT's dict form names the layer, so PEFT finds it in models without get_input_embeddings()
        "trainable_token_indices": {owner[0]: owner[1].token_ids.tolist()} if owner else None,
    })
    return directory


def _saved_token_ids(model: nn.Module, saved: dict, where: str) -> list[int] | None:
    """The token ids of a saved adapter's `trainable_token_indices` (a list, or PEFT's {layer: ids})."""
    indices = saved.get("trainable_token_indices")
    if isinstance(indices, dict):
        if len(indices) != 1:
            raise UserError("trainable tokens on several layers are not supported", where=where)
        (layer, indices), = indices.items()
        name = input_embedding_name(model)
        if not (name == layer or name.endswith(f".{layer}")):
            raise UserError(f"trainable tokens on {layer!r} are not supported, only on the input embedding {name!r}",
                            where=where)
    if indices is not None and not isinstance(indices, list):
        raise UserError(f"bad trainable_token_indices {indices!r}", where=where)
    return indices


def load_adapter(model: nn.Module, directory: str | Path) -> list[str]:
    """Wrap `model` as the saved adapter says and load its weights; works for adapters saved by PEFT too."""
    _check_no_adapters(model)
    directory = Path(directory)
    config_path = directory / ADAPTER_CONFIG
    saved = read_json(config_path)
    if saved.get("peft_type", "LORA") != "LORA":
        raise UserError(f"not a LoRA adapter (peft_type {saved.get('peft_type')!r})", where=str(config_path))
    for unsupported in ("use_dora", "use_rslora", "rank_pattern", "alpha_pattern"):
        if saved.get(unsupported):
            raise UserError(f"'{unsupported}' adapters are not supported", where=str(config_path))
    try:
        config = LoraConfig(r=int(saved["r"]), alpha=float(saved["lora_alpha"]),
                            dropout=float(saved.get("lora_dropout", 0.0)), targets=saved["target_modules"],
                            trainable_tokens=_saved_token_ids(model, saved, str(config_path)))
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"bad adapter config: {exc!r}", where=str(config_path)) from exc
    weights_path = directory / ADAPTER_WEIGHTS
    if not weights_path.is_file():
        raise UserError("adapter weights not found", where=str(weights_path))
    try:
        tensors = load_file(str(weights_path))
    except Exception as exc:  # safetensors raises its own error type for a damaged file
        raise UserError(f"unreadable safetensors file: {exc}", where=str(weights_path)) from exc
    expected = {}  # checked before wrapping, so a mismatched adapter leaves the model untouched
    for name in select_targets(model, config.targets):
        in_features, out_features = _in_out(model.get_submodule(name))
        expected[f"{KEY_PREFIX}{name}.lora_A.weight"] = (config.r, in_features)
        expected[f"{KEY_PREFIX}{name}.lora_B.weight"] = (out_features, config.r)
    if config.trainable_tokens:
        name, embedding = _token_embedding(model, config.trainable_tokens, str(config_path))
        expected[f"{KEY_PREFIX}{name}.{TOKEN_ROWS_KEY}"] = (len(config.trainable_tokens), embedding.embedding_dim)
    missing, unexpected = sorted(expected.keys() - tensors.keys()), sorted(tensors.keys() - expected.keys())
    if missing or unexpected:
        raise UserError(f"adapter does not fit this model: missing {missing[:3]}, unexpected {unexpected[:3]}",
                        where=str(weights_path), hint="was it trained on a different base model?")
    for key, shape in expected.items():
        if tuple(tensors[key].shape) != shape:
            raise UserError(f"{key}: shape {tuple(tensors[key].shape)}, the model needs {shape}",
                            where=str(weights_path))
    names = add_lora(model, config)
    with torch.no_grad():
        for name, layer in lora_layers(model).items():
            for part in ("lora_A", "lora_B"):
                getattr(layer, part).weight.copy_(tensors[f"{KEY_PREFIX}{name}.{part}.weight"])
        if owner := _token_owner(model):
            owner[1].token_rows.copy_(tensors[f"{KEY_PREFIX}{owner[0]}.{TOKEN_ROWS_KEY}"])
    return names
