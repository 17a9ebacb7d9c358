"""Streaming and collecting one request's sequences: `Generation` submits them to the scheduler, and its
chunks come back on the event loop as server-sent events (`events`) or, without streaming, whole (`collect`,
`answer`); a client that leaves has its sequences cancelled either way."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from lm2llm.errors import UserError
from lm2llm.inference.engine import QueueFull, SequenceRequest, TextChunk, Ticket
from lm2llm.inference.sampling import SamplingConfig
from lm2llm.serve.errors import APIError, error_response
from lm2llm.serve.served import ServedModel

CLIENT_GONE = 499  # nginx's "client closed request": nobody reads it, the log does
SHUTTING_DOWN = {"message": "the server is shutting down", "type": "server_error", "code": "shutting_down"}


class ClientGone(Exception):
    """The client of a non-streaming request disconnected before its answer was ready."""


class Generation:
    """The sequences of one request: submitted to the scheduler, their chunks collected on the event loop."""

    def __init__(self, served: ServedModel, prompts: list[list[int]], configs: list[SamplingConfig],
                 n: int, end_ids: tuple[int, ...] | list[int], stream: bool, hidden_ids: tuple[int, ...] = ()):
        """`hidden_ids`: tokens left out of the text (special tokens, unless the request keeps them)."""
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[TextChunk] = asyncio.Queue()
        self.stream = stream
        self.pending: dict[int, TextChunk] = {}  # without streaming: each sequence's text, handed over once
        self.prompt_tokens = sum(len(p) for p in prompts)
        self.prompts = prompts
        self.generated: dict[int, list[int]] = {}  # each sequence's tokens (for logprobs)
        self.completion_tokens = 0
        requests = [SequenceRequest(prompt, configs[i], self._emit, tuple(end_ids), index=p * n + i, hidden_ids=hidden_ids)
                    for p, prompt in enumerate(prompts) for i in range(n)]
        self.total = len(requests)
        try:
            self.ticket: Ticket = served.scheduler.submit(requests)
        except QueueFull as error:
            raise APIError(429, f"the server is busy: {error}", "rate_limit_error", code="queue_full") from error
        except UserError as error:
            code = "too_many_sequences" if error.where == "n" else "invalid_prompt"
            raise APIError(400, str(error), param="n" if error.where == "n" else "prompt", code=code) from error

    def _emit(self, chunk: TextChunk) -> None:  # runs on the scheduler thread
        if not self.stream and chunk.finish_reason != "error":  # gather here; wake the event loop once per sequence
            whole = self.pending.setdefault(chunk.index, TextChunk(chunk.index, ""))
            whole.text += chunk.text
            whole.token_ids += chunk.token_ids
            if chunk.finish_reason is None:
                return
            whole.finish_reason = chunk.finish_reason
            chunk = self.pending.pop(chunk.index)
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, chunk)
        except RuntimeError:  # the event loop has closed (server shutting down): nobody is listening
            pass

    async def chunks(self) -> AsyncIterator[TextChunk]:
        """Every chunk of every sequence until all have finished; cancels the rest if the consumer leaves."""
        finished = 0
        try:
            while finished < self.total:
                chunk = await self.queue.get()
                if chunk.finish_reason == "error":
                    raise APIError(500, f"generation failed: {chunk.text}", "server_error")
                self.completion_tokens += len(chunk.token_ids)
                self.generated.setdefault(chunk.index, []).extend(chunk.token_ids)
                finished += chunk.finish_reason is not None
                yield chunk
        finally:
            if finished < self.total:
                self.ticket.cancel()

    def usage(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens}

    async def events(self, head: dict, include_usage: bool, opening: list[dict],
                     choices_of: Callable[[TextChunk], list[dict]]) -> AsyncIterator[str]:
        """Server-sent events: the `opening` choices, the choices each chunk makes, the usage (when asked), then
        [DONE]. A failure mid-stream becomes an error event: the status line has long been sent."""
        extra = {"usage": None} if include_usage else {}
        for choice in opening:
            yield sse({**head, "choices": [choice], **extra})
        try:
            async for chunk in self.chunks():
                for choice in choices_of(chunk):
                    yield sse({**head, "choices": [choice], **extra})
        except APIError as error:
            yield sse({"error": {"message": error.message, "type": error.type, "code": error.code}})
        except asyncio.CancelledError:  # the drain deadline passed: say so instead of a traceback
            yield sse({"error": SHUTTING_DOWN})
            return
        if include_usage:
            yield sse({**head, "choices": [], "usage": self.usage()})
        yield sse("[DONE]")

    async def collect(self, prefixes: list[str], request: Request) -> list[tuple[str, str | None]]:
        """Without streaming: each sequence's text after its prefix (an echoed prompt, or ""), and why it ended.

        Raises ClientGone (and cancels the sequences) when the client disconnects first: nobody would read it.
        """
        texts = list(prefixes)
        reasons: list[str | None] = [None] * self.total

        async def gather() -> None:
            async for chunk in self.chunks():
                texts[chunk.index] += chunk.text
                reasons[chunk.index] = chunk.finish_reason or reasons[chunk.index]

        async def disconnected() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass

        work, watch = asyncio.ensure_future(gather()), asyncio.ensure_future(disconnected())
        try:
            await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:  # also when this handler is cancelled (the drain deadline passed)
            watch.cancel()
            if not work.done():
                work.cancel()
                self.ticket.cancel()
        if not work.done() or work.cancelled():
            raise ClientGone()
        work.result()  # an APIError of the generation
        return list(zip(texts, reasons, strict=True))


async def answer(generation: Generation, prefixes: list[str], request: Request) -> list[tuple[str, str | None]] | Any:
    """A non-streaming request's choices, or the response for a client that left (499) or a server whose drain
    deadline passed (503)."""
    try:
        return await generation.collect(prefixes, request)
    except ClientGone:
        return Response(status_code=CLIENT_GONE)
    except asyncio.CancelledError:
        return error_response(503, SHUTTING_DOWN["message"], SHUTTING_DOWN["type"], code=SHUTTING_DOWN["code"])


def sse(data: dict | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}\n\n"
