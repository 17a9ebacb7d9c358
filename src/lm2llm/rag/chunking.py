"""Sentence-aware chunking with overlap.

A retriever returns chunks, not documents: a chunk must be short enough to fit several in a prompt and
should not cut a sentence in half, or the passage a citation points to loses the words that made it
relevant. `split_sentences` ends a sentence at `.`, `!`, `?` (and their full-width forms) followed by
whitespace, at a blank line, and at a line break after a Korean sentence-final ending without punctuation
(`…한다` / `…습니다` / `…요` at the end of a line, common in Korean law and list items). `chunk_text` packs
whole sentences up to `max_chars` and starts each new chunk with the previous chunk's last sentences (up to
`overlap_chars`), so a fact that straddles a boundary is whole in at least one chunk. A single sentence
longer than `max_chars` (a code block, a table) is cut at whitespace.
"""

from __future__ import annotations

from dataclasses import dataclass

import regex

# After terminal punctuation (optionally closed by a quote or bracket) and whitespace; at a blank line; at a
# line break that follows a Korean sentence-final syllable (다/요/까/죠/오/음/함/됨/임).
_SENTENCE_END = regex.compile(
    r"(?<=[.!?…。！？][\"'”’)\]]?)\s+"
    r"|\n\s*\n\s*"
    r"|(?<=[다요까죠오음함됨임])[ \t]*\n\s*"
)
# Abbreviations that end with a period but rarely end a sentence.
_ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "vs.", "Mr.", "Mrs.", "Dr.", "cf.", "No.", "Fig.")


@dataclass(frozen=True)
class Span:
    """A piece of a document: its text and its character offsets [start, end) in the document."""

    text: str
    start: int
    end: int


def split_sentences(text: str) -> list[Span]:
    """The sentences of `text` with their offsets; whitespace between sentences belongs to none."""
    spans: list[Span] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        piece = text[start:match.start()]
        if piece.endswith(_ABBREVIATIONS):
            continue  # "e.g. foo" is one sentence; the next boundary closes it
        if piece.strip():
            spans.append(_stripped(text, start, match.start()))
        start = match.end()
    if text[start:].strip():
        spans.append(_stripped(text, start, len(text)))
    return spans


def _stripped(text: str, start: int, end: int) -> Span:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return Span(text[start:end], start, end)


def _cut_long(sentence: Span, max_chars: int) -> list[Span]:
    """A sentence longer than `max_chars` cut at the last whitespace before each limit (hard cut if none)."""
    pieces, text, offset = [], sentence.text, 0
    while len(text) - offset > max_chars:
        cut = text.rfind(" ", offset + 1, offset + max_chars + 1)
        cut = cut if cut > offset else offset + max_chars
        pieces.append(_stripped(text, offset, cut))
        offset = cut
    pieces.append(_stripped(text, offset, len(text)))
    return [Span(p.text, sentence.start + p.start, sentence.start + p.end) for p in pieces if p.text]


def chunk_text(text: str, max_chars: int = 800, overlap_chars: int = 200) -> list[Span]:
    """Whole sentences packed into chunks of at most `max_chars`; consecutive chunks share trailing sentences
    of at most `overlap_chars` in total. Offsets point into `text`, so `text[c.start:c.end] == c.text`."""
    if max_chars < 1 or not 0 <= overlap_chars < max_chars:
        raise ValueError("need max_chars >= 1 and 0 <= overlap_chars < max_chars")
    sentences = [piece for s in split_sentences(text) for piece in _cut_long(s, max_chars)]
    chunks: list[Span] = []
    i = 0
    while i < len(sentences):
        j = i + 1
        while j < len(sentences) and sentences[j].end - sentences[i].start <= max_chars:
            j += 1
        chunks.append(Span(text[sentences[i].start:sentences[j - 1].end], sentences[i].start, sentences[j - 1].end))
        if j == len(sentences):
            break
        # The next chunk starts at the earliest sentence whose tail to this chunk's end fits the overlap,
        # but always after this chunk's first sentence so the loop moves forward.
        next_start = j
        while next_start - 1 > i and sentences[j - 1].end - sentences[next_start - 1].start <= overlap_chars:
            next_start -= 1
        i = next_start
    return chunks
