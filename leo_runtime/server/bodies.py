"""Request bodies: a size limit enforced while the body streams in, and strict JSON.

Every route of the API uses `LeoRoute`. Its requests count body bytes as they arrive and stop
with a 413 the moment the limit is passed (a declared ``Content-Length`` past it is refused
before a byte is read), so a huge body never sits in memory. JSON bodies are parsed by
`leo_runtime.jsonio` (strict UTF-8, RFC 8259, bounded nesting) instead of the standard library;
a refusal is a 422 that says why.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute
from starlette.types import Message, Receive

from ..jsonio import JSONInputError, parse

DEFAULT_BODY_LIMIT = 1 << 20
"""Bodies of routes that take a small JSON document (partners, webhooks, streams): 1 MiB."""


class BodyTooLarge(HTTPException):
    """413: the body passed the route's limit (raised while it streams in)."""

    def __init__(self, limit: int, hint: str) -> None:
        super().__init__(413, f"the request body is larger than the limit of {limit:,} bytes{hint}")


class StrictJSONRequest(Request):
    """A request whose ``json()`` is `jsonio.parse`; a refusal is a 422 naming the problem."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            try:
                self._json = parse(await self.body())
            except JSONInputError as exc:
                raise HTTPException(422, f"body: {exc.reason}") from None
        return self._json


class LeoRoute(APIRoute):
    """The route class of every API router: body limit and strict JSON (see the module docstring).

    ``guard``, when set, runs first: authentication before a byte of the body is read or judged.
    """

    guard: Callable[[Request], Awaitable[Any]] | None = None

    def body_limit(self, request: Request) -> tuple[int, str]:
        """The limit for this request's body, and a hint the 413 adds after it."""
        return DEFAULT_BODY_LIMIT, ""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        takes_json = self.body_field is not None

        async def limited(request: Request) -> Response:
            if self.guard is not None:
                await self.guard(request)
            if takes_json and not is_json(request.headers.get("content-type")):
                raise HTTPException(415, "the body must be JSON: send it with 'Content-Type: application/json'")
            limit, hint = self.body_limit(request)
            receive = limited_receive(request.receive, limit, declared_length(request), hint)
            return await handler(StrictJSONRequest(request.scope, receive))

        return limited


def is_json(content_type: str | None) -> bool:
    """Whether a Content-Type names JSON (``application/json``, ``application/*+json``)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def declared_length(request: Request) -> int | None:
    """The body length the client announced (None when absent or not a number)."""
    text = request.headers.get("content-length")
    return int(text) if text is not None and text.isdigit() else None


def limited_receive(receive: Receive, limit: int, declared: int | None, hint: str = "") -> Receive:
    """`receive` that raises `BodyTooLarge` as soon as the body passes `limit` bytes."""
    received = 0

    async def receive_within_limit() -> Message:
        nonlocal received
        if declared is not None and declared > limit:
            raise BodyTooLarge(limit, hint)
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(limit, hint)
        return message

    return receive_within_limit
