"""A small servable run built in seconds (a BPE tokenizer with the chat tokens and a freshly initialised
decoder), for the tests, the deployment chapter and the serving benchmark: serving speed depends on the
model's shape, not on what its weights learned."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from lm2llm.models import build_model, save_model
from lm2llm.tokenizer import BPETokenizer


def save_demo_run(directory: str | Path, texts: Sequence[str], *, vocab_size: int = 512, family: str = "gpt",
                  seed: int = 0, **model_overrides) -> Path:
    """Train a byte-level BPE tokenizer on `texts`, build a `family` model of that vocabulary, save both as
    a run directory (`model.safetensors`, `model_config.json`, tokenizer files) and return it."""
    directory = Path(directory)
    tokenizer = BPETokenizer.train(list(texts), vocab_size)
    torch.manual_seed(seed)
    model = build_model(family, vocab_size=tokenizer.vocab_size, **model_overrides)
    save_model(model, directory)
    tokenizer.save(directory)
    return directory
