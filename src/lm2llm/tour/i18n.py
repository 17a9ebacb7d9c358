"""Korean for the report's table headers, row labels and figure text.

Chapters write a table's columns as short English labels (they double as JSON keys in `result.json`) and
label their figures in English; the `--lang ko` report shows both through this glossary (figures through
`lm2llm.tour.plots.localise_figure`, called when a chapter saves one), so no header or figure text stays
English-only. Names that read the same in both languages (model and corpus names, acronyms, units, estimator
names) stay as written. The glossary itself is data (`glossary_ko.json`, English label → Korean). A key with
`{}` is a template for labels built at run time ("perfect head ({})" → "완벽한 헤드 ({})"): each `{}` matches
any text, which is translated in turn, and `{0}`, `{1}` in the Korean reorder the parts. A label missing from
it is caught by tests/test_tour_i18n.py, which names it.
"""

from __future__ import annotations

import json
import re
from importlib import resources

_GLOSSARY: dict[str, str] = json.loads(resources.files("lm2llm.tour").joinpath("glossary_ko.json").read_text(encoding="utf-8"))

KO: dict[str, str] = {}
# templates, most specific (longest fixed text) first: (pattern, Korean with `{}` or `{0}`... for the parts)
TEMPLATES: list[tuple[re.Pattern, str]] = []
for _english, _korean in _GLOSSARY.items():
    if "{}" in _english:
        _pattern = re.compile("(.+?)".join(re.escape(part) for part in _english.split("{}")))
        TEMPLATES.append((_pattern, _korean))
    else:
        KO[_english] = _korean
TEMPLATES.sort(key=lambda template: -len(template[0].pattern))

_HANGUL = re.compile(r"[\uac00-\ud7a3]")
_IDENTIFIER = re.compile(r"\w+(_\w+)+|[\w.]*\d[\w.]*(-[\w.]+)+|[\w.]+(-[\w.]+)*-[\w.]*\d[\w.]*")
# words that read the same in a Korean report: names, estimators, metric names as their tools spell them
NAMES = {"kneser", "ney", "smollm2", "python", "docs", "korean", "law", "pydocs", "renorm", "cached", "scale",
         "recall", "distinct", "pct_stereotype", "likelihood_diff", "nats", "chinchilla", "autotokenizer",
         "generate", "add", "one", "bf16", "fp32", "kib", "mib", "gib", "usd", "tok", "flops", "csr", "rss", "sft",
         "cos", "ids", "transformer", "float32", "bfloat16", "top", "min", "wanda", "int8", "int4",
         "encyclopedia", "stdlib"}


def translate(label: str, lang: str) -> str:
    """A header, row label or figure text in the report's language (Korean from the glossary, line by line and
    item by item of a " · " list; unknown labels unchanged)."""
    if lang != "ko":
        return label
    for separator in ("\n", " · "):  # lines, and the items of a list in one cell
        if separator in label:
            return separator.join(translate(part, lang) for part in label.split(separator))
    if label in KO:
        return KO[label]
    for pattern, korean in TEMPLATES:
        match = pattern.fullmatch(label)
        if match:
            parts = [translate(part, lang) for part in match.groups()]
            return _fill(korean, parts)
    return label


def _fill(korean: str, parts: list[str]) -> str:
    """The Korean template with its `{}` (in order) or `{0}`, `{1}`... (any order) replaced by the parts."""
    numbered = iter(range(len(parts)))
    return re.sub(r"\{(\d*)\}", lambda m: parts[int(m.group(1)) if m.group(1) else next(numbered)], korean)


def english_only(text: str) -> bool:
    """True when a label has no Hangul but an English word that is not a name read the same in Korean.
    Identifiers as code spells them count as names: snake_case (`symbol_ratio`) and names with a digit and a
    hyphen (`gpt2-small`, `gpt3-175b`)."""
    if _HANGUL.search(text):
        return False
    words = [word for chunk in re.split(r"[\s()\[\],;:/]+", text) if not _IDENTIFIER.fullmatch(chunk)
             for word in re.findall(r"[A-Za-z][A-Za-z0-9_]*", chunk)]
    return any(sum(c.islower() for c in word) >= 3 and word.lower() not in NAMES for word in words)
