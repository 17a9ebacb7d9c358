"""PII scrubbing: e-mail addresses, phone numbers, Korean resident registration numbers, credit-card numbers
and IPv4 addresses become typed placeholders such as `<EMAIL>`.

Patterns alone over-match (dates, version numbers, ISBNs, order numbers), so numbers are also validated
where a rule exists: a resident registration number (주민등록번호) needs a real birth date and its check
digit, a card number the Luhn checksum, an IPv4 octet ≤ 255. Known limitation: resident numbers issued
since October 2020 no longer carry the check digit, so they are missed; `evaluate_detector` measures precision and
recall per type on a labelled set (`pii_eval.json`, English and Korean, look-alikes included).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

PII_TYPES = ("EMAIL", "RRN", "CARD", "PHONE", "IPV4")  # also the priority order when matches overlap

_SEP = r"(?P<sep>[-. ]?)"
# Boundaries use ASCII classes on purpose: Korean particles attach directly to numbers ("010-1234-5678입니다").
_START = r"(?<![0-9A-Za-z_+\-.])"  # not inside a longer number, identifier or dotted sequence
_END = r"(?![0-9A-Za-z_]|[-.]\d)"
_PATTERNS: dict[str, list[re.Pattern]] = {
    "EMAIL": [re.compile(r"(?<![0-9A-Za-z_.%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
                         r"(?![0-9A-Za-z_-])")],
    "RRN": [re.compile(r"(?<![\d.-])\d{6}[- ]?[1-8]\d{6}(?![\d-]|\.\d)")],
    # card numbers as printed: one run of 13-19 digits, groups of four (4-4-4-4[-3]) or Amex's 4-6-5
    "CARD": [re.compile(r"(?<![\d.-])(?:\d{13,19}|\d{4}(?P<sep>[ -])\d{4}(?P=sep)\d{4}(?P=sep)\d{1,7}"
                        r"|\d{4}(?P<amex>[ -])\d{6}(?P=amex)\d{5})(?![\d-]|\.\d)")],
    "PHONE": [
        # Korean mobile (010, 011, 016-019), Seoul (02), regional (031-064), internet (070), toll-free (080)
        re.compile(_START + r"(?:01[016789]|02|0[3-6][1-5]|070|080)" + _SEP + r"\d{3,4}(?P=sep)\d{4}" + _END),
        # the same numbers written internationally: +82 10-1234-5678, +82-2-123-4567, +82 (0)10 ...
        re.compile(r"(?<![0-9A-Za-z_+])\+82[- ]?(?:\(0\))?(?:1[016789]|2|[3-6][1-5]|70)" + _SEP + r"\d{3,4}(?P=sep)\d{4}" + _END),
        # other international forms: +1 415 555 0132, +44 20 7946 0958, +1 (415) 555-0132
        re.compile(r"(?<![0-9A-Za-z_+])\+(?!82)\d{1,3}[ -]?(?:\(\d{1,4}\)|\d{1,4})(?:[ -]\d{2,4}){1,3}" + _END),
        # North American local form: (415) 555-0132
        re.compile(r"(?<![0-9A-Za-z_)])\(\d{3}\) ?\d{3}-\d{4}" + _END),
    ],
    "IPV4": [re.compile(r"(?<![0-9A-Za-z_.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}"
                        r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![0-9A-Za-z_]|\.\d)")],
}


def rrn_is_valid(number: str) -> bool:
    """A real birth date (century from the 7th digit) and the mod-11 check digit of a 13-digit RRN."""
    digits = [int(c) for c in number if c.isdigit()]
    if len(digits) != 13:
        return False
    month, day = digits[2] * 10 + digits[3], digits[4] * 10 + digits[5]
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return False
    total = sum(d * w for d, w in zip(digits[:12], (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5), strict=True))
    return (11 - total % 11) % 10 == digits[12]


def luhn_is_valid(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for position, digit in enumerate(reversed(digits)):
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def _phone_digits_ok(value: str) -> bool:
    return 8 <= sum(c.isdigit() for c in value) <= 15


_VALIDATORS: dict[str, Callable[[str], bool]] = {"RRN": rrn_is_valid, "CARD": luhn_is_valid, "PHONE": _phone_digits_ok}


@dataclass(frozen=True)
class PiiMatch:
    type: str
    start: int
    end: int
    value: str


# Every numeric PII form (RRN, card, phone, IPv4) lies inside one run of digits and separators, and every
# e-mail address around an "@". Scanning a 12 MB corpus once per pattern costs seconds, so the patterns run
# only on these windows; `find_pii(text, scan_all=True)` runs them on the whole text, and tests pin both equal.
_NUMERIC_RUN = re.compile(r"[+(]?\d[\d ().+\-]{5,}\d\)?")
_LOOKAHEAD = 2  # characters after a window that the patterns' end conditions may inspect
_EMAIL_LOCAL, _EMAIL_DOMAIN = 64, 256  # RFC 5321 length limits of the parts around "@"


def _windows(text: str) -> dict[str, list[tuple[int, int]]]:
    numeric = [(m.start(), min(len(text), m.end() + _LOOKAHEAD)) for m in _NUMERIC_RUN.finditer(text)]
    at_signs, position = [], text.find("@")
    while position >= 0:
        at_signs.append((max(0, position - _EMAIL_LOCAL), min(len(text), position + _EMAIL_DOMAIN)))
        position = text.find("@", position + 1)
    return {kind: at_signs if kind == "EMAIL" else numeric for kind in PII_TYPES}


def find_pii(text: str, scan_all: bool = False) -> list[PiiMatch]:
    """Validated matches, earlier types in PII_TYPES winning overlaps, sorted by position."""
    windows = {kind: [(0, len(text))] for kind in PII_TYPES} if scan_all else _windows(text)
    taken: list[PiiMatch] = []
    for kind in PII_TYPES:
        validate = _VALIDATORS.get(kind, lambda value: True)
        for pattern in _PATTERNS[kind]:
            for start, end in windows[kind]:
                for m in pattern.finditer(text, start, end):
                    if not validate(m.group()):
                        continue
                    if any(m.start() < t.end and t.start < m.end() for t in taken):
                        continue
                    taken.append(PiiMatch(kind, m.start(), m.end(), m.group()))
    return sorted(taken, key=lambda t: t.start)


def scrub(text: str) -> tuple[str, Counter]:
    """The text with each PII match replaced by `<TYPE>`, and the count per type."""
    matches = find_pii(text)
    if not matches:
        return text, Counter()
    pieces, position = [], 0
    for m in matches:
        pieces += [text[position : m.start], f"<{m.type}>"]
        position = m.end
    pieces.append(text[position:])
    return "".join(pieces), Counter(m.type for m in matches)


def labelled_examples() -> list[dict]:
    """The labelled evaluation set: [{"lang", "text", "pii": [[type, value], ...]}]."""
    return json.loads(resources.files("lm2llm.data").joinpath("pii_eval.json").read_text(encoding="utf-8"))


@dataclass
class TypeScore:
    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        gold = self.true_positives + self.false_negatives
        return self.true_positives / gold if gold else 1.0


def evaluate_detector(examples: list[dict] | None = None) -> dict[str, TypeScore]:
    """Per-type precision and recall of `find_pii` against labelled (type, exact value) pairs."""
    scores = {kind: TypeScore() for kind in PII_TYPES}
    for example in examples if examples is not None else labelled_examples():
        gold = Counter((kind, value) for kind, value in example["pii"])
        found = Counter((m.type, m.value) for m in find_pii(example["text"]))
        for (kind, _), n in (gold & found).items():
            scores[kind].true_positives += n
        for (kind, _), n in (found - gold).items():
            scores[kind].false_positives += n
        for (kind, _), n in (gold - found).items():
            scores[kind].false_negatives += n
    return scores
