"""Request bodies checked before any endpoint sees them: their size and their JSON.

:class:`BodyLimit` answers 413 for a body over ``limits.max_body_bytes``.

:class:`GuardedRoute` is the API's route class: a body must be UTF-8, valid JSON without NaN or
infinities, nested at most ``max_json_depth`` deep, and hold no lone surrogate (``\\ud800``) in
any string or key. Otherwise the answer is 422 with ``loc`` naming the field (``["body"]`` for a
body that is not JSON at all), before anything is stored. Lone surrogates are refused rather than
stored escaped: no database stores them, and an escaped form would not round-trip.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

Loc = tuple[str | int, ...]


class BodyProblem(ValueError):
    """Why a JSON body is refused, and where."""

    def __init__(self, loc: Loc, msg: str, type_: str):
        super().__init__(msg)
        self.loc = loc
        self.type = type_

    def as_validation_error(self) -> RequestValidationError:
        return RequestValidationError([{"loc": self.loc, "msg": str(self), "type": self.type}])


def _constant(name: str) -> float:
    """NaN, Infinity, -Infinity: not JSON, but parsed so that the refusal can name their field."""
    return float(name)


def _has_surrogate(text: str) -> bool:
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _walk(value: Any, max_depth: int) -> None:
    """Raise BodyProblem at the first container nested deeper than ``max_depth`` or lone surrogate."""
    stack: list[tuple[Any, Loc, int]] = [(value, ("body",), 0)]
    while stack:
        item, loc, depth = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                raise BodyProblem(loc, "not a finite number (NaN, an infinity or out of range)", "finite_number")
        elif isinstance(item, str):
            if _has_surrogate(item):
                raise BodyProblem(loc, "contains a lone surrogate (not valid Unicode text)", "string_unicode")
        elif isinstance(item, (dict, list)):
            if depth >= max_depth:
                raise BodyProblem(loc, f"nested deeper than {max_depth} levels", "json_too_deep")
            if isinstance(item, dict):
                for key, inner in item.items():
                    if _has_surrogate(key):
                        raise BodyProblem(
                            (*loc, key.encode("utf-8", "backslashreplace").decode()),
                            "key contains a lone surrogate (not valid Unicode text)", "string_unicode",
                        )
                    stack.append((inner, (*loc, key), depth + 1))
            else:
                stack.extend((inner, (*loc, i), depth + 1) for i, inner in enumerate(item))


def parse_body(raw: bytes, max_depth: int) -> Any:
    """The JSON value of ``raw``, or BodyProblem.

    >>> parse_body(b'{"a": [1]}', 4)
    {'a': [1]}
    >>> parse_body(b'{"a": "\\\\ud800"}', 4)
    Traceback (most recent call last):
    ...
    flywheel.services.http.guard.BodyProblem: contains a lone surrogate (not valid Unicode text)
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BodyProblem(("body",), f"not UTF-8 (byte {e.start})", "json_invalid") from None
    try:
        value = json.loads(text, parse_constant=_constant)
    except RecursionError:
        raise BodyProblem(("body",), f"nested deeper than {max_depth} levels", "json_too_deep") from None
    except json.JSONDecodeError as e:
        raise BodyProblem(("body",), f"not valid JSON: {e.msg} at character {e.pos}", "json_invalid") from None
    except ValueError as e:  # e.g. an integer of too many digits
        if isinstance(e, BodyProblem):
            raise
        raise BodyProblem(("body",), "not valid JSON: a number out of range", "json_invalid") from None
    _walk(value, max_depth)
    return value


def _is_json(request: Request) -> bool:
    content_type = request.headers.get("content-type")
    if not content_type:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def guarded_route(max_depth: int) -> type[APIRoute]:
    """An APIRoute class whose JSON bodies are checked by :func:`parse_body` first."""

    class GuardedRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def checked(request: Request) -> Response:
                if request.method in ("POST", "PUT", "PATCH") and _is_json(request):
                    raw = await request.body()
                    if raw:
                        try:
                            request._json = parse_body(raw, max_depth)  # what request.json() returns
                        except BodyProblem as e:
                            raise e.as_validation_error() from None
                return await handler(request)

            return checked

    return GuardedRoute


class _TooLarge(Exception):
    """The request body passed the limit while being read."""


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` is 413 in the API's error format, by its
    Content-Length before anything is read, or as soon as the streamed bytes pass the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, sending)
        except _TooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            status_code=413,
            content={"detail": [{"loc": ["body"], "msg": f"larger than {self.max_bytes} bytes", "type": "too_large"}]},
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)
