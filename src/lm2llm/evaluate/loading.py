"""A model to evaluate, by what the user types: a training run, an n-gram model directory, or a name.

- a run directory (`model_config.json` + weights + tokenizer): `ModelScorer` over `TextGenerator.from_run`;
- an n-gram directory (`config.json` with "stage": "ngram"): `NgramScorer`;
- a registered model name (`lm2llm.models.registry`, when present): its run directory.
"""

from __future__ import annotations

from pathlib import Path

from lm2llm.errors import UserError
from lm2llm.evaluate.requests import Scorer
from lm2llm.runs import read_json


def model_dir(name_or_path: str) -> Path:
    """The directory behind a path or a registered model name."""
    path = Path(name_or_path)
    if path.is_dir():
        return path
    raise UserError(f"no model directory or registered model named {name_or_path!r}", where="MODEL",
                    hint="give a training run, an n-gram model directory, or a registered model name")


def load_scorer(name_or_path: str, *, dtype: str = "float32", batch_size: int = 8,
                max_length: int | None = None) -> Scorer:
    directory = model_dir(name_or_path)
    name = Path(name_or_path).name
    if (directory / "model_config.json").is_file():
        from lm2llm.evaluate.scorer import ModelScorer
        from lm2llm.inference import TextGenerator

        return ModelScorer(TextGenerator.from_run(directory, "cpu", dtype), name=name, batch_size=batch_size,
                           max_length=max_length)
    config = directory / "config.json"
    if config.is_file() and read_json(config).get("stage") == "ngram":
        from lm2llm.evaluate.ngram_scorer import NgramScorer
        from lm2llm.ngram import load

        return NgramScorer(load(directory), name=name)
    raise UserError("neither a model run (model_config.json) nor an n-gram model (config.json)", where=str(directory))
