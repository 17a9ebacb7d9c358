"""Conversations in, answers out, through the model's own chat template.

A prompt technique is a list of messages; what the model sees is the tokenizer's rendering of them
(`render_chat`, ending with the assistant's turn), so an instruction-tuned model gets the format it was
trained on, and the same technique costs a different number of tokens per model. Generation stops at the
template's end-of-turn token. A conversation too long for the model's context is refused, not truncated:
a cut prompt would score a different technique.
"""

from __future__ import annotations

from collections.abc import Sequence

from lm2llm.errors import UserError
from lm2llm.inference.chat import chat_end_ids
from lm2llm.inference.engine import context_limit
from lm2llm.inference.sampling import SamplingConfig
from lm2llm.inference.text import TextGenerator

Messages = list[dict[str, str]]


def prompt_ids(generator: TextGenerator, messages: Messages, room: int = 0) -> list[int]:
    """Token ids of `messages` rendered with the assistant's turn opened; room = tokens kept for the reply."""
    ids, _ = generator.tokenizer.render_chat(messages, add_generation_prompt=True)
    limit = context_limit(generator.model)
    if limit is not None and len(ids) + room > limit:
        raise UserError(f"the prompt needs {len(ids)} tokens and the reply {room}, the model's context is {limit}",
                        where="prompt", hint="ask a shorter question, retrieve fewer passages (--k) or fewer shots")
    return ids


def complete(generator: TextGenerator, conversations: Sequence[Messages], config: SamplingConfig,
             batch_size: int = 8) -> list[tuple[str, int, int]]:
    """(answer text, prompt tokens, generated tokens) for each conversation, generated in batches."""
    chat = TextGenerator(generator.model, generator.tokenizer, end_ids=chat_end_ids(generator.tokenizer))
    prompts = [prompt_ids(generator, messages, config.max_new_tokens) for messages in conversations]
    out: list[tuple[str, int, int]] = []
    for start in range(0, len(prompts), batch_size):
        batch = prompts[start:start + batch_size]
        out.extend((c.text.strip(), len(ids), len(c.token_ids))
                   for c, ids in zip(chat.generate(batch, config), batch, strict=True))
    return out


DEFAULT_MODEL = "smollm2-135m-instruct"


def load_generator(model: str = DEFAULT_MODEL, device: str = "cpu", dtype: str = "float32") -> TextGenerator:
    """A run directory (`lm2llm train`/`sft` output) or a registered model name as a text generator."""
    return TextGenerator.from_run(model, device, dtype)
