"""`ServedModel`: the model a server serves, its tokenizer and scheduler, and the limits it answers within."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

from lm2llm import env
from lm2llm.errors import UserError
from lm2llm.inference.chat import chat_end_ids
from lm2llm.inference.loading import end_of_text_ids, load_for_inference
from lm2llm.inference.text import hidden_ids
from lm2llm.serve import protocol
from lm2llm.serve.errors import APIError
from lm2llm.serve.scheduler import BatchScheduler
from lm2llm.tokenizer import Tokenizer


@dataclass
class ServedModel:
    """What the server needs to know about the model it serves."""

    model_id: str
    scheduler: BatchScheduler
    tokenizer: Tokenizer
    end_ids: tuple[int, ...]  # where a plain completion ends (end of text)
    created: int
    max_tokens: int  # the server-wide cap on new tokens per sequence

    @classmethod
    def from_run(cls, run_dir: str | Path, *, max_batch: int = 16, max_waiting: int = 256,
                 device: str = "cpu", dtype: str = "float32", prefill_dtype: str | None = None,
                 max_tokens: int | None = None, quantize: str | None = None) -> ServedModel:
        """`prefill_dtype` (e.g. bfloat16): prompts run on a copy of the weights in that dtype, decoding in
        `dtype` (the scheduler's `_prefill` says why); the copy costs the weights' memory once more.
        `max_tokens`: the cap on new tokens per sequence (default: the model's context; required for a model
        without a context limit, an RNN, which would otherwise generate as long as asked).
        `quantize` (int8, int4): weight-only quantized linear layers, which already compute in bfloat16."""
        if quantize is not None and prefill_dtype is not None:
            raise UserError("--prefill-dtype copies float weights; quantized layers already compute in bfloat16",
                            where="--prefill-dtype", hint="drop one of --prefill-dtype and --quantize")
        model, tokenizer, run_dir = load_for_inference(run_dir, device, dtype, quantize)
        limit = getattr(model.config, "context_length", None)
        if max_tokens is None and limit is None:
            raise UserError("this model has no context limit, so nothing would bound a request's length",
                            where="--max-tokens", hint="give --max-tokens N, the most new tokens per sequence")
        max_tokens = limit if max_tokens is None else max_tokens
        if max_tokens < 1:
            raise UserError(f"must be at least 1, got {max_tokens}", where="--max-tokens")
        prefill_model = None
        if prefill_dtype is not None and prefill_dtype != dtype:
            if prefill_dtype not in env.DTYPES:
                raise UserError(f"unknown dtype {prefill_dtype!r}", where="--prefill-dtype",
                                hint=", ".join(env.DTYPES))
            prefill_model = copy.deepcopy(model).to(env.DTYPES[prefill_dtype])
        scheduler = BatchScheduler(model, tokenizer, max_batch=max_batch, max_waiting=max_waiting,
                                   prefill_model=prefill_model)
        created = int((run_dir / "model.safetensors").stat().st_mtime)
        return cls(run_dir.resolve().name, scheduler, tokenizer, end_of_text_ids(tokenizer), created, max_tokens)

    @property
    def context_length(self) -> int | None:
        return self.scheduler.limit

    def chat_end_ids(self) -> list[int]:
        try:
            return chat_end_ids(self.tokenizer)
        except UserError as error:
            raise APIError(400, f"this model cannot chat: {error}", param="model", code="model_not_chat") from error

    def hidden_ids(self, body: protocol.SamplingFields) -> tuple[int, ...]:
        """The tokens a request's text leaves out: special tokens, unless it asks `skip_special_tokens: false`
        (vLLM's field and default)."""
        return hidden_ids(self.tokenizer, show_special=not body.skip_special_tokens)

    def encode_prompt(self, text: str) -> list[int]:
        """Token ids of a completion prompt; an empty prompt starts a document (end-of-text) when the
        tokenizer has that token."""
        ids = self.tokenizer.encode(text)
        if not ids and getattr(self.tokenizer, "eos_id", None) is not None:
            ids = [self.tokenizer.eos_id]
        return ids
