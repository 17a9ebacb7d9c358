"""Few-shot answers depend on the prompt's form, and a content-free input can correct part of it (Zhao et al. 2021).

A model choosing among labels after a few demonstrations is biased by the prompt itself: towards labels
the demonstrations show often (majority-label bias), towards the last ones shown (recency bias), towards
labels that are common in its training text. Zhao et al.'s contextual calibration measures that bias by
asking the same prompt with the test input replaced by a content-free one ("N/A"): the label probabilities
p_cf it gives then are the prompt's bias alone. Each real answer's label probabilities p are rescaled by
W = diag(p_cf)⁻¹ (b = 0) and renormalised, so a label the prompt favours for no reason loses that edge.

Measured here on the key→value lines of `scale.tasks` (10 value labels; the shots are the demonstrations,
each line its own mapping), for every test line under several orderings of its own shots: accuracy with
and without calibration per ordering, so both the calibration gain and the spread over orderings (the
paper's "accuracy varies with the order of the same examples") come with bootstrap intervals over lines.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
from torch import nn

from lm2llm.scale import tasks
from lm2llm.scale.probes import label_logprobs
from lm2llm.tokenizer import Tokenizer

CONTENT_FREE = "N/A"


def label_probs(model: nn.Module, tokenizer: Tokenizer, prompts: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """(prompts, labels) probabilities of each label as the continuation, normalised over the labels."""
    logp = label_logprobs(model, tokenizer, prompts, labels)
    logp -= logp.max(axis=1, keepdims=True)
    p = np.exp(logp)
    return p / p.sum(axis=1, keepdims=True)


def calibrate(p: np.ndarray, p_cf: np.ndarray) -> np.ndarray:
    """Zhao et al.'s W·p with W = diag(p_cf)⁻¹, b = 0, renormalised (rows are examples)."""
    q = p / p_cf
    return q / q.sum(axis=1, keepdims=True)


def reordered(prompt: str, rng: random.Random, query: str | None = None) -> str:
    """The same key→value prompt with its shots in a random order (and optionally another query key)."""
    pairs, original = tasks.kv_pairs(prompt)
    pairs = rng.sample(pairs, len(pairs))
    return tasks.kv_prompt(pairs, original if query is None else query)


def ordering_study(model: nn.Module, tokenizer: Tokenizer, examples: Sequence[tasks.Example], orderings: int = 4,
                   seed: int = 0) -> dict[str, np.ndarray]:
    """Per ordering and example: correct without (`raw`) and with (`calibrated`) contextual calibration."""
    labels, answers = list(tasks.VALUES), [e.answer for e in examples]
    raw, calibrated = [], []
    for index in range(orderings):
        prompts, free = [], []
        for number, example in enumerate(examples):
            rng = random.Random(f"{seed}/{index}/{number}")
            prompts.append(reordered(example.prompt, rng) if index else example.prompt)
            free.append(tasks.kv_prompt(tasks.kv_pairs(prompts[-1])[0], CONTENT_FREE))
        p, p_cf = label_probs(model, tokenizer, prompts, labels), label_probs(model, tokenizer, free, labels)
        raw.append([labels[j] == a for j, a in zip(p.argmax(1), answers, strict=True)])
        calibrated.append([labels[j] == a for j, a in zip(calibrate(p, p_cf).argmax(1), answers, strict=True)])
    return {"raw": np.array(raw, dtype=float), "calibrated": np.array(calibrated, dtype=float)}


def summarise(study: dict[str, np.ndarray], samples: int = 2000, seed: int = 0) -> dict:
    """Mean accuracy and spread (max − min over orderings) of both, the calibration gain and the change in
    spread, each with a 95 % bootstrap interval over examples (orderings kept paired)."""
    raw, calibrated = study["raw"], study["calibrated"]
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, raw.shape[1], (samples, raw.shape[1]))
    boot_raw, boot_cal = raw[:, picks].mean(axis=2), calibrated[:, picks].mean(axis=2)  # (orderings, samples)

    def interval(values: np.ndarray) -> list[float]:
        return [float(np.quantile(values, 0.025)), float(np.quantile(values, 0.975))]

    def spread(accuracies: np.ndarray) -> np.ndarray:
        return accuracies.max(axis=0) - accuracies.min(axis=0)

    return {"orderings": raw.shape[0], "n": raw.shape[1],
            "raw_by_ordering": raw.mean(axis=1).tolist(), "calibrated_by_ordering": calibrated.mean(axis=1).tolist(),
            "raw": float(raw.mean()), "calibrated": float(calibrated.mean()),
            "gain": float(calibrated.mean() - raw.mean()),
            "gain_interval": interval(boot_cal.mean(axis=0) - boot_raw.mean(axis=0)),
            "raw_spread": float(np.ptp(raw.mean(axis=1))), "raw_spread_interval": interval(spread(boot_raw)),
            "calibrated_spread": float(np.ptp(calibrated.mean(axis=1))),
            "spread_change": float(np.ptp(calibrated.mean(axis=1)) - np.ptp(raw.mean(axis=1))),
            "spread_change_interval": interval(spread(boot_cal) - spread(boot_raw))}
