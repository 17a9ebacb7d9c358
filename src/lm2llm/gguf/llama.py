"""A LLaMA-architecture GGUF file as our model and tokenizer, and as an ordinary run directory.

The metadata under `llama.*` becomes a `TransformerConfig` (GQA, RoPE θ, RMSNorm ε, tied embeddings when
the file has no `output.weight`); the tensors are dequantized to float32 and renamed to our layout. One
detail is not a rename: llama.cpp's converter permutes the rows of the query and key projections so its
RoPE can rotate adjacent pairs (x0, x1), (x2, x3), …, while ours (like transformers') rotates the two
halves of each head against each other. `unpermute_rope_rows` undoes that.

The tokenizer is byte-level BPE from `tokenizer.ggml.tokens`/`merges`, split the way the file's
`tokenizer.ggml.pre` names (a wrong split is the most common cause of a converted model speaking
nonsense), with the model's own special tokens and Jinja chat template.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

from lm2llm.errors import UserError
from lm2llm.gguf.reader import GGUFFile
from lm2llm.models import save_model
from lm2llm.models.factory import config_for, model_from_config
from lm2llm.models.transformer import Transformer, TransformerConfig
from lm2llm.runs import RunDir, check_out, output_dir
from lm2llm.tokenizer.hf_bpe import BPETokenizer

# llama.cpp's pre-tokenizer names → the split applied before byte-level BPE (None: GPT-2's own regex)
DIGITS = r"\p{N}"
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
PRE_TOKENIZERS: dict[str, str | None] = {"default": None, "gpt2": None, "smollm": DIGITS, "llama-bpe": LLAMA3_SPLIT}
CONTROL, USER_DEFINED = 3, 4  # tokenizer.ggml.token_type values of added tokens (control = special)


def gguf_config(gguf: GGUFFile) -> TransformerConfig:
    """Our decoder config from `llama.*` metadata; features our model lacks are refused by name."""
    architecture = gguf.field("general.architecture", str)
    if architecture != "llama":
        raise UserError(f"architecture {architecture!r} is not imported (LLaMA-style models are)",
                        where=f"{gguf.path}: general.architecture")
    for key in ("llama.rope.scaling.type", "llama.expert_count"):
        if gguf.metadata.get(key) not in (None, "none", 0):
            raise UserError(f"this model uses {key} = {gguf.metadata[key]!r}, which lm2llm's LLaMA does not implement",
                            where=f"{gguf.path}: {key}")
    n_head, d_model = gguf.field("llama.attention.head_count", int), gguf.field("llama.embedding_length", int)
    head_dim = gguf.metadata.get("llama.attention.key_length", d_model // max(n_head, 1))
    if gguf.metadata.get("llama.rope.dimension_count", head_dim) != head_dim:
        raise UserError("RoPE on part of each head is not implemented", where=f"{gguf.path}: llama.rope.dimension_count")
    eps = gguf.field("llama.attention.layer_norm_rms_epsilon", float)
    theta = gguf.metadata.get("llama.rope.freq_base", 10000.0)
    if not (np.isfinite(eps) and eps > 0 and np.isfinite(theta) and theta > 0):
        raise UserError("non-finite or non-positive ε or RoPE base", where=f"{gguf.path}: llama.*")
    vocab = len(gguf.field("tokenizer.ggml.tokens", list))
    return config_for(
        "llama", vocab_size=vocab, context_length=gguf.field("llama.context_length", int),
        n_layer=gguf.field("llama.block_count", int), n_head=n_head,
        n_kv_head=gguf.metadata.get("llama.attention.head_count_kv", n_head), d_model=d_model,
        d_ff=gguf.field("llama.feed_forward_length", int), head_dim=head_dim, norm_eps=float(eps),
        rope_theta=float(theta), tie_embeddings="output.weight" not in gguf.tensors,
    )


def unpermute_rope_rows(weight: np.ndarray, n_head: int) -> np.ndarray:
    """Undo llama.cpp's query/key row order: per head, rows (pair, half) back to (half, pair)."""
    rows = weight.shape[0]
    return weight.reshape(n_head, rows // n_head // 2, 2, -1).swapaxes(1, 2).reshape(weight.shape)


def gguf_weight_names(config: TransformerConfig) -> list[tuple[str, str]]:
    """(our name, GGUF name) for every weight."""
    names = [("tok_emb.weight", "token_embd.weight"), ("norm_f.weight", "output_norm.weight")]
    if not config.tie_embeddings:
        names.append(("lm_head.weight", "output.weight"))
    parts = [("attn.q_proj", "attn_q"), ("attn.k_proj", "attn_k"), ("attn.v_proj", "attn_v"),
             ("attn.out_proj", "attn_output"), ("mlp.gate", "ffn_gate"), ("mlp.up", "ffn_up"),
             ("mlp.down", "ffn_down"), ("norm_attn", "attn_norm"), ("norm_mlp", "ffn_norm")]
    for i in range(config.n_layer):
        names += [(f"blocks.{i}.{ours}.weight", f"blk.{i}.{theirs}.weight") for ours, theirs in parts]
    return names


def gguf_model(gguf: GGUFFile, config: TransformerConfig | None = None) -> Transformer:
    """Our LLaMA holding the file's weights, dequantized to float32 (built on the meta device first, so
    nothing is allocated for a shape the file does not back with data)."""
    config = config or gguf_config(gguf)
    with torch.device("meta"):
        model = model_from_config(config)
    expected = {name: tuple(p.shape) for name, p in model.state_dict().items()}
    state = {}
    for ours, theirs in gguf_weight_names(config):
        shape = gguf.tensor(theirs).shape
        if shape != expected[ours]:
            raise UserError(f"shape {list(shape)} where the metadata implies {list(expected[ours])}",
                            where=f"{gguf.path}: tensor {theirs!r}")
        weight = gguf.dequantized(theirs)
        if ours.endswith(("q_proj.weight", "k_proj.weight")):
            weight = unpermute_rope_rows(weight, config.n_head if "q_proj" in ours else config.n_kv_head)
        state[ours] = torch.from_numpy(np.ascontiguousarray(weight))
    if config.tie_embeddings:
        state["lm_head.weight"] = state["tok_emb.weight"]
    model.load_state_dict(state, strict=True, assign=True)
    if config.tie_embeddings:
        model.lm_head.weight = model.tok_emb.weight
    return model.eval()


def gguf_tokenizer(gguf: GGUFFile) -> BPETokenizer:
    """The file's byte-level BPE with its own special tokens and chat template."""
    kind = gguf.field("tokenizer.ggml.model", str)
    if kind != "gpt2":
        raise UserError(f"tokenizer model {kind!r} is not imported (byte-level BPE, 'gpt2', is)",
                        where=f"{gguf.path}: tokenizer.ggml.model")
    pre = gguf.metadata.get("tokenizer.ggml.pre", "default")
    if pre not in PRE_TOKENIZERS:
        raise UserError(f"pre-tokenizer {pre!r} is not known here, and guessing it would split text wrongly",
                        where=f"{gguf.path}: tokenizer.ggml.pre", hint=f"known: {', '.join(PRE_TOKENIZERS)}")
    tokens = gguf.field("tokenizer.ggml.tokens", list)
    types = gguf.metadata.get("tokenizer.ggml.token_type", [1] * len(tokens))
    merges = [tuple(merge.split(" ", 1)) for merge in gguf.field("tokenizer.ggml.merges", list)]
    if len(types) != len(tokens) or any(len(m) != 2 for m in merges):
        raise UserError("token types or merges are malformed", where=f"{gguf.path}: tokenizer.ggml.*")
    fast = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    split = PRE_TOKENIZERS[pre]
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=split is None or split == DIGITS)
    fast.pre_tokenizer = byte_level if split is None else pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(split), behavior="isolated"), byte_level])
    fast.decoder = decoders.ByteLevel()
    fast.add_tokens([AddedToken(tokens[i], special=types[i] == CONTROL, normalized=False)
                     for i in range(len(tokens)) if types[i] in (CONTROL, USER_DEFINED)])

    def token(key: str) -> str | None:
        index = gguf.metadata.get(key)
        return tokens[index] if isinstance(index, int) and 0 <= index < len(tokens) else None

    template = gguf.metadata.get("tokenizer.chat_template")
    if not isinstance(template, str):
        raise UserError("the file has no chat template", where=f"{gguf.path}: tokenizer.chat_template",
                        hint="lm2llm imports chat models; a base model's GGUF has no template")
    return BPETokenizer(fast, chat_template=template, eos_token=token("tokenizer.ggml.eos_token_id"),
                        pad_token=token("tokenizer.ggml.padding_token_id"))


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def import_gguf(path: str | os.PathLike, out: str | os.PathLike, *, force: bool = False) -> dict[str, Any]:
    """Write a run directory OUT (model, tokenizer, config.json) holding the GGUF model at `path`; an earlier
    import in OUT is replaced only with `force` (see `lm2llm.runs.check_out`)."""
    out = Path(out)
    check_out(out, "import-gguf", force=force, inputs=[path])
    gguf = GGUFFile(path)
    config = gguf_config(gguf)
    tokenizer = gguf_tokenizer(gguf)
    model = gguf_model(gguf, config)
    types: dict[str, int] = {}
    for tensor in gguf.tensors.values():
        types[tensor.ggml_type.name] = types.get(tensor.ggml_type.name, 0) + 1
    summary = {"stage": "import-gguf", "source": str(Path(path).resolve()), "sha256": file_sha256(path),
               "name": gguf.metadata.get("general.name"), "license": gguf.metadata.get("general.license"),
               "architecture": "llama", "family": "llama", "tensor_types": types,
               "num_params": sum(p.numel() for p in model.parameters()), "context_length": config.context_length}
    with output_dir(out, "import-gguf", force=force, inputs=[path]) as tmp:
        save_model(model, tmp)
        tokenizer.save(tmp)
        RunDir(tmp).write_config(summary)
    return {"out": str(out), **summary}
