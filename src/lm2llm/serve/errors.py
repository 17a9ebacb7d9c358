"""Errors in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, with the status a client
expects (the list is in `serve/app.py`'s docstring), and the handlers that give every error that shape."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from lm2llm.serve import protocol


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


def _first_validation_error(error: RequestValidationError) -> tuple[str, str | None]:
    detail = error.errors()[0] if error.errors() else {"msg": "invalid request", "loc": ()}
    loc = [str(p) for p in detail.get("loc", ()) if p != "body"]
    param = ".".join(loc) or None
    return (f"{param}: {detail['msg']}" if param else detail["msg"]), param


async def _api_error(_request: Request, error: APIError) -> JSONResponse:
    return error.response()


async def _invalid_request(_request: Request, error: RequestValidationError) -> JSONResponse:
    message, param = _first_validation_error(error)
    return error_response(400, message, "invalid_request_error", param)


async def _http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
    return error_response(error.status_code, str(error.detail), "invalid_request_error")


def add_error_handlers(app: FastAPI) -> None:
    """Our errors, FastAPI's validation errors and Starlette's HTTP errors (404, 405) all in OpenAI's shape."""
    app.add_exception_handler(APIError, _api_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(StarletteHTTPException, _http_error)
