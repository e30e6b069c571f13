"""Admin routes (``/v1/admin``, the operator's token): partner accounts and object ingest.

Ingest bodies (a JSON array or NDJSON) may be large: their limit is ``server.max_ingest_bytes``,
counted while the body streams in, and parsing and detection run in a worker thread, off the
event loop the bots share. A bad line or object rejects the whole body (422 naming its line or
item) and nothing is written.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool

from ..config import NAME_PATTERN, NAME_RULE
from ..errors import QueryError, UsageError
from ..fieldtypes import caster_for
from ..objects import delete, ingest, parse_objects
from ..partners import NAME_MAX, check_name, check_scope, create_partner, revoke_partner, scope_of
from ..store import PartnerRecord
from ..timeutil import format_time
from . import pages
from .auth import require_admin
from .bodies import LeoRoute
from .problems import problem_responses, shown

NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines")


class AdminRoute(LeoRoute):
    """Admin routes: the admin token is checked before anything else."""

    guard = staticmethod(require_admin)


class IngestRoute(AdminRoute):
    """Object ingest: the body limit is ``server.max_ingest_bytes``."""

    def body_limit(self, request: Request) -> tuple[int, str]:
        limit = request.app.state.context.settings.server.max_ingest_bytes
        return limit, " (server.max_ingest_bytes): send the objects in several requests"


router = APIRouter(prefix="/v1/admin", tags=["admin"], route_class=AdminRoute, responses=problem_responses(401, 403),
                   generate_unique_id_function=lambda route: route.name)
objects_router = APIRouter(prefix="/v1/admin/objects", tags=["admin"], route_class=IngestRoute,
                           responses=problem_responses(401, 403), generate_unique_id_function=lambda route: route.name)


class PartnerIn(BaseModel):
    """A new partner account."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(json_schema_extra={"pattern": NAME_PATTERN, "maxLength": NAME_MAX}, examples=["acme"],
                      description=NAME_RULE)
    scope: dict[str, Any] | None = Field(
        None, examples=[{"warehouse": "NYC", "quantity": {"lt": 5}}],
        description="a query: the partner sees only objects whose data it matches. Keys are field paths (a.b); "
        "a value is a literal or a mapping of operators: eq ne lt lte gt gte in nin exists prefix",
    )

    @field_validator("name")
    @classmethod
    def _valid_name(cls, name: str) -> str:
        try:
            return check_name(name)
        except UsageError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("scope")
    @classmethod
    def _valid_query(cls, scope: dict[str, Any] | None) -> dict[str, Any] | None:
        try:
            return check_scope(scope, "scope")
        except QueryError as exc:
            raise ValueError(str(exc).removeprefix("scope: ")) from None


class PartnerCreated(BaseModel):
    """The new partner and its token: the only time the token is shown."""

    name: str
    token: str = Field(description="send as 'Authorization: Bearer <token>'; shown only this once")
    scope: dict[str, Any] | None


class PartnerOut(BaseModel):
    """A partner account (never its token)."""

    name: str
    scope: dict[str, Any] | None
    created_at: str
    revoked_at: str | None


def install(app: FastAPI) -> None:
    """Add the admin routes (they answer 403 while ``LEO_ADMIN_TOKEN`` is unset)."""
    app.include_router(router)
    app.include_router(objects_router)


def partner_out(record: PartnerRecord) -> PartnerOut:
    return PartnerOut(name=record.name, scope=scope_of(record), created_at=format_time(record.created_at) or "",
                      revoked_at=format_time(record.revoked_at))


@router.post("/partners", status_code=201, summary="Create a partner account",
             responses=problem_responses(413, 415, causes={
                 409: "a partner of that name exists (revoked ones too): choose another name",
                 422: ["`name` breaks the naming rule", "`scope` has an unknown operator or a wrong operand"]}))
def create_partner_account(body: PartnerIn, request: Request) -> PartnerCreated:
    """A new partner with its token (shown only here) and optional scope; 409 if the name is taken."""
    record, token = create_partner(request.app.state.store, body.name, body.scope)
    return PartnerCreated(name=record.name, token=token, scope=scope_of(record))


@router.get("/partners", summary="List partner accounts", responses=problem_responses(causes={422: pages.CAUSES}))
def list_partners(request: Request, response: Response, limit: pages.Limit = pages.DEFAULT_LIMIT,
                  cursor: pages.Cursor = None) -> list[PartnerOut]:
    """Every partner, live and revoked, by name, a page at a time: when more follow, the ``Link``
    header (``rel="next"``) names the next page."""
    after = pages.decode_cursor(cursor, (str,))
    records = request.app.state.store.partners(after=after[0] if after else None, limit=limit + 1)
    return [partner_out(record) for record in pages.page(request, response, records, limit, lambda r: (r.name,))]


@router.delete("/partners/{name}", status_code=204, summary="Revoke a partner", responses=problem_responses(404))
def revoke_partner_account(name: str, request: Request) -> Response:
    """Revoke a partner: its token is refused from the next request on, in every process."""
    revoke_partner(request.app.state.store, name)
    return Response(status_code=204)


class IngestReport(BaseModel):
    """What an ingest did, object by object."""

    created: int = Field(ge=0)
    updated: int = Field(ge=0)
    unchanged: int = Field(ge=0, description="pushed again with identical content: no change record")


_INGEST_BODY = {
    "required": True,
    "description": "A JSON array of objects, or NDJSON (one object per line). Each holds the type's key field.",
    "content": {
        "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
        "application/x-ndjson": {"schema": {"type": "string"}},
    },
}


@objects_router.post("/{object_type}", summary="Ingest objects through change detection",
                     openapi_extra={"requestBody": _INGEST_BODY}, responses=problem_responses(413, 415, causes={
                         422: ["the object type is not one of this runtime's", "the body is empty",
                               "a line or item is not a JSON object, or lacks the type's key field (the detail names "
                               "`body:LINE` or `body: item N`); nothing is written"]}))
async def ingest_objects(object_type: str, request: Request) -> IngestReport:
    """Objects new or changed since their last push get a change record in ``{type}.changes``;
    identical ones are unchanged. All or nothing: a bad line or object (its line or item named in
    the 422), an unknown type or a missing key field writes nothing."""
    key_field = _key_field(request, object_type, 422)
    _check_ingest_headers(request)
    # The route's receive stops the stream past the limit; the body is parsed lazily, in the worker thread.
    body = b"".join([chunk async for chunk in request.stream()])
    if not body or body.isspace():
        raise HTTPException(422, "the body is empty: send a JSON array of objects or NDJSON, one object per line")
    cast = caster_for(request.app.state.context.settings, object_type)
    result = await run_in_threadpool(
        ingest, request.app.state.store, object_type, key_field, parse_objects(body, "body"), source="body", cast=cast
    )
    return IngestReport(created=result.created, updated=result.updated, unchanged=result.unchanged)


@objects_router.delete("/{object_type}/{key:path}", status_code=204, summary="Delete one object",
                       responses=problem_responses(404))
def delete_object(object_type: str, key: str, request: Request) -> Response:
    """Append a delete record (holding the last state) to ``{type}.changes``; 404 for an unknown
    type or key, or an object already deleted."""
    _key_field(request, object_type, 404)
    if not delete(request.app.state.store, object_type, key):
        raise HTTPException(404, f"no object '{shown(key)}' of type '{object_type}' to delete (unknown or already deleted)")
    return Response(status_code=204)


def _key_field(request: Request, object_type: str, status: int) -> str:
    types = request.app.state.context.settings.object_types
    if object_type not in types:
        known = ", ".join(sorted(types)) or "none: add object_types to pipelines.yaml"
        raise HTTPException(status, f"unknown object type '{shown(object_type)}' (known: {known})")
    return types[object_type].key


def _check_ingest_headers(request: Request) -> None:
    # Content-Encoding is the route's (gzip inflated within the same limit, others a 415: bodies.py).
    content_type = request.headers.get("content-type")
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if content_type is not None and media not in ("application/json", *NDJSON_TYPES):
        raise HTTPException(415, f"Content-Type '{media}' is not accepted: send application/json (an array) or "
                                 "application/x-ndjson (one object per line)")
