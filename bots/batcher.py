"""The `batcher` bot and the bots that seal partner webhooks' batches.

``batcher`` (pipelines.yaml) reads any queue and, every ``interval`` that brought events, seals
them into one immutable batch (one line per key: its latest event in the interval) and writes a
``batch.ready`` event (the notification's body) to its ``out`` queue, for a ``webhook_sender``
or any other bot. The batch is downloaded at ``GET /v1/batches/{id}`` with the admin token or
the token of a partner named in ``readers``.

For partner webhooks the runtime derives, from the store: one `WebhookRouter` per object type
(it reads ``T.changes`` and routes each change to the webhooks it matches) and one
`WebhookBatcher` that seals every due webhook and builds true-up snapshots. All of them only
yield store ops (`leo_runtime.store.base_webhooks`), which commit with their runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
from pydantic import Field, field_validator

from leo_runtime.bot import Bot, BotContext, BotSettings, SinkBot, SourceBot, register_bot
from leo_runtime.config.models import NAME_PATTERN, Duration
from leo_runtime.delivery.subscriptions import Subscription, matching
from leo_runtime.delivery.webhooks import (
    BOT_PREFIX,
    MAX_INTERVAL_SECONDS,
    MIN_INTERVAL_SECONDS,
    batch_url,
    notification_body,
    snapshot_line,
    subscription_of,
)
from leo_runtime.errors import BotError
from leo_runtime.events import Event
from leo_runtime.store.base_webhooks import (
    AddSnapshotLines,
    BotSubscription,
    FinishSnapshot,
    RouteChanges,
    SealedBatch,
    SealWebhooks,
    StartSnapshot,
    StoreOp,
)
from leo_runtime.timeutil import now_ms

SNAPSHOT_PAGE = 2000
"""Objects a true-up reads per run (a run per page keeps each transaction short)."""


def _retention_ms(ctx: BotContext) -> int:
    return int(ctx.config.model.retention * 1000)


def _describer(ctx: BotContext) -> Any:
    base = ctx.config.model.server.base_url

    def describe(sealed: SealedBatch) -> str:
        url = batch_url(base, sealed.id)
        return notification_body(sealed.webhook_id, sealed.id, url, sealed.records, sealed.true_up, sealed.created_at).decode()

    return describe


@register_bot("batcher")
class Batcher(Bot):
    """Seals the events of its ``in`` queue into a batch every ``interval`` that brought some,
    one line per key, and writes a ``batch.ready`` event for each batch to ``out``."""

    description = "seal a queue's events into one downloadable batch per interval; announce each batch"

    class Settings(BotSettings):
        interval: Duration = Field(description=f"how often to seal ({MIN_INTERVAL_SECONDS} s to 7 days): 300, 5m, PT5M")
        key: str | None = Field(
            None, description="field path whose value identifies an item (one line per value: its latest event); "
            "default: a change record's object type and key, and any other event its own line",
        )
        readers: list[str] = Field(
            default_factory=list,
            description="partners (by name) who may download the batches, besides the admin token",
        )

        @field_validator("interval")
        @classmethod
        def _bounded(cls, value: float) -> float:
            if not MIN_INTERVAL_SECONDS <= value <= MAX_INTERVAL_SECONDS:
                raise ValueError(f"must be between {MIN_INTERVAL_SECONDS} second and 7 days, got {value:g} s")
            return value

        @field_validator("key")
        @classmethod
        def _path(cls, value: str | None) -> str | None:
            if value is not None and (not value or any(not part for part in value.split("."))):
                raise ValueError(f"{value!r} is not a field path (names joined by '.', like 'sku' or 'item.sku')")
            return value

        @field_validator("readers")
        @classmethod
        def _names(cls, names: list[str]) -> list[str]:
            import re

            for name in names:
                if not re.match(NAME_PATTERN, name):
                    raise ValueError(f"{name!r} is not a partner name")
            return names

    def setup(self, ctx: BotContext) -> None:
        if not ctx.out_queue:
            raise BotError(f"batcher '{ctx.bot_id}' needs 'out': the queue its batch.ready events go to")
        self.subscription_id = BOT_PREFIX + ctx.bot_id
        self.path = tuple(self.settings.key.split(".")) if self.settings.key else None
        readers = orjson.dumps(sorted(set(self.settings.readers))).decode() if self.settings.readers else None
        self.subscription = BotSubscription(self.subscription_id, ctx.in_queue or "", ctx.bot_id,
                                            round(self.settings.interval * 1000), ctx.out_queue, readers)
        self.describe = _describer(ctx)

    def tick_seconds(self) -> float | None:
        return min(max(self.settings.interval / 10, 0.25), 5.0)

    def process(self, events: Iterator[Event], ctx: BotContext) -> Iterator[StoreOp]:
        routes = [(0, event.seq, self._key(event)) for event in events]
        if routes:
            yield RouteChanges(routes, subscription=self.subscription)

    def tick(self, ctx: BotContext) -> Iterator[StoreOp]:
        assert ctx.store is not None
        record = ctx.store.webhook(self.subscription_id)
        now = now_ms()
        if record is not None and record.next_run_at <= now:
            yield SealWebhooks(now, _retention_ms(ctx), webhooks=[record.rid], describe=self.describe)

    def _key(self, event: Event) -> str:
        payload = event.payload
        is_change = type(payload) is dict and "op" in payload and "object_type" in payload and "data" in payload
        if self.path is not None:
            value = _field(payload["data"] if is_change else payload, self.path)
            if value is not _ABSENT:
                return "=" + orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
        elif is_change and isinstance(payload.get("key"), str):
            return f"{payload['object_type']}/{payload['key']}"
        return f"#{event.seq:020d}"  # its own line, in the order the events came


_ABSENT = object()


def _field(document: Any, path: tuple[str, ...]) -> Any:
    """The value at a field path (``a.b``), or `_ABSENT`."""
    for part in path:
        if type(document) is not dict or part not in document:
            return _ABSENT
        document = document[part]
    return document


class WebhookRouter(SinkBot):
    """Partner webhooks' filter stage: reads ``T.changes`` and routes each change to every
    webhook of that type whose query and partner scope it matches (an index row, no copy)."""

    name = "webhook_router"
    description = "route each change of an object type to the partner webhooks it matches"

    class Settings(BotSettings):
        object_type: str

    def setup(self, ctx: BotContext) -> None:
        self.version = -1
        self.subscriptions: list[Subscription] = []
        self.rids: dict[str, int] = {}

    def process(self, events: Iterator[Event], ctx: BotContext) -> Iterator[StoreOp]:
        self._refresh(ctx)
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

    def _refresh(self, ctx: BotContext) -> None:
        assert ctx.store is not None
        version = ctx.store.webhooks_version()
        if version == self.version:
            return
        rows = ctx.store.route_subscriptions(ctx.in_queue or "")
        self.subscriptions = [subscription_of(webhook, scope) for webhook, scope in rows]
        self.rids = {webhook.id: webhook.rid for webhook, _ in rows}
        self.version = version


class WebhookBatcher(SourceBot):
    """Seals every due partner webhook (a no-op for those without changes) and builds the
    snapshots of true-ups and ``mode: all``, a page per run, its cursor committed with it."""

    name = "webhook_batcher"
    description = "seal partner webhooks' batches on their intervals; build true-up snapshots"

    def produce(self, ctx: BotContext) -> Iterator[StoreOp]:
        assert ctx.store is not None
        now = now_ms()
        retention = _retention_ms(ctx)
        due = ctx.store.next_seal_at()
        if due is not None and due <= now:
            yield SealWebhooks(now, retention)
        building: dict[str, str] = ctx.state.setdefault("snapshots", {})
        wanted = set()
        for webhook, scope in ctx.store.due_snapshots(now):
            rid = str(webhook.rid)
            wanted.add(rid)
            cursor = building.get(rid)
            if cursor is None:
                yield StartSnapshot(webhook.rid, now, retention)
                cursor = ""
            subscription = subscription_of(webhook, scope)
            page = ctx.store.list_objects(webhook.object_type or "", after=cursor or None, limit=SNAPSHOT_PAGE)
            lines = [snapshot_line(record) for record in page if subscription.matches(orjson.loads(record.data_json))]
            if lines:
                yield AddSnapshotLines(webhook.rid, lines)
            if len(page) < SNAPSHOT_PAGE:
                yield FinishSnapshot(webhook.rid, now, retention)
                building.pop(rid, None)
            else:
                building[rid] = page[-1].key
                ctx.behind = True
        for rid in set(building) - wanted:  # a webhook deleted while its snapshot was built
            del building[rid]
