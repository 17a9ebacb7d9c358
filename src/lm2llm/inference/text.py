"""Text in, text out: tokenise prompts, let the engine decode them, collect or stream the text.

The engine (`inference.engine`) detokenises as tokens arrive and honours stop strings, for every row of
a batch, never releasing half a character or the beginning of a stop string. `generate` is `stream`
collected, so the streamed and the returned text are the same by construction.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from torch import nn

from lm2llm.inference.engine import Engine, TextChunk, collect, generate_batch
from lm2llm.inference.loading import end_of_text_ids, load_for_inference
from lm2llm.inference.sampling import Completion, SamplingConfig
from lm2llm.tokenizer import Tokenizer


def hidden_ids(tokenizer: Tokenizer, show_special: bool = False) -> tuple[int, ...]:
    """The tokens that generated text leaves out: every special token (`<|end|>`, `<|im_end|>`...), unless
    `show_special`. They stay among the sequence's token ids either way."""
    return () if show_special else tuple(getattr(tokenizer, "special_ids", ()))


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
        """A run directory or a registered model's name, loaded by `inference.loading.load_for_inference`;
        plain completion ends at the tokenizer's end-of-text and end-of-turn tokens (`stop_ids`), and its
        text leaves special tokens out unless `show_special`."""
        model, tokenizer, _ = load_for_inference(run_dir, device, dtype, quantize)
        return cls(model, tokenizer, end_ids=end_of_text_ids(tokenizer),
                   hidden_ids=hidden_ids(tokenizer, show_special))

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
