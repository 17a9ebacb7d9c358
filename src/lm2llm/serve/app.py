"""The OpenAI-compatible HTTP API over the batching scheduler, and the web chat page at `/`.

Routes: `GET /v1/models`, `POST /v1/completions`, `POST /v1/chat/completions` (JSON, or server-sent
events with `stream`), `GET /health`, `GET /` (the chat page). Errors have OpenAI's shape
`{"error": {"message", "type", "param", "code"}}` and the status a client expects: 400 for a request the
server cannot take (validation, a prompt longer than the context, more sequences than can ever wait, a
`Host` not on the allow-list), 401 for a wrong key, 404 for an unknown model, 408 for a body sent too
slowly, 413 for an oversized body, 429 when the queue is full (retry later), 503 while shutting down. 5xx
is kept for the server's own faults, because the official client retries those.

Limits, so that one client cannot take the server from the others: request sizes (`protocol`), a
server-wide cap on new tokens per sequence (`max_tokens`, the model's context by default; models without
a context limit must be given one), a deadline for the request head and for each piece of the body, and a
non-streaming request whose client went away is cancelled like a streaming one. With an API key,
`/openapi.json` needs the key too and `/docs` is off; the `Host` allow-list (loopback names by default)
stops DNS rebinding. On SIGTERM the server stops accepting connections and lets running requests finish
for `drain_seconds`; what is still running then is answered 503 and cancelled.
"""

from __future__ import annotations

import asyncio
import copy
import hmac
import json
import socket
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from lm2llm import env
from lm2llm.errors import UserError
from lm2llm.gguf.registry import resolve_run
from lm2llm.inference.chat import chat_end_ids
from lm2llm.inference.engine import QueueFull, SequenceRequest, TextChunk, Ticket
from lm2llm.inference.sampling import SamplingConfig
from lm2llm.inference.text import TextGenerator
from lm2llm.serve import protocol
from lm2llm.serve.logprobs import completion_logprobs
from lm2llm.serve.scheduler import BatchScheduler
from lm2llm.tokenizer import Tokenizer

if TYPE_CHECKING:
    from lm2llm.serve.retrieval import Retrieval

DEFAULT_MAX_BODY = 1 << 20  # bytes
HEADER_TIMEOUT = 10.0  # seconds for a request's head (line and headers) to arrive
BODY_TIMEOUT = 30.0  # seconds each piece of a request body may take
DRAIN_SECONDS = 30.0  # on SIGTERM: how long running requests may take to finish
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
CLIENT_GONE = 499  # nginx's "client closed request": nobody reads it, the log does
SWITCH_INTERVAL = 0.0005  # seconds between forced GIL hand-overs while serving (CPython's default: 0.005)


class APIError(Exception):
    """An error answered in OpenAI's shape with an HTTP status."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", *,
                 param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code

    def response(self) -> JSONResponse:
        return error_response(self.status, self.message, self.type, self.param, self.code)


def error_response(status: int, message: str, type_: str, param: str | None = None,
                   code: str | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return JSONResponse(body, status_code=status)


ERRORS = {status: {"model": protocol.ErrorResponse, "description": text} for status, text in (
    (400, "Invalid request, a prompt longer than the model's context, more sequences than can ever wait, "
          "or a Host not allowed"),
    (401, "Missing or wrong API key"),
    (404, "Unknown model"),
    (408, "Request body sent too slowly"),
    (413, "Request body too large"),
    (429, "Too many sequences are waiting; retry later"),
    (503, "The server is shutting down"),
)}


def documented(model: type, stream: bool = False) -> dict:
    """The `responses` of a route: its JSON body, SSE when it streams, and the errors above."""
    content: dict[str, Any] = {"application/json": {}}
    if stream:
        content["text/event-stream"] = {"schema": {"type": "string"}}
    return {200: {"model": model, "content": content}, **ERRORS}


@dataclass
class ServedModel:
    """What the server needs to know about the model it serves."""

    model_id: str
    scheduler: BatchScheduler
    tokenizer: Tokenizer
    end_ids: tuple[int, ...]  # where a plain completion ends (end of text)
    created: int
    max_tokens: int  # the server-wide cap on new tokens per sequence

    @classmethod
    def from_run(cls, run_dir: str | Path, *, max_batch: int = 16, max_waiting: int = 256,
                 device: str = "cpu", dtype: str = "float32", prefill_dtype: str | None = None,
                 max_tokens: int | None = None, quantize: str | None = None) -> ServedModel:
        """`prefill_dtype` (e.g. bfloat16): prompts run on a copy of the weights in that dtype, decoding in
        `dtype` (the scheduler's `_prefill` says why); the copy costs the weights' memory once more.
        `max_tokens`: the cap on new tokens per sequence (default: the model's context; required for a model
        without a context limit, an RNN, which would otherwise generate as long as asked).
        `quantize` (int8, int4): weight-only quantized linear layers, which already compute in bfloat16."""
        run_dir = resolve_run(run_dir)
        if quantize is not None and prefill_dtype is not None:
            raise UserError("--prefill-dtype copies float weights; quantized layers already compute in bfloat16",
                            where="--prefill-dtype", hint="drop one of --prefill-dtype and --quantize")
        generator = TextGenerator.from_run(run_dir, device=device, dtype=dtype, quantize=quantize)
        limit = getattr(generator.model.config, "context_length", None)
        if max_tokens is None and limit is None:
            raise UserError("this model has no context limit, so nothing would bound a request's length",
                            where="--max-tokens", hint="give --max-tokens N, the most new tokens per sequence")
        max_tokens = limit if max_tokens is None else max_tokens
        if max_tokens < 1:
            raise UserError(f"must be at least 1, got {max_tokens}", where="--max-tokens")
        prefill_model = None
        if prefill_dtype is not None and prefill_dtype != dtype:
            if prefill_dtype not in env.DTYPES:
                raise UserError(f"unknown dtype {prefill_dtype!r}", where="--prefill-dtype",
                                hint=", ".join(env.DTYPES))
            prefill_model = copy.deepcopy(generator.model).to(env.DTYPES[prefill_dtype])
        scheduler = BatchScheduler(generator.model, generator.tokenizer, max_batch=max_batch,
                                   max_waiting=max_waiting, prefill_model=prefill_model)
        created = int((run_dir / "model.safetensors").stat().st_mtime)
        return cls(run_dir.resolve().name, scheduler, generator.tokenizer, generator.end_ids, created, max_tokens)

    @property
    def context_length(self) -> int | None:
        return self.scheduler.limit

    def chat_end_ids(self) -> list[int]:
        try:
            return chat_end_ids(self.tokenizer)
        except UserError as error:
            raise APIError(400, f"this model cannot chat: {error}", param="model", code="model_not_chat") from error

    def encode_prompt(self, text: str) -> list[int]:
        """Token ids of a completion prompt; an empty prompt starts a document (end-of-text) when the
        tokenizer has that token."""
        ids = self.tokenizer.encode(text)
        if not ids and getattr(self.tokenizer, "eos_id", None) is not None:
            ids = [self.tokenizer.eos_id]
        return ids


class BodyLimit:
    """Refuse a request body over `limit` bytes with 413, or one whose pieces come slower than `timeout`
    seconds apart with 408, before any handler reads it (pure ASGI)."""

    def __init__(self, app: Any, limit: int, timeout: float = BODY_TIMEOUT):
        self.app, self.limit, self.timeout = app, limit, timeout

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        while more:
            try:
                message = await asyncio.wait_for(receive(), self.timeout)
            except TimeoutError:
                response = error_response(408, f"the request body did not arrive within {self.timeout:g} s",
                                          "invalid_request_error", code="request_timeout")
                await response(scope, receive, send)
                return
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                response = error_response(413, f"the request body is over {self.limit} bytes",
                                          "invalid_request_error", code="request_too_large")
                await response(scope, receive, send)
                return
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if replayed:
                return await receive()  # later calls wait for the disconnect, as streaming needs
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


class HostAllowList:
    """Answer only requests whose `Host` header names this server (pure ASGI): a web page on another site
    cannot then reach a server on 127.0.0.1 through a DNS name it controls (DNS rebinding). `*` allows any."""

    def __init__(self, app: Any, hosts: Sequence[str]):
        self.app = app
        self.hosts = {host.lower().strip("[]") for host in hosts}

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or "*" in self.hosts:
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1").lower()
        if header.startswith("["):  # [::1]:8000
            name = header[1:header.find("]")]
        else:  # name:port, name, or a bare IPv6 address
            name = header.split(":")[0] if header.count(":") == 1 else header
        if name in self.hosts:
            await self.app(scope, receive, send)
            return
        response = error_response(400, f"the Host {header!r} is not one this server answers to", "invalid_request_error",
                                  code="invalid_host")
        await response(scope, receive, send)


def default_allowed_hosts(host: str) -> list[str]:
    """Loopback names, and the listening address itself when it is one address (not 0.0.0.0 or ::)."""
    return [*LOOPBACK_HOSTS, *([host] if host not in ("0.0.0.0", "::", "") else [])]


def _first_validation_error(error: RequestValidationError) -> tuple[str, str | None]:
    detail = error.errors()[0] if error.errors() else {"msg": "invalid request", "loc": ()}
    loc = [str(p) for p in detail.get("loc", ()) if p != "body"]
    param = ".".join(loc) or None
    return (f"{param}: {detail['msg']}" if param else detail["msg"]), param


class Generation:
    """The sequences of one request: submitted to the scheduler, their chunks collected on the event loop."""

    def __init__(self, served: ServedModel, prompts: list[list[int]], configs: list[SamplingConfig],
                 n: int, end_ids: tuple[int, ...] | list[int], stream: bool):
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[TextChunk] = asyncio.Queue()
        self.stream = stream
        self.pending: dict[int, TextChunk] = {}  # without streaming: each sequence's text, handed over once
        self.prompt_tokens = sum(len(p) for p in prompts)
        self.prompts = prompts
        self.generated: dict[int, list[int]] = {}  # each sequence's tokens (for logprobs)
        self.completion_tokens = 0
        requests = [SequenceRequest(prompt, configs[i], self._emit, tuple(end_ids), index=p * n + i)
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


class ClientGone(Exception):
    """The client of a non-streaming request disconnected before its answer was ready."""


SHUTTING_DOWN = {"message": "the server is shutting down", "type": "server_error", "code": "shutting_down"}


async def answer(generation: Generation, prefixes: list[str], request: Request) -> list[tuple[str, str | None]] | Any:
    """A non-streaming request's choices, or the response for a client that left (499) or a server whose drain
    deadline passed (503)."""
    try:
        return await generation.collect(prefixes, request)
    except ClientGone:
        return Response(status_code=CLIENT_GONE)
    except asyncio.CancelledError:
        return error_response(503, SHUTTING_DOWN["message"], SHUTTING_DOWN["type"], code=SHUTTING_DOWN["code"])


def sampling_configs(body: protocol.SamplingFields, max_new_tokens: int) -> list[SamplingConfig]:
    """One config per choice: with a seed, choice i uses seed + i (choice 0 is what n=1 would give)."""
    return [SamplingConfig(
        max_new_tokens=max_new_tokens, temperature=body.temperature, top_p=body.top_p, top_k=body.top_k,
        presence_penalty=body.presence_penalty, frequency_penalty=body.frequency_penalty,
        stop=body.stop_strings(), seed=None if body.seed is None else body.seed + i,
    ) for i in range(body.n)]


def sse(data: dict | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}\n\n"


def create_app(served: ServedModel, *, api_key: str | None = None, max_body_bytes: int = DEFAULT_MAX_BODY,
               allowed_hosts: Sequence[str] = LOOPBACK_HOSTS, body_timeout: float = BODY_TIMEOUT,
               retrieval: Retrieval | None = None) -> FastAPI:
    """The FastAPI app; the scheduler thread runs while the app does (its lifespan). With `retrieval`, chat
    requests are answered from retrieved passages and responses carry citations (serve/retrieval.py)."""

    async def lifespan(_app: FastAPI):
        # Two threads share the GIL: the event loop and the scheduler, whose decode steps alternate Python
        # and torch calls. With CPython's default 5 ms switch interval each hand-over can stall a step by up
        # to that much (measured: ~1.5x slower generation behind HTTP); 0.5 ms removes the stall.
        interval = sys.getswitchinterval()
        sys.setswitchinterval(min(interval, SWITCH_INTERVAL))
        served.scheduler.start()
        try:
            yield
        finally:
            served.scheduler.stop()
            sys.setswitchinterval(interval)

    app = FastAPI(title="lm2llm", version="1", lifespan=lifespan,
                  description=f"OpenAI-compatible API serving `{served.model_id}` with continuous batching.",
                  **({"openapi_url": None, "docs_url": None, "redoc_url": None} if api_key else {}))
    bearer = HTTPBearer(auto_error=False)

    async def check_key(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        given = credentials.credentials if credentials is not None else ""
        if not hmac.compare_digest(given.encode(), api_key.encode()):
            raise APIError(401, "missing or incorrect API key (send 'Authorization: Bearer KEY')",
                           "authentication_error", code="invalid_api_key")

    guarded = [Depends(check_key)] if api_key else []
    if api_key:  # the schema stays available to clients that hold the key; /docs (a browser page) is off
        @app.get("/openapi.json", include_in_schema=False, dependencies=guarded)
        async def openapi_schema() -> dict:
            return app.openapi()

    @app.exception_handler(APIError)
    async def api_error(_request: Request, error: APIError) -> JSONResponse:
        return error.response()

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, error: RequestValidationError) -> JSONResponse:
        message, param = _first_validation_error(error)
        return error_response(400, message, "invalid_request_error", param)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        return error_response(error.status_code, str(error.detail), "invalid_request_error")

    def check_model(name: str) -> None:
        if name != served.model_id:
            raise APIError(404, f"the model '{name}' does not exist; this server serves '{served.model_id}'",
                           param="model", code="model_not_found")

    def check_length(prompts: list[list[int]], param: str) -> None:
        limit = served.context_length
        for ids in prompts:
            if limit is not None and len(ids) > limit:
                raise APIError(400, f"the prompt has {len(ids)} tokens; this model's context holds {limit}",
                               param=param, code="context_length_exceeded")

    @app.get("/health", response_model=protocol.Health)
    async def health() -> dict:
        stats = served.scheduler.stats
        return {"status": "ok", "model": served.model_id, **served.scheduler.load, "steps": stats.steps,
                "mean_batch": stats.mean_batch}

    @app.get("/", include_in_schema=False)
    async def chat_page() -> HTMLResponse:
        page = resources.files("lm2llm.serve").joinpath("static/index.html").read_text(encoding="utf-8")
        return HTMLResponse(page)

    @app.get("/v1/models", response_model=protocol.ModelList, responses=ERRORS, dependencies=guarded)
    async def list_models() -> dict:
        return {"object": "list", "data": [{"id": served.model_id, "object": "model", "created": served.created,
                                            "owned_by": "lm2llm"}]}

    @app.post("/v1/completions", responses=documented(protocol.CompletionResponse, stream=True), dependencies=guarded)
    async def completions(body: protocol.CompletionRequest, request: Request):
        check_model(body.model)
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
        check_length(prompts, "prompt")
        if body.logprobs is not None and body.stream:
            raise APIError(400, "logprobs are given without streaming only", param="logprobs")
        generation = Generation(served, prompts, sampling_configs(body, min(body.max_tokens, served.max_tokens)),
                                body.n, served.end_ids, body.stream)
        ident, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
        echoes = [texts[i // body.n] if body.echo else "" for i in range(generation.total)]
        head = {"id": ident, "object": "text_completion", "created": created, "model": served.model_id}
        include_usage = bool(body.stream_options and body.stream_options.include_usage)

        if body.stream:
            opening = [{"index": index, "text": text, "finish_reason": None, "logprobs": None}
                       for index, text in enumerate(echoes)] if body.echo else []

            def text_choices(chunk: TextChunk) -> list[dict]:
                return [{"index": chunk.index, "text": chunk.text, "logprobs": None, "finish_reason": chunk.finish_reason}]

            return StreamingResponse(generation.events(head, include_usage, opening, text_choices),
                                     media_type="text/event-stream")

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

    @app.post("/v1/chat/completions", responses=documented(protocol.ChatResponse, stream=True), dependencies=guarded)
    async def chat_completions(body: protocol.ChatRequest, request: Request):
        check_model(body.model)
        end_ids = served.chat_end_ids()
        messages = [{"role": m.role, "content": m.text()} for m in body.messages]
        try:
            hits = None
            if retrieval is not None:
                messages, hits = retrieval.augment(messages)
            ids, _ = served.tokenizer.render_chat(messages, add_generation_prompt=True)
        except UserError as error:
            raise APIError(400, str(error), param="messages", code="invalid_prompt") from error
        check_length([ids], "messages")
        limit = served.context_length
        budget = body.token_budget()
        if budget is None:
            budget = served.max_tokens if limit is None else limit - len(ids)
        budget = min(budget, served.max_tokens)
        generation = Generation(served, [ids], sampling_configs(body, budget), body.n, end_ids, body.stream)
        ident, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        head = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": served.model_id,
                "system_fingerprint": None}
        if hits is not None:
            head["passages"] = retrieval.passages(hits)
        include_usage = bool(body.stream_options and body.stream_options.include_usage)

        if body.stream:
            def delta_choice(index: int, delta: dict, reason: str | None = None) -> dict:
                return {"index": index, "delta": delta, "logprobs": None, "finish_reason": reason}

            def delta_choices(chunk: TextChunk) -> list[dict]:
                choices = [delta_choice(chunk.index, {"content": chunk.text})] if chunk.text else []
                if chunk.finish_reason:
                    choices.append(delta_choice(chunk.index, {}, chunk.finish_reason))
                return choices

            opening = [delta_choice(index, {"role": "assistant", "content": ""}) for index in range(generation.total)]
            return StreamingResponse(generation.events(head, include_usage, opening, delta_choices),
                                     media_type="text/event-stream")

        answered = await answer(generation, [""] * generation.total, request)
        if not isinstance(answered, list):
            return answered
        choices = [{"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": r, "logprobs": None}
                   for i, (t, r) in enumerate(answered)]
        extra = retrieval.citations(choices[0]["message"]["content"], hits) if hits is not None else {}
        return {**head, "object": "chat.completion", "choices": choices, "usage": generation.usage(), **extra}

    app.add_middleware(BodyLimit, limit=max_body_bytes, timeout=body_timeout)
    app.add_middleware(HostAllowList, hosts=allowed_hosts)
    return app


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening address bound now, so a taken port is a clear UserError (uvicorn would exit instead)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {error.strerror or error}", where="--host/--port") from error
    return sock


def uvicorn_server(app: Any, *, drain_seconds: float = DRAIN_SECONDS, header_timeout: float = HEADER_TIMEOUT):
    """uvicorn on h11 with a deadline for each request head (`GuardedH11`), draining for `drain_seconds` on
    SIGTERM (running requests finish; then the rest are answered 503)."""
    import uvicorn
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11(H11Protocol):
        """Close a connection whose request head has not fully arrived `header_timeout` seconds after it
        opened (or after its last response): a slow sender cannot hold connections open (slowloris)."""

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm_header_deadline()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm_header_deadline()

        def _arm_header_deadline(self) -> None:
            self.loop.call_later(header_timeout, self._header_deadline, self.cycle)

        def _header_deadline(self, cycle: Any) -> None:
            idle = cycle is None or cycle.response_complete  # not in the middle of answering
            if idle and self.cycle is cycle and not self.transport.is_closing():  # and no new request head since
                self.transport.close()

    return uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", http=GuardedH11,
                                         timeout_graceful_shutdown=drain_seconds))


class ServerThread:
    """A real uvicorn server on its own thread, bound before it starts (port 0: a free port): for tests,
    the tour and benchmarks, which need a live HTTP endpoint inside one process."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, **server_options: float):
        self.socket = bind_socket(host, port)
        self.host, self.port = self.socket.getsockname()[:2]
        self.server = uvicorn_server(app, **{"drain_seconds": 2.0, **server_options})
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.socket.close()
