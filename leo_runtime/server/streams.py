"""Partner streams over HTTP: ``/v1/streams`` (create, list, get, delete, reset), and per partition
records (long poll), checkpoint commits and leases.

A read with nothing to return waits up to ``wait`` seconds on the runtime's in-process wakeup
for the partition's queue (`ApiContext.wait`): no loop polls the store for it, an idle waiter is
one future and one timer, and a client that hangs up frees its waiter at once (its disconnect is
awaited beside the wakeup). Reads of up to 1,000 records run on the event loop, larger ones in
a worker thread (see `INLINE_LIMIT`); other store work runs in worker threads. Record bodies are
built from the stored change-record texts without decoding them (`delivery.streams.page_json`),
and plain reads take a fast lane past FastAPI's per-request machinery (`FastReads`).

Another partner's stream answers 404 exactly like a missing one.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, FastAPI, Header, Request, Response
from fastapi import Query as QueryParam
from pydantic import BaseModel, ConfigDict, Field
from starlette.routing import BaseRoute, Match
from starlette.types import Receive, Scope, Send

from ..delivery import streams as service
from ..delivery.positions import encode_position
from ..partners import Partner
from ..store import Store
from ..store.base_streams import check_lease
from ..timeutil import format_time, now_ms
from . import pages
from .auth import PARTNER_SCOPE_KEY, current_partner
from .bodies import LeoRoute
from .edge import unless_crowded
from .problems import problem_responses

T = TypeVar("T")
_PARTNER = PARTNER_SCOPE_KEY


async def _authenticate(request: Request) -> None:
    request.scope[_PARTNER] = await current_partner(request)


class StreamRoute(LeoRoute):
    """Stream routes: the partner's token is checked before a byte of the body is read."""

    guard = staticmethod(_authenticate)


async def _partner(request: Request) -> Partner:  # async: no hop to a worker thread
    return request.scope[_PARTNER]


CurrentPartner = Annotated[Partner, Depends(_partner)]
LeaseHeader = Annotated[str | None, Header(alias="Lease-Id", description="the live lease's id (see /lease)",
                                           max_length=200)]

router = APIRouter(prefix="/v1/streams", tags=["streams"], route_class=StreamRoute,
                   responses=problem_responses(401, 403), generate_unique_id_function=lambda route: route.name)


# -- models -------------------------------------------------------------------------------------------
class StreamIn(BaseModel):
    """A new stream of one object type's changes."""

    model_config = ConfigDict(extra="forbid")

    object_type: str = Field(max_length=200, examples=["inventory"])
    query: dict[str, Any] | None = Field(None, examples=[{"warehouse": "NYC", "quantity": {"lt": 5}}],
                                         description="the changes' data must match it (and the partner's scope)")
    partitions: int = Field(1, ge=1, le=service.MAX_PARTITIONS, strict=True,
                            description="records go to partition crc32(key) % partitions; order holds within one")
    start_at: str | None = Field("now", max_length=64, examples=["now", "earliest", "2026-11-26T19:00:00Z", "-PT1H"],
                                 description="now (default): changes from now on; earliest: every retained change; "
                                 "an RFC 3339 time with its UTC offset, or -PT1H (that long ago): changes from then on "
                                 "(clamped to retention); a future time or one without an offset is a 422")


class PartitionOut(BaseModel):
    partition: int
    checkpoint: str = Field(description="opaque position: reads without `after` continue after it")
    head: str = Field(description="opaque position of the partition's newest record")
    lag: int = Field(description="records after the checkpoint")
    leased_until: str | None = Field(None, description="while a consumer's lease is live")


class StreamOut(BaseModel):
    id: str
    url: str
    object_type: str
    query: dict[str, Any] | None
    generation: int = Field(description="grows with each reset; commits must send the current one")
    retention: str = Field(description="ISO 8601 duration records stay readable", examples=["P7D"])
    created_at: str
    partitions: list[PartitionOut]


class RecordsOut(BaseModel):
    records: list[dict[str, Any]] = Field(description="change records, each with its opaque `position`")
    next_position: str = Field(description="pass as `after` to read on; commit it once the records are processed")
    head: str
    generation: int


class CheckpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    position: str = Field(max_length=64, description="a position the API returned (usually next_position)")
    generation: int = Field(strict=True, ge=1, description="the stream's generation the records were read in")


class ResetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str = Field(max_length=64, examples=["-PT1H", "earliest", "latest", "2026-11-26T19:00:00Z", "42"],
                    description="earliest, latest, an RFC 3339 time with its UTC offset, -PT1H (that long ago) or a "
                    "position (clamped to retention; a future time is a 422)")
    partitions: list[Annotated[int, Field(strict=True)]] | None = Field(None, max_length=service.MAX_PARTITIONS,
                                                                        description="default: every partition")


class ResetPartitionOut(BaseModel):
    partition: int
    checkpoint: str
    clamped: bool = Field(description="the time was older than retention: moved to the oldest kept record")


class ResetOut(BaseModel):
    generation: int
    partitions: list[ResetPartitionOut]


class LeaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ttl_seconds: float = Field(service.DEFAULT_LEASE_SECONDS, ge=1, le=service.MAX_LEASE_SECONDS, strict=True,
                               allow_inf_nan=False)


class LeaseOut(BaseModel):
    lease_id: str = Field(description="send as header Lease-Id on reads and commits; renew before expires_at")
    expires_at: str
    partition: int
    checkpoint: str
    generation: int


# -- helpers ------------------------------------------------------------------------------------------
def install(app: FastAPI) -> None:
    """Add the stream routes (a position older than retention answers 410: `PositionExpired` is `Gone`)."""
    app.include_router(router)
    app.router.routes.insert(0, FastReads(app))


INLINE_LIMIT = 1000
"""Reads of at most this many records run on the event loop (about 1-2 ms for 1,000 records of
~300 bytes): a hop to a worker thread and back costs more than that on a busy machine. Larger
reads (up to `service.MAX_LIMIT` records or `READ_MAX_BYTES`) go to a worker thread."""


async def _off_loop(func: Callable[[], T]) -> T:
    return await asyncio.get_running_loop().run_in_executor(None, func)


async def _reading(func: Callable[[], T], limit: int) -> T:
    return func() if limit <= INLINE_LIMIT else await _off_loop(func)


def _store(request: Request) -> Store:
    return request.app.state.store


def _retention(request: Request) -> float:
    return request.app.state.context.settings.retention


def _base_url(request: Request) -> str:
    # From the settings, never from the request's Host header (anyone can send one).
    return request.app.state.context.settings.server.base_url


def _changed(request: Request) -> None:
    changed = request.app.state.context.changed
    if changed is not None:
        changed()


async def _disconnected(receive: Receive) -> None:
    """Return when the client hangs up (the request body, if any, is skipped)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _wait_unless_gone(request: Request, waiting: Awaitable[bool]) -> bool | None:
    """Await `waiting` (a wakeup); None as soon as the client disconnects instead (the wakeup
    is cancelled, which removes its waiter)."""
    wakeup = asyncio.ensure_future(waiting)
    gone = asyncio.ensure_future(_disconnected(request.receive))
    try:
        await asyncio.wait((wakeup, gone), return_when=asyncio.FIRST_COMPLETED)
    finally:
        wakeup.cancel()
        gone.cancel()
    if wakeup.done() and not wakeup.cancelled():
        return wakeup.result()
    return None


_PARTITION = "`partition` is not a partition of the stream (0 to partitions - 1)"
_LEASED = "another consumer's lease on the partition is live (send its `Lease-Id`, or wait for it to expire)"
_LEASE_LOST = "the `Lease-Id` sent is no longer live (it expired or was taken): lease again, read from the checkpoint"


# -- routes -------------------------------------------------------------------------------------------
@router.post("", status_code=201, summary="Create a stream", responses=problem_responses(413, 415, causes={
    422: ["`object_type` is not an object type of this runtime",
          f"`partitions` is not a whole number from 1 to {service.MAX_PARTITIONS}",
          "`start_at` is not now, earliest or an RFC 3339 time, or is in the future",
          "`query` has an unknown operator or a wrong operand (the detail names the field)",
          "a quota: the partner has `server.limits.streams` streams already, or asks more partitions than "
          "`server.limits.partitions` (the problem's `limit` names it)"]}))
def create_stream(body: StreamIn, request: Request, response: Response, partner: CurrentPartner) -> StreamOut:
    """A stream of the object type's changes that match `query` and the partner's scope. It starts
    gathering at once: with ``start_at: now`` every change committed after this answer is in it.
    422 past the partner's quota (``server.limits.streams``, ``server.limits.partitions``)."""
    settings = request.app.state.context.settings
    store = _store(request)
    record = service.create_stream(
        store, partner.id, settings.object_types, settings.retention, object_type=body.object_type, query=body.query,
        partitions=body.partitions, start_at=body.start_at if body.start_at is not None else "now",
        limits=settings.server.limits,
    )
    _changed(request)
    described = service.describe(store, record, _base_url(request), settings.retention)
    response.headers["Location"] = described["url"]
    return StreamOut.model_validate(described)


@router.get("", summary="List the partner's streams", responses=problem_responses(causes={422: pages.CAUSES}))
def list_streams(request: Request, response: Response, partner: CurrentPartner, limit: pages.Limit = pages.DEFAULT_LIMIT,
                 cursor: pages.Cursor = None) -> list[StreamOut]:
    """Your streams, each with its generation and, per partition, the checkpoint, the head and the
    lag (records after the checkpoint); oldest first, a page at a time: when more follow, the
    ``Link`` header (``rel="next"``) names the next page."""
    store = _store(request)
    after = pages.decode_cursor(cursor, (int, str))
    records = pages.page(request, response, store.streams(partner.id, after=after, limit=limit + 1),  # type: ignore[arg-type]
                         limit, lambda record: (record.created_at, record.id))
    return [StreamOut.model_validate(service.describe(store, record, _base_url(request), _retention(request)))
            for record in records]


@router.get("/{stream_id}", summary="A stream: checkpoint, head and lag per partition", responses=problem_responses(404))
def get_stream(stream_id: str, request: Request, partner: CurrentPartner) -> StreamOut:
    """One of your streams: per partition the checkpoint (where a read without `after` continues),
    the head, the lag and whether a consumer's lease is live. Another partner's stream is a 404."""
    store = _store(request)
    record = service.find_stream(store, partner.id, stream_id)
    return StreamOut.model_validate(service.describe(store, record, _base_url(request), _retention(request)))


@router.delete("/{stream_id}", status_code=204, response_class=Response, summary="Delete a stream",
               responses=problem_responses(404))
def delete_stream(stream_id: str, request: Request, partner: CurrentPartner) -> Response:
    """The stream stops gathering at once; its records go when retention prunes them."""
    store = _store(request)
    service.find_stream(store, partner.id, stream_id)
    store.delete_stream(stream_id)
    _changed(request)
    return Response(status_code=204)


@router.get(
    "/{stream_id}/partitions/{partition}/records",
    summary="Read a partition's records (long poll)",
    response_class=Response,
    responses={200: {"model": RecordsOut}, **problem_responses(404, causes={
        409: [_LEASED, _LEASE_LOST],
        410: "`after` (or, without it, the checkpoint) is older than the stream's retention: records after it were "
             "pruned; reset the stream (`to: earliest`) to go on from the oldest kept record",
        422: [_PARTITION, "`after` is not a position of this partition, or is past the newest record",
              f"`limit` is not 1 to {service.MAX_LIMIT:,} or `wait` not 0 to {service.MAX_WAIT_SECONDS:g} seconds"]})},
)
async def read_records(
    stream_id: str,
    partition: str,
    request: Request,
    partner: CurrentPartner,
    after: Annotated[str | None, QueryParam(max_length=64, description="a position; default: the checkpoint")] = None,
    limit: Annotated[int, QueryParam(ge=1, le=service.MAX_LIMIT)] = service.DEFAULT_LIMIT,
    wait: Annotated[float, QueryParam(ge=0, le=service.MAX_WAIT_SECONDS, allow_inf_nan=False,
                                      description="seconds to wait for a record when there is none")] = 0,
    lease_id: LeaseHeader = None,
) -> Response:
    """Records after `after` (default: after the checkpoint), oldest first. With none there, waits
    up to `wait` seconds (max 60) and answers as soon as one arrives. 409 while another consumer's
    lease is live, 410 for a position older than retention."""
    store = _store(request)
    number, start, body, (queue, floor) = await _reading(
        lambda: _first(store, partner, stream_id, partition, after, limit, wait, lease_id), limit)
    waiter = request.app.state.context.wait
    edge = request.app.state.context.edge
    if body is None and waiter is None:  # no runtime lends wakeups (a bare app): answer at once
        body = await _reading(lambda: _again(store, partner, stream_id, number, start, limit, lease_id, final=True), limit)
    if body is None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while body is None:
            remaining = deadline - loop.time()
            # Near the connection cap it answers what it has at once (its connection can then make room).
            # (A shared log's records up to the floor are other streams': they wake nobody here.)
            woke = await _wait_unless_gone(request, unless_crowded(edge, waiter(queue, max(start, floor),
                                                                                max(remaining, 0))))
            if woke is None:  # the client hung up: nobody reads an answer
                return Response(status_code=204)
            final = loop.time() >= deadline or (edge is not None and edge.crowded())
            body = await _reading(lambda final=final: _again(store, partner, stream_id, number, start, limit, lease_id,
                                                             final=final), limit)
    return Response(body, media_type="application/json")


def _first(store: Store, partner: Partner, stream_id: str, partition: str, after: str | None, limit: int, wait: float,
           lease_id: str | None) -> tuple[int, int, bytes | None, tuple[str, int]]:
    """The first read of a request: the partition number, where it starts, the answer (None
    when there is nothing yet and the request waits) and where the partition's records are
    (`service.partition_source`: what a wait watches)."""
    record = service.find_stream(store, partner.id, stream_id)
    number = service.parse_partition(record, partition)
    start = service.read_start(store, record, number, after, lease_id)
    page = service.read_page(store, record, number, start, limit)
    return (number, start, service.page_json(page) if page.records or not wait else None,
            service.partition_source(record, number))


def _again(store: Store, partner: Partner, stream_id: str, partition: int, start: int, limit: int,
           lease_id: str | None, *, final: bool) -> bytes | None:
    """Read again after a wakeup (the stream may be gone or leased meanwhile); None when there is
    still nothing and time is left."""
    record = service.find_stream(store, partner.id, stream_id)
    check_lease(record.partitions[partition], lease_id, stream_id, partition, now_ms())
    page = service.read_page(store, record, partition, start, limit)
    if not page.records and not final:
        service.check_retained(store, record, partition, start)  # woken for records pruned meanwhile: 410, no spin
    return service.page_json(page) if page.records or final else None


@router.put("/{stream_id}/partitions/{partition}/checkpoint", status_code=204, response_class=Response,
            summary="Commit a partition's checkpoint", responses=problem_responses(404, 413, 415, causes={
                409: ["`position` is behind the checkpoint: a checkpoint only moves forward (a reset moves it back)",
                      "`generation` is stale: the stream was reset since the read; read again from the checkpoint and "
                      "commit with the generation that read returns", _LEASED, _LEASE_LOST],
                422: [_PARTITION, "`position` is not a position of this partition, or is past the newest record",
                      "`generation` is not a whole number of at least 1"]}))
def commit_checkpoint(stream_id: str, partition: str, body: CheckpointIn, request: Request, partner: CurrentPartner,
                      lease_id: LeaseHeader = None) -> Response:
    """Move the checkpoint to `position` (after processing the records up to it). Committing it
    again is harmless; 409 for a position behind the checkpoint, a stale generation (the stream was
    reset: read again from the checkpoint) or a lease held by another consumer."""
    store = _store(request)
    record = service.find_stream(store, partner.id, stream_id)
    number = service.parse_partition(record, partition)
    service.commit(store, record, number, body.position, body.generation, lease_id)
    return Response(status_code=204)


@router.post("/{stream_id}/reset", summary="Move checkpoints back (or forward) in time",
             responses=problem_responses(404, 413, 415, causes={
                 422: ["`to` is not earliest, latest, an RFC 3339 time or a negative ISO 8601 duration "
                       "(-PT1H), or is in the future",
                       "`partitions` is empty, or names a partition the stream does not have"]}))
def reset_stream(stream_id: str, body: ResetIn, request: Request, partner: CurrentPartner) -> ResetOut:
    """Each checkpoint moves to just before the first record appended at or after `to`
    (``earliest``, ``latest``, an RFC 3339 time or ``-PT1H``), clamped to retention; the generation
    grows, so commits of reads made before the reset are refused (409)."""
    store = _store(request)
    record = service.find_stream(store, partner.id, stream_id)
    updated, moved = service.reset(store, record, body.to, body.partitions, _retention(request))
    return ResetOut(generation=updated.generation, partitions=[
        ResetPartitionOut(partition=item["partition"], checkpoint=encode_position(stream_id, item["partition"],
                                                                                  item["position"]),
                          clamped=item["clamped"])
        for item in moved
    ])


@router.post("/{stream_id}/partitions/{partition}/lease", summary="Lease a partition (parallel consumers)",
             responses=problem_responses(404, 413, 415, causes={
                 409: ["another consumer's lease on the partition is live",
                       "the `Lease-Id` sent to renew is no longer live (it expired or was taken): lease without it"],
                 422: [_PARTITION, f"`ttl_seconds` is not 1 to {service.MAX_LEASE_SECONDS:g}"]}))
def lease_partition(stream_id: str, partition: str, request: Request, partner: CurrentPartner,
                    body: LeaseIn | None = None, lease_id: LeaseHeader = None) -> LeaseOut:
    """While the lease is live, reads and commits of the partition need header ``Lease-Id``; others
    get 409. Send your ``Lease-Id`` here to renew it before it expires. 409 while another
    consumer's lease is live."""
    store = _store(request)
    record = service.find_stream(store, partner.id, stream_id)
    number = service.parse_partition(record, partition)
    ttl = body.ttl_seconds if body is not None else service.DEFAULT_LEASE_SECONDS
    held = service.lease(store, record, number, ttl, lease_id)
    return LeaseOut(lease_id=held.lease_id or "", expires_at=format_time(held.lease_expires_at) or "", partition=number,
                    checkpoint=encode_position(stream_id, number, held.checkpoint), generation=record.generation)


@router.delete("/{stream_id}/partitions/{partition}/lease", status_code=204, response_class=Response,
               summary="Give a lease up", responses=problem_responses(404, causes={422: _PARTITION}))
def release_partition(stream_id: str, partition: str, request: Request, partner: CurrentPartner,
                      lease_id: LeaseHeader = None) -> Response:
    """Another consumer can lease the partition at once (a lease that is not live is ignored)."""
    store = _store(request)
    record = service.find_stream(store, partner.id, stream_id)
    number = service.parse_partition(record, partition)
    if lease_id:
        store.release_stream_partition(stream_id, number, lease_id)
    return Response(status_code=204)


# -- the fast lane for reads -----------------------------------------------------------------------
_SLOW = "leo.slow_lane"
"""Set in the scope of a read the lane hands to the documented route (so the lane lets it pass)."""
_RECORDS_PATH = re.compile(r"/v1/streams/([^/]+)/partitions/([^/]+)/records")
_PLAIN = {
    "after": re.compile(r"[^\x00-\x1f]{1,64}"),
    "limit": re.compile(r"[1-9][0-9]{0,3}"),
    "wait": re.compile(r"[0-9]{1,2}(?:\.[0-9]{1,6})?"),
}


class FastReads(BaseRoute):
    """Plain record reads answered without FastAPI's per-request machinery (dependencies,
    validation, the route wrapper: about as much as the read itself for 1,000 records).

    It takes a ``GET .../records`` only when its query holds nothing but well-formed `after`,
    `limit` (up to `INLINE_LIMIT`) and `wait`, each at most once, and the token is a live
    partner's; it answers only when there are records (or ``wait`` is 0). Everything else (a
    long poll that must wait, any error, any odd parameter) goes to the documented route, which
    does the same reads and answers it exactly as always: the lane changes how fast, never what.
    """

    path_format = "/v1/streams/{stream_id}/partitions/{partition}/records"
    """The documented route's template: what /metrics labels the lane's requests with."""

    def __init__(self, app: FastAPI) -> None:
        self._app = app

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and scope["method"] == "GET" and not scope.get(_SLOW):
            found = _RECORDS_PATH.fullmatch(scope["path"])
            if found is not None:
                return Match.FULL, {"path_params": {"stream_id": found[1], "partition": found[2]}, "route": self}
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await self._answer(Request(scope, receive))
        if body is None:
            scope[_SLOW] = True
            await self._app.router(scope, receive, send)
            return
        await Response(body, media_type="application/json")(scope, receive, send)

    async def _answer(self, request: Request) -> bytes | None:
        params = _plain_params(request.scope["query_string"])
        leases = request.headers.getlist("lease-id")
        if params is None or len(leases) > 1 or (leases and len(leases[0]) > 200):
            return None
        limit = int(params.get("limit", service.DEFAULT_LIMIT))  # the patterns made sure these convert
        wait = float(params.get("wait", 0))
        if limit > INLINE_LIMIT or wait > service.MAX_WAIT_SECONDS:
            return None
        try:
            partner = await current_partner(request)
            path = request.path_params
            return _first(_store(request), partner, path["stream_id"], path["partition"], params.get("after"), limit,
                          wait, leases[0] if leases else None)[2]
        except Exception:  # the documented route answers it (a 401, 404, 409, 410 or 422)
            return None


def _plain_params(query: bytes) -> dict[str, str] | None:
    """The query's `after`, `limit` and `wait` when it holds only those, once each and well formed."""
    params: dict[str, str] = {}
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        pattern = _PLAIN.get(name)
        if pattern is None or name in params or not pattern.fullmatch(value):
            return None
        params[name] = value
    return params
