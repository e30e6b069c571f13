"""The bots that deliver webhook batches: the partner webhooks' system bots and what the
``batcher`` and ``webhook_sender`` bots of pipelines.yaml share with them.

For partner webhooks the runtime derives, from the store (`partner_webhooks.PartnerWebhooks`):
one `WebhookRouter` per object type (it reads ``T.changes`` and routes each change to the
webhooks it matches), one `WebhookBatcher` that seals every due webhook and builds true-up
snapshots, and one `PartnerWebhookSender` that notifies them. They only yield store ops
(`leo_runtime.store.base_webhooks`), which commit with their runs.

They are shipped bots with the wider `SystemContext` (partner webhooks' rows, the secrets they
sign with, the whole configuration); custom bots never get it (see `leo_runtime.bot`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import orjson

from ..bot import BotContext, BotSettings, SinkBot, SourceBot, SystemContext, system_context
from ..errors import BotError
from ..events import Event
from ..store.base_webhooks import (
    AddSnapshotLines,
    DueDelivery,
    FinishSnapshot,
    RecordDeliveries,
    RouteChanges,
    SealedBatch,
    SealWebhooks,
    StartSnapshot,
    StoreOp,
)
from ..timeutil import now_ms
from .subscriptions import Subscription, matching
from .webhooks import (
    PARTNER_SENDER,
    DeliveryService,
    Outgoing,
    batch_url,
    notification_body,
    secret_key,
    snapshot_line,
    subscription_of,
)

SNAPSHOT_PAGE = 2000
"""Objects a true-up reads per run (a run per page keeps each transaction short)."""
DUE_PAGE = 2000
"""Due notifications a sender takes per tick."""


# -- what the batchers and senders share ------------------------------------------------------------
def retention_ms(ctx: SystemContext) -> int:
    """``retention`` of the configuration the bot started with, in milliseconds."""
    return int(ctx.config.model.retention * 1000)


def describer(ctx: SystemContext) -> Callable[[SealedBatch], str]:
    """The ``batch.ready`` body of a sealed batch (its URL on ``server.public_url``)."""
    base = ctx.config.model.server.base_url

    def describe(sealed: SealedBatch) -> str:
        url = batch_url(base, sealed.id)
        return notification_body(sealed.webhook_id, sealed.id, url, sealed.records, sealed.true_up, sealed.created_at).decode()

    return describe


def start_service(ctx: SystemContext, *, allow_private: bool, timeout: float | None = None) -> DeliveryService:
    """A running `DeliveryService` with the ``webhooks`` settings the bot started with."""
    webhooks = ctx.config.model.webhooks
    service = DeliveryService(timeout=timeout or webhooks.timeout, max_in_flight=webhooks.max_in_flight,
                              allow_private=allow_private, schedule=webhooks.retry_schedule)
    service.start()
    return service


def deliver(
    service: DeliveryService,
    ctx: BotContext,
    sender: str,
    destination: Callable[[DueDelivery], tuple[str, bytes, bytes | None] | None],
) -> Iterator[StoreOp]:
    """One sender tick: commit the outcomes that came back, hand over what is due now.
    `destination` gives a delivery's URL, signing key and the key of an old secret (a rotation)."""
    system = system_context(ctx)
    assert system.store is not None
    if service.failure is not None:  # a bug in the delivery loop: the bot's error, shown by leo status
        failure, service.failure = service.failure, None
        raise BotError(f"webhook delivery failed: {failure!r}")
    service.heartbeat()
    outcomes = service.take_outcomes()
    if outcomes:
        yield RecordDeliveries(outcomes)
    # Outcomes just taken commit after this run: until then the store still shows them due.
    busy = service.busy() | {(outcome.batch, outcome.sender) for outcome in outcomes}
    base = system.config.model.server.base_url
    outgoing = []
    for delivery in system.store.due_deliveries(sender, now_ms(), DUE_PAGE):
        if (delivery.batch, delivery.sender) in busy:
            continue
        target = destination(delivery)
        if target is None:
            continue
        url, key, old_key = target
        body = notification_body(delivery.webhook_id, delivery.batch_id, batch_url(base, delivery.batch_id),
                                 delivery.records, delivery.true_up, delivery.created_at)
        outgoing.append(Outgoing(delivery, url, key, body, old_key))
    if outgoing:
        service.submit(outgoing)


# -- partner webhooks' system bots ----------------------------------------------------------------------
class RouterSettings(BotSettings):
    object_type: str


class WebhookRouter(SinkBot[RouterSettings]):
    """Partner webhooks' filter stage: reads ``T.changes`` and routes each change to every
    webhook of that type whose query and partner scope it matches (an index row, no copy)."""

    name = "webhook_router"
    description = "route each change of an object type to the partner webhooks it matches"
    system_view = True

    def setup(self, ctx: BotContext) -> None:
        self.version = -1
        self.subscriptions: list[Subscription] = []
        self.rids: dict[str, int] = {}

    def process(self, events: Iterator[Event], ctx: BotContext) -> Iterator[StoreOp]:
        self._refresh(system_context(ctx))
        routes: list[tuple[int, int, str]] = []
        subscriptions, rids = self.subscriptions, self.rids
        for event in events:
            if not subscriptions:
                continue
            payload = event.payload
            if type(payload) is not dict or not isinstance(payload.get("key"), str):
                continue
            for subscription in matching(subscriptions, payload):
                routes.append((rids[subscription.id], event.seq, payload["key"]))
        if routes:
            yield RouteChanges(routes)

    def _refresh(self, ctx: SystemContext) -> None:
        assert ctx.store is not None
        version = ctx.store.webhooks_version()
        if version == self.version:
            return
        rows = ctx.store.route_subscriptions(ctx.in_queue or "")
        self.subscriptions = [subscription_of(webhook, scope) for webhook, scope in rows]
        self.rids = {webhook.id: webhook.rid for webhook, _ in rows}
        self.version = version


class WebhookBatcher(SourceBot[BotSettings]):
    """Seals every due partner webhook (a no-op for those without changes) and builds the
    snapshots of true-ups and ``mode: all``, a page per run, its cursor committed with it."""

    name = "webhook_batcher"
    description = "seal partner webhooks' batches on their intervals; build true-up snapshots"
    system_view = True
    reads = ("retention", "server.limits.batch_bytes")

    def produce(self, ctx: BotContext) -> Iterator[StoreOp]:
        system = system_context(ctx)
        assert system.store is not None
        now = now_ms()
        retention = retention_ms(system)
        due = system.store.next_seal_at()
        if due is not None and due <= now:
            yield SealWebhooks(now, retention)
        building: dict[str, str] = ctx.state.setdefault("snapshots", {})
        quota = system.config.model.server.limits.batch_bytes  # bytes of snapshot lines a partner may hold
        wanted = set()
        for webhook, scope in system.store.due_snapshots(now):
            rid = str(webhook.rid)
            wanted.add(rid)
            cursor = building.get(rid)
            if cursor is None:
                yield StartSnapshot(webhook.rid, now, retention, max_bytes=quota)
                cursor = ""
            subscription = subscription_of(webhook, scope)
            page = system.store.list_objects(webhook.object_type or "", after=cursor or None, limit=SNAPSHOT_PAGE)
            lines = [snapshot_line(record) for record in page if subscription.matches(orjson.loads(record.data_json))]
            if lines:
                yield AddSnapshotLines(webhook.rid, lines, max_bytes=quota, now=now)
            if len(page) < SNAPSHOT_PAGE:
                yield FinishSnapshot(webhook.rid, now, retention)
                building.pop(rid, None)
            else:
                building[rid] = page[-1].key
                ctx.behind = True
        for rid in set(building) - wanted:  # a webhook deleted while its snapshot was built
            del building[rid]


class PartnerWebhookSender(SourceBot[BotSettings]):
    """Notifies every partner webhook of its sealed batches, at its callback, signed with its secret."""

    name = "partner_webhook_sender"
    description = "notify partner webhooks of their sealed batches"
    system_view = True
    reads = ("webhooks", "server.public_url", "server.allow_private_callbacks")

    def setup(self, ctx: BotContext) -> None:
        system = system_context(ctx)
        self.service = start_service(system, allow_private=system.config.model.server.allow_private_callbacks)
        self.keys: dict[str, bytes] = {}

    def produce(self, ctx: BotContext) -> Iterator[StoreOp]:
        yield from deliver(self.service, ctx, PARTNER_SENDER, self._destination)

    def _destination(self, delivery: DueDelivery) -> tuple[str, bytes, bytes | None] | None:
        if not delivery.callback_url or not delivery.secret:
            return None
        old = self._key(delivery.old_secret) if delivery.old_secret else None  # signs too until it expires
        return delivery.callback_url, self._key(delivery.secret), old

    def _key(self, secret: str) -> bytes:
        key = self.keys.get(secret)
        if key is None:
            if len(self.keys) > 10_000:  # rotations leave old secrets behind: keep the cache bounded
                self.keys.clear()
            key = self.keys[secret] = secret_key(secret)
        return key

    def close(self) -> None:
        service: Any = getattr(self, "service", None)
        if service is not None:
            service.close()
