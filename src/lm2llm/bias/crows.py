"""CrowS-Pairs-style stereotype preference, scored as lm-eval's `crows_pairs` task scores it.

For each pair (a stereotypical sentence, the same sentence about another group), both sentences are
scored whole; pct_stereotype = share of pairs with ll(more) > ll(less) (0.5: no preference), and
likelihood_diff = mean |ll(more) − ll(less)|. The pairs (`crows_pairs.json`) are ours, with their
construction rules and weak points written beside them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np

from lm2llm.bias.likelihood import bootstrap_interval, sentence_logliks


@cache
def load_pairs() -> dict:
    return json.loads(resources.files("lm2llm.bias").joinpath("crows_pairs.json").read_text(encoding="utf-8"))


@dataclass
class StereotypeScore:
    lang: str
    n: int
    pct_stereotype: float
    interval: tuple[float, float]  # bootstrap 95 % over pairs
    likelihood_diff: float
    likelihood_diff_interval: tuple[float, float]
    by_axis: dict[str, float]  # pct_stereotype per axis
    gaps: list[float]  # ll(more) − ll(less) per pair


def stereotype_score(model, tokenizer, lang: str) -> StereotypeScore:
    pairs = [p for p in load_pairs()["pairs"] if p["lang"] == lang]
    scores = sentence_logliks(model, tokenizer, [s for p in pairs for s in (p["more"], p["less"])])
    gaps = np.array(scores[0::2]) - np.array(scores[1::2])
    prefers = (gaps > 0).astype(float)
    axes = sorted({p["axis"] for p in pairs})
    by_axis = {axis: float(np.mean([w for w, p in zip(prefers, pairs, strict=True) if p["axis"] == axis]))
               for axis in axes}
    return StereotypeScore(lang, len(pairs), float(prefers.mean()), bootstrap_interval(prefers),
                           float(np.abs(gaps).mean()), bootstrap_interval(np.abs(gaps)), by_axis, gaps.tolist())
