"""The `webhook_sender` bot and the bot that notifies partner webhooks.

``webhook_sender`` (pipelines.yaml) reads the ``batch.ready`` events of a `batcher` and POSTs
each one, signed (Standard Webhooks), to its ``url``: at least once, retried on
``webhooks.retry_schedule`` (kept in the store: a restart resumes it), ``Retry-After``
honoured, a callback that is down never holding up anything else. `PartnerWebhookSender` does
the same for every partner webhook, to each webhook's own callback and secret, with the callback
guard on (``server.allow_private_callbacks``).

Both hand the POSTs to a `DeliveryService` (its own event loop): their runs take due
notifications from the store, give them to it, and commit what came back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from pydantic import Field, field_validator

from leo_runtime.bot import BotContext, BotSettings, SinkBot, SourceBot, register_bot
from leo_runtime.config.models import OptionalDuration
from leo_runtime.delivery.callbacks import check_callback_url
from leo_runtime.delivery.webhooks import (
    PARTNER_SENDER,
    DeliveryService,
    Outgoing,
    batch_url,
    notification_body,
    secret_key,
)
from leo_runtime.errors import BotError
from leo_runtime.events import Event
from leo_runtime.store.base_webhooks import ClaimDeliveries, DueDelivery, RecordDeliveries, StoreOp
from leo_runtime.timeutil import now_ms

TICK_SECONDS = 0.25
"""How often a sender looks for due notifications and commits outcomes."""
DUE_PAGE = 2000


def _service(ctx: BotContext, *, allow_private: bool, timeout: float | None = None) -> DeliveryService:
    webhooks = ctx.config.model.webhooks
    service = DeliveryService(timeout=timeout or webhooks.timeout, max_in_flight=webhooks.max_in_flight,
                              allow_private=allow_private, schedule=webhooks.retry_schedule)
    service.start()
    return service


def deliver(
    service: DeliveryService,
    ctx: BotContext,
    sender: str,
    destination: Callable[[DueDelivery], tuple[str, bytes] | None],
) -> Iterator[StoreOp]:
    """One sender tick: commit the outcomes that came back, hand over what is due now."""
    assert ctx.store is not None
    if service.failure is not None:  # a bug in the delivery loop: the bot's error, shown by leo status
        failure, service.failure = service.failure, None
        raise BotError(f"webhook delivery failed: {failure!r}")
    service.heartbeat()
    outcomes = service.take_outcomes()
    if outcomes:
        yield RecordDeliveries(outcomes)
    # Outcomes just taken commit after this run: until then the store still shows them due.
    busy = service.busy() | {(outcome.batch, outcome.sender) for outcome in outcomes}
    base = ctx.config.model.server.base_url
    outgoing = []
    for delivery in ctx.store.due_deliveries(sender, now_ms(), DUE_PAGE):
        if (delivery.batch, delivery.sender) in busy:
            continue
        target = destination(delivery)
        if target is None:
            continue
        url, key = target
        body = notification_body(delivery.webhook_id, delivery.batch_id, batch_url(base, delivery.batch_id),
                                 delivery.records, delivery.true_up, delivery.created_at)
        outgoing.append(Outgoing(delivery, url, key, body))
    if outgoing:
        service.submit(outgoing)


@register_bot("webhook_sender")
class WebhookSender(SinkBot):
    """POSTs a signed notification to ``url`` for every batch.ready event of its ``in`` queue."""

    description = "notify a URL of each sealed batch (signed; retried on webhooks.retry_schedule)"

    class Settings(BotSettings):
        url: str = Field(description="where to POST (http or https); often ${ERP_WEBHOOK_URL}")
        secret: str = Field(min_length=1, description="signing secret: whsec_ and base64 (as partners get) or any text")
        timeout: OptionalDuration | None = Field(None, description="seconds per attempt (default: webhooks.timeout)")
        allow_private: bool = Field(True, description="may call loopback and private addresses (your own network)")

        @field_validator("url")
        @classmethod
        def _url(cls, url: str) -> str:
            try:
                return check_callback_url(url, allow_private=True, where="url")
            except Exception as exc:
                raise ValueError(str(exc).removeprefix("url: ")) from None

    def setup(self, ctx: BotContext) -> None:
        self.key = secret_key(self.settings.secret)
        self.service = _service(ctx, allow_private=self.settings.allow_private, timeout=self.settings.timeout or None)

    def tick_seconds(self) -> float | None:
        return TICK_SECONDS

    def process(self, events: Iterator[Event], ctx: BotContext) -> Iterator[StoreOp]:
        batch_ids = []
        for event in events:
            data = event.payload.get("data") if type(event.payload) is dict else None
            if type(data) is dict and isinstance(data.get("batch_id"), str):
                batch_ids.append(data["batch_id"])
        if batch_ids:
            yield ClaimDeliveries(ctx.bot_id, batch_ids, now_ms())

    def tick(self, ctx: BotContext) -> Iterator[StoreOp]:
        yield from deliver(self.service, ctx, ctx.bot_id, self._destination)

    def _destination(self, delivery: DueDelivery) -> tuple[str, bytes]:
        return self.settings.url, self.key

    def close(self) -> None:
        service = getattr(self, "service", None)
        if service is not None:
            service.close()


class PartnerWebhookSender(SourceBot):
    """Notifies every partner webhook of its sealed batches, at its callback, signed with its secret."""

    name = "partner_webhook_sender"
    description = "notify partner webhooks of their sealed batches"

    def setup(self, ctx: BotContext) -> None:
        self.service = _service(ctx, allow_private=ctx.config.model.server.allow_private_callbacks)
        self.keys: dict[str, bytes] = {}

    def produce(self, ctx: BotContext) -> Iterator[StoreOp]:
        yield from deliver(self.service, ctx, PARTNER_SENDER, self._destination)

    def _destination(self, delivery: DueDelivery) -> tuple[str, bytes] | None:
        if not delivery.callback_url or not delivery.secret:
            return None
        key = self.keys.get(delivery.secret)
        if key is None:
            key = self.keys[delivery.secret] = secret_key(delivery.secret)
        return delivery.callback_url, key

    def close(self) -> None:
        service: Any = getattr(self, "service", None)
        if service is not None:
            service.close()
