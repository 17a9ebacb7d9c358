"""The byte-level BPE tokenizer the pipeline uses: one vocabulary, two interchangeable engines.

`impl="fast"` (the default) encodes through Hugging Face `tokenizers`; `impl="scratch"` through
`bpe.ByteLevelBPE`. Both train to the identical merge list and give identical ids, so the choice only
changes speed. A saved tokenizer is a Hugging Face directory (`tokenizer.json` + `tokenizer_config.json`
with the chat template), loadable by `tokenizers.Tokenizer.from_file` and
`transformers.AutoTokenizer.from_pretrained`, plus our `tokenizer_kind.json` marker.

A tokenizer comes in one of two chat formats. lm2llm's own (`chat_template` None): our six special tokens
first, conversations rendered token by token (`chat.py`). A model's own (an imported LLM such as
SmolLM2, whose ChatML template uses `<|im_start|>`/`<|im_end|>`): its special tokens as the model has
them, conversations rendered through its Jinja template exactly as `transformers`' `apply_chat_template`
renders them, and the end of an assistant turn is the model's end-of-sequence token.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment
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

    def __init__(self, fast: Tokenizer, impl: str = "fast", scratch: ByteLevelBPE | None = None,
                 chat_template: str | None = None, eos_token: str | None = None, pad_token: str | None = None):
        """lm2llm's format when `chat_template` is None; else a model's own template, whose turns end at
        `eos_token` (and whose batches are padded with `pad_token`, the end token when it has none)."""
        _check_impl(impl)
        self.fast = fast
        self.impl = impl
        self.special_tokens = special_tokens_of(fast)
        self.chat_template = chat_template
        self._token_bytes: list[bytes] | None = None
        if chat_template is not None:
            self._init_model_format(chat_template, eos_token, pad_token)
            return
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

    def _init_model_format(self, chat_template: str, eos_token: str | None, pad_token: str | None) -> None:
        if self.impl != "fast":
            raise UserError("the from-scratch engine reads lm2llm's own tokenizers only", where="--impl",
                            hint="use --impl fast for an imported model's tokenizer")
        self.scratch = None
        ids = {token: self.fast.token_to_id(token) for token in (eos_token, pad_token or eos_token)}
        if eos_token is None or None in ids.values():
            raise UserError(f"the end-of-sequence token {eos_token!r} is not in the vocabulary",
                            where="tokenizer_config.json: eos_token")
        try:
            self._template = _jinja().from_string(chat_template)
        except TemplateError as exc:
            raise UserError(f"the chat template does not parse: {exc}", where="tokenizer_config.json: chat_template") from exc
        self.eos_token, self.pad_token = eos_token, pad_token or eos_token
        self.eos_id = self.end_of_turn_id = ids[eos_token]
        self.pad_id = ids[self.pad_token]
        self.role_ids = {}  # a model's template spells roles as text, not as tokens of their own

    @property
    def chat_token_ids(self) -> list[int]:
        """The tokens a chat template adds to the text (roles, turn ends): what chat fine-tuning introduces
        and what no answer may contain."""
        if self.chat_template is None:
            return [*self.role_ids.values(), self.end_of_turn_id]
        rendered = self.render_text([{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}])
        specials = {self.fast.token_to_id(t) for t in self.special_tokens}
        return sorted({i for i in self.fast.encode(rendered, add_special_tokens=False).ids if i in specials})

    @property
    def stop_ids(self) -> list[int]:
        """Where plain generation ends: end of text, end of turn, and the start of a new turn (a model that
        opens a turn, even a base model that saw chats in its data, has finished its text). A model's own
        format whose end of turn is its end-of-sequence token (SmolLM2: <|im_end|>) still ends text at its
        document separator <|endoftext|> when it has one."""
        separator = [self.fast.token_to_id(ENDOFTEXT)] if ENDOFTEXT in self.special_tokens else []
        return sorted({self.eos_id, *self.chat_token_ids, *separator})

    @property
    def special_ids(self) -> list[int]:
        """Every special token's id: what printed text leaves out unless asked (`generate --show-special`)."""
        return [self.fast.token_to_id(token) for token in self.special_tokens]

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

    def _check_messages(self, messages: Sequence[dict]) -> None:
        for index, message in enumerate(messages):
            role, content = message.get("role"), message.get("content")
            if role not in ROLE_TOKENS:
                raise UserError(f"unknown role {role!r}", where=f"messages[{index}].role", hint="system, user or assistant")
            if not isinstance(content, str):
                raise UserError("content must be a string", where=f"messages[{index}].content")
            if any(token in content for token in self.special_tokens):
                raise UserError("message text contains a special token", where=f"messages[{index}].content")

    def render_text(self, messages: Sequence[dict], add_generation_prompt: bool = False) -> str:
        """A conversation as the text its model reads (special tokens spelled out)."""
        self._check_messages(messages)
        if self.chat_template is None:
            return self.decode(self.render_chat(messages, add_generation_prompt)[0])
        try:
            return self._template.render(messages=list(messages), add_generation_prompt=add_generation_prompt,
                                         eos_token=self.eos_token, pad_token=self.pad_token)
        except TemplateError as exc:
            raise UserError(f"the chat template failed: {exc}", where="messages") from exc

    def render_chat(self, messages: Sequence[dict], add_generation_prompt: bool = False) -> tuple[list[int], list[int]]:
        """Ids of a conversation and a 0/1 mask marking the assistant's tokens (its text and its end of turn).

        In lm2llm's format special tokens are cut out before pre-tokenization, so encoding each message on
        its own gives the same ids as encoding the rendered string; that is what lets the mask be exact.
        """
        self._check_messages(messages)
        if self.chat_template is not None:
            return self._render_with_template(messages, add_generation_prompt)
        ids: list[int] = []
        mask: list[int] = []
        for message in messages:
            role = message["role"]
            body = [*self.encode(message["content"]), self.end_of_turn_id]
            ids += [self.role_ids[role], *body]
            mask += [0, *([1 if role == "assistant" else 0] * len(body))]
        if add_generation_prompt:
            ids.append(self.role_ids["assistant"])
            mask.append(0)
        return ids, mask

    def _render_with_template(self, messages: Sequence[dict], add_generation_prompt: bool) -> tuple[list[int], list[int]]:
        """The template's text encoded once; an assistant message's span is where its text starts (the render
        of the messages before it, ready for an answer) up to its end-of-turn token, found by offsets."""
        text = self.render_text(messages, add_generation_prompt)
        spans = []
        for index, message in enumerate(messages):
            if message["role"] == "assistant":
                start = len(self.render_text(messages[:index], add_generation_prompt=True))
                end = len(self.render_text(messages[: index + 1]))
                if not text.startswith(self.render_text(messages[: index + 1])):
                    raise UserError("the chat template renders earlier messages differently once later ones "
                                    "follow, so the assistant's tokens cannot be marked", where="chat_template")
                spans.append((start, end))
        encoding = self.fast.encode(text, add_special_tokens=False)
        mask = [0] * len(encoding.ids)
        for start, end in spans:
            for position, (token, (begin, _)) in enumerate(zip(encoding.ids, encoding.offsets, strict=True)):
                if start <= begin < end:
                    mask[position] = 1
                    if token == self.end_of_turn_id:
                        break
        return encoding.ids, mask

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        atomic_write_text(directory / "tokenizer.json", self.fast.to_str(pretty=True))
        if self.chat_template is not None:
            names = {"eos_token": self.eos_token, "pad_token": self.pad_token}
            template = self.chat_template
        else:
            # an encoder's tokens under transformers' names, so fill-mask and pooling find them
            names = {"eos_token": ENDOFTEXT, "pad_token": PAD,
                     **{name: token for name, token in (("mask_token", MASK_TOKEN), ("cls_token", CLS_TOKEN))
                        if token in self.special_tokens}}
            template = CHAT_TEMPLATE
        config = {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": None,
            "unk_token": None,
            **names,
            "additional_special_tokens": [t for t in self.special_tokens if t not in names.values()],
            "chat_template": template,
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
        config_path = Path(directory) / "tokenizer_config.json"
        config = read_json(config_path) if config_path.is_file() else {}
        template = config.get("chat_template")
        ours = special_tokens_of(fast)[: len(SPECIAL_TOKENS)] == SPECIAL_TOKENS
        if isinstance(template, str) and not ours:  # a model's own tokens and template (an imported LLM)
            return cls(fast, impl, chat_template=template, eos_token=config.get("eos_token"),
                       pad_token=config.get("pad_token"))
        return cls(fast, impl)


def _jinja() -> ImmutableSandboxedEnvironment:
    """The sandboxed Jinja environment transformers renders chat templates in (same whitespace rules)."""
    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    environment.globals["raise_exception"] = raise_exception
    return environment

