"""Request normalisation: what a completion or chat request asks for, turned into token ids, sampling configs
and a token budget, and checked against the served model (its name, context and cap) before anything is
generated. Every refusal is an `APIError` naming the request field."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lm2llm.errors import UserError
from lm2llm.inference.sampling import SamplingConfig
from lm2llm.serve import protocol
from lm2llm.serve.errors import APIError
from lm2llm.serve.served import ServedModel

if TYPE_CHECKING:
    from lm2llm.rag.index import Hit
    from lm2llm.serve.retrieval import Retrieval


def check_model(served: ServedModel, name: str) -> None:
    if name != served.model_id:
        raise APIError(404, f"the model '{name}' does not exist; this server serves '{served.model_id}'",
                       param="model", code="model_not_found")


def check_length(served: ServedModel, prompts: list[list[int]], param: str) -> None:
    limit = served.context_length
    for ids in prompts:
        if limit is not None and len(ids) > limit:
            raise APIError(400, f"the prompt has {len(ids)} tokens; this model's context holds {limit}",
                           param=param, code="context_length_exceeded")


def completion_prompts(served: ServedModel, body: protocol.CompletionRequest) -> tuple[list[str], list[list[int]]]:
    """The prompts of a completion request as texts (for `echo`) and token ids: a string, a list of strings,
    a list of token ids or a list of such lists (ids outside the vocabulary echo as "")."""
    raw = body.prompt
    if isinstance(raw, str):
        texts: list[str] | None = [raw]
    elif raw and isinstance(raw[0], str):
        texts = list(raw)
    else:
        texts = None
    try:
        if texts is not None:
            prompts = [served.encode_prompt(t) for t in texts]
        else:
            prompts = [list(raw)] if isinstance(raw[0], int) else [list(p) for p in raw]
            texts = [served.tokenizer.decode(p) if min(p) >= 0 and max(p) < served.scheduler.vocab_size else ""
                     for p in prompts]
    except UserError as error:
        raise APIError(400, str(error), param="prompt", code="invalid_prompt") from error
    check_length(served, prompts, "prompt")
    if body.logprobs is not None and body.stream:
        raise APIError(400, "logprobs are given without streaming only", param="logprobs")
    return texts, prompts


def chat_prompt(served: ServedModel, body: protocol.ChatRequest,
                retrieval: Retrieval | None) -> tuple[list[int], list[Hit] | None]:
    """The chat template's token ids for the request's messages (with `retrieval`, after the retrieved
    passages were numbered into them) and the passages retrieved, if any."""
    messages = [{"role": m.role, "content": m.text()} for m in body.messages]
    try:
        hits = None
        if retrieval is not None:
            messages, hits = retrieval.augment(messages)
        ids, _ = served.tokenizer.render_chat(messages, add_generation_prompt=True)
    except UserError as error:
        raise APIError(400, str(error), param="messages", code="invalid_prompt") from error
    check_length(served, [ids], "messages")
    return ids, hits


def chat_budget(served: ServedModel, body: protocol.ChatRequest, prompt_tokens: int) -> int:
    """New tokens a chat answer may take: what the request asks, else what the context leaves, within the
    server's cap."""
    budget = body.token_budget()
    if budget is None:
        limit = served.context_length
        budget = served.max_tokens if limit is None else limit - prompt_tokens
    return min(budget, served.max_tokens)


def sampling_configs(body: protocol.SamplingFields, max_new_tokens: int) -> list[SamplingConfig]:
    """One config per choice: with a seed, choice i uses seed + i (choice 0 is what n=1 would give)."""
    return [SamplingConfig(
        max_new_tokens=max_new_tokens, temperature=body.temperature, top_p=body.top_p, top_k=body.top_k,
        presence_penalty=body.presence_penalty, frequency_penalty=body.frequency_penalty,
        stop=body.stop_strings(), seed=None if body.seed is None else body.seed + i,
    ) for i in range(body.n)]
