"""Paged lists: ``limit`` and an opaque ``cursor``, the next page named in a ``Link`` header.

A list route answers its JSON array as always (a client that reads one page sees what it saw
before), at most ``limit`` items (default `DEFAULT_LIMIT`, at most `MAX_LIMIT`), and when more
follow, ``Link: <URL of the next page>; rel="next"`` (RFC 8288, as GitHub's API does). The URL
is built on ``server.public_url`` (never on the request's Host) and keeps the route's other
parameters. A cursor is the sort key of the page's last item, base64url-encoded JSON: opaque to
clients, and one that does not decode to what the route sorts by is a 422 naming ``cursor``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

from fastapi import Query, Request, Response

from ..errors import InputError

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
T = TypeVar("T")

CAUSES = ["`cursor` is not a cursor of this list (take the one of the `Link` header's next page)",
          f"`limit` is not a whole number from 1 to {MAX_LIMIT}"]
"""What makes a list route answer 422 (the OpenAPI reference names each cause)."""

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"items per page (default {DEFAULT_LIMIT})")]
Cursor = Annotated[str | None, Query(max_length=400, description="where the page starts: the cursor of the "
                                     "`Link: <...>; rel=\"next\"` header of the previous page")]


def encode_cursor(key: Sequence[Any]) -> str:
    """The opaque cursor of a sort key (a few JSON scalars)."""
    return base64.urlsafe_b64encode(json.dumps(list(key), separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(text: str | None, kinds: Sequence[type]) -> tuple[Any, ...] | None:
    """The sort key a cursor holds, checked against `kinds` (one type per part); None for no
    cursor; `InputError` (422) naming ``cursor`` for anything else."""
    if text is None:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        key = None
    if not (isinstance(key, list) and len(key) == len(kinds)
            and all(type(part) is kind for part, kind in zip(key, kinds, strict=True))):
        raise InputError("cursor: not a cursor of this list (use the cursor of the Link header's next page, "
                         "or leave it out to start at the first page)")
    return tuple(key)


def page(request: Request, response: Response, items: Sequence[T], limit: int, key: Any) -> Sequence[T]:
    """The first `limit` of `items` (read with ``limit + 1``, so one more says a next page
    follows); sets the ``Link`` header to the next page, whose cursor is ``key(last item)``."""
    if len(items) <= limit:
        return items
    shown = items[:limit]
    params = [(name, value) for name, value in request.query_params.multi_items() if name not in ("cursor", "limit")]
    params += [("cursor", encode_cursor(key(shown[-1]))), ("limit", str(limit))]
    base = request.app.state.context.settings.server.base_url
    response.headers["Link"] = f'<{base}{request.url.path}?{urlencode(params)}>; rel="next"'
    return shown
