"""`import_dir(DIR, OUT)`: a transformers checkpoint directory (BERT, GPT-2 or LLaMA) as one of our runs.

Only `model.safetensors` (or its shards) is read, never a pickled `pytorch_model.bin`. The config is
translated field by field and anything our models do not implement (another activation, RoPE scaling,
relative positions) is refused with the field's name rather than silently approximated.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import nn

from lm2llm.classify.model import SequenceClassifier, save_classifier
from lm2llm.errors import UserError
from lm2llm.hf.convert import MLM_HEAD_NAMES, bert_from_hf, config_from_hf, decoder_from_hf
from lm2llm.hf.export import copy_tokenizer_files
from lm2llm.models import save_model
from lm2llm.models.factory import model_from_config
from lm2llm.runs import RunDir, check_out, output_dir


def read_hf_config(directory: Path) -> Any:
    import transformers

    if not (directory / "config.json").is_file():
        raise UserError("not a transformers checkpoint (no config.json)", where=str(directory))
    try:
        return transformers.AutoConfig.from_pretrained(str(directory), local_files_only=True)
    except (ValueError, OSError, json.JSONDecodeError) as exc:
        raise UserError(f"transformers cannot read the config: {str(exc).splitlines()[0]}",
                        where=str(directory / "config.json")) from exc


def read_hf_weights(directory: Path) -> dict[str, torch.Tensor]:
    """All tensors of `model.safetensors`, or of the shards its index names."""
    single, index = directory / "model.safetensors", directory / "model.safetensors.index.json"
    if single.is_file():
        return safetensors.torch.load_file(str(single))
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        return {k: v for shard in shards for k, v in safetensors.torch.load_file(str(directory / shard)).items()}
    hint = "re-save it with save_pretrained(..., safe_serialization=True)"
    if (directory / "pytorch_model.bin").is_file():
        raise UserError("only safetensors weights are read (a .bin file is a pickle that can run code)",
                        where=str(directory / "pytorch_model.bin"), hint=hint)
    raise UserError("no model.safetensors", where=str(directory), hint=hint)


def load_hf_dir(directory: str | os.PathLike) -> tuple[nn.Module, list[str], Any]:
    """Our model holding a checkpoint's weights, the names of our weights it did not provide, and its config.

    A `*ForSequenceClassification` checkpoint gives a `SequenceClassifier`; a bare `BertModel` (such as a
    sentence-embedding model) gives a `Bert` whose masked-LM head is freshly initialised (listed as missing).
    """
    directory = Path(directory)
    hf = read_hf_config(directory)
    family, config = config_from_hf(hf, where=str(directory / "config.json"))
    weights = read_hf_weights(directory)
    backbone = model_from_config(config)
    if family == "bert":
        prefix = "bert." if any(k.startswith("bert.") for k in weights) else ""
        ours = bert_from_hf(weights, config, prefix)
    else:
        ours = decoder_from_hf(weights, config)
    architecture = (hf.architectures or [""])[0]
    if architecture.endswith("ForSequenceClassification"):
        labels = [str(hf.id2label[i]) for i in range(hf.num_labels)]
        model: nn.Module = SequenceClassifier(backbone, labels)
        head = weights["classifier.weight" if family == "bert" else "score.weight"]
        ours = {f"backbone.{k}": v for k, v in ours.items() if k != "lm_head.weight"}
        ours["head.weight"] = head
        if family == "bert":
            ours["head.bias"] = weights["classifier.bias"]
    else:
        model = backbone
    missing, unexpected = model.load_state_dict(ours, strict=False)
    if unexpected:
        raise RuntimeError(f"weight mapping produced unknown names: {unexpected}")
    # BERT checkpoints come without the heads they were not trained with (pooler, MLM head): those start fresh
    fresh_ok = tuple(ours for ours, _ in MLM_HEAD_NAMES) + ("pooler.weight", "pooler.bias")
    lacking = [name for name in missing if not name.removeprefix("backbone.").startswith(fresh_ok)]
    if lacking:
        raise UserError(f"the checkpoint lacks weights: {', '.join(lacking[:3])}", where=str(directory))
    return model.eval(), missing, hf


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
