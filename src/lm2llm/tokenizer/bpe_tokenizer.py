"""The byte-level BPE tokenizer the pipeline uses: one vocabulary, two interchangeable engines.

`impl="fast"` (the default) encodes through Hugging Face `tokenizers`; `impl="scratch"` through
`bpe.ByteLevelBPE`. Both train to the identical merge list and give identical ids, so the choice only
changes speed. A saved tokenizer is a Hugging Face directory (`tokenizer.json` + `tokenizer_config.json`
with the chat template), loadable by `tokenizers.Tokenizer.from_file` and
`transformers.AutoTokenizer.from_pretrained`, plus our `tokenizer_kind.json` marker.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from tokenizers import Tokenizer

from lm2llm.errors import UserError
from lm2llm.runs import atomic_write_json, atomic_write_text, read_json
from lm2llm.tokenizer.bpe import ByteLevelBPE
from lm2llm.tokenizer.chat import (
    CHAT_TEMPLATE,
    CLS_TOKEN,
    END_OF_TURN,
    ENDOFTEXT,
    MASK_TOKEN,
    PAD,
    ROLE_TOKENS,
    SPECIAL_TOKENS,
)
from lm2llm.tokenizer.fast import special_tokens_of, to_fast, to_scratch, token_bytes_table, train_fast

IMPLS = ("fast", "scratch")


def _check_impl(impl: str) -> None:
    if impl not in IMPLS:
        raise UserError(f"unknown tokenizer implementation {impl!r}", where="--impl", hint="use fast or scratch")


class BPETokenizer:
    kind = "bpe"

    def __init__(self, fast: Tokenizer, impl: str = "fast", scratch: ByteLevelBPE | None = None):
        _check_impl(impl)
        self.fast = fast
        self.impl = impl
        self.special_tokens = special_tokens_of(fast)
        missing = [t for t in SPECIAL_TOKENS if t not in self.special_tokens]
        if missing:
            raise UserError(f"tokenizer lacks the special tokens {missing}", hint="train it with lm2llm tokenizer train")
        if self.special_tokens[: len(SPECIAL_TOKENS)] != SPECIAL_TOKENS or any(
            fast.token_to_id(t) != i for i, t in enumerate(self.special_tokens)
        ):
            raise UserError("special tokens must come first, in lm2llm's order", hint=", ".join(SPECIAL_TOKENS))
        self.scratch = scratch if scratch is not None else (to_scratch(fast) if impl == "scratch" else None)
        self.eos_id = fast.token_to_id(ENDOFTEXT)
        self.pad_id = fast.token_to_id(PAD)
        self.end_of_turn_id = fast.token_to_id(END_OF_TURN)
        self.role_ids = {role: fast.token_to_id(token) for role, token in ROLE_TOKENS.items()}
        self._token_bytes: list[bytes] | None = None

    @classmethod
    def train(
        cls, texts: Sequence[str], vocab_size: int, impl: str = "fast", min_frequency: int = 0,
        extra_special_tokens: Sequence[str] = (),
    ) -> BPETokenizer:
        """Train on `texts`; the vocabulary counts the special tokens and the 256 byte tokens."""
        _check_impl(impl)
        special_tokens = [*SPECIAL_TOKENS, *extra_special_tokens]
        if len(set(special_tokens)) != len(special_tokens):
            raise UserError("special tokens must be distinct", where="extra_special_tokens")
        smallest = len(special_tokens) + 256
        if vocab_size < smallest:
            raise UserError(f"vocab_size must be at least {smallest} (special tokens + 256 bytes)", where="--vocab-size")
        if impl == "scratch":
            scratch = ByteLevelBPE.train(texts, vocab_size, special_tokens, min_frequency)
            return cls(to_fast(scratch), impl, scratch)
        return cls(train_fast(texts, vocab_size, special_tokens, min_frequency), impl)

    @property
    def vocab_size(self) -> int:
        return self.fast.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        if self.scratch is not None:
            return self.scratch.encode(text)
        return self.fast.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        if self.scratch is not None:
            return [self.scratch.encode(text) for text in texts]
        return [e.ids for e in self.fast.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Iterable[int]) -> str:
        """Text of `ids`, special tokens included; incomplete UTF-8 becomes U+FFFD."""
        ids = list(ids)
        if self.scratch is not None:
            return self.scratch.decode(ids)
        return self.fast.decode(ids, skip_special_tokens=False)

    def token_bytes(self, token_id: int) -> bytes:
        """The exact bytes a token stands for (for streaming decode)."""
        if self._token_bytes is None:
            self._token_bytes = token_bytes_table(self.fast)
        return self._token_bytes[token_id]

    def render_chat(self, messages: Sequence[dict], add_generation_prompt: bool = False) -> tuple[list[int], list[int]]:
        """Ids of a conversation and a 0/1 mask marking the assistant's tokens (its text and `<|end|>`).

        Special tokens are cut out before pre-tokenization, so encoding each message on its own gives
        the same ids as encoding the rendered string; that is what lets the mask be exact.
        """
        ids: list[int] = []
        mask: list[int] = []
        for index, message in enumerate(messages):
            role, content = message.get("role"), message.get("content")
            if role not in ROLE_TOKENS:
                raise UserError(f"unknown role {role!r}", where=f"messages[{index}].role", hint="system, user or assistant")
            if not isinstance(content, str):
                raise UserError("content must be a string", where=f"messages[{index}].content")
            if any(token in content for token in self.special_tokens):
                raise UserError("message text contains a special token", where=f"messages[{index}].content")
            body = [*self.encode(content), self.end_of_turn_id]
            ids += [self.role_ids[role], *body]
            mask += [0, *([1 if role == "assistant" else 0] * len(body))]
        if add_generation_prompt:
            ids.append(self.role_ids["assistant"])
            mask.append(0)
        return ids, mask

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        atomic_write_text(directory / "tokenizer.json", self.fast.to_str(pretty=True))
        config = {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": None,
            "eos_token": ENDOFTEXT,
            "pad_token": PAD,
            "unk_token": None,
            # an encoder's tokens under transformers' names, so fill-mask and pooling find them
            **{name: token for name, token in (("mask_token", MASK_TOKEN), ("cls_token", CLS_TOKEN))
               if token in self.special_tokens},
            "additional_special_tokens": [t for t in self.special_tokens if t not in (ENDOFTEXT, PAD)],
            "chat_template": CHAT_TEMPLATE,
            "clean_up_tokenization_spaces": False,
            "model_max_length": 1_000_000_000,
        }
        atomic_write_json(directory / "tokenizer_config.json", config)
        atomic_write_json(directory / "tokenizer_kind.json", {"kind": self.kind})  # last: marks completion
        return directory

    @classmethod
    def load(cls, directory: str | Path, impl: str = "fast") -> BPETokenizer:
        path = Path(directory) / "tokenizer.json"
        if not path.is_file():
            raise UserError("not a saved BPE tokenizer (no tokenizer.json)", where=str(directory))
        read_json(path)  # a clear error for malformed JSON
        try:
            fast = Tokenizer.from_file(str(path))
        except Exception as exc:  # the library reports schema problems as plain exceptions
            raise UserError(f"tokenizers cannot read it: {exc}", where=str(path)) from exc
        if json.loads(fast.to_str())["model"]["type"] != "BPE":
            raise UserError("tokenizer.json does not hold a BPE model", where=str(path))
        return cls(fast, impl)

