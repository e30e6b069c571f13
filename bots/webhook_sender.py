"""The `webhook_sender` bot: notifies a URL of each batch a `batcher` sealed.

``webhook_sender`` (pipelines.yaml) reads the ``batch.ready`` events of a `batcher` and POSTs
each one, signed (Standard Webhooks), to its ``url``: at least once, retried on
``webhooks.retry_schedule`` (kept in the store: a restart resumes it), ``Retry-After``
honoured, a callback that is down never holding up anything else. Partner webhooks' own sender
does the same for every partner webhook (`delivery.webhook_bots.PartnerWebhookSender`).

It hands the POSTs to a `DeliveryService` (its own event loop): its runs take due notifications
from the store, give them to it, and commit what came back.
"""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import Field, field_validator

from leo_runtime.bot import BotContext, BotSettings, SinkBot, register_bot, system_context
from leo_runtime.config.models import OptionalDuration
from leo_runtime.delivery.callbacks import check_callback_url
from leo_runtime.delivery.webhook_bots import deliver, start_service
from leo_runtime.delivery.webhooks import secret_key
from leo_runtime.events import Event
from leo_runtime.store.base_webhooks import ClaimDeliveries, DueDelivery, StoreOp
from leo_runtime.timeutil import now_ms

TICK_SECONDS = 0.25
"""How often a sender looks for due notifications and commits outcomes."""


class WebhookSenderSettings(BotSettings):
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


@register_bot("webhook_sender")
class WebhookSender(SinkBot[WebhookSenderSettings]):
    """POSTs a signed notification to ``url`` for every batch.ready event of its ``in`` queue."""

    description = "notify a URL of each sealed batch (signed; retried on webhooks.retry_schedule)"
    system_view = True  # its own due notifications and the webhooks settings
    reads = ("webhooks", "server.public_url")

    def setup(self, ctx: BotContext) -> None:
        self.key = secret_key(self.settings.secret)
        self.service = start_service(system_context(ctx), allow_private=self.settings.allow_private,
                                     timeout=self.settings.timeout or None)

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

    def _destination(self, delivery: DueDelivery) -> tuple[str, bytes, bytes | None]:
        return self.settings.url, self.key, None

    def close(self) -> None:
        service = getattr(self, "service", None)
        if service is not None:
            service.close()
