"""One reading of a request's parameters: nothing a proxy and leo could read two ways.

A query parameter given twice (``limit=1&limit=2``, or ``limit=1&lim%69t=2``) is a 422 on every
route, the stream reads' fast lane included: frameworks and proxies disagree on which one wins.
So is a header that must be single (``Content-Type``, ``Content-Encoding``, ``Lease-Id``) given
twice: a 400 (two ``Authorization`` headers are the token check's 401, `auth.py`). The check
runs before routing, as pure ASGI (no per-request cost beyond reading the query string once).
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from ..safetext import shown
from .problems import problem

SINGLE_HEADERS = (b"content-type", b"content-encoding", b"lease-id")
"""Request headers that may appear once (RFC 9110 lists no way to combine two of them)."""


class OneReading:
    """ASGI middleware: refuse repeated query parameters (422) and repeated single headers (400)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = repeated(scope)
            if refusal is not None:
                status, detail = refusal
                await problem(status, detail)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def repeated(scope: Scope) -> tuple[int, str] | None:
    """``(status, detail)`` when the request repeats a query parameter or a single header."""
    query = scope.get("query_string", b"")
    if query:
        names: set[str] = set()
        for name, _ in parse_qsl(query.decode("latin-1"), keep_blank_values=True):  # as Starlette decodes it
            if name in names:
                return 422, f"query parameter {shown(name)} is given more than once: give it once"
            names.add(name)
    seen: set[bytes] = set()
    for name, _ in scope.get("headers", ()):
        if name in SINGLE_HEADERS:
            if name in seen:
                return 400, f"header {name.decode('latin-1').title()} is given more than once: send it once"
            seen.add(name)
    return None
