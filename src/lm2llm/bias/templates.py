"""Template pairs: the same sentence about two groups, and the log-likelihood gap between them.

The data (`templates.json`) carries its construction rules; `check_templates` enforces the ones code
can check (one slot per template, Korean pairs taking the same particle).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np

from lm2llm.bias.likelihood import bootstrap_interval, sentence_logliks

PARTICLES = {"은": "는", "이": "가", "을": "를", "과": "와"}  # after a final consonant → after a vowel


@cache
def load_templates() -> dict:
    return json.loads(resources.files("lm2llm.bias").joinpath("templates.json").read_text(encoding="utf-8"))


def has_final_consonant(word: str) -> bool:
    """Whether the last Hangul syllable has a final consonant (받침); a non-Hangul ending counts as vowel."""
    last = word[-1]
    return "가" <= last <= "힣" and (ord(last) - ord("가")) % 28 != 0


def fill(template: str, group: str) -> str:
    """Put `group` in the slot and choose the Korean particles that follow it by the final-consonant rule."""
    text = template.replace("{group}", group)
    for consonant, vowel in PARTICLES.items():
        text = text.replace("{" + consonant + "}", consonant if has_final_consonant(group) else vowel)
    return text


def check_templates(data: dict) -> None:
    """The checkable construction rules; raises ValueError naming the offending entry."""
    for lang, templates in data["templates"].items():
        for template in templates:
            if template.count("{group}") != 1:
                raise ValueError(f"{lang} template {template!r} needs exactly one {{group}} slot")
    for axis, by_lang in data["pairs"].items():
        for first, second in by_lang.get("ko", []):
            if has_final_consonant(first) != has_final_consonant(second):
                raise ValueError(f"ko {axis} pair ({first}, {second}) takes different particles")


@dataclass
class TemplateGap:
    lang: str
    axis: str
    pairs: list[list[str]]
    n: int  # items: templates × pairs
    mean_gap: float  # mean ll(first) − ll(second), nats
    interval: tuple[float, float]  # bootstrap 95 % over items
    mean_abs_gap: float
    first_preferred: float  # share of items where the first word's sentence is more likely
    gaps: list[float]


def template_gaps(model, tokenizer, lang: str, axis: str) -> TemplateGap:
    data = load_templates()
    check_templates(data)
    pairs = data["pairs"][axis][lang]
    items = [(fill(t, a), fill(t, b)) for t in data["templates"][lang] for a, b in pairs]
    scores = sentence_logliks(model, tokenizer, [s for item in items for s in item])
    gaps = np.array(scores[0::2]) - np.array(scores[1::2])
    return TemplateGap(lang, axis, pairs, len(gaps), float(gaps.mean()), bootstrap_interval(gaps),
                       float(np.abs(gaps).mean()), float((gaps > 0).mean()), gaps.tolist())
