"""Partner webhooks as system bots: what `leo run` runs for the webhooks the API creates.

Derived from the store (`leo_runtime.delivery.system`): while any partner webhook exists, one
``webhooks:<type>`` router per object type with webhooks in ``changes`` mode (it reads
``<type>.changes``), one ``webhooks:batcher`` that seals due webhooks, and one
``webhooks:sender`` that notifies them (the bots are `webhook_bots`'). The number of bots grows
with the object types, never with the webhooks. They show in `leo status` like any bot
(pipeline ``system:webhooks``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable

from ..config import BotSpec, Config
from ..store import Store
from .subscriptions import fanout_limits
from .system import SystemPipeline, system_spec
from .webhook_bots import PartnerWebhookSender, WebhookBatcher, WebhookRouter
from .webhooks import router_id

ROUTED_ROWS = 10_000
"""About how many routed changes one commit of a router writes (see `fanout_limits`)."""
TICK = "0.25s"
"""How often the batcher and the sender look at the store (intervals start at one second)."""


class PartnerWebhooks(SystemPipeline):
    """The bots partner webhooks need, derived from the webhooks table."""

    name = "system:webhooks"

    def fingerprint(self, store: Store) -> Hashable:
        return store.webhooks_version()

    def specs(self, store: Store, config: Config) -> list[BotSpec]:
        webhooks = [webhook for webhook in store.webhooks() if webhook.partner_id is not None]
        if not webhooks:
            return []
        starts: dict[str, int] = {}
        for webhook in webhooks:
            if webhook.mode == "changes" and webhook.object_type:
                starts[webhook.object_type] = min(starts.get(webhook.object_type, webhook.start_seq), webhook.start_seq)
        routed = Counter(webhook.object_type for webhook in webhooks if webhook.mode == "changes")
        specs = [
            system_spec(self.name, router_id(object_type), WebhookRouter, {"object_type": object_type},
                        in_queue=f"{object_type}.changes", initial_position=start,
                        limits=fanout_limits(routed[object_type], ROUTED_ROWS, most=1000))
            for object_type, start in sorted(starts.items())
        ]
        specs.append(system_spec(self.name, "webhooks:batcher", WebhookBatcher, {}, schedule=TICK))
        specs.append(system_spec(self.name, "webhooks:sender", PartnerWebhookSender, {}, schedule=TICK))
        return specs
