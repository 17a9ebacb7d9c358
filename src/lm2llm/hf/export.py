"""`export_run(RUN, OUT)`: a run directory as a transformers checkpoint directory.

A pre-training run becomes `GPT2LMHeadModel`, `LlamaForCausalLM` or `BertForMaskedLM`; a classification
run becomes `BertForSequenceClassification` (or the GPT-2/LLaMA one). OUT holds `config.json`,
`model.safetensors` (written by transformers' own `save_pretrained`, so it is exactly what
`from_pretrained` expects) and the run's tokenizer files, which `AutoTokenizer` reads. OUT is built
under a temporary name and renamed, so it is complete or absent.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from lm2llm.classify.model import SequenceClassifier, is_classifier_dir, load_classifier
from lm2llm.errors import UserError
from lm2llm.gguf.registry import resolve_run
from lm2llm.hf.convert import bert_hf_config, bert_to_hf, classifier_to_hf, hf_decoder_config
from lm2llm.hf.quiet import quiet_transformers
from lm2llm.models import Bert, load_model
from lm2llm.models.hf_compat import hf_kind, to_hf_state_dict
from lm2llm.runs import check_out, output_dir, read_json

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
# buffers transformers recomputes, never stored as weights
NON_WEIGHTS = ("inv_freq", "attn.bias", "masked_bias", "position_ids")


def copy_tokenizer_files(src: Path, dst: Path) -> list[str]:
    """Copy the tokenizer files `src` has into `dst`; returns their names."""
    copied = [name for name in TOKENIZER_FILES if (src / name).is_file()]
    for name in copied:
        shutil.copyfile(src / name, dst / name)
    return copied


def special_token_ids(run: Path) -> dict[str, int]:
    """pad/eos/bos/... token ids named in the run's tokenizer_config.json, looked up in its tokenizer.json."""
    config_path, tokenizer_path = run / "tokenizer_config.json", run / "tokenizer.json"
    if not (config_path.is_file() and tokenizer_path.is_file()):
        return {}
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    config = read_json(config_path)
    ids = {}
    for name in ("pad", "eos", "bos", "unk", "cls", "sep", "mask"):
        token = config.get(f"{name}_token")
        token = token.get("content") if isinstance(token, dict) else token
        if isinstance(token, str) and tokenizer.token_to_id(token) is not None:
            ids[f"{name}_token_id"] = tokenizer.token_to_id(token)
    return ids


def _hf_model(model: Any, token_ids: dict[str, int]) -> tuple[Any, dict]:
    """The transformers model class instance (fresh) and the state dict to load into it."""
    import transformers

    lm_ids = {k: v for k, v in token_ids.items() if k in ("pad_token_id", "eos_token_id", "bos_token_id")}
    if isinstance(model, SequenceClassifier):
        labels = {"num_labels": len(model.labels), "id2label": dict(enumerate(model.labels)),
                  "label2id": {label: i for i, label in enumerate(model.labels)}}
        if isinstance(model.backbone, Bert):
            config = bert_hf_config(model.config, **labels, **lm_ids)
            return transformers.BertForSequenceClassification(config), classifier_to_hf(model)
        if "pad_token_id" not in lm_ids:
            raise UserError("a decoder classifier needs a padding token to find each text's last token",
                            where="tokenizer_config.json", hint="save the run's tokenizer with a pad_token")
        config = hf_decoder_config(model.config, **labels, **lm_ids)
        cls = (transformers.GPT2ForSequenceClassification if hf_kind(model.config) == "gpt2"
               else transformers.LlamaForSequenceClassification)
        return cls(config), classifier_to_hf(model)
    if isinstance(model, Bert):
        # BertForMaskedLM has no pooler (only next-sentence and classification heads read it)
        state = {k: v for k, v in bert_to_hf(model).items() if ".pooler." not in k}
        return transformers.BertForMaskedLM(bert_hf_config(model.config, **lm_ids)), state
    config = hf_decoder_config(model.config, **lm_ids)
    cls = transformers.GPT2LMHeadModel if hf_kind(model.config) == "gpt2" else transformers.LlamaForCausalLM
    return cls(config), to_hf_state_dict(model)


def to_transformers(model: Any, token_ids: dict[str, int] | None = None) -> Any:
    """A transformers model (eval mode) holding exactly the weights of `model` (ours)."""
    hf, state = _hf_model(model, token_ids or {})
    missing, unexpected = hf.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith(NON_WEIGHTS) and k != "cls.predictions.decoder.weight"
               and k != "cls.predictions.decoder.bias" and k != "lm_head.weight"]
    if missing or unexpected:
        raise RuntimeError(f"weight mapping incomplete: missing {missing}, unexpected {unexpected}")
    hf.tie_weights()
    return hf.eval()


def export_run(run: str | os.PathLike, out: str | os.PathLike, *, force: bool = False) -> dict[str, Any]:
    """Write RUN's model and tokenizer as a transformers directory OUT; returns what was written. An earlier
    export in OUT is replaced only with `force` (see `lm2llm.runs.check_out`)."""
    run, out = resolve_run(run), Path(out)
    if not run.is_dir():
        raise UserError("run directory not found", where=str(run))
    check_out(out, "export-hf", force=force, inputs=[run])
    model = load_classifier(run) if is_classifier_dir(run) else load_model(run)
    token_ids = special_token_ids(run)
    with quiet_transformers(), output_dir(out, "export-hf", force=force, inputs=[run]) as tmp:
        hf = to_transformers(model, token_ids)
        hf.save_pretrained(tmp, safe_serialization=True)
        copied = copy_tokenizer_files(run, tmp)
    return {"out": str(out), "architecture": type(hf).__name__, "num_params": sum(p.numel() for p in hf.parameters()),
            "tokenizer_files": copied, "files": sorted(p.name for p in out.iterdir())}
