"""`lm2llm scale emergence`: a family of sizes trained alike on python-docs mixed with the synthetic tasks.

The corpus is character-level (every digit its own token, as in Lee et al. 2023's small models): python-docs
documents and task documents (`tasks.py`) shuffled together, every 20th held out. Every size trains the
same number of steps on the same batches; then each is scored on fresh key→value lines at 0–8 shots and on
held-out additions in the three formats, exact match (sharp) and answer log-likelihood (smooth), plus its
induction-head and in-context scores.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lm2llm.data import load_documents
from lm2llm.data.shards import ShardWriter, TokenShards
from lm2llm.errors import UserError
from lm2llm.runs import atomic_write_json
from lm2llm.scale import tasks
from lm2llm.scale.calibration import ordering_study, summarise
from lm2llm.scale.probes import (
    answer_logprobs,
    choice_accuracy,
    greedy_completions,
    in_context_score,
    induction_scores,
)
from lm2llm.scale.shapes import param_counts, shape_for_width
from lm2llm.scale.sweep import RunOutcome, RunPlan, SweepSettings, run_plans
from lm2llm.tokenizer import CharTokenizer

CONTEXT = 128


@dataclass(frozen=True)
class EmergenceSettings:
    widths: tuple[int, ...] = (32, 48, 64, 96, 128)
    steps: int = 600
    docs: int = 3000  # python-docs documents
    task_docs: int = 1600  # task documents of 16 lines each
    test_examples: int = 100  # per shot count and per addition format
    orderings: int = 4  # orders of the same shots for the calibration study (`scale.calibration`)
    calibration_widths: tuple[int, ...] | None = None  # the widths the study runs on (None: every width)
    batch_size: int = 16
    lr: float = 3e-3
    seed: int = 0


def build_corpus(directory: Path, settings: EmergenceSettings) -> dict[str, int]:
    """Character-level shards of python-docs + task documents (the test additions never among them)."""
    held_out = set(tasks.addition_test_pairs(settings.test_examples))
    prose = load_documents("python-docs", limit=settings.docs)
    synthetic = tasks.training_documents(settings.task_docs, held_out, seed=settings.seed)
    mixed = prose + synthetic
    random.Random(settings.seed).shuffle(mixed)
    split = {"train": [d for i, d in enumerate(mixed) if i % 20], "val": mixed[::20]}
    tokenizer = CharTokenizer.train([*mixed, tasks.LETTERS, "0123456789+=>,"])
    tokenizer.save(directory / "tokenizer")
    separator = tokenizer.encode("\n\n")
    writer = ShardWriter(directory, tokenizer.vocab_size)
    for name, docs in split.items():
        for doc in docs:
            writer.write(name, [*tokenizer.encode(doc), *separator])
    corpus = {"prose_docs": len(prose), "task_docs": len(synthetic), "task_chars": sum(map(len, synthetic)),
              "prose_chars": sum(map(len, prose)), "settings": [settings.docs, settings.task_docs, settings.seed]}
    writer.close(tokenizer=tokenizer.kind, tokenizer_dir="tokenizer", corpus=corpus)
    return corpus


def _mean_and_se(logprobs: np.ndarray) -> dict[str, float]:
    """The smooth view's mean answer log-likelihood and its standard error over the examples."""
    return {"logprob": float(logprobs.mean()), "logprob_se": float(logprobs.std(ddof=1) / np.sqrt(len(logprobs)))
            if len(logprobs) > 1 else float("nan")}


def evaluate(model: torch.nn.Module, tokenizer: CharTokenizer, val: TokenShards, settings: EmergenceSettings,
             calibrate: bool = True) -> dict:
    """Every probe on one trained model (the calibration study only when `calibrate`)."""
    rng = random.Random(settings.seed + 7)
    kv: dict[str, Any] = {}
    calibration = None
    for shots in tasks.SHOTS:
        examples = [tasks.kv_example(rng, shots) for _ in range(settings.test_examples)]
        if shots == tasks.SHOTS[-1] and calibrate:
            calibration = summarise(ordering_study(model, tokenizer, examples, settings.orderings, settings.seed))
        prompts, answers = [e.prompt for e in examples], [e.answer for e in examples]
        completions = greedy_completions(model, tokenizer, prompts, max_new=len(answers[0]) + 1)
        exact = np.array([c.strip() == a for c, a in zip(completions, answers, strict=True)], dtype=float)
        choice = choice_accuracy(model, tokenizer, prompts, answers, tasks.VALUES)
        seen = np.array([e.seen for e in examples])
        kv[str(shots)] = {"exact": exact.mean(), "choice": choice.mean(),
                          "choice_seen": choice[seen].mean() if seen.any() else float("nan"),
                          **_mean_and_se(answer_logprobs(model, tokenizer, prompts, answers)),
                          "perfect_copier": tasks.perfect_copier(shots), "n": len(examples)}
    addition: dict[str, Any] = {}
    pairs = tasks.addition_test_pairs(settings.test_examples)
    for form in tasks.ADDITION_FORMATS:
        examples = [tasks.addition_example(a, b, form) for a, b in pairs]
        prompts, answers = [e.prompt for e in examples], [e.answer for e in examples]
        completions = greedy_completions(model, tokenizer, prompts, max_new=len(max(answers, key=len)) + 1)
        exact = [tasks.final_answer(c, form) == str(a + b) for c, (a, b) in zip(completions, pairs, strict=True)]
        addition[form] = {"exact": float(np.mean(exact)),
                          **_mean_and_se(answer_logprobs(model, tokenizer, prompts, answers)),
                          "n": len(examples), "sample": prompts[0] + completions[0]}
    letters = [tokenizer.stoi[ch] for ch in tasks.LETTERS]
    ids, targets = val.random_batch("val", 32, CONTEXT, torch.Generator().manual_seed(settings.seed))
    windows = torch.cat([ids, targets[:, -1:]], dim=1)
    return {"kv": kv, **({"calibration": calibration} if calibration else {}), "addition": addition, **induction_scores(model, letters, seed=settings.seed),
            "in_context_score": in_context_score(model, windows, early=(4, 16), late=(96, 127))}


def _score(outcome: RunOutcome, data: str, settings: EmergenceSettings) -> dict:
    """Every probe on one finished run (in the worker that trained it)."""
    from lm2llm.models import load_model

    model = load_model(outcome.run).float().eval()
    calibrate = settings.calibration_widths is None or outcome.width in settings.calibration_widths
    return evaluate(model, CharTokenizer.load(Path(data) / "tokenizer"), TokenShards(data), settings, calibrate)


def emergence(settings: EmergenceSettings, out: str | Path, *, parallel: int = 1,
              progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Build the corpus (once), train every width (or reuse it), score each; writes `<out>/emergence.json`."""
    out = Path(out)
    data = out / "data"
    corpus = TokenShards(data).meta.get("corpus") if (data / "meta.json").is_file() else None
    if corpus is not None and corpus["settings"] != [settings.docs, settings.task_docs, settings.seed]:
        raise UserError("this folder holds a corpus built with other settings", where=str(data),
                        hint="use another --out")
    if corpus is None:
        corpus = build_corpus(data, settings)
    tokenizer = CharTokenizer.load(data / "tokenizer")
    sweep_settings = SweepSettings(data=str(data), context=CONTEXT, batch_size=settings.batch_size, lr=settings.lr,
                                   seed=settings.seed)
    tokens_per_step = settings.batch_size * CONTEXT
    plans = []
    for width in settings.widths:
        shape = shape_for_width(width)
        params = param_counts(shape, tokenizer.vocab_size, CONTEXT)
        plans.append(RunPlan(6.0 * params["all"] * settings.steps * tokens_per_step, shape, params, settings.steps,
                             str(out / "runs" / shape.name), tokens_per_step))
    score = functools.partial(_score, data=str(data), settings=settings)
    outcomes = run_plans(plans, sweep_settings, parallel=parallel, progress=progress, after=score)
    models = [{**{k: v for k, v in asdict(o).items() if k != "extra"}, **o.extra} for o in outcomes]
    record = {"settings": asdict(settings), "corpus": corpus, "models": models}
    atomic_write_json(out / "emergence.json", record)
    return record
