"""Safety classifiers: is a text unsafe (an insult, a threat, hate against a group)?

Two kinds answer the same question (`check(texts) -> list[Verdict]`):
- `LexiconClassifier`: rules from a small documented lexicon (`lexicon.json`, English and Korean, with its
  construction rules and a list of known look-alikes). Always available; misses hate phrased without a
  listed word, and flags a listed word however it is meant.
- `ModelClassifier`: a classification run (`lm2llm safety train`, our BERT fine-tuned on the Korean
  hate-speech comments) whose labels include a safe one (`none`/`safe`); every other label is unsafe and
  a text is flagged when the unsafe labels together get at least `threshold` of the probability.

`load_classifier_spec("rules" | RUN_DIR)` picks one: what `--safety-filter` takes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Protocol

import torch

from lm2llm.errors import UserError

RULES = "rules"
SAFE_LABELS = ("none", "safe")


@dataclass
class Verdict:
    flagged: bool
    score: float  # lexicon: matches found; model: probability of the unsafe labels
    reasons: list[str] = field(default_factory=list)


class SafetyClassifier(Protocol):
    name: str

    def check(self, texts: list[str]) -> list[Verdict]: ...


@cache
def load_lexicon() -> dict:
    return json.loads(resources.files("lm2llm.safety").joinpath("lexicon.json").read_text(encoding="utf-8"))


def _english_pattern(term: str) -> str:
    stem = re.escape(term.rstrip("*")).replace(r"\ ", r"\s+")
    return rf"\b{stem}{'[a-z]*' if term.endswith('*') else ''}\b"


def _korean_pattern(term: str) -> str:
    if term == "충":  # the '-bug' suffix: after a syllable, at the end of a word
        return r"(?<=[가-힣])충(?![가-힣])"
    return re.escape(term)


class LexiconClassifier:
    """Flags a text that contains a listed term (after removing the listed look-alikes)."""

    name = RULES

    def __init__(self, lexicon: dict | None = None):
        lexicon = lexicon or load_lexicon()
        self.rules = list(lexicon.get("rules", []))
        self.allow = [a.lower() for a in lexicon["allow"]]
        self.patterns: list[tuple[str, re.Pattern]] = []
        for lang, categories in lexicon["terms"].items():
            build = _english_pattern if lang == "en" else _korean_pattern
            for category, terms in categories.items():
                for term in terms:
                    self.patterns.append((f"{lang}/{category}: {term}", re.compile(build(term), re.IGNORECASE)))

    def reasons(self, text: str) -> list[str]:
        text = text.lower()
        for look_alike in self.allow:
            text = text.replace(look_alike, " ")
        return [name for name, pattern in self.patterns if pattern.search(text)]

    def check(self, texts: list[str]) -> list[Verdict]:
        out = []
        for text in texts:
            found = self.reasons(text)
            out.append(Verdict(bool(found), float(len(found)), found))
        return out


class ModelClassifier:
    """A trained classification run; unsafe = every label but the safe one."""

    def __init__(self, run_dir: str | Path, threshold: float = 0.5):
        from lm2llm.classify.model import is_classifier_dir, load_classifier
        from lm2llm.tokenizer import load_tokenizer

        run_dir = Path(run_dir)
        if not is_classifier_dir(run_dir):
            raise UserError("not a classifier run (no classifier_config.json)", where=str(run_dir),
                            hint=f"pass '{RULES}' or a run from 'lm2llm safety train'")
        self.model, self.tokenizer = load_classifier(run_dir), load_tokenizer(run_dir)
        safe = [i for i, label in enumerate(self.model.labels) if label in SAFE_LABELS]
        if not safe:
            raise UserError(f"the classifier's labels {self.model.labels} have no safe label", where=str(run_dir),
                            hint=f"one label must be one of {SAFE_LABELS}")
        self.safe_index = safe[0]
        self.threshold = threshold
        self.block_size = getattr(self.model.config, "context_length", 64)
        self.name = f"model:{run_dir.name}"

    @torch.no_grad()
    def unsafe_probability(self, texts: list[str], batch_size: int = 64) -> list[float]:
        from lm2llm.classify.train import encode_for
        from lm2llm.models.padding import pad

        encoded = encode_for(self.model, self.tokenizer, texts, self.block_size)
        out: list[float] = []
        for i in range(0, len(encoded), batch_size):
            ids, mask = pad(encoded[i:i + batch_size], self.tokenizer.pad_id)
            out += (1 - self.model(ids, mask).softmax(-1)[:, self.safe_index]).tolist()
        return out

    def check(self, texts: list[str]) -> list[Verdict]:
        return [Verdict(p >= self.threshold, p, [f"classifier p(unsafe)={p:.2f}"] if p >= self.threshold else [])
                for p in self.unsafe_probability(texts)]


def load_classifier_spec(spec: str) -> SafetyClassifier:
    """`rules` → the lexicon; anything else is a classifier run directory."""
    return LexiconClassifier() if spec == RULES else ModelClassifier(spec)
