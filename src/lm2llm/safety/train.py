"""`train_safety`: our BERT fine-tuned as a safe/unsafe classifier on the Korean hate-speech comments.

The comments are split once (`split_hate_speech`, seeded): the classifier trains on one part and every
figure it reports comes from the other. The run is an ordinary classification run (`lm2llm classify`'s
format), so `--safety-filter RUN` and `lm2llm classify eval` both read it.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from lm2llm.classify.train import ClassifyConfig, classify_trainer, train_classifier
from lm2llm.runs import atomic_write_json
from lm2llm.safety.classifier import LexiconClassifier, ModelClassifier
from lm2llm.safety.data import hate_speech, hate_speech_file, split_hate_speech
from lm2llm.safety.evaluate import error_split, evaluate_filter

SAFETY_STEPS = 300


def safety_trainer(max_steps: int = SAFETY_STEPS):
    """Classification's preset with 32 comments a step and a 30-step warm-up."""
    return classify_trainer(max_steps, 1e-3, batch_size=32, warmup_steps=30, eval_every=100)


SAFETY_CONFIG = ClassifyConfig(model="bert", vocab_size=2000, block_size=64, trainer=safety_trainer(),
                               model_overrides={"n_layer": 2, "d_model": 128, "n_head": 4})


def train_safety(data_dir: str | Path | None, out: str | Path, *, steps: int | None = None, held_out: float = 0.3,
                 seed: int = 0, force: bool = False) -> dict:
    """Train on part of the comments, then score the classifier and the lexicon on the held-out part."""
    train, test = split_hate_speech(hate_speech(data_dir), held_out, seed)
    source = hate_speech_file(data_dir)
    config = replace(SAFETY_CONFIG, trainer=safety_trainer(steps or SAFETY_STEPS), seed=seed)
    summary = train_classifier(config, train.labelled(), test.labelled(), out, force=force,
                               sources=[source.parent])
    report = {"run": summary["run"], "steps": config.trainer.max_steps, "train_lines": len(train), "held_out_lines": len(test),
              "train_seconds": summary["train_seconds"], "filters": {}}
    for classifier in (ModelClassifier(out), LexiconClassifier()):
        score, flagged = evaluate_filter(classifier, test)
        report["filters"][classifier.name] = {**score.to_dict(), "by_group": error_split(test, flagged)}
    atomic_write_json(Path(out) / "safety_report.json", report)
    return report


def safety_run(out: str | Path, data_dir: str | Path | None, steps: int | None = None) -> dict:
    """The report of the safety run in `out` when one with the same steps is there (the tour's chapters 7.2
    and 7.4 share one), else a fresh run's."""
    saved = Path(out) / "safety_report.json"
    if saved.is_file():
        report = json.loads(saved.read_text(encoding="utf-8"))
        if report.get("steps") == (steps or SAFETY_STEPS):
            return report
    return train_safety(data_dir, out, steps=steps, force=True)
