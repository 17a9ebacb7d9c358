"""A conversation with a model: history, a system prompt, and streamed replies through the chat template.

The tokenizer renders the whole history with its chat template (`render_chat`, ending in the assistant
role token) and generation stops at its end-of-turn token. When the history outgrows the model's context,
the oldest exchanges are dropped (the system prompt stays), as chat front-ends do.
"""

from __future__ import annotations

from collections.abc import Iterator

from lm2llm.errors import UserError
from lm2llm.inference.engine import context_limit
from lm2llm.inference.sampling import SamplingConfig
from lm2llm.inference.text import TextGenerator
from lm2llm.tokenizer import Tokenizer


def chat_end_ids(tokenizer: Tokenizer) -> list[int]:
    """The tokens that end an assistant's answer, or a UserError when the tokenizer has no chat template.

    The answer ends at end-of-turn; any other special token would also end it (and could not be rendered
    back into the history), so it stops generation too.
    """
    if not hasattr(tokenizer, "render_chat") or getattr(tokenizer, "end_of_turn_id", None) is None:
        raise UserError(f"the {tokenizer.kind} tokenizer has no chat template", where="tokenizer",
                        hint="chat needs a run trained with a BPE tokenizer (its special tokens)")
    specials = [tokenizer.end_of_turn_id, getattr(tokenizer, "eos_id", None), getattr(tokenizer, "pad_id", None),
                *getattr(tokenizer, "chat_token_ids", ()), *getattr(tokenizer, "stop_ids", ())]
    return list(dict.fromkeys(i for i in specials if i is not None))


class ChatSession:
    """Messages so far plus a system prompt; `reply(text, config)` streams the assistant's answer."""

    def __init__(self, generator: TextGenerator, system: str | None = None):
        tokenizer = generator.tokenizer
        end_ids = chat_end_ids(tokenizer)
        self.tokenizer = tokenizer
        self.generator = TextGenerator(generator.model, tokenizer, end_ids=end_ids, hidden_ids=generator.hidden_ids)
        self.system = system
        self.history: list[dict[str, str]] = []

    def reset(self) -> None:
        """Forget the conversation (the system prompt stays)."""
        self.history = []

    def set_system(self, text: str | None) -> None:
        self.system = text or None

    def messages(self) -> list[dict[str, str]]:
        system = [{"role": "system", "content": self.system}] if self.system else []
        return system + self.history

    def _prompt_ids(self, room: int) -> list[int]:
        """The rendered conversation, dropping the oldest exchanges until `room` tokens of reply fit."""
        limit = context_limit(self.generator.model)
        while True:
            ids, _ = self.tokenizer.render_chat(self.messages(), add_generation_prompt=True)
            if limit is None or len(ids) + room <= limit:
                return ids
            if len(self.history) <= 1:
                raise UserError(f"the message needs {len(ids)} tokens; with room for the reply the model "
                                f"sees at most {limit}", where="message", hint="write a shorter message")
            self.history = self.history[2:]  # the oldest user message and the answer to it

    def reply(self, text: str, config: SamplingConfig) -> Iterator[str]:
        """Stream the assistant's answer to `text`; the answer joins the history when it is complete."""
        self.history.append({"role": "user", "content": text})
        limit = context_limit(self.generator.model)
        room = config.max_new_tokens if limit is None else min(config.max_new_tokens, max(1, limit // 4))
        try:
            ids = self._prompt_ids(room)
        except UserError:
            self.history.pop()
            raise
        answer = ""
        try:
            for chunk in self.generator.stream([ids], config):
                answer += chunk.text
                if chunk.text:
                    yield chunk.text
        finally:  # an interrupted answer stays as far as it got, so turns keep alternating
            self.history.append({"role": "assistant", "content": answer})
