"""Text in, text out: tokenise prompts, run the engine, detokenise as tokens arrive, honour stop strings.

Streaming has two traps, both handled here for every row of a batch:

- a byte-level token may end in the middle of a UTF-8 character (a Hangul syllable is 3 bytes and can
  span tokens): the tokenizer's `StreamDecoder` releases a character only once all its bytes are in;
- the tail of the text may be the beginning of a stop string: it is held back until it cannot be.

`generate` is `stream` collected, so the streamed and the returned text are the same by construction.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from lm2llm import env
from lm2llm.compress.weight_only import quantize_linears
from lm2llm.errors import UserError
from lm2llm.gguf.registry import resolve_run
from lm2llm.inference.engine import DecodeBatch
from lm2llm.inference.layout import input_major
from lm2llm.inference.sampling import Completion, SamplingConfig, StopStrings
from lm2llm.models import load_model
from lm2llm.runs import read_json
from lm2llm.tokenizer import StreamDecoder, Tokenizer, load_tokenizer


@dataclass
class TextChunk:
    """A piece of one row's output: new text, the tokens that made it, and the finish reason at the end."""

    index: int
    text: str
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    top_logprobs: list[dict[int, float]] = field(default_factory=list)
    finish_reason: str | None = None


class RowText:
    """One row's text so far and how much of it has been released."""

    def __init__(self, tokenizer: Tokenizer, stops: StopStrings):
        self.detokenizer = StreamDecoder(tokenizer)
        self.stops = stops
        self.text = ""
        self.released = 0
        self.checked = 0

    def add(self, piece: str, final: bool) -> tuple[str, bool]:
        """Append decoded text; return what may be shown now and whether a stop string was reached."""
        self.text += piece
        cut = self.stops.find(self.text, self.checked) if self.stops.stops else None
        self.checked = len(self.text)
        if cut is not None:
            self.text = self.text[:cut]
            final = True
        end = len(self.text) if final else self.stops.safe_length(self.text)
        out, self.released = self.text[self.released:end], max(self.released, end)
        return out, cut is not None


class TextGenerator:
    """A model and its tokenizer, ready to complete text: `generate(prompts)` or `stream(prompts)`."""

    def __init__(self, model: nn.Module, tokenizer: Tokenizer, *, end_ids: Sequence[int] = ()):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.end_ids = tuple(end_ids)

    @classmethod
    def from_run(cls, run_dir: str | Path, device: str = "cpu", dtype: str = "float32",
                 quantize: str | None = None) -> TextGenerator:
        """The model and tokenizer a training run saved (`model.safetensors`, `model_config.json`, tokenizer
        files), or a registered model's name (`smollm2-135m-instruct`, imported once into the cache), the model on `device` ("auto": a GPU when there is one) in `dtype`; plain completion ends at
        the tokenizer's end-of-text token when it has one.

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
            model = input_major(model)  # batch-1 decoding reads the weights faster (inference/layout.py)
        if tokenizer.vocab_size > model.config.vocab_size:
            raise UserError(f"the tokenizer has {tokenizer.vocab_size} tokens but the model only "
                            f"{model.config.vocab_size}", where=str(run_dir))
        eos = getattr(tokenizer, "eos_id", None)
        return cls(model, tokenizer, end_ids=getattr(tokenizer, "stop_ids", () if eos is None else (eos,)))

    def encode(self, prompt: str | Sequence[int]) -> list[int]:
        return self.tokenizer.encode(prompt) if isinstance(prompt, str) else list(prompt)

    def stream(self, prompts: Sequence[str | Sequence[int]], config: SamplingConfig) -> Iterator[TextChunk]:
        """Yield text pieces of every row as they are produced; each row's last chunk has its finish reason."""
        batch = DecodeBatch(self.model, [self.encode(p) for p in prompts], config, end_ids=self.end_ids)
        stops = StopStrings(config.stop)
        rows = [RowText(self.tokenizer, stops) for _ in prompts]
        if batch.done:  # nothing to generate (max_new_tokens 0)
            yield from (TextChunk(i, "", finish_reason=batch.completions[i].finish_reason) for i in range(len(rows)))
        while not batch.done:
            for step in batch.step():
                row = rows[step.row]
                finished = step.finish_reason is not None
                piece = row.detokenizer.push(step.token) if step.token is not None else ""
                if finished:
                    piece += row.detokenizer.flush()
                text, stopped = row.add(piece, final=finished)
                if stopped:
                    batch.finish(step.row, "stop")
                chunk = TextChunk(step.row, text, [] if step.token is None else [step.token],
                                  [] if step.logprob is None else [step.logprob],
                                  [] if step.top_logprobs is None else [step.top_logprobs],
                                  batch.completions[step.row].finish_reason if (finished or stopped) else None)
                if chunk.text or chunk.token_ids or chunk.finish_reason:
                    yield chunk

    def generate(self, prompts: Sequence[str | Sequence[int]], config: SamplingConfig) -> list[Completion]:
        """Complete every prompt; `text` ends before a stop string, `token_ids` are all tokens sampled."""
        texts = [""] * len(prompts)
        batch_completions: list[Completion] = [Completion([]) for _ in prompts]
        for chunk in self.stream(prompts, config):
            texts[chunk.index] += chunk.text
            done = batch_completions[chunk.index]
            done.token_ids += chunk.token_ids
            done.logprobs += chunk.logprobs
            done.top_logprobs += chunk.top_logprobs
            if chunk.finish_reason:
                done.finish_reason = chunk.finish_reason
        for completion, text in zip(batch_completions, texts, strict=True):
            completion.text = text
        return batch_completions
