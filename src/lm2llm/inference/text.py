"""Text in, text out: tokenise prompts, let the engine decode them, collect or stream the text.

The engine (`inference.engine`) detokenises as tokens arrive and honours stop strings, for every row of
a batch, never releasing half a character or the beginning of a stop string. `generate` is `stream`
collected, so the streamed and the returned text are the same by construction.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch import nn

from lm2llm import env
from lm2llm.compress.weight_only import quantize_linears
from lm2llm.errors import UserError
from lm2llm.gguf.registry import resolve_run
from lm2llm.inference.engine import Engine, TextChunk, collect, generate_batch
from lm2llm.inference.layout import for_cpu_inference
from lm2llm.inference.sampling import Completion, SamplingConfig
from lm2llm.models import load_model
from lm2llm.runs import read_json
from lm2llm.tokenizer import Tokenizer, load_tokenizer


class TextGenerator:
    """A model and its tokenizer, ready to complete text: `generate(prompts)` or `stream(prompts)`."""

    def __init__(self, model: nn.Module, tokenizer: Tokenizer, *, end_ids: Sequence[int] = (),
                 hidden_ids: Sequence[int] = ()):
        """`end_ids` end a sequence; `hidden_ids` (special tokens) stay in its token ids but not in its text."""
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.end_ids = tuple(end_ids)
        self.hidden_ids = tuple(hidden_ids)

    @classmethod
    def from_run(cls, run_dir: str | Path, device: str = "cpu", dtype: str = "float32",
                 quantize: str | None = None, show_special: bool = False) -> TextGenerator:
        """The model and tokenizer a training run saved (`model.safetensors`, `model_config.json`, tokenizer
        files), or a registered model's name (`smollm2-135m-instruct`, imported once into the cache), the model on `device` ("auto": a GPU when there is one) in `dtype`; plain completion ends at
        the tokenizer's end-of-text and end-of-turn tokens (`stop_ids`), and its text leaves special tokens
        out unless `show_special`.

        bfloat16 halves the bytes each decoding step reads: on a CPU with native bf16 (AVX512-BF16, AMX) that
        speeds up batched decoding, while one sequence at a time can be slower than fp32 (measured in
        `benchmarks/bench_serve.py`). The KV cache follows the weights' dtype; sampling works in fp32.
        `quantize` ("int8" or "int4", CPU only) swaps every linear layer for its weight-only quantized
        counterpart (`lm2llm.compress.weight_only`): a quarter or an eighth of float32's bytes per token.
        A run that `lm2llm compress --method int8|int4` wrote records its kind and gets it by default.
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
        model = load_model(run_dir, device=device).to(env.DTYPES[dtype])
        if quantize is None and (run_dir / "config.json").is_file():
            saved = read_json(run_dir / "config.json")
            quantize = saved.get("quantize") if isinstance(saved, dict) else None
        if quantize is not None:
            if device != "cpu":
                raise UserError("--quantize int8/int4 runs on PyTorch's CPU kernels", where="--device", hint="use cpu")
            model = quantize_linears(model, quantize)
        elif device == "cpu":
            model = for_cpu_inference(model)  # decoding reads the weights faster (inference/layout.py)
        if tokenizer.vocab_size > model.config.vocab_size:
            raise UserError(f"the tokenizer has {tokenizer.vocab_size} tokens but the model only "
                            f"{model.config.vocab_size}", where=str(run_dir))
        eos = getattr(tokenizer, "eos_id", None)
        return cls(model, tokenizer, end_ids=getattr(tokenizer, "stop_ids", () if eos is None else (eos,)),
                   hidden_ids=() if show_special else getattr(tokenizer, "special_ids", ()))

    def encode(self, prompt: str | Sequence[int]) -> list[int]:
        return self.tokenizer.encode(prompt) if isinstance(prompt, str) else list(prompt)

    def stream(self, prompts: Sequence[str | Sequence[int]], config: SamplingConfig) -> Iterator[TextChunk]:
        """Yield text pieces of every row as they are produced; each row's last chunk has its finish reason."""
        engine = Engine(self.model, self.tokenizer, max_batch=max(1, len(prompts)))
        return generate_batch(engine, [self.encode(p) for p in prompts], config, end_ids=self.end_ids,
                              hidden_ids=self.hidden_ids)

    def generate(self, prompts: Sequence[str | Sequence[int]], config: SamplingConfig) -> list[Completion]:
        """Complete every prompt; `text` ends before a stop string, `token_ids` are all tokens sampled."""
        return collect(self.stream(prompts, config), len(prompts))
