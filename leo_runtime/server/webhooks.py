"""Partner webhooks: ``/v1/webhooks`` (create, list, get, patch, delete, true-up, batches, replay).

A partner sees only its own webhooks: another partner's id answers 404, exactly like an unknown
one. The query is checked like every query (422 naming the field) and matched together with the
partner's scope. The callback URL is checked by the callback guard (`delivery.callbacks`: no
loopback, private, link-local or metadata address unless ``server.allow_private_callbacks``).
Creating, changing or deleting a webhook tells the runtime (``ApiContext.changed``), which
starts or stops the webhook bots at once.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr
from starlette.concurrency import run_in_threadpool

from ..delivery.callbacks import check_callback_url
from ..delivery.subscriptions import check_query
from ..delivery.webhooks import (
    MAX_INTERVAL_SECONDS,
    MIN_INTERVAL_SECONDS,
    batch_url,
    delivery_state,
    interval_seconds,
    new_secret,
    new_webhook_id,
    parse_interval,
    router_id,
)
from ..errors import InputError
from ..jsonio import canonical
from ..partners import Partner
from ..store import Store
from ..store.base_webhooks import NewWebhook, WebhookRecord, WebhookStatusRow
from ..timeutil import format_time, now_ms
from .auth import current_partner
from .bodies import LeoRoute
from .problems import problem_responses, shown

MAX_WEBHOOKS_PER_PARTNER = 100
RESOLVE_TIMEOUT_SECONDS = 5.0
CurrentPartner = Annotated[Partner, Depends(current_partner)]
router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], route_class=LeoRoute,
                   responses=problem_responses(401, 403), generate_unique_id_function=lambda route: route.name)

_INTERVAL_DOC = (f"seconds ({MIN_INTERVAL_SECONDS} to {MAX_INTERVAL_SECONDS:,}) or an ISO 8601 duration like 'PT5M'; "
                 "each interval with matching changes seals one batch")
_QUERY_DOC = ("a query over the objects' data (README, Queries): keys are field paths, values literals or operators "
              "eq ne lt lte gt gte in nin exists prefix; combined with your scope")


class WebhookIn(BaseModel):
    """A new webhook."""

    model_config = ConfigDict(extra="forbid")

    object_type: StrictStr = Field(examples=["inventory"])
    query: dict[str, Any] | None = Field(None, examples=[{"quantity": {"lt": 5}}], description=_QUERY_DOC)
    callback_url: StrictStr = Field(examples=["https://partner.example/hooks/leo"],
                              description="where the batch.ready notifications are POSTed (http or https)")
    interval: StrictInt | StrictFloat | StrictStr = Field(examples=[300, "PT5M"], description=_INTERVAL_DOC)
    mode: Literal["changes", "all"] = Field("changes", description="changes: the matching changes of the interval; "
                                            "all: every interval, every matching object (a true-up)")


class WebhookPatch(BaseModel):
    """What to change (only the fields given)."""

    model_config = ConfigDict(extra="forbid")

    interval: StrictInt | StrictFloat | StrictStr | None = Field(None, description=_INTERVAL_DOC)
    query: dict[str, Any] | None = Field(None, description=_QUERY_DOC + "; null: every object of your scope")
    callback_url: StrictStr | None = None
    status: Literal["active", "paused"] | None = Field(
        None, description="paused: batches are still sealed, notifications wait; active also turns a webhook "
        "disabled by a 410 back on")


class WebhookOut(BaseModel):
    """A webhook (never its secret)."""

    id: str = Field(examples=["wh_9d1c2b7a4e5f6a7b"])
    object_type: str
    query: dict[str, Any] | None
    callback_url: str
    interval: int | float = Field(description="seconds")
    mode: Literal["changes", "all"]
    status: str = Field(description="active, paused, or disabled (the callback answered 410)")
    delivery: str = Field(description="ok, retrying, failing (a notification ran out of retries) or disabled")
    true_up_requested: bool
    next_run_at: str
    last_batch_at: str | None
    created_at: str


class WebhookCreated(WebhookOut):
    """The new webhook with its signing secret: the only time the secret is shown."""

    secret: str = Field(description="whsec_ and base64: verify the webhook-signature of each notification with it")


class BatchOut(BaseModel):
    """A sealed batch and its notification."""

    id: str
    url: str = Field(description="GET it with your token: NDJSON, one change record per line")
    records: int
    true_up: bool
    created_at: str
    expires_at: str
    delivered_at: str | None
    fetched_at: str | None
    attempts: int = Field(description="notification attempts so far")
    next_attempt_at: str | None
    last_error: str | None


class TrueUpAccepted(BaseModel):
    """The true-up request: the webhook's next batch is a snapshot."""

    id: str
    true_up_requested: bool = True
    next_run_at: str


class Replayed(BaseModel):
    """How many unfetched batches are notified again."""

    replayed: int


def install(app: FastAPI) -> None:
    """Add the webhook routes."""
    app.include_router(router)


def webhook_out(webhook: WebhookRecord, row: WebhookStatusRow | None = None) -> dict[str, Any]:
    """A webhook as the API shows it."""
    return {
        "id": webhook.id,
        "object_type": webhook.object_type or "",
        "query": orjson.loads(webhook.query_json) if webhook.query_json else None,
        "callback_url": webhook.callback_url or "",
        "interval": interval_seconds(webhook.interval_ms),
        "mode": webhook.mode,
        "status": webhook.status,
        "delivery": delivery_state(row) if row is not None else _state(webhook),
        "true_up_requested": webhook.true_up,
        "next_run_at": format_time(webhook.next_run_at) or "",
        "last_batch_at": format_time(webhook.last_batch_at),
        "created_at": format_time(webhook.created_at) or "",
    }


def _state(webhook: WebhookRecord) -> str:
    return delivery_state(WebhookStatusRow(webhook, None, None, 0, 0, 0))


def _store(request: Request) -> Store:
    return request.app.state.store


def _changed(request: Request) -> None:
    changed = request.app.state.context.changed
    if changed is not None:
        changed()


async def _own(request: Request, partner: Partner, webhook_id: str) -> WebhookRecord:
    """The partner's webhook, or 404 (another partner's looks exactly like an unknown one)."""
    webhook = await run_in_threadpool(_store(request).webhook, webhook_id)
    if webhook is None or webhook.partner_id != partner.id:
        raise HTTPException(404, f"no webhook '{shown(webhook_id)}'")
    return webhook


async def _callback(request: Request, url: str) -> str:
    allow = request.app.state.context.settings.server.allow_private_callbacks
    try:  # resolving the host may wait on DNS: off the loop, and bounded
        return await asyncio.wait_for(run_in_threadpool(check_callback_url, url, allow_private=allow),
                                      RESOLVE_TIMEOUT_SECONDS)
    except TimeoutError:
        raise InputError(f"callback_url: resolving its host took more than {RESOLVE_TIMEOUT_SECONDS:g} s") from None


def _query_json(query: dict[str, Any] | None) -> str | None:
    checked = check_query(query)
    return canonical(checked).decode() if checked else None


@router.post("", status_code=201, summary="Register a webhook", responses=problem_responses(413, 415, 422))
async def create_webhook(body: WebhookIn, request: Request, partner: CurrentPartner) -> WebhookCreated:
    """Every interval with matching changes (always in mode ``all``) seals one batch and POSTs one
    small signed ``batch.ready`` notification to ``callback_url``; the batch is then downloaded
    from the URL it names. The secret is shown only in this answer."""
    settings = request.app.state.context.settings
    if body.object_type not in settings.object_types:
        known = ", ".join(sorted(settings.object_types)) or "none"
        raise InputError(f"object_type: unknown object type '{shown(body.object_type)}' (known: {known})")
    interval_ms = parse_interval(body.interval)
    query_json = _query_json(body.query)
    url = await _callback(request, body.callback_url)
    store = _store(request)
    owned = await run_in_threadpool(store.webhooks, partner_id=partner.id)
    if len(owned) >= MAX_WEBHOOKS_PER_PARTNER:
        raise InputError(f"a partner may have at most {MAX_WEBHOOKS_PER_PARTNER} webhooks; delete one first")
    secret = new_secret()
    new = NewWebhook(new_webhook_id(), partner.id, body.object_type, f"{body.object_type}.changes",
                     router_id(body.object_type), query_json, url, secret, interval_ms, body.mode, now_ms())
    webhook = await run_in_threadpool(store.create_webhook, new)
    _changed(request)
    return WebhookCreated(**webhook_out(webhook), secret=secret)


@router.get("", summary="List your webhooks")
async def list_webhooks(request: Request, partner: CurrentPartner) -> list[WebhookOut]:
    """Your webhooks, oldest first."""
    rows = await run_in_threadpool(_store(request).webhook_status, partner.id)
    return [WebhookOut(**webhook_out(row.webhook, row)) for row in rows]


@router.get("/{webhook_id}", summary="Get one webhook", responses=problem_responses(404))
async def get_webhook(webhook_id: str, request: Request, partner: CurrentPartner) -> WebhookOut:
    """One of your webhooks (its delivery state included)."""
    rows = await run_in_threadpool(_store(request).webhook_status, partner.id)
    row = next((row for row in rows if row.webhook.id == webhook_id), None)
    if row is None:  # another partner's webhook looks exactly like an unknown one
        raise HTTPException(404, f"no webhook '{shown(webhook_id)}'")
    return WebhookOut(**webhook_out(row.webhook, row))


@router.patch("/{webhook_id}", summary="Change a webhook", responses=problem_responses(404, 413, 415, 422))
async def patch_webhook(webhook_id: str, body: WebhookPatch, request: Request, partner: CurrentPartner) -> WebhookOut:
    """Change the interval (counted from now), the query, the callback URL, or pause and resume."""
    webhook = await _own(request, partner, webhook_id)
    given = body.model_fields_set
    changes: dict[str, Any] = {}
    if "interval" in given:
        if body.interval is None:
            raise InputError("interval: give seconds or an ISO 8601 duration; it cannot be removed")
        changes["interval_ms"] = parse_interval(body.interval)
    if "query" in given:
        changes["query_json"] = _query_json(body.query)
    if "callback_url" in given:
        if body.callback_url is None:
            raise InputError("callback_url: give the URL to POST to; it cannot be removed")
        changes["callback_url"] = await _callback(request, body.callback_url)
    if "status" in given:
        if body.status is None:
            raise InputError("status: give active or paused")
        changes["status"] = body.status
    if changes:
        updated = await run_in_threadpool(_store(request).update_webhook, webhook.id, changes, now_ms())
        if updated is None:
            raise HTTPException(404, f"no webhook '{shown(webhook_id)}'")
        webhook = updated
        _changed(request)
    return WebhookOut(**webhook_out(webhook))


@router.delete("/{webhook_id}", status_code=204, summary="Delete a webhook", responses=problem_responses(404))
async def delete_webhook(webhook_id: str, request: Request, partner: CurrentPartner) -> Response:
    """Stop it: no more batches or notifications; its batches are gone (404) at once."""
    webhook = await _own(request, partner, webhook_id)
    await run_in_threadpool(_store(request).delete_webhook, webhook.id)
    _changed(request)
    return Response(status_code=204)


@router.post("/{webhook_id}/true-up", status_code=202, summary="Ask for every matching object",
             responses=problem_responses(404))
async def true_up(webhook_id: str, request: Request, partner: CurrentPartner) -> TrueUpAccepted:
    """The webhook's next batch (at its next interval) holds every object that matches now, each
    line with ``op: snapshot``, and its notification says ``true_up: true``."""
    webhook = await _own(request, partner, webhook_id)
    updated = await run_in_threadpool(_store(request).request_true_up, webhook.id)
    if updated is None:
        raise HTTPException(404, f"no webhook '{shown(webhook_id)}'")
    return TrueUpAccepted(id=updated.id, next_run_at=format_time(updated.next_run_at) or "")


@router.get("/{webhook_id}/batches", summary="List a webhook's batches", responses=problem_responses(404, 422))
async def list_batches(
    webhook_id: str,
    request: Request,
    partner: CurrentPartner,
    status: Annotated[Literal["unfetched", "all"], Query(description="unfetched: not downloaded yet")] = "all",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[BatchOut]:
    """The webhook's batches still retained, newest first, with their notifications' state."""
    webhook = await _own(request, partner, webhook_id)
    base = request.app.state.context.settings.server.base_url
    listed = await run_in_threadpool(_store(request).batches, webhook.rid, unfetched=status == "unfetched", limit=limit)
    return [
        BatchOut(id=batch.id, url=batch_url(base, batch.id), records=batch.records, true_up=batch.true_up,
                 created_at=format_time(batch.created_at) or "", expires_at=format_time(batch.expires_at) or "",
                 delivered_at=format_time(batch.delivered_at), fetched_at=format_time(batch.fetched_at),
                 attempts=batch.attempts, next_attempt_at=format_time(batch.next_attempt_at), last_error=batch.last_error)
        for batch in listed
    ]


@router.post("/{webhook_id}/replay", status_code=202, summary="Notify again of unfetched batches",
             responses=problem_responses(404))
async def replay(webhook_id: str, request: Request, partner: CurrentPartner) -> Replayed:
    """Send the notifications of every batch not downloaded yet again (same webhook-id each),
    with a fresh retry schedule."""
    webhook = await _own(request, partner, webhook_id)
    count = await run_in_threadpool(_store(request).replay_webhook, webhook.id, now_ms())
    return Replayed(replayed=count)
