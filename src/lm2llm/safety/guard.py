"""`--safety-filter`: a safety classifier around `generate`, `chat` and `serve`.

Input that the classifier flags is refused before anything is generated for it; output it flags is
withheld and replaced by a message that says so (OpenAI's `finish_reason: "content_filter"`). The output
is checked whole, so with a filter a streamed answer arrives at once, after its check.

`serve`: `SafetyMiddleware` wraps the app. A flagged request still goes through the app's own checks
(host, size, API key, validation), with `max_tokens` cut to 1 so that almost nothing is generated: a client
without the key gets 401 as before and learns nothing about the filter; a request that passes them gets
400 `content_filter`. Responses (streamed or not) are buffered, checked per choice and rewritten.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from typing import Any

from lm2llm.safety.classifier import SafetyClassifier, Verdict, load_classifier_spec

REFUSED = "[refused by the safety filter: the input was flagged ({reasons})]"
WITHHELD = "[withheld by the safety filter: the answer was flagged ({reasons})]"
FILTERED = "content_filter"
MAX_BODY = 1 << 20  # bytes read for the input check; larger bodies go to the app, which refuses them
BODY_TIMEOUT = 30.0
ROUTES = ("/v1/completions", "/v1/chat/completions")


def _reasons(verdict: Verdict) -> str:
    """The kinds of match (en/insult, ko/threat, the classifier's probability), never the matched words."""
    kinds = dict.fromkeys(reason.split(":")[0] for reason in verdict.reasons)
    return "; ".join(list(kinds)[:3]) or "flagged"


class Guard:
    """A classifier with the two messages; `check_input`/`check_output` give the replacement text or None."""

    def __init__(self, classifier: SafetyClassifier):
        self.classifier = classifier

    def _check(self, texts: Sequence[str], template: str) -> list[str | None]:
        return [template.format(reasons=_reasons(v)) if v.flagged else None for v in self.classifier.check(list(texts))]

    def refusals(self, texts: Sequence[str]) -> list[str | None]:
        return self._check(texts, REFUSED)

    def withheld(self, texts: Sequence[str]) -> list[str | None]:
        return self._check(texts, WITHHELD)


class GuardedGenerator:
    """A TextGenerator whose prompts and completions pass the guard (same `generate`/`stream` interface)."""

    def __init__(self, generator: Any, guard: Guard):
        self.generator, self.guard = generator, guard
        self.tokenizer = generator.tokenizer

    def generate(self, prompts: Sequence[str], config: Any) -> list[Any]:
        from lm2llm.inference.sampling import Completion

        refusals = self.guard.refusals([p if isinstance(p, str) else self.tokenizer.decode(p) for p in prompts])
        allowed = [i for i, r in enumerate(refusals) if r is None]
        answers = self.generator.generate([prompts[i] for i in allowed], config) if allowed else []
        done = dict(zip(allowed, answers, strict=True))
        completions = [done.get(i) or Completion([], refusal, FILTERED) for i, refusal in enumerate(refusals)]
        for completion, message in zip(completions, self.guard.withheld([c.text or "" for c in completions]),
                                       strict=True):
            if message is not None and completion.finish_reason != FILTERED:
                completion.text, completion.finish_reason = message, FILTERED
        return completions

    def stream(self, prompts: Sequence[str], config: Any) -> Iterator[Any]:
        from lm2llm.inference.engine import TextChunk

        for index, completion in enumerate(self.generate(prompts, config)):
            yield TextChunk(index, completion.text or "", list(completion.token_ids),
                            finish_reason=completion.finish_reason)


class GuardedChat:
    """A ChatSession whose user messages and answers pass the guard; a refused or withheld turn leaves the
    flagged text out of the history."""

    def __init__(self, session: Any, guard: Guard):
        self.session, self.guard = session, guard

    def __getattr__(self, name: str) -> Any:  # reset, set_system, system, history ...
        return getattr(self.session, name)

    def reply(self, text: str, config: Any) -> Iterator[str]:
        refusal = self.guard.refusals([text])[0]
        if refusal is not None:
            yield refusal
            return
        answer = "".join(self.session.reply(text, config))
        withheld = self.guard.withheld([answer])[0]
        if withheld is not None:
            self.session.history[-1]["content"] = withheld
        yield withheld or answer


def request_texts(path: str, body: dict) -> list[str]:
    """What a request asks the model about: the prompt(s), or every user message's text."""
    if path == ROUTES[0]:
        prompt = body.get("prompt", "")
        return [p for p in (prompt if isinstance(prompt, list) else [prompt]) if isinstance(p, str)]
    texts = []
    for message in body.get("messages") or []:
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            parts = content if isinstance(content, list) else [{"text": content}]
            texts += [p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)]
    return texts


def _choice_text(path: str, choice: dict, key: str) -> str:
    part = choice.get(key) or {}
    return (choice.get("text") or "") if path == ROUTES[0] else (part.get("content") or "")


def _set_choice_text(path: str, choice: dict, key: str, text: str) -> None:
    if path == ROUTES[0]:
        choice["text"] = text
    else:
        choice.setdefault(key, {})["content"] = text


def filter_answer(guard: Guard, path: str, body: bytes, streamed: bool) -> bytes:
    """The response with every flagged choice's text replaced by the withheld message."""
    if not streamed:
        data = json.loads(body)
        choices = data.get("choices") or []
        for choice, message in zip(choices, guard.withheld([_choice_text(path, c, "message") for c in choices]),
                                   strict=True):
            if message is not None:
                _set_choice_text(path, choice, "message", message)
                choice["finish_reason"] = FILTERED
        return json.dumps(data, ensure_ascii=False).encode()
    events = [e for e in body.decode().split("\n\n") if e.strip()]
    parsed = [json.loads(e[6:]) if e.startswith("data: {") else None for e in events]
    texts: dict[int, str] = {}
    for data in filter(None, parsed):
        for choice in data.get("choices") or []:
            texts[choice["index"]] = texts.get(choice["index"], "") + _choice_text(path, choice, "delta")
    indexes = sorted(texts)
    flagged = dict(zip(indexes, guard.withheld([texts[i] for i in indexes]), strict=True))
    told: set[int] = set()
    for data in filter(None, parsed):
        for choice in data.get("choices") or []:
            message = flagged.get(choice["index"])
            if message is None:
                continue
            _set_choice_text(path, choice, "delta", "" if choice["index"] in told else message)
            told.add(choice["index"])
            if choice.get("finish_reason"):
                choice["finish_reason"] = FILTERED
    out = [f"data: {json.dumps(d, ensure_ascii=False)}" if d is not None else e for e, d in zip(events, parsed, strict=True)]
    return ("\n\n".join(out) + "\n\n").encode()


class SafetyMiddleware:
    """ASGI middleware filtering the two generation routes of `lm2llm serve` (see the module docstring)."""

    def __init__(self, app: Any, guard: Guard):
        self.app, self.guard = app, guard

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in ROUTES:
            await self.app(scope, receive, send)
            return
        chunks, size, more = [], 0, True
        while more and size <= MAX_BODY:
            try:
                message = await asyncio.wait_for(receive(), BODY_TIMEOUT)
            except TimeoutError:
                await _send_json(send, 408, {"error": {"message": f"the request body did not arrive within "
                                                       f"{BODY_TIMEOUT:.0f} s", "type": "invalid_request_error",
                                                       "param": None, "code": "request_timeout"}})
                return
            if message["type"] != "http.request":
                await self.app(scope, _replay([message], receive), send)
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
        body = b"".join(chunks)
        try:
            request = json.loads(body) if not more else None
        except (ValueError, UnicodeDecodeError):
            request = None
        refusals = [r for r in self.guard.refusals(request_texts(scope["path"], request)) if r] \
            if isinstance(request, dict) else []
        if refusals:
            body = json.dumps({**request, "max_tokens": 1}).encode()
        head: dict = {}
        answer: list[bytes] = []

        async def capture(message: dict) -> None:
            if message["type"] == "http.response.start":
                head.update(message)
            elif message["type"] == "http.response.body":
                answer.append(message.get("body", b""))

        first = {"type": "http.request", "body": body, "more_body": more}
        await self.app(scope, _replay([first], receive), capture)
        status, content = head.get("status", 500), b"".join(answer)
        headers = [(k, v) for k, v in head.get("headers", []) if k.lower() != b"content-length"]
        if status == 200 and refusals:
            await _send_json(send, 400, {"error": {"message": refusals[0], "type": FILTERED, "param": None,
                                                   "code": FILTERED}})
            return
        if status == 200:
            streamed = any(k.lower() == b"content-type" and v.startswith(b"text/event-stream") for k, v in headers)
            content = filter_answer(self.guard, scope["path"], content, streamed)
        await _send(send, status, headers, content)


async def _send(send: Any, status: int, headers: list, content: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(content)).encode())]})
    await send({"type": "http.response.body", "body": content})


async def _send_json(send: Any, status: int, data: dict) -> None:
    await _send(send, status, [(b"content-type", b"application/json")], json.dumps(data, ensure_ascii=False).encode())


def _replay(messages: list[dict], receive: Any) -> Any:
    pending = list(messages)

    async def replayed() -> dict:
        return pending.pop(0) if pending else await receive()

    return replayed


def _guard(spec: str) -> Guard:
    return Guard(load_classifier_spec(spec))


def guard_generator(generator: Any, spec: str | None) -> Any:
    """`generator` itself without a filter, else the same interface with input and output checked."""
    return generator if spec is None else GuardedGenerator(generator, _guard(spec))


def guard_chat(session: Any, spec: str | None) -> Any:
    return session if spec is None else GuardedChat(session, _guard(spec))


def guard_app(app: Any, spec: str | None) -> Any:
    return app if spec is None else SafetyMiddleware(app, _guard(spec))
