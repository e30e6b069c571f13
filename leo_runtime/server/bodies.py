"""Request bodies: a size limit enforced while the body streams in, its encoding, and strict JSON.

Every route of the API uses `LeoRoute`. Its requests count body bytes as they arrive and stop
with a 413 the moment the limit is passed (a declared ``Content-Length`` past it is refused
before a byte is read), so a huge body never sits in memory. A body sent with
``Content-Encoding: gzip`` is inflated as it arrives, and the same limit holds for what it
inflates to (a gzip bomb is a 413 after `limit` bytes, never a full inflate); ``identity`` is the
body as is; any other coding is a 415 (with ``Accept-Encoding: gzip``): an encoding is honoured
or refused, never ignored. JSON bodies are parsed by `leo_runtime.jsonio` (strict UTF-8, RFC
8259, bounded nesting, no key twice, integers within 64 bits) instead of the standard library; a
refusal is a 422 that says why and where (``body.query.lt``).
"""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute
from starlette.types import Message, Receive

from ..jsonio import JSONInputError, format_path, parse
from ..safetext import shown

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
            except JSONInputError as exc:  # a problem inside the document names its field: body.query.lt
                where = format_path(("body", *exc.path))
                raise HTTPException(422, f"{where}: {exc.problem if exc.path else exc.reason}") from None
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
        # A route whose body is optional (a replay, a rotation) is also called with none at all,
        # as `curl -X POST` does: no body needs no Content-Type.
        optional = takes_json and not self.body_field.field_info.is_required()  # type: ignore[union-attr]

        async def limited(request: Request) -> Response:
            if self.guard is not None:
                await self.guard(request)
            if takes_json and not is_json(request.headers.get("content-type")) and not (optional and _no_body(request)):
                raise HTTPException(415, "the body must be JSON: send it with 'Content-Type: application/json'")
            limit, hint = self.body_limit(request)
            receive = limited_receive(request.receive, limit, declared_length(request), hint)
            if content_coding(request.headers.get("content-encoding")) == "gzip":
                receive = inflating_receive(receive, limit, hint)
            return await handler(StrictJSONRequest(request.scope, receive))

        return limited


def is_json(content_type: str | None) -> bool:
    """Whether a Content-Type names JSON (``application/json``, ``application/*+json``)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def content_coding(header: str | None) -> str:
    """The body's content coding: ``identity`` (none said) or ``gzip``; anything else is a 415."""
    coding = (header or "").strip().lower()
    if coding in ("", "identity"):
        return "identity"
    if coding in ("gzip", "x-gzip"):
        return "gzip"
    raise HTTPException(415, f"Content-Encoding {shown(header)} is not supported: send the body as is, or gzip",
                        headers={"Accept-Encoding": "gzip"})


def inflating_receive(receive: Receive, limit: int, hint: str = "") -> Receive:
    """`receive` that inflates a gzip body as it arrives, raising `BodyTooLarge` as soon as the
    inflated body passes `limit` bytes and a 400 for data that is not (complete) gzip."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    produced = 0
    received = False

    async def receive_inflated() -> Message:
        nonlocal inflater, produced, received
        message = await receive()
        if message["type"] != "http.request":
            return message
        data, pieces = message.get("body", b""), []
        received = received or bool(data)
        try:
            while data:
                piece = inflater.decompress(data, limit - produced + 1)
                produced += len(piece)
                pieces.append(piece)
                if produced > limit:
                    raise BodyTooLarge(limit, f"{hint} once inflated from gzip")
                data = inflater.unconsumed_tail
                if not data and inflater.eof and inflater.unused_data:  # the next gzip member
                    data, inflater = inflater.unused_data, zlib.decompressobj(16 + zlib.MAX_WBITS)
        except zlib.error as exc:
            raise HTTPException(400, f"body: Content-Encoding is gzip but the body is not gzip data ({exc})") from None
        if not message.get("more_body", False) and received and not inflater.eof:
            raise HTTPException(400, "body: the gzip data ends before its end (cut off?)")
        return {**message, "body": b"".join(pieces)}

    return receive_inflated


def _no_body(request: Request) -> bool:
    """Whether the request announces no body: no ``Transfer-Encoding`` and no (or a zero) ``Content-Length``."""
    return "transfer-encoding" not in request.headers and declared_length(request) in (None, 0)


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
