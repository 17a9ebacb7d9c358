"""Quality filters: heuristics in the spirit of Gopher/C4 rules that drop documents unlikely to teach a
model language: too short or too long, mostly symbols, or mostly repeated lines (boilerplate, logs).

Every threshold lives in `QualityConfig`; `reject_reason` returns the first rule a document fails, so the
funnel can count drops by reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass
class QualityConfig:
    min_chars: int = 32
    max_chars: int = 1_000_000
    max_symbol_ratio: float = 0.35  # share of non-space characters that are neither letters nor digits
    max_repeated_line_ratio: float = 0.3  # share of non-blank lines that repeat an earlier line


_SPACE = re.compile(r"\s")
_SYMBOL = re.compile(r"[^\w\s]|_")  # neither letter, digit nor space (\w counts "_" as a letter)


def symbol_ratio(text: str) -> float:
    visible = len(text) - len(_SPACE.findall(text))
    return len(_SYMBOL.findall(text)) / visible if visible else 0.0


def repeated_line_ratio(text: str) -> float:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return 1.0 - len(set(lines)) / len(lines) if lines else 0.0


def reject_reason(text: str, config: QualityConfig) -> str | None:
    """The name of the first failed rule, or None when the document is kept."""
    if len(text) < config.min_chars:
        return "too_short"
    if len(text) > config.max_chars:
        return "too_long"
    if symbol_ratio(text) > config.max_symbol_ratio:
        return "symbol_ratio"
    if repeated_line_ratio(text) > config.max_repeated_line_ratio:
        return "repeated_lines"
    return None
