"""`export_gguf`: a run (GPT-2- or LLaMA-style decoder with a byte-level BPE tokenizer) as a GGUF file.

What llama.cpp's own converter (`convert_hf_to_gguf.py`) does, for our models:

- **Names and layout.** Each weight gets llama.cpp's name (`blk.N.attn_q.weight`, ...). A GPT-2-style
  block's query, key and value projections are stored as one `attn_qkv` matrix, as llama.cpp's gpt2
  graph expects.
- **Q/K row permutation (LLaMA).** Our RoPE rotates the two halves of each head (x[i], x[i + d/2]), as
  Hugging Face's LLaMA does; llama.cpp's rotates neighbouring pairs (x[2i], x[2i+1]), as Meta's original
  code did. Reordering each head's query and key rows, reshape (heads, 2, d/2, in) → swap axes 1 and 2,
  makes the two agree: the same scores, the same logits.
- **Which tensors are quantized.** Matrices (the embedding included) get the requested type; vectors
  (norms, biases) stay float32, as llama.cpp keeps them. A matrix whose rows are not whole 32-value blocks
  falls back to float16; in a 4-bit file the embedding and output layer are Q8_0 (`quantize.matrix_kind`).
- **Tokenizer.** `tokenizer.ggml.model = gpt2` (byte-level BPE) with the tokens spelt as in
  `tokenizer.json`, the merges in rank order, special tokens typed CONTROL, and `tokenizer.ggml.pre`
  named from the tokenizer's own split: `llama-bpe` for the regex our tokenizers use (GPT-4's, which
  Llama 3 adopted), `smollm` for SmolLM2's; a wrong `pre` is the most common way a converted model
  tokenizes differently in llama.cpp, so an unknown split is refused. The chat
  template travels too, without the `{% generation %}` markers that only training reads.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lm2llm.compress.quantize import matrix_kind, quantize
from lm2llm.errors import UserError
from lm2llm.gguf.llama import DIGITS, LLAMA3_SPLIT
from lm2llm.gguf.quants import BLOCK
from lm2llm.gguf.writer import FILE_TYPES, WRITTEN_TYPES, TensorData, write_gguf
from lm2llm.models import load_model
from lm2llm.models.transformer import Transformer
from lm2llm.runs import read_json
from lm2llm.tokenizer import BPETokenizer, load_tokenizer
from lm2llm.tokenizer.bpe import SPLIT_PATTERN
from lm2llm.tokenizer.chat import CHAT_TEMPLATE

EXPORT_TYPES = WRITTEN_TYPES
TOKEN_NORMAL, TOKEN_CONTROL, TOKEN_UNUSED = 1, 3, 5


def permute_rope_rows(weight: torch.Tensor, n_head: int) -> torch.Tensor:
    """Rows of a query/key projection reordered from rotate-half RoPE pairs to interleaved pairs."""
    out_features = weight.shape[0]
    return weight.reshape(n_head, 2, out_features // n_head // 2, *weight.shape[1:]).transpose(1, 2).reshape(weight.shape)


def architecture_of(model: Transformer) -> str:
    """"llama" or "gpt2": the llama.cpp graph that computes exactly what our model computes."""
    c = model.config
    if (c.norm, c.mlp, c.positional, c.bias, c.parallel_block) == ("rmsnorm", "swiglu", "rope", False, False):
        return "llama"
    if (c.norm, c.mlp, c.positional, c.parallel_block) == ("layernorm", "gelu_tanh", "learned", False) and c.bias and (
            c.n_kv_head == c.n_head):
        return "gpt2"
    raise UserError("GGUF export covers LLaMA-style (RMSNorm, SwiGLU, RoPE, no bias) and GPT-2-style (LayerNorm, "
                    "tanh GELU, learned positions, biases, full multi-head attention) decoders",
                    where="model_config.json", hint="this run's architecture has no llama.cpp counterpart")


def named_tensors(model: Transformer) -> list[tuple[str, torch.Tensor]]:
    """(llama.cpp name, float32 tensor) for every weight, in llama.cpp's order and layout."""
    arch, c = architecture_of(model), model.config
    out: list[tuple[str, torch.Tensor]] = [("token_embd.weight", model.tok_emb.weight)]
    if arch == "gpt2":
        out.append(("position_embd.weight", model.pos_emb.table.weight))

    def add(prefix: str, module: torch.nn.Module, weight: torch.Tensor | None = None) -> None:
        out.append((f"{prefix}.weight", module.weight if weight is None else weight))
        if getattr(module, "bias", None) is not None:
            out.append((f"{prefix}.bias", module.bias))

    for i, block in enumerate(model.blocks):
        attn, mlp = block.attn, block.mlp
        add(f"blk.{i}.attn_norm", block.norm_attn)
        if arch == "llama":
            add(f"blk.{i}.attn_q", attn.q_proj, permute_rope_rows(attn.q_proj.weight, c.n_head))
            add(f"blk.{i}.attn_k", attn.k_proj, permute_rope_rows(attn.k_proj.weight, c.n_kv_head))
            add(f"blk.{i}.attn_v", attn.v_proj)
        else:
            out.append((f"blk.{i}.attn_qkv.weight", torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight])))
            out.append((f"blk.{i}.attn_qkv.bias", torch.cat([attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias])))
        add(f"blk.{i}.attn_output", attn.out_proj)
        add(f"blk.{i}.ffn_norm", block.norm_mlp)
        if mlp.gate is not None:
            add(f"blk.{i}.ffn_gate", mlp.gate)
        add(f"blk.{i}.ffn_up", mlp.up)
        add(f"blk.{i}.ffn_down", mlp.down)
    add("output_norm", model.norm_f)
    if not (c.tie_embeddings and arch == "llama"):  # llama.cpp's llama graph reuses token_embd when absent
        out.append(("output.weight", model.lm_head.weight))
    return [(name, tensor.detach().float().contiguous()) for name, tensor in out]


def stored(name: str, tensor: torch.Tensor, kind: str) -> TensorData:
    """A tensor in the type it is written as: vectors float32, matrices `kind` (float16 if not whole blocks;
    Q8_0 for the embedding and output layer of a 4-bit file)."""
    if tensor.dim() == 1 or kind == "f32":
        return TensorData(name, tuple(tensor.shape), "f32", tensor.numpy().astype("<f4"))
    if kind == "f16" or tensor.shape[-1] % BLOCK:
        return TensorData(name, tuple(tensor.shape), "f16", tensor.numpy().astype("<f2"))
    kind = matrix_kind(kind, embedding=name in ("token_embd.weight", "output.weight"))
    return TensorData(name, tuple(tensor.shape), kind, quantize(tensor, kind).numpy())


def pre_tokenizer_name(spec: dict) -> str:
    """llama.cpp's `tokenizer.ggml.pre` for a tokenizer.json's pre-tokenizer: "llama-bpe" for the GPT-4 / Llama-3
    split our tokenizers use, "smollm" for SmolLM2's single-digit split, "gpt2" for GPT-2's own regex."""
    pre = spec.get("pre_tokenizer") or {}
    parts = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    shape = tuple((part.get("type"), (part.get("pattern") or {}).get("Regex"), part.get("use_regex")) for part in parts)
    known = {
        (("Split", SPLIT_PATTERN, None), ("ByteLevel", None, False)): "llama-bpe",
        (("Split", LLAMA3_SPLIT, None), ("ByteLevel", None, False)): "llama-bpe",
        (("Split", DIGITS, None), ("ByteLevel", None, True)): "smollm",
        (("ByteLevel", None, True),): "gpt2",
    }
    if shape not in known:
        raise UserError("the tokenizer's pre-tokenizer has no llama.cpp name; a guessed one would split text "
                        "differently there", where="tokenizer.json: pre_tokenizer")
    return known[shape]


def tokenizer_metadata(tokenizer: BPETokenizer, vocab_size: int, run_dir: Path) -> dict[str, Any]:
    spec = json.loads(tokenizer.fast.to_str())
    vocab = tokenizer.fast.get_vocab()
    tokens = [""] * tokenizer.vocab_size
    for token, index in vocab.items():
        tokens[index] = token
    special = set(tokenizer.special_tokens)
    types = [TOKEN_CONTROL if token in special else TOKEN_NORMAL for token in tokens]
    padding = vocab_size - len(tokens)  # the model may have more rows than the tokenizer has tokens
    tokens += [f"[PAD{i}]" for i in range(padding)]
    types += [TOKEN_UNUSED] * padding
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    config = read_json(run_dir / "tokenizer_config.json") if (run_dir / "tokenizer_config.json").is_file() else {}
    template = config.get("chat_template") or CHAT_TEMPLATE
    meta: dict[str, Any] = {
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": pre_tokenizer_name(spec),
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": types,
        "tokenizer.ggml.merges": merges,
        "tokenizer.ggml.eos_token_id": tokenizer.eos_id,
        "tokenizer.ggml.padding_token_id": tokenizer.pad_id,
        "tokenizer.ggml.eot_token_id": tokenizer.end_of_turn_id,
        "tokenizer.ggml.add_bos_token": False,
        "tokenizer.ggml.add_space_prefix": False,
        "tokenizer.chat_template": re.sub(r"{%-?\s*(end)?generation\s*-?%}", "", template),
    }
    return meta


def model_metadata(model: Transformer, arch: str, name: str, kind: str) -> dict[str, Any]:
    c = model.config
    meta: dict[str, Any] = {
        "general.architecture": arch,
        "general.name": name,
        "general.file_type": FILE_TYPES[kind],
        "general.quantization_version": 2,
        f"{arch}.context_length": c.context_length,
        f"{arch}.embedding_length": c.d_model,
        f"{arch}.feed_forward_length": c.d_ff,
        f"{arch}.block_count": c.n_layer,
        f"{arch}.attention.head_count": c.n_head,
    }
    if arch == "gpt2":
        meta["gpt2.attention.layer_norm_epsilon"] = float(c.norm_eps)
        return meta
    meta.update({
        "llama.attention.head_count_kv": c.n_kv_head,
        "llama.attention.layer_norm_rms_epsilon": float(c.norm_eps),
        "llama.rope.freq_base": float(c.rope_theta),
        "llama.rope.dimension_count": c.head_dim,
        "llama.attention.key_length": c.head_dim,
        "llama.attention.value_length": c.head_dim,
        "llama.vocab_size": c.vocab_size,
    })
    return meta


def check_output(out: Path, force: bool) -> None:
    """An existing file is replaced only with `force`, and only if it is a GGUF file (ours to overwrite)."""
    if out.is_dir():
        raise UserError("is a directory", where=str(out), hint="give a file name such as model.gguf")
    if out.exists():
        if not force:
            raise UserError("exists", where=str(out), hint="add --force to replace it")
        with open(out, "rb") as handle:
            if handle.read(4) != b"GGUF":
                raise UserError("exists and is not a GGUF file; not replacing it", where=str(out))


def export_gguf(run_dir: str | Path, out: str | Path, kind: str = "f16", force: bool = False) -> dict[str, Any]:
    """Write the run's model and tokenizer to `out` as GGUF with matrices in `kind`; returns a summary."""
    if kind not in EXPORT_TYPES:
        raise UserError(f"unknown GGUF type {kind!r}", where="--type", hint=", ".join(EXPORT_TYPES))
    check_output(Path(out), force)
    run_dir = Path(run_dir)
    if not (run_dir / "model_config.json").is_file():
        raise UserError("not a run directory with a model (no model_config.json)", where=str(run_dir))
    model = load_model(run_dir)
    if not isinstance(model, Transformer):
        raise UserError("GGUF export needs a decoder-only Transformer run", where=str(run_dir))
    tokenizer = load_tokenizer(run_dir)
    if not isinstance(tokenizer, BPETokenizer):
        raise UserError("GGUF export needs a byte-level BPE tokenizer (llama.cpp has no character tokenizer)",
                        where=str(run_dir), hint="train the run with a BPE tokenizer")
    arch = architecture_of(model)
    tensors = [stored(name, tensor, kind) for name, tensor in named_tensors(model)]
    metadata = {**model_metadata(model, arch, run_dir.resolve().name, kind),
                **tokenizer_metadata(tokenizer, model.config.vocab_size, run_dir)}
    path = write_gguf(out, metadata, tensors)
    types: dict[str, int] = {}
    for tensor in tensors:
        types[tensor.ggml_type] = types.get(tensor.ggml_type, 0) + 1
    return {"path": str(path), "architecture": arch, "type": kind, "bytes": path.stat().st_size,
            "tensors": len(tensors), "tensor_types": types,
            "parameters": int(sum(np.prod(t.shape) for t in tensors))}
