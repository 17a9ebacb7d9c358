"""Labelled safety data: our small bilingual set (shipped) and the Korean hate-speech comments (user's copy).

Korean hate speech (kocohub/korean-hate-speech, "BEEP!", CC BY-SA 4.0): news comments labelled
hate/offensive/none, plus a bias label (gender/others/none) saying whom a comment targets. Only the
labelled dev set (471 comments) is assumed: `split_hate_speech` cuts it into a training part and a
held-out part, stratified and seeded, so the classifier is always scored on comments it never saw.
Never downloaded here: read from `DIR/korean-hate-speech/dev.tsv` (`--data-dir`, or `LM2LLM_DATA_DIR`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from lm2llm.classify.data import LabelledSet, read_labelled
from lm2llm.errors import UserError

HATE_SPEECH = Path("korean-hate-speech") / "dev.tsv"
DATA_DIR_ENV = "LM2LLM_DATA_DIR"
UNSAFE, SAFE = "unsafe", "safe"
LABELS = [SAFE, UNSAFE]  # sorted, as `from_pairs` orders label names


@dataclass
class SafetySet:
    """Texts with a safe/unsafe label, and for each the group it targets ('none' when unknown)."""

    texts: list[str]
    unsafe: list[bool]
    groups: list[str]

    def __len__(self) -> int:
        return len(self.texts)

    def labelled(self) -> LabelledSet:
        return LabelledSet(list(self.texts), [int(u) for u in self.unsafe], list(LABELS))

    def subset(self, rows: list[int]) -> SafetySet:
        return SafetySet([self.texts[i] for i in rows], [self.unsafe[i] for i in rows], [self.groups[i] for i in rows])


@cache
def _shipped() -> dict:
    return json.loads(resources.files("lm2llm.safety").joinpath("safety_eval.json").read_text(encoding="utf-8"))


def shipped_set(lang: str | None = None) -> SafetySet:
    """Our bilingual evaluation lines (see the rules in `safety_eval.json`); `lang` keeps one language."""
    items = [i for i in _shipped()["items"] if lang is None or i["lang"] == lang]
    return SafetySet([i["text"] for i in items], [i["label"] == UNSAFE for i in items], [i["lang"] for i in items])


def shipped_rules() -> list[str]:
    return list(_shipped()["rules"])


def hate_speech_file(data_dir: str | Path | None = None) -> Path | None:
    """`dev.tsv` under `data_dir` (or `$LM2LLM_DATA_DIR`), or None when it is not there."""
    directory = data_dir or os.environ.get(DATA_DIR_ENV)
    if not directory:
        return None
    path = Path(directory) / HATE_SPEECH
    return path if path.is_file() else None


def tour_data_dir() -> Path | None:
    """Where the tour looks for the hate-speech comments: `$LM2LLM_DATA_DIR`, else `../shared/data` beside
    the working folder (a checkout's neighbour); None when neither holds them."""
    for directory in filter(None, [os.environ.get(DATA_DIR_ENV), Path("..") / "shared" / "data"]):
        if hate_speech_file(directory) is not None:
            return Path(directory)
    return None


def hate_speech(data_dir: str | Path | None = None) -> SafetySet:
    """All labelled comments: unsafe = hate or offensive; group = the bias label."""
    path = hate_speech_file(data_dir)
    if path is None:
        raise UserError("the Korean hate-speech dev set is not available", where=str(data_dir or DATA_DIR_ENV),
                        hint=f"pass --data-dir DIR with {HATE_SPEECH} (or set {DATA_DIR_ENV})")
    hate = read_labelled(path, "comments", "hate")
    bias = read_labelled(path, "comments", "bias")
    if hate.texts != bias.texts:
        raise UserError("the hate and bias columns do not line up", where=str(path))
    return SafetySet(hate.texts, [hate.names[y] != "none" for y in hate.labels], [bias.names[y] for y in bias.labels])


def split_hate_speech(data: SafetySet, held_out: float = 0.3, seed: int = 0) -> tuple[SafetySet, SafetySet]:
    """(train, held-out), stratified by label and target group."""
    strata = [f"{u}/{g}" for u, g in zip(data.unsafe, data.groups, strict=True)]
    names = sorted(set(strata))
    keyed = LabelledSet(list(range(len(data))), [names.index(s) for s in strata], names)  # texts = row numbers
    train, test = keyed.split(held_out, seed)
    return data.subset(train.texts), data.subset(test.texts)
