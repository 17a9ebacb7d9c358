"""Streaming decode: turn generated ids into text as they arrive, never printing half a character.

A byte-level token can end in the middle of a UTF-8 character: "한" is three bytes (ED 95 9C) and a BPE
may emit them as two tokens. Decoding each token on its own would print U+FFFD garbage, so the stream
keeps the bytes of an unfinished character until the token that completes it arrives. Bytes that can
never form a character (an invalid sequence) become one U+FFFD, exactly as a full decode would.
"""

from __future__ import annotations

import codecs
from collections.abc import Collection

from lm2llm.tokenizer.base import Tokenizer


class StreamDecoder:
    """`push(id)` returns the text completed by that token ('' while a character is unfinished); `hidden`
    tokens (special tokens a reader should not see) add no text."""

    def __init__(self, tokenizer: Tokenizer, hidden: Collection[int] = ()):
        self.tokenizer = tokenizer
        self.hidden = frozenset(hidden)
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def _bytes(self, token_id: int) -> bytes:
        if token_id in self.hidden:
            return b""
        token_bytes = getattr(self.tokenizer, "token_bytes", None)
        if token_bytes is not None:
            return token_bytes(token_id)
        return self.tokenizer.decode([token_id]).encode("utf-8")  # character-level: always whole

    def push(self, token_id: int) -> str:
        return self._utf8.decode(self._bytes(token_id))

    def flush(self) -> str:
        """End of stream: bytes of an unfinished character become U+FFFD."""
        return self._utf8.decode(b"", final=True)
