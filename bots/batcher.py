"""The `batcher` bot: seals a queue's events into downloadable batches and announces them.

``batcher`` (pipelines.yaml) reads any queue and, every ``interval`` that brought events, seals
them into one immutable batch (one line per key: its latest event in the interval) and writes a
``batch.ready`` event (the notification's body) to its ``out`` queue, for a ``webhook_sender``
or any other bot. The batch is downloaded at ``GET /v1/batches/{id}`` with the admin token or
the token of a partner named in ``readers``. It only yields store ops, which commit with its
runs. (Partner webhooks' own batchers live with the delivery code: `delivery.webhook_bots`.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
from pydantic import Field, field_validator

from leo_runtime.bot import Bot, BotContext, BotSettings, register_bot, system_context
from leo_runtime.config.models import NAME_PATTERN, Duration
from leo_runtime.delivery.webhook_bots import describer, retention_ms
from leo_runtime.delivery.webhooks import BOT_PREFIX, MAX_INTERVAL_SECONDS, MIN_INTERVAL_SECONDS
from leo_runtime.errors import BotError
from leo_runtime.events import Event
from leo_runtime.store.base_webhooks import BotSubscription, RouteChanges, SealWebhooks, StoreOp
from leo_runtime.timeutil import now_ms


class BatcherSettings(BotSettings):
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


@register_bot("batcher")
class Batcher(Bot[BatcherSettings]):
    """Seals the events of its ``in`` queue into a batch every ``interval`` that brought some,
    one line per key, and writes a ``batch.ready`` event for each batch to ``out``."""

    description = "seal a queue's events into one downloadable batch per interval; announce each batch"
    system_view = True  # its own subscription row and the batch URLs' base
    reads = ("retention", "server.public_url")

    def setup(self, ctx: BotContext) -> None:
        if not ctx.out_queue:
            raise BotError(f"batcher '{ctx.bot_id}' needs 'out': the queue its batch.ready events go to")
        self.subscription_id = BOT_PREFIX + ctx.bot_id
        self.path = tuple(self.settings.key.split(".")) if self.settings.key else None
        readers = orjson.dumps(sorted(set(self.settings.readers))).decode() if self.settings.readers else None
        self.subscription = BotSubscription(self.subscription_id, ctx.in_queue or "", ctx.bot_id,
                                            round(self.settings.interval * 1000), ctx.out_queue, readers)
        self.describe = describer(system_context(ctx))

    def tick_seconds(self) -> float | None:
        return min(max(self.settings.interval / 10, 0.25), 5.0)

    def process(self, events: Iterator[Event], ctx: BotContext) -> Iterator[StoreOp]:
        routes = [(0, event.seq, self._key(event)) for event in events]
        if routes:
            yield RouteChanges(routes, subscription=self.subscription)

    def tick(self, ctx: BotContext) -> Iterator[StoreOp]:
        system = system_context(ctx)
        assert system.store is not None
        record = system.store.webhook(self.subscription_id)
        now = now_ms()
        if record is not None and record.next_run_at <= now:
            yield SealWebhooks(now, retention_ms(system), webhooks=[record.rid], describe=self.describe)

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
