"""Batch download: ``GET /v1/batches/{batch_id}``, the URL a ``batch.ready`` notification names.

The batch streams straight from the store as NDJSON, a page of lines at a time (each page read
and, when the client accepts gzip, compressed in a worker thread), so memory stays flat whatever
the batch holds. ``Leo-Record-Count`` says how many lines come. A download that reaches its end
notes the fetch time (the batches list's ``fetched_at``, ``status=unfetched``).

Who may download: a partner webhook's batch, its partner; a ``batcher`` bot's batch (see
pipelines.yaml), the partners named in its ``readers``; any batch, the admin token. Everyone else
gets 404, as for an unknown id; a batch past its retention answers 410 Gone.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from ..partners import authenticate
from ..store import Store
from ..store.base_webhooks import BatchRecord
from ..timeutil import now_ms
from .auth import bearer_token, is_admin, unauthorized
from .bodies import LeoRoute
from .problems import problem_responses, shown

PAGE_LINES = 2000
"""Lines read (and sent) per page."""
GZIP_LEVEL = 1  # the fastest: NDJSON of change records still shrinks about five times
_GZIP = re.compile(r"(?:^|,)\s*(?:gzip|x-gzip|\*)\s*(?:;\s*q\s*=\s*([0-9.]+))?\s*(?=,|$)", re.IGNORECASE)

router = APIRouter(prefix="/v1/batches", tags=["webhooks"], route_class=LeoRoute,
                   generate_unique_id_function=lambda route: route.name)


def install(app: FastAPI) -> None:
    """Add the batch download route."""
    app.include_router(router)


def accepts_gzip(header: str | None) -> bool:
    """Whether an ``Accept-Encoding`` header takes gzip (``gzip``, ``x-gzip`` or ``*``, q > 0)."""
    for match in _GZIP.finditer(header or ""):
        quality = match.group(1)
        try:
            if quality is None or float(quality) > 0:
                return True
        except ValueError:
            continue
    return False


def _reader(request: Request, batch: BatchRecord | None, token: str) -> bool:
    """Whether the token may read `batch` (the admin token, its partner, or a named reader)."""
    if is_admin(request, token):
        return True
    partner = authenticate(request.app.state.store, token)
    if partner is None:
        raise unauthorized("the token is unknown or was revoked", "invalid_token")
    if batch is None:
        return False
    if batch.partner_id is not None:
        return batch.partner_id == partner.id
    readers = orjson.loads(batch.readers_json) if batch.readers_json else []
    return partner.name in readers


@router.get(
    "/{batch_id}",
    summary="Download a batch",
    response_class=StreamingResponse,
    responses={
        200: {"description": "NDJSON: one change record per line (op snapshot in a true-up)",
              "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
              "headers": {"Leo-Record-Count": {"description": "how many lines", "schema": {"type": "integer"}}}},
        **problem_responses(401, 404, causes={
            410: "the batch is past its retention (for one more retention period; then 404): ask your webhook for a "
                 "true-up to get every matching object again"}),
    },
)
async def download_batch(batch_id: str, request: Request) -> StreamingResponse:
    """The batch's records, streamed; gzip when the request's ``Accept-Encoding`` takes it."""
    token = bearer_token(request)
    store: Store = request.app.state.store
    batch = await run_in_threadpool(store.batch, batch_id)
    if not _reader(request, batch, token) or batch is None:
        raise HTTPException(404, f"no batch '{shown(batch_id)}'")
    if batch.state != "sealed" or batch.expires_at <= now_ms():
        raise HTTPException(410, f"batch '{batch.id}' is past its retention; ask your webhook for a true-up "
                                 "(POST /v1/webhooks/{id}/true-up)")
    gzip = accepts_gzip(request.headers.get("accept-encoding"))
    headers = {"Leo-Record-Count": str(batch.records), "Cache-Control": "private, no-store", "Vary": "Accept-Encoding"}
    if gzip:
        headers["Content-Encoding"] = "gzip"
    return StreamingResponse(_lines(store, batch, gzip), media_type="application/x-ndjson", headers=headers)


async def _lines(store: Store, batch: BatchRecord, gzip: bool) -> AsyncIterator[bytes]:
    compressor: Any = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31) if gzip else None
    cursor: Any = None
    while True:
        chunk, cursor, done = await run_in_threadpool(_page, store, batch, cursor, compressor)
        if chunk:
            yield chunk
        if done:
            break
    # Reached only once every line was handed to the server: the batch counts as fetched.
    await run_in_threadpool(store.mark_fetched, batch.bid, now_ms())


def _page(store: Store, batch: BatchRecord, cursor: Any, compressor: Any) -> tuple[bytes, Any, bool]:
    """One page of lines (compressed when asked), the next cursor, and whether it was the last."""
    rows = store.batch_page(batch, cursor, PAGE_LINES)
    done = len(rows) < PAGE_LINES
    data = "".join([f"{text}\n" for _, text in rows]).encode() if rows else b""
    if compressor is not None:
        data = compressor.compress(data) + (compressor.flush() if done else compressor.flush(zlib.Z_SYNC_FLUSH))
    return data, rows[-1][0] if rows else cursor, done
