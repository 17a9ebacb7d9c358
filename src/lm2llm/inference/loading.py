"""The one loader of a model for inference: a run directory (or a registered model's name) into a model and
its tokenizer, on a device, in a dtype, optionally quantized. `TextGenerator` and the server both load
through it."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from lm2llm import env
from lm2llm.compress import weight_only  # a module, not its names: weight_only imports inference.matvec
from lm2llm.errors import UserError
from lm2llm.gguf.registry import resolve_run
from lm2llm.inference.layout import for_cpu_inference, fuse_projections
from lm2llm.models import load_model
from lm2llm.runs import read_json
from lm2llm.tokenizer import Tokenizer, load_tokenizer


def load_for_inference(run_dir: str | os.PathLike, device: str = "cpu", dtype: str = "float32",
                       quantize: str | None = None) -> tuple[nn.Module, Tokenizer, Path]:
    """The model and tokenizer a training run saved (`model.safetensors`, `model_config.json`, tokenizer
    files), or a registered model's name (`smollm2-135m-instruct`, imported once into the cache), the model on
    `device` ("auto": a GPU when there is one) in `dtype`, in eval mode; also the run directory they came from.

    bfloat16 halves the bytes each decoding step reads: on a CPU with native bf16 (AVX512-BF16, AMX) that
    speeds up batched decoding, while one sequence at a time can be slower than fp32 (measured in
    `benchmarks/bench_serve.py`). The KV cache follows the weights' dtype; sampling works in fp32.
    `quantize` ("int8" or "int4", CPU only) swaps every linear layer for its weight-only quantized
    counterpart (`lm2llm.compress.weight_only`): a quarter or an eighth of float32's bytes per token; "w8a8"
    and "w4a8" for int8 and int4 weights met by int8 inputs. A run that `lm2llm compress --method
    int8|int4|w8a8|w4a8` wrote records its kind and gets it by default.
    """
    if dtype not in env.DTYPES:
        raise UserError(f"unknown dtype {dtype!r}", where="--dtype", hint=", ".join(env.DTYPES))
    run_dir = resolve_run(run_dir)
    device = env.best_device() if device == "auto" else device
    if device not in ("cpu", "cuda", "mps") and not device.startswith("cuda:"):
        raise UserError(f"unknown device {device!r}", where="--device", hint="cpu, cuda, cuda:N, mps or auto")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("device 'cuda' requested but no CUDA GPU is visible", where="--device")
    if not (run_dir / "model_config.json").is_file():
        raise UserError("not a run directory with a model (no model_config.json)", where=str(run_dir),
                        hint="give the folder a training run wrote")
    tokenizer = load_tokenizer(run_dir)
    model = fuse_projections(load_model(run_dir, device=device).to(env.DTYPES[dtype]))  # inference/layout.py
    if quantize is None and (run_dir / "config.json").is_file():
        saved = read_json(run_dir / "config.json")
        quantize = saved.get("quantize") if isinstance(saved, dict) else None
    if quantize is not None:
        if device != "cpu":
            raise UserError("--quantize int8/int4/w8a8/w4a8 runs on CPU kernels", where="--device", hint="use cpu")
        model = weight_only.quantize_linears(model, quantize)
    elif device == "cpu":
        model = for_cpu_inference(model)  # decoding reads the weights faster (inference/layout.py)
    if tokenizer.vocab_size > model.config.vocab_size:
        raise UserError(f"the tokenizer has {tokenizer.vocab_size} tokens but the model only "
                        f"{model.config.vocab_size}", where=str(run_dir))
    return model.eval(), tokenizer, run_dir


def end_of_text_ids(tokenizer: Tokenizer) -> tuple[int, ...]:
    """Where a plain completion ends: the tokenizer's stop tokens, else its end-of-text token, else nowhere."""
    eos = getattr(tokenizer, "eos_id", None)
    return tuple(getattr(tokenizer, "stop_ids", () if eos is None else (eos,)))
