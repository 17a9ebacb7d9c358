"""Korean for the report's table headers and recurring row labels.

Chapters write a table's columns as short English labels (they double as JSON keys in `result.json`);
the `--lang ko` report shows them through this glossary, so no header stays English-only. Names that read
the same in both languages (model and corpus names, acronyms, units, estimator names) stay as written. The
glossary itself is data (`glossary_ko.json`, English label → Korean); a label missing from it is caught by
tests/test_tour_i18n.py, which names it.
"""

from __future__ import annotations

import json
import re
from importlib import resources

KO: dict[str, str] = json.loads(resources.files("lm2llm.tour").joinpath("glossary_ko.json").read_text(encoding="utf-8"))

# Headers built from a number at run time: (pattern, Korean with the pattern's groups).
PATTERNS = [
    (re.compile(r"tokens for ([\d,]+) chars"), r"글자 \1자의 토큰 수"),
    (re.compile(r"Korean chars in (\d+) tokens"), r"\1토큰에 담기는 한국어 글자"),
    (re.compile(r"USD/M tok at (.+) USD/h"), r"USD/백만 토큰 (\1 USD/시간 기준)"),
    (re.compile(r"kv (\d+)-shot"), r"kv \1-샷"),
    (re.compile(r"length (\d+)"), r"길이 \1"),
    (re.compile(r"d=(\d+)"), r"d=\1"),
    (re.compile(r"parameters: (\w+)"), r"파라미터: \1"),
    (re.compile(r"this chapter's BPE \(([\d,]+) tokens\)"), r"이 장의 BPE (토큰 \1개)"),
    (re.compile(r"D\*/N\* at (\S+) \(approach 2\)"), r"\1에서 D*/N* (방법 2)"),
    (re.compile(r"D/N at (\S+) \(approach 3\)"), r"\1에서 D/N (방법 3)"),
]

_HANGUL = re.compile(r"[\uac00-\ud7a3]")
# words that read the same in a Korean report: names, estimators, metric names as their tools spell them
NAMES = {"kneser", "ney", "smollm2", "python", "docs", "korean", "law", "pydocs", "renorm", "cached", "scale",
         "recall", "distinct", "pct_stereotype", "likelihood_diff", "nats", "chinchilla", "autotokenizer",
         "generate", "add", "one", "bf16", "fp32", "kib", "mib", "gib", "usd", "tok", "flops", "csr", "rss", "sft",
         "cos", "ids"}


def translate(label: str, lang: str) -> str:
    """A header or row label in the report's language (Korean from the glossary; unknown labels unchanged)."""
    if lang != "ko":
        return label
    if label in KO:
        return KO[label]
    for pattern, korean in PATTERNS:
        if pattern.fullmatch(label):
            return pattern.sub(korean, label)
    return label


def english_only(text: str) -> bool:
    """True when a label has no Hangul but an English word that is not a name read the same in Korean."""
    if _HANGUL.search(text):
        return False
    words = re.findall(r"[A-Za-z][A-Za-z0-9_]*", text)
    return any(sum(c.islower() for c in word) >= 3 and word.lower() not in NAMES for word in words)
