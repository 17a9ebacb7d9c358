"""`import_dir(DIR, OUT)`: a transformers checkpoint directory (BERT, GPT-2 or LLaMA) as one of our runs.

Only `model.safetensors` (or its shards) is read, never a pickled `pytorch_model.bin`. The config is
translated field by field and anything our models do not implement (another activation, RoPE scaling,
relative positions) is refused with the field's name rather than silently approximated.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch
from torch import nn

from lm2llm.classify.model import SequenceClassifier, save_classifier
from lm2llm.errors import UserError
from lm2llm.hf.convert import MLM_HEAD_NAMES, bert_from_hf, config_from_hf, decoder_from_hf
from lm2llm.hf.export import copy_tokenizer_files
from lm2llm.hf.quiet import quiet_transformers
from lm2llm.models import save_model
from lm2llm.models.factory import model_from_config
from lm2llm.runs import RunDir, check_out, output_dir, read_json

MAX_CONFIG_BYTES = 4 << 20  # a model config is a few kilobytes; anything this large is not one
MAX_LABELS = 100_000  # classes of a sequence-classification head
MAX_IMPORT_ELEMENTS = 2_000_000_000  # parameters + buffers of the model we build: 8 GB in float32
LAYER_INDEX = re.compile(r"(?:^|\.)(?:h|layer|layers)\.(\d+)\.")


def _numbers(value: Any, field: str = "") -> Iterator[tuple[str, float]]:
    """Every number in a parsed JSON value, with its dotted field name."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _numbers(item, f"{field}.{key}" if field else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _numbers(item, f"{field}[{i}]")
    elif isinstance(value, float):
        yield field, value


def read_hf_config(directory: Path) -> Any:
    """transformers' config of a checkpoint, read without running any code it names (`auto_map`): the
    file is checked first (size, JSON, finite numbers, label count), then parsed with trust_remote_code=False."""
    import transformers

    path = directory / "config.json"
    if not path.is_file():
        raise UserError("not a transformers checkpoint (no config.json)", where=str(directory))
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise UserError(f"{path.stat().st_size:,} bytes, more than a model config's {MAX_CONFIG_BYTES:,}", where=str(path))
    raw = read_json(path)
    if not isinstance(raw, dict):
        raise UserError("must hold a JSON object", where=str(path))
    for field, value in _numbers(raw):
        if not math.isfinite(value):
            raise UserError(f"{field} is {value}, not a finite number", where=str(path))
    labels = raw.get("num_labels", len(raw.get("id2label") or ()))
    if not isinstance(labels, int) or not 0 <= labels <= MAX_LABELS:
        raise UserError(f"num_labels is {labels!r}, not a count up to {MAX_LABELS:,}", where=str(path))
    try:
        with quiet_transformers():  # its advice about odd token ids is noise next to our one-line report
            return transformers.AutoConfig.from_pretrained(str(directory), local_files_only=True,
                                                           trust_remote_code=False)
    except Exception as exc:  # whatever transformers makes of a malformed config, the file is at fault
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise UserError(f"transformers cannot read the config: {first}", where=str(path)) from exc


def weight_files(directory: Path) -> list[Path]:
    """`model.safetensors`, or the shards its index names: plain file names inside `directory`, never a
    path that leaves it (a hostile index could point at any file the user can read)."""
    single, index = directory / "model.safetensors", directory / "model.safetensors.index.json"
    if single.is_file():
        return [single]
    if index.is_file():
        parsed = read_json(index)
        weight_map = parsed.get("weight_map") if isinstance(parsed, dict) else None
        if not isinstance(weight_map, dict) or not weight_map:
            raise UserError("has no 'weight_map' object", where=str(index))
        root, shards = directory.resolve(), []
        for name in sorted(set(weight_map.values())):
            shard = directory / str(name)
            if not isinstance(name, str) or Path(name).name != name or not shard.resolve().is_relative_to(root):
                raise UserError(f"shard {name!r} is not a file name inside the checkpoint folder", where=str(index))
            if not shard.is_file():
                raise UserError(f"shard {name!r} not found", where=str(index))
            shards.append(shard)
        return shards
    hint = "re-save it with save_pretrained(..., safe_serialization=True)"
    if (directory / "pytorch_model.bin").is_file():
        raise UserError("only safetensors weights are read (a .bin file is a pickle that can run code)",
                        where=str(directory / "pytorch_model.bin"), hint=hint)
    raise UserError("no model.safetensors", where=str(directory), hint=hint)


def read_hf_shapes(files: list[Path]) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape from the safetensors headers alone: nothing is allocated."""
    shapes: dict[str, tuple[int, ...]] = {}
    for file in files:
        try:
            with safetensors.safe_open(str(file), framework="pt") as handle:
                for key in handle.keys():
                    if key in shapes:
                        raise UserError(f"tensor {key} appears in two shards", where=str(file))
                    shapes[key] = tuple(handle.get_slice(key).get_shape())
        except safetensors.SafetensorError as exc:
            raise UserError(f"not a valid safetensors file: {exc}", where=str(file)) from exc
    return shapes


def read_hf_weights(files: list[Path]) -> dict[str, torch.Tensor]:
    weights: dict[str, torch.Tensor] = {}
    for file in files:
        try:
            weights.update(safetensors.torch.load_file(str(file)))
        except safetensors.SafetensorError as exc:
            raise UserError(f"not a valid safetensors file: {exc}", where=str(file)) from exc
    return weights


def check_sizes(config: Any, shapes: dict[str, tuple[int, ...]], where: str) -> None:
    """Refuse a config whose sizes the weights do not back, before anything is allocated: more layers
    than the file holds, or a model (built on the meta device) larger than the tensors in the file allow
    (their elements, plus an untied LM head and BERT's fresh pooler and MLM head) or than MAX_IMPORT_ELEMENTS."""
    layers = {int(m.group(1)) for key in shapes for m in [LAYER_INDEX.search(key)] if m}
    held = max(layers) + 1 if layers else 0
    if config.n_layer > held:
        raise UserError(f"the config asks for {config.n_layer} layers but the weights hold {held}", where=where)
    with torch.device("meta"):
        meta = model_from_config(config)
    params = sum(p.numel() for p in meta.parameters())
    buffers = sum(b.numel() for b in meta.buffers())
    if params + buffers > MAX_IMPORT_ELEMENTS:
        raise UserError(f"the config describes {params + buffers:,} parameters and buffers, more than the "
                        f"{MAX_IMPORT_ELEMENTS:,} lm2llm imports", where=where)
    d, vocab = config.d_model, config.vocab_size
    allowed = sum(math.prod(shape) for shape in shapes.values()) + vocab * d + 2 * d * d + vocab + 8 * d
    if params > allowed:
        raise UserError(f"the config's sizes describe {params:,} parameters but the weights hold only "
                        f"{allowed - vocab * d - 2 * d * d - vocab - 8 * d:,}", where=where)


def load_hf_dir(directory: str | os.PathLike) -> tuple[nn.Module, list[str], Any]:
    """Our model holding a checkpoint's weights, the names of our weights it did not provide, and its config.

    A `*ForSequenceClassification` checkpoint gives a `SequenceClassifier`; a bare `BertModel` (such as a
    sentence-embedding model) gives a `Bert` whose masked-LM head is freshly initialised (listed as missing).
    """
    directory = Path(directory)
    hf = read_hf_config(directory)
    where = str(directory / "config.json")
    family, config = config_from_hf(hf, where=where)
    files = weight_files(directory)
    shapes = read_hf_shapes(files)
    check_sizes(config, shapes, where)
    weights = read_hf_weights(files)
    backbone = model_from_config(config)
    try:
        if family == "bert":
            prefix = "bert." if any(k.startswith("bert.") for k in weights) else ""
            ours = bert_from_hf(weights, config, prefix)
        else:
            ours = decoder_from_hf(weights, config)
    except KeyError as exc:
        raise UserError(f"the checkpoint lacks weight {exc.args[0]}", where=str(files[0])) from exc
    architecture = (hf.architectures or [""])[0]
    if architecture.endswith("ForSequenceClassification"):
        model: nn.Module = SequenceClassifier(backbone, _labels(hf, where))
        head_names = ["classifier.weight", "classifier.bias"] if family == "bert" else ["score.weight"]
        lacking = [name for name in head_names if name not in weights]
        if lacking:
            raise UserError(f"a classification checkpoint without {lacking[0]}", where=str(files[0]))
        ours = {f"backbone.{k}": v for k, v in ours.items() if k != "lm_head.weight"}
        ours["head.weight"] = weights[head_names[0]]
        if family == "bert":
            ours["head.bias"] = weights["classifier.bias"]
    else:
        model = backbone
    try:
        missing, unexpected = model.load_state_dict(ours, strict=False)
    except RuntimeError as exc:  # a tensor whose shape differs from the config's
        detail = next((line.strip() for line in str(exc).splitlines() if "size mismatch" in line), str(exc))
        raise UserError(f"the weights do not fit the config: {detail}", where=str(files[0])) from exc
    if unexpected:
        raise RuntimeError(f"weight mapping produced unknown names: {unexpected}")
    # BERT checkpoints come without the heads they were not trained with (pooler, MLM head): those start fresh
    fresh_ok = tuple(ours for ours, _ in MLM_HEAD_NAMES) + ("pooler.weight", "pooler.bias")
    lacking = [name for name in missing if not name.removeprefix("backbone.").startswith(fresh_ok)]
    if lacking:
        raise UserError(f"the checkpoint lacks weights: {', '.join(lacking[:3])}", where=str(directory))
    return model.eval(), missing, hf


def _labels(hf: Any, where: str) -> list[str]:
    try:
        return [str(hf.id2label[i]) for i in range(hf.num_labels)]
    except (KeyError, TypeError) as exc:
        raise UserError(f"id2label does not name every one of the {hf.num_labels} labels", where=where) from exc


def import_dir(directory: str | os.PathLike, out: str | os.PathLike, *, force: bool = False) -> dict[str, Any]:
    """Write a run directory OUT holding the checkpoint in DIR as our model, with its tokenizer files; an
    earlier import in OUT is replaced only with `force` (see `lm2llm.runs.check_out`)."""
    src, out = Path(directory), Path(out)
    check_out(out, "import-hf", force=force, inputs=[src])
    model, missing, hf = load_hf_dir(src)
    summary = {"stage": "import-hf", "source": str(src.resolve()), "architecture": (hf.architectures or [""])[0],
               "family": model.family if isinstance(model, SequenceClassifier) else hf.model_type,
               "num_params": sum(p.numel() for p in model.parameters()), "freshly_initialised": missing}
    with output_dir(out, "import-hf", force=force, inputs=[src]) as tmp:
        if isinstance(model, SequenceClassifier):
            save_classifier(model, tmp)
        else:
            save_model(model, tmp)
        copy_tokenizer_files(src, tmp)
        RunDir(tmp).write_config(summary)
    return {"out": str(out), **summary}
