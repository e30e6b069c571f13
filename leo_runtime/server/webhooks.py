"""Partner webhooks: ``/v1/webhooks`` (create, list, get, patch, delete, true-up, batches, replay,
rotate-secret).

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
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr
from starlette.concurrency import run_in_threadpool

from ..delivery.callbacks import check_callback_url
from ..delivery.subscriptions import check_query
from ..delivery.webhooks import (
    DEFAULT_EXPIRE_OLD_AFTER,
    MAX_EXPIRE_OLD_AFTER,
    MAX_INTERVAL_SECONDS,
    MAX_REPLAY_BATCHES,
    MIN_INTERVAL_SECONDS,
    BatchExpired,
    batch_report,
    check_all_mode_interval,
    delivery_state,
    interval_seconds,
    new_secret,
    new_webhook_id,
    parse_interval,
    replay_chosen,
    rotate_secret,
    router_id,
)
from ..errors import InputError
from ..jsonio import canonical
from ..partners import Partner
from ..store import Store
from ..store.base_webhooks import NewWebhook, WebhookRecord, WebhookStatusRow
from ..timeutil import format_time, now_ms
from . import pages
from .auth import current_partner
from .bodies import LeoRoute
from .problems import problem, problem_responses, shown

RESOLVE_TIMEOUT_SECONDS = 5.0
CurrentPartner = Annotated[Partner, Depends(current_partner)]
router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], route_class=LeoRoute,
                   responses=problem_responses(401, 403), generate_unique_id_function=lambda route: route.name)

_INTERVAL_DOC = (f"seconds ({MIN_INTERVAL_SECONDS} to {MAX_INTERVAL_SECONDS:,}) or an ISO 8601 duration like 'PT5M'; "
                 "each interval with matching changes seals one batch")
_CALLBACK_CAUSES = (
    "`callback_url` is not an http(s) URL with a host, holds credentials or a fragment, or its host resolves (or "
    "is spelled) to a loopback, private, link-local, shared, multicast or reserved address, or does not resolve"
)
_QUERY_CAUSE = "`query` has an unknown operator or a wrong operand (the detail names the field)"
_INTERVAL_CAUSE = f"`interval` is not seconds or an ISO 8601 duration from {MIN_INTERVAL_SECONDS} s to 7 days"
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
    last_error: str | None = Field(None, description="why the last notification failed, or why a snapshot waits "
                                   "(server.limits.batch_bytes: the partner's batches hold the most bytes they may)")
    old_secret_expires_at: str | None = Field(
        None, description="after a secret rotation: the old secret signs notifications too until then")


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


class ReplayIn(BaseModel):
    """The batches to notify again (a repeated id counts once)."""

    model_config = ConfigDict(extra="forbid")

    batch_ids: list[Annotated[StrictStr, Field(max_length=100)]] = Field(
        min_length=1, max_length=MAX_REPLAY_BATCHES, examples=[["bat_Vd0yJ3Q2x3t8mZ1aKp4s9w"]],
        description=f"ids of batches of this webhook that are still retained (1 to {MAX_REPLAY_BATCHES:,})")


class Replayed(BaseModel):
    """How many batches are notified again."""

    replayed: int


class RotateIn(BaseModel):
    """How long the old secret keeps signing."""

    model_config = ConfigDict(extra="forbid")

    expire_old_after: StrictInt = Field(
        DEFAULT_EXPIRE_OLD_AFTER, ge=0, le=MAX_EXPIRE_OLD_AFTER,
        description="seconds the old secret keeps signing notifications beside the new one (0: it stops now)")


class Rotated(BaseModel):
    """The new signing secret: the only time it is shown."""

    secret: str = Field(description="whsec_ and base64: from now on every notification is signed with it")
    old_secret_expires_at: str | None = Field(
        description="until then notifications also carry a signature made with the old secret; null: not at all")


def install(app: FastAPI) -> None:
    """Add the webhook routes and the 410 for a replay that names an expired batch."""

    async def expired(request: Request, exc: Exception) -> JSONResponse:
        return problem(410, str(exc))

    app.add_exception_handler(BatchExpired, expired)
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
        "last_error": webhook.last_error,
        "old_secret_expires_at": format_time(webhook.old_secret_expires_at) if webhook.old_secret_live(now_ms()) else None,
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


@router.post("", status_code=201, summary="Register a webhook", responses=problem_responses(413, 415, causes={
    422: ["`object_type` is not an object type of this runtime", _INTERVAL_CAUSE, _QUERY_CAUSE, _CALLBACK_CAUSES,
          "a quota: you already have `server.limits.webhooks` webhooks (delete one first), or a `mode: all` "
          "interval is under `server.limits.all_mode_min_interval` (the problem's `limit` names it)"]}))
async def create_webhook(body: WebhookIn, request: Request, partner: CurrentPartner) -> WebhookCreated:
    """Every interval with matching changes (always in mode ``all``) seals one batch and POSTs one
    small signed ``batch.ready`` notification to ``callback_url``; the batch is then downloaded
    from the URL it names. The secret is shown only in this answer. 422 past the partner's quota
    (``server.limits.webhooks``) or, in mode ``all``, an interval under
    ``server.limits.all_mode_min_interval``."""
    settings = request.app.state.context.settings
    if body.object_type not in settings.object_types:
        known = ", ".join(sorted(settings.object_types)) or "none"
        raise InputError(f"object_type: unknown object type '{shown(body.object_type)}' (known: {known})")
    interval_ms = parse_interval(body.interval)
    limits = settings.server.limits
    check_all_mode_interval(body.mode, interval_ms, limits.all_mode_min_interval)
    query_json = _query_json(body.query)
    url = await _callback(request, body.callback_url)
    store = _store(request)
    secret = new_secret()
    new = NewWebhook(new_webhook_id(), partner.id, body.object_type, f"{body.object_type}.changes",
                     router_id(body.object_type), query_json, url, secret, interval_ms, body.mode, now_ms(),
                     max_webhooks=limits.webhooks)  # counted in the creating transaction
    webhook = await run_in_threadpool(store.create_webhook, new)
    _changed(request)
    return WebhookCreated(**webhook_out(webhook), secret=secret)


@router.get("", summary="List your webhooks", responses=problem_responses(causes={422: pages.CAUSES}))
async def list_webhooks(request: Request, response: Response, partner: CurrentPartner,
                        limit: pages.Limit = pages.DEFAULT_LIMIT, cursor: pages.Cursor = None) -> list[WebhookOut]:
    """Your webhooks, oldest first, a page at a time: when more follow, the ``Link`` header
    (``rel="next"``) names the next page."""
    after = pages.decode_cursor(cursor, (int, int))
    rows = await run_in_threadpool(_store(request).webhook_status, partner.id, after=after, limit=limit + 1)
    shown = pages.page(request, response, rows, limit, lambda row: (row.webhook.created_at, row.webhook.rid))
    return [WebhookOut(**webhook_out(row.webhook, row)) for row in shown]


@router.get("/{webhook_id}", summary="Get one webhook", responses=problem_responses(404))
async def get_webhook(webhook_id: str, request: Request, partner: CurrentPartner) -> WebhookOut:
    """One of your webhooks (its delivery state included)."""
    rows = await run_in_threadpool(_store(request).webhook_status, partner.id)
    row = next((row for row in rows if row.webhook.id == webhook_id), None)
    if row is None:  # another partner's webhook looks exactly like an unknown one
        raise HTTPException(404, f"no webhook '{shown(webhook_id)}'")
    return WebhookOut(**webhook_out(row.webhook, row))


@router.patch("/{webhook_id}", summary="Change a webhook", responses=problem_responses(404, 413, 415, causes={
    422: [_INTERVAL_CAUSE + " (or null)", _QUERY_CAUSE, _CALLBACK_CAUSES + " (or null)", "`status` is null",
          "the webhook is in `mode: all` and the interval is under `server.limits.all_mode_min_interval`"]}))
async def patch_webhook(webhook_id: str, body: WebhookPatch, request: Request, partner: CurrentPartner) -> WebhookOut:
    """Change the interval (counted from now), the query, the callback URL, or pause and resume."""
    webhook = await _own(request, partner, webhook_id)
    given = body.model_fields_set
    changes: dict[str, Any] = {}
    if "interval" in given:
        if body.interval is None:
            raise InputError("interval: give seconds or an ISO 8601 duration; it cannot be removed")
        changes["interval_ms"] = parse_interval(body.interval)
        check_all_mode_interval(webhook.mode, changes["interval_ms"],
                                request.app.state.context.settings.server.limits.all_mode_min_interval)
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


@router.get("/{webhook_id}/batches", summary="List a webhook's batches", responses=problem_responses(404, causes={
    422: ["`status` is not unfetched or all", *pages.CAUSES]}))
async def list_batches(
    webhook_id: str,
    request: Request,
    partner: CurrentPartner,
    response: Response,
    status: Annotated[Literal["unfetched", "all"], Query(description="unfetched: not downloaded yet")] = "all",
    limit: pages.Limit = pages.DEFAULT_LIMIT,
    cursor: pages.Cursor = None,
) -> list[BatchOut]:
    """The webhook's batches still retained, newest first, with their notifications' state, a
    page at a time: when more follow, the ``Link`` header (``rel="next"``) names the next page."""
    before = pages.decode_cursor(cursor, (int,))
    webhook = await _own(request, partner, webhook_id)
    base = request.app.state.context.settings.server.base_url
    listed = await run_in_threadpool(_store(request).batches, webhook.rid, unfetched=status == "unfetched",
                                     limit=limit + 1, before=before[0] if before else None)
    return [BatchOut(**batch_report(base, batch)) for batch in pages.page(request, response, listed, limit,
                                                                          lambda batch: (batch.bid,))]


@router.post("/{webhook_id}/replay", status_code=202, summary="Notify again of unfetched or chosen batches",
             responses=problem_responses(413, 415, causes={
                 404: "the webhook is not one of yours, or a batch named is not one of its batches (unknown, another "
                      "webhook's, or expired more than a retention period ago); nothing is sent",
                 410: "a batch named is past its retention; nothing is sent (ask for a true-up instead)",
                 422: f"`batch_ids` is empty (leave the body out to replay every unfetched batch), names more than "
                      f"{MAX_REPLAY_BATCHES:,} batches, or holds something other than batch ids"}))
async def replay(webhook_id: str, request: Request, partner: CurrentPartner, body: ReplayIn | None = None) -> Replayed:
    """Without a body: send the notification of every batch not downloaded yet again. With
    ``{"batch_ids": [...]}``: exactly those batches', downloaded or not (a repeated id counts
    once). Each goes with its own webhook-id and a fresh retry schedule. A chosen replay is all or
    nothing: when one id is not a retained batch of this webhook nothing is sent."""
    webhook = await _own(request, partner, webhook_id)
    store = _store(request)
    if body is None:
        return Replayed(replayed=await run_in_threadpool(store.replay_webhook, webhook.id, now_ms()))
    chosen = await run_in_threadpool(replay_chosen, store, webhook.id, body.batch_ids, now_ms())
    return Replayed(replayed=len(chosen))


@router.post("/{webhook_id}/rotate-secret", summary="Rotate the signing secret",
             responses=problem_responses(404, 413, 415, causes={
                 422: f"`expire_old_after` is not whole seconds from 0 to {MAX_EXPIRE_OLD_AFTER:,}"}))
async def rotate(webhook_id: str, request: Request, partner: CurrentPartner, body: RotateIn | None = None) -> Rotated:
    """A new secret signs every notification from now on. For ``expire_old_after`` seconds
    (default 86,400: a day) each notification also carries a signature made with the old secret,
    so receivers still holding it keep verifying while you deploy the new one: the
    ``webhook-signature`` header then holds two signatures, separated by a space, the new one
    first. Rotating again while an old secret still signs drops that old one at once: only the
    secret being replaced is kept. The new secret is shown only in this answer."""
    webhook = await _own(request, partner, webhook_id)
    seconds = body.expire_old_after if body is not None else DEFAULT_EXPIRE_OLD_AFTER
    rotated, secret = await run_in_threadpool(rotate_secret, _store(request), webhook.id, seconds, now_ms())
    expires = format_time(rotated.old_secret_expires_at)  # None: the old secret stopped at once
    return Rotated(secret=secret, old_secret_expires_at=expires)
