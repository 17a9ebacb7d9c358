"""Text cleaning: the same string for the same text, whatever the source's encoding habits.

Unicode NFC (so a Hangul syllable typed as jamo and as a precomposed character compare equal), control and
invisible format characters removed, line endings (and Unicode line/paragraph separators) unified, exotic spaces made ASCII, trailing spaces cut and
runs of blank lines collapsed. Indentation and spaces inside a line are kept: source code depends on them.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

KEPT_CONTROLS = {"\n", "\t"}
INVISIBLE = ["\u00ad", "\u200b", "\u2060", "\ufeff"]  # soft hyphen, zero-width space, word joiner, BOM
UNICODE_SPACES = ["\u00a0", "\u1680", *map(chr, range(0x2000, 0x200B)), "\u202f", "\u205f", "\u3000"]

# Every C0/C1 control character except newline and tab, plus invisible format characters: deleted.
_REMOVE = {
    cp: None
    for cp in range(0xA0)  # all Cc characters lie below U+00A0
    if unicodedata.category(chr(cp)) == "Cc" and chr(cp) not in KEPT_CONTROLS
} | {ord(ch): None for ch in INVISIBLE}
_REMOVE.pop(ord("\r"))  # carriage returns become newlines, not nothing
_SPACES = {ord(ch): " " for ch in UNICODE_SPACES}
_TRAILING_SPACE = re.compile(r"[ \t]+$", re.MULTILINE)
_BLANK_RUNS = re.compile(r"\n{3,}")


@dataclass
class Cleaned:
    text: str
    removed_chars: int  # control and invisible characters deleted


def clean_text(text: str) -> Cleaned:
    """NFC, controls removed, whitespace normalised (see the module docstring)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "\n").replace("\u2029", "\n\n")
    stripped = text.translate(_REMOVE)
    removed = len(text) - len(stripped)
    text = unicodedata.normalize("NFC", stripped.translate(_SPACES))
    text = _BLANK_RUNS.sub("\n\n", _TRAILING_SPACE.sub("", text))
    return Cleaned(text.strip("\n").rstrip(), removed)
