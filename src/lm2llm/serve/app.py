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

This module assembles the app and runs it (middleware, `create_app`, uvicorn, `ServerThread`); the parts
live beside it: `served.py` (the model, its scheduler and limits), `normalise.py` (requests into token ids,
sampling configs and budgets), `routes.py` (what each route answers), `streaming.py` (a request's sequences
as server-sent events or whole), `errors.py` (OpenAI-shaped errors).
"""

from __future__ import annotations

import asyncio
import hmac
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from lm2llm.errors import UserError
from lm2llm.serve import protocol, routes
from lm2llm.serve.errors import ERRORS, APIError, add_error_handlers, documented, error_response
from lm2llm.serve.served import ServedModel

if TYPE_CHECKING:
    from lm2llm.serve.retrieval import Retrieval

DEFAULT_MAX_BODY = 1 << 20  # bytes
HEADER_TIMEOUT = 10.0  # seconds for a request's head (line and headers) to arrive
BODY_TIMEOUT = 30.0  # seconds each piece of a request body may take
DRAIN_SECONDS = 30.0  # on SIGTERM: how long running requests may take to finish
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
SWITCH_INTERVAL = 0.0005  # seconds between forced GIL hand-overs while serving (CPython's default: 0.005)


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


def scheduler_running(served: ServedModel) -> Callable:
    """The app's lifespan: the scheduler thread runs while the app does."""

    @asynccontextmanager
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

    return lifespan


def key_check(api_key: str) -> Callable:
    """A dependency that refuses a request without `Authorization: Bearer <api_key>` (compared in constant time)."""
    bearer = HTTPBearer(auto_error=False)

    async def check_key(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        given = credentials.credentials if credentials is not None else ""
        if not hmac.compare_digest(given.encode(), api_key.encode()):
            raise APIError(401, "missing or incorrect API key (send 'Authorization: Bearer KEY')",
                           "authentication_error", code="invalid_api_key")

    return check_key


def create_app(served: ServedModel, *, api_key: str | None = None, max_body_bytes: int = DEFAULT_MAX_BODY,
               allowed_hosts: Sequence[str] = LOOPBACK_HOSTS, body_timeout: float = BODY_TIMEOUT,
               retrieval: Retrieval | None = None) -> FastAPI:
    """The FastAPI app; the scheduler thread runs while the app does (its lifespan). With `retrieval`, chat
    requests are answered from retrieved passages and responses carry citations (serve/retrieval.py)."""
    app = FastAPI(title="lm2llm", version="1", lifespan=scheduler_running(served),
                  description=f"OpenAI-compatible API serving `{served.model_id}` with continuous batching.",
                  **({"openapi_url": None, "docs_url": None, "redoc_url": None} if api_key else {}))
    guarded = [Depends(key_check(api_key))] if api_key else []
    if api_key:  # the schema stays available to clients that hold the key; /docs (a browser page) is off
        app.get("/openapi.json", include_in_schema=False, dependencies=guarded)(app.openapi)
    add_error_handlers(app)
    app.get("/", include_in_schema=False)(routes.chat_page)

    @app.get("/health", response_model=protocol.Health)
    async def health() -> dict:
        return routes.health(served)

    @app.get("/v1/models", response_model=protocol.ModelList, responses=ERRORS, dependencies=guarded)
    async def list_models() -> dict:
        return routes.model_list(served)

    @app.post("/v1/completions", responses=documented(protocol.CompletionResponse, stream=True), dependencies=guarded)
    async def completions(body: protocol.CompletionRequest, request: Request):
        return await routes.complete(served, body, request)

    @app.post("/v1/chat/completions", responses=documented(protocol.ChatResponse, stream=True), dependencies=guarded)
    async def chat_completions(body: protocol.ChatRequest, request: Request):
        return await routes.chat(served, body, request, retrieval)

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
