"""What each route answers. The two generation routes normalise the request (`normalise.py`), submit its
sequences (`streaming.Generation`), then stream server-sent events or answer once with the whole choices;
`/v1/completions` adds OpenAI's legacy `logprobs`, chat answers carry retrieved passages and citations when
the server has `--rag`."""

from __future__ import annotations

import asyncio
import time
import uuid
from importlib import resources
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import HTMLResponse, StreamingResponse

from lm2llm.inference.engine import TextChunk
from lm2llm.serve import protocol
from lm2llm.serve.logprobs import completion_logprobs
from lm2llm.serve.normalise import chat_budget, chat_prompt, check_model, completion_prompts, sampling_configs
from lm2llm.serve.served import ServedModel
from lm2llm.serve.streaming import Generation, answer

if TYPE_CHECKING:
    from lm2llm.serve.retrieval import Retrieval


def health(served: ServedModel) -> dict:
    stats = served.scheduler.stats
    return {"status": "ok", "model": served.model_id, **served.scheduler.load, "steps": stats.steps,
            "mean_batch": stats.mean_batch}


def model_list(served: ServedModel) -> dict:
    return {"object": "list", "data": [{"id": served.model_id, "object": "model", "created": served.created,
                                        "owned_by": "lm2llm"}]}


async def chat_page() -> HTMLResponse:
    page = resources.files("lm2llm.serve").joinpath("static/index.html").read_text(encoding="utf-8")
    return HTMLResponse(page)


def _event_stream(events: Any) -> StreamingResponse:
    return StreamingResponse(events, media_type="text/event-stream")


def _include_usage(body: protocol.CompletionRequest | protocol.ChatRequest) -> bool:
    return bool(body.stream_options and body.stream_options.include_usage)


async def complete(served: ServedModel, body: protocol.CompletionRequest, request: Request) -> Any:
    """`POST /v1/completions`: text (or token ids) continued, `n` choices per prompt, optionally echoed."""
    check_model(served, body.model)
    texts, prompts = completion_prompts(served, body)
    generation = Generation(served, prompts, sampling_configs(body, min(body.max_tokens, served.max_tokens)),
                            body.n, served.end_ids, body.stream, served.hidden_ids(body))
    echoes = [texts[i // body.n] if body.echo else "" for i in range(generation.total)]
    head = {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
            "model": served.model_id}
    if body.stream:
        opening = [{"index": index, "text": text, "finish_reason": None, "logprobs": None}
                   for index, text in enumerate(echoes)] if body.echo else []

        def text_choices(chunk: TextChunk) -> list[dict]:
            return [{"index": chunk.index, "text": chunk.text, "logprobs": None, "finish_reason": chunk.finish_reason}]

        return _event_stream(generation.events(head, _include_usage(body), opening, text_choices))

    answered = await answer(generation, echoes, request)
    if not isinstance(answered, list):
        return answered
    choices = [{"index": i, "text": t, "finish_reason": r, "logprobs": None} for i, (t, r) in enumerate(answered)]
    if body.logprobs is not None:
        for choice in choices:
            choice["logprobs"] = await asyncio.to_thread(
                completion_logprobs, served.scheduler.engine.model, served.tokenizer,
                generation.prompts[choice["index"] // body.n], generation.generated.get(choice["index"], []),
                body.logprobs, body.echo)
    return {**head, "choices": choices, "usage": generation.usage(), "system_fingerprint": None}


def _delta_choice(index: int, delta: dict, reason: str | None = None) -> dict:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": reason}


def _delta_choices(chunk: TextChunk) -> list[dict]:
    choices = [_delta_choice(chunk.index, {"content": chunk.text})] if chunk.text else []
    if chunk.finish_reason:
        choices.append(_delta_choice(chunk.index, {}, chunk.finish_reason))
    return choices


async def chat(served: ServedModel, body: protocol.ChatRequest, request: Request,
               retrieval: Retrieval | None = None) -> Any:
    """`POST /v1/chat/completions`: the assistant's reply to the messages, `n` choices; with `retrieval`,
    answered from retrieved passages, which the response lists, with citations."""
    check_model(served, body.model)
    end_ids = served.chat_end_ids()
    ids, hits = chat_prompt(served, body, retrieval)
    generation = Generation(served, [ids], sampling_configs(body, chat_budget(served, body, len(ids))), body.n,
                            end_ids, body.stream, served.hidden_ids(body))
    head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": served.model_id, "system_fingerprint": None}
    if hits is not None:
        head["passages"] = retrieval.passages(hits)
    if body.stream:
        opening = [_delta_choice(index, {"role": "assistant", "content": ""}) for index in range(generation.total)]
        return _event_stream(generation.events(head, _include_usage(body), opening, _delta_choices))

    answered = await answer(generation, [""] * generation.total, request)
    if not isinstance(answered, list):
        return answered
    choices = [{"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": r, "logprobs": None}
               for i, (t, r) in enumerate(answered)]
    extra = retrieval.citations(choices[0]["message"]["content"], hits) if hits is not None else {}
    return {**head, "object": "chat.completion", "choices": choices, "usage": generation.usage(), **extra}
