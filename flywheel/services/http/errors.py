"""The API's one error format, its exception handlers and the error statuses of the OpenAPI document.

Every 4xx and 5xx body is ``{"detail": [{"loc": [...], "msg": ..., "type": ...}]}``, FastAPI's
422 shape: ``loc`` names the request field (``["body", "events", 0, "event_id"]``,
``["path", "run_id"]``, ``["header", "authorization"]``), ``type`` a stable code. No error
echoes its input back, and strings are made encodable (a lone surrogate becomes ``\\ud800``).
An unexpected exception is a JSON 500 from a handler, so the connection is kept alive.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NoReturn

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

DEFAULT_TYPES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "invalid",
    429: "rate_limited",
    500: "internal",
    503: "unavailable",
}


class ErrorItem(BaseModel):
    """One problem of a request."""

    model_config = ConfigDict(extra="forbid")

    loc: list[str | int] = Field(description="Where: 'body', 'path', 'query' or 'header', then the field's path.")
    msg: str = Field(description="What is wrong, for people.")
    type: str = Field(description="A stable code of the problem (e.g. missing, not_found, rate_limited).")


class ErrorOut(BaseModel):
    """The body of every error response."""

    model_config = ConfigDict(extra="forbid")

    detail: list[ErrorItem] = Field(description="The problems found.")


def _text(value: Any) -> str:
    """``value`` as a str that encodes to UTF-8 (lone surrogates escaped)."""
    text = value if isinstance(value, str) else str(value)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _loc(loc: Iterable[Any]) -> list[str | int]:
    return [part if isinstance(part, int) and not isinstance(part, bool) else _text(part) for part in loc]


def error_body(status: int, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The error body of ``items`` (each with loc and msg, and maybe type), cleaned."""
    fallback = DEFAULT_TYPES.get(status, "error")
    return {
        "detail": [
            {"loc": _loc(i.get("loc", ())), "msg": _text(i.get("msg", "")), "type": _text(i.get("type") or fallback)}
            for i in items
        ]
    }


def error(
    status: int, loc: Sequence[str | int], msg: str, type_: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """A response of one error."""
    return JSONResponse(
        status_code=status, content=error_body(status, [{"loc": loc, "msg": msg, "type": type_}]),
        headers=dict(headers) if headers else None,
    )


def _http_items(status: int, detail: Any) -> list[Mapping[str, Any]]:
    if isinstance(detail, list) and all(isinstance(i, Mapping) for i in detail):
        return detail
    return [{"loc": ["request"], "msg": detail if isinstance(detail, str) else DEFAULT_TYPES.get(status, "error")}]


def install_error_handlers(app: FastAPI) -> None:
    """Make every error of ``app`` an :class:`ErrorOut` (500s included)."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=422, content=error_body(422, list(e.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            status_code=e.status_code,
            content=error_body(e.status_code, _http_items(e.status_code, e.detail)),
            headers=dict(e.headers) if e.headers else None,
        )

    app.add_middleware(InternalErrors)


class InternalErrors:
    """ASGI middleware: an unexpected exception becomes a JSON 500 and is logged, not re-raised,
    so the server keeps the connection alive (Starlette's own handler re-raises, and uvicorn
    then drops the connection)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            log.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            response = error(500, ["server"], "internal error; the request may not have been applied", "internal")
            await response(scope, receive, send)


def _described(status: int, what: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": what}


_WHAT = {
    401: "No token, or an unknown or revoked one (WWW-Authenticate: Bearer).",
    403: "The token's role may not call this.",
    404: "No such workflow, run or version.",
    409: "The state does not allow it (e.g. the run is not waiting, the name is taken).",
    413: "The request body is larger than limits.max_body_bytes.",
    422: "The request is malformed or out of bounds; loc names the field.",
    429: "Too many requests from this token, or failed authentications from this address (see Retry-After).",
    500: "Unexpected server error.",
    503: "A backing service (the registry) is unavailable; nothing was changed.",
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses (422 and 500 always)."""
    codes = sorted({422, 500, *statuses})
    return {code: _described(code, _WHAT[code]) for code in codes}


AUTHED = (401, 403, 429)
"""Statuses of every endpoint that needs a token."""


def refuse(loc: Sequence[str | int], msg: str, type_: str) -> NoReturn:
    """Raise the 422 of one field (for checks that depend on settings, not on the schema)."""
    raise RequestValidationError([{"loc": tuple(loc), "msg": msg, "type": type_}])
