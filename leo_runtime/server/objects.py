"""Get Object: ``GET /v1/objects/{type}/{key}``, the current state of one object.

Rate limited per partner (a token bucket at ``server.get_object_rate``, burst = rate); every
answer, refusals and 404s included, carries ``RateLimit-Limit``, ``-Remaining`` and ``-Reset``.
An object outside the partner's scope answers exactly like an unknown key, so a partner cannot
tell which keys exist beyond what it may see. The ETag names the object's version, so a client
that sends ``If-None-Match`` gets a 304 until the object changes.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Hashable
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from ..partners import Partner
from ..store import ObjectRecord
from ..timeutil import format_time
from .auth import current_partner
from .bodies import LeoRoute
from .problems import problem_responses, shown
from .ratelimit import Decision, SharedTokenBuckets, TokenBuckets

router = APIRouter(prefix="/v1/objects", tags=["objects"], route_class=LeoRoute,
                   generate_unique_id_function=lambda route: route.name)

_RATE_HEADERS = {
    "RateLimit-Limit": {"description": "calls a full bucket allows at once (the burst)", "schema": {"type": "integer"}},
    "RateLimit-Remaining": {"description": "calls left right now", "schema": {"type": "integer"}},
    "RateLimit-Reset": {"description": "seconds until the bucket is full again", "schema": {"type": "integer"}},
}
CurrentPartner = Annotated[Partner, Depends(current_partner)]
_TAGS = re.compile(r'(?:W/)?("[^"]*")|(\*)')


class ObjectOut(BaseModel):
    """The current state of one object."""

    object_type: str = Field(examples=["inventory"])
    key: str = Field(examples=["SKU-1"])
    version: int = Field(ge=1, description="1 for the first state, +1 with each change")
    changed_at: str = Field(description="RFC 3339 UTC time of the latest change", examples=["2026-11-26T19:10:33.123Z"])
    data: dict[str, Any] = Field(examples=[{"sku": "SKU-1", "quantity": 4}])


def install(app: FastAPI) -> None:
    """Add the objects routes and the Get Object rate limiter (``app.state.get_object_limits``;
    tests swap in one with a hand-driven clock)."""
    app.state.get_object_limits = TokenBuckets(app.state.context.settings.server.get_object_rate)
    app.include_router(router)


def _limits(request: Request) -> TokenBuckets:
    """The limiter at the current ``server.get_object_rate`` (a reload that changes the rate
    starts new buckets, full, with the same clock). While more than one host serves the API
    (`ApiContext.shared_limits`), the buckets are the store's, shared by every host."""
    limits: TokenBuckets = request.app.state.get_object_limits
    context = request.app.state.context
    rate = context.settings.server.get_object_rate
    shared = context.shared_limits is not None and context.shared_limits()
    if limits.configured != rate or isinstance(limits, SharedTokenBuckets) != shared:
        if shared:
            limits = SharedTokenBuckets(request.app.state.store, rate, prefix="get_object:")
        else:
            limits = TokenBuckets(rate, clock=time.monotonic_ns if isinstance(limits, SharedTokenBuckets) else limits.clock)
        request.app.state.get_object_limits = limits
    return limits


async def _take(request: Request, partner_id: Hashable) -> Decision:
    """One token of the partner's Get Object bucket (a shared bucket's write runs off the loop)."""
    limits = _limits(request)
    if isinstance(limits, SharedTokenBuckets):
        return await run_in_threadpool(limits.take, partner_id)
    return limits.take(partner_id)


@router.get(
    "/{object_type}/{key:path}",
    summary="Get Object: the current state of one object",
    response_class=Response,
    responses={
        200: {"model": ObjectOut, "headers": {"ETag": {"description": "the object's version", "schema": {"type": "string"}},
                                              **_RATE_HEADERS}},
        304: {"description": "Not Modified: the If-None-Match tag is the current version", "headers": _RATE_HEADERS},
        **problem_responses(401, 403),
        **problem_responses(404, 429, headers=_RATE_HEADERS),
    },
)
async def get_object(object_type: str, key: str, request: Request, partner: CurrentPartner) -> Response:
    """The object's latest state. 404 for an unknown type or key, a deleted object, or one outside
    the partner's scope; 429 with ``Retry-After`` past ``server.get_object_rate`` calls per second.
    Keys may hold any character: percent-encode them (``/`` as ``%2F`` or as is)."""
    decision = await _take(request, partner.id)
    headers = decision.headers
    if not decision.allowed:
        rate = request.app.state.context.settings.server.get_object_rate
        raise HTTPException(429, f"more than {rate:g} Get Object calls per second; retry after "
                                 f"{headers['Retry-After']} s", headers=headers)
    if object_type not in request.app.state.context.settings.object_types:
        known = ", ".join(sorted(request.app.state.context.settings.object_types)) or "none"
        raise HTTPException(404, f"unknown object type '{shown(object_type)}' (known: {known})", headers=headers)
    record = request.app.state.store.get_object(object_type, key)
    if record is None or (partner.scope is not None and not partner.sees(orjson.loads(record.data_json))):
        raise HTTPException(404, f"no object '{shown(key)}' of type '{object_type}'", headers=headers)
    if record.deleted:
        raise HTTPException(404, f"object '{shown(key)}' of type '{object_type}' was deleted", headers=headers)
    headers["ETag"] = entity_tag(record)
    headers["Cache-Control"] = "private, no-cache"
    if matches(request.headers.get("if-none-match"), headers["ETag"]):
        return Response(status_code=304, headers=headers)
    body = orjson.dumps({
        "object_type": record.object_type,
        "key": record.key,
        "version": record.version,
        "changed_at": format_time(record.changed_at),
        "data": orjson.Fragment(record.data_json),  # stored text, not decoded and encoded again
    })
    return Response(body, media_type="application/json", headers=headers)


def entity_tag(record: ObjectRecord) -> str:
    """A strong ETag naming one version of one object (the same bytes for the same version)."""
    name = f"{record.object_type}\x00{record.key}\x00{record.version}".encode("utf-8", "surrogatepass")
    digest = hashlib.blake2b(name, digest_size=12).digest()
    return f'"{record.version}-{base64.urlsafe_b64encode(digest).decode()}"'


def matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header names `etag` (weak comparison, RFC 9110) or is ``*``."""
    if not if_none_match:
        return False
    return any(star or tag == etag for tag, star in _TAGS.findall(if_none_match))
