"""Fine-tuning a classifier with the project's Trainer, predicting, and scoring.

BERT texts start with `<|cls|>` (the pooler reads that position); decoder texts end with `<|endoftext|>`
(the last real token is where a causal model has seen the whole text). Both are padded on the right.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lm2llm.classify.data import ClassificationBatches, LabelledSet, encode_texts
from lm2llm.classify.metrics import classification_report
from lm2llm.classify.model import SequenceClassifier, save_classifier
from lm2llm.data.lineage import record_lineage
from lm2llm.errors import UserError
from lm2llm.models.padding import pad
from lm2llm.runs import RunDir, check_out, claim_out
from lm2llm.tokenizer import Tokenizer, load_tokenizer
from lm2llm.tokenizer.chat import CLS_TOKEN, ENCODER_TOKENS, ENDOFTEXT
from lm2llm.training.config import TrainerConfig, fine_tuning
from lm2llm.training.objectives import SequenceClassification
from lm2llm.training.trainer import Trainer, TrainResult, seed_everything


def classify_trainer(max_steps: int = 200, lr: float = 1e-3, **knobs: Any) -> TrainerConfig:
    """Classification's trainer: the shared fine-tuning preset with 16 texts a step, weight decay 0.01, a
    warm-up of 20 steps (at most half the run) and an evaluation every 100 steps; `knobs` set any other field."""
    return fine_tuning(max_steps, lr, **{"batch_size": 16, "warmup_steps": min(20, max_steps // 2),
                                         "weight_decay": 0.01, "eval_every": 100, **knobs})


@dataclass
class ClassifyConfig:
    model: str = "bert"  # family of a fresh model (bert, gpt, llama) when `init` is not given
    preset: str | None = None
    model_overrides: dict[str, Any] = field(default_factory=lambda: {"n_layer": 2, "d_model": 64, "n_head": 4})
    init: str | None = None  # a pre-trained run directory (model + tokenizer) to fine-tune
    vocab_size: int = 2000  # BPE vocabulary trained on the training texts when there is no `init`
    block_size: int = 64
    dropout: float = 0.1
    seed: int = 1337
    trainer: TrainerConfig = field(default_factory=classify_trainer)


def token_id(tokenizer: Tokenizer, token: str) -> int:
    fast = getattr(tokenizer, "fast", None)
    found = fast.token_to_id(token) if fast is not None else None
    if found is None:
        raise UserError(f"the tokenizer has no {token} token", where="tokenizer",
                        hint=f"train it with 'lm2llm tokenizer train --encoder-tokens' ({' and '.join(ENCODER_TOKENS)})")
    return found


def encode_for(model: SequenceClassifier, tokenizer: Tokenizer, texts: list[str], block_size: int) -> list[list[int]]:
    if model.family == "bert":
        return encode_texts(tokenizer, texts, block_size, first_id=token_id(tokenizer, CLS_TOKEN))
    return encode_texts(tokenizer, texts, block_size, last_id=token_id(tokenizer, ENDOFTEXT))


def fine_tune(model: SequenceClassifier, tokenizer: Tokenizer, train: LabelledSet, val: LabelledSet,
              cfg: ClassifyConfig, run: RunDir | None = None) -> TrainResult:
    """Train `model` (in place) on `train` with the Trainer's classification objective."""
    data = ClassificationBatches(encode_for(model, tokenizer, train.texts, cfg.block_size), train.labels,
                                 pad_id=tokenizer.pad_id, block_size=cfg.block_size, batch_size=cfg.trainer.batch_size,
                                 seed=cfg.seed, val_encoded=encode_for(model, tokenizer, val.texts, cfg.block_size),
                                 val_labels=val.labels)
    trainer = Trainer(model, SequenceClassification(), data, cfg.trainer, run=run,
                      write_weights=save_classifier)
    result = trainer.fit()
    model.eval()
    return result


@torch.no_grad()
def predict(model: SequenceClassifier, tokenizer: Tokenizer, texts: list[str], block_size: int,
            batch_size: int = 64) -> list[int]:
    model.eval()
    encoded = encode_for(model, tokenizer, texts, block_size)
    out: list[int] = []
    for i in range(0, len(encoded), batch_size):
        ids, mask = pad(encoded[i:i + batch_size], tokenizer.pad_id)
        out += model(ids, mask).argmax(dim=-1).tolist()
    return out


def evaluate_classifier(model: SequenceClassifier, tokenizer: Tokenizer, data: LabelledSet, block_size: int) -> dict:
    """Accuracy, macro-F1 and the confusion matrix of `model` on `data` (relabelled to the model's labels)."""
    data = data.relabelled(model.labels, "--data")
    start = time.perf_counter()
    predicted = predict(model, tokenizer, data.texts, block_size)
    return {**classification_report(data.labels, predicted, model.labels),
            "seconds": round(time.perf_counter() - start, 3)}


def new_classifier(cfg: ClassifyConfig, train: LabelledSet) -> tuple[SequenceClassifier, Tokenizer]:
    """A classifier on the `init` run's model and tokenizer, or a fresh model with a BPE trained on `train`."""
    from lm2llm.models import build_model, load_model
    from lm2llm.tokenizer.hf_bpe import BPETokenizer

    seed_everything(cfg.seed)
    if cfg.init:
        backbone, tokenizer = load_model(cfg.init), load_tokenizer(cfg.init)
        context = getattr(backbone.config, "context_length", cfg.block_size)
        if cfg.block_size > context:
            raise UserError(f"block_size {cfg.block_size} is longer than the model's context ({context})",
                            where="--block-size")
    else:
        tokenizer = BPETokenizer.train(train.texts, cfg.vocab_size, extra_special_tokens=ENCODER_TOKENS)
        backbone = build_model(cfg.model, cfg.preset, **{"vocab_size": tokenizer.vocab_size,
                                                         "context_length": cfg.block_size, **cfg.model_overrides})
    return SequenceClassifier(backbone, train.names, dropout=cfg.dropout), tokenizer


def train_classifier(cfg: ClassifyConfig, train: LabelledSet, val: LabelledSet, out: str | Path, *,
                     force: bool = False, sources: Sequence[str | Path] = ()) -> dict:
    """A classification run in `out`: the classifier, its tokenizer, metrics.jsonl and the validation report.
    `force` replaces an earlier classification run there (see `lm2llm.runs.check_out`); `sources` are the
    files or corpora the texts came from, recorded as the run's data lineage."""
    check_out(out, "classify", force=force, inputs=[cfg.init])
    model, tokenizer = new_classifier(cfg, train)
    run = RunDir(claim_out(out, "classify", force=force, inputs=[cfg.init]))
    run.write_config({"stage": "classify", "classify": dataclasses.asdict(cfg), "labels": train.names,
                      "train_examples": len(train), "val_examples": len(val), "family": model.family,
                      "num_params": model.num_params()})
    record_lineage(run.path, list(sources), parents=[cfg.init])
    tokenizer.save(run.path)
    result = fine_tune(model, tokenizer, train, val, cfg, run)
    save_classifier(model, run.path)
    report = evaluate_classifier(model, tokenizer, val, cfg.block_size)
    run.log_metrics({"event": "finished", "steps": result.steps, "seconds": result.seconds,
                     "val_accuracy": report["accuracy"], "val_macro_f1": report["macro_f1"]})
    return {"run": str(run.path), "family": model.family, "steps": result.steps,
            "train_seconds": round(result.seconds, 2), "train_examples": len(train), **report}
