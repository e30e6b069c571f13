"""Partner webhooks as system bots: what `leo run` runs for the webhooks the API creates.

Derived from the store (`leo_runtime.system`): while any partner webhook exists, one
``webhooks:<type>`` router per object type with webhooks in ``changes`` mode (it reads
``<type>.changes``), one ``webhooks:batcher`` that seals due webhooks, and one
``webhooks:sender`` that notifies them. The number of bots grows with the object types, never
with the webhooks. They show in `leo status` like any bot (pipeline ``system:webhooks``).
"""

from __future__ import annotations

from collections.abc import Hashable

from ..config import BotSpec, Config
from ..store import Store
from ..system import SystemPipeline, register_system_pipeline, system_spec
from .webhooks import router_id

TICK = "0.25s"
"""How often the batcher and the sender look at the store (intervals start at one second)."""


class PartnerWebhooks(SystemPipeline):
    """The bots partner webhooks need, derived from the webhooks table."""

    name = "system:webhooks"

    def fingerprint(self, store: Store) -> Hashable:
        return store.webhooks_version()

    def specs(self, store: Store, config: Config) -> list[BotSpec]:
        from ..bots.batcher import WebhookBatcher, WebhookRouter
        from ..bots.webhook_sender import PartnerWebhookSender

        webhooks = [webhook for webhook in store.webhooks() if webhook.partner_id is not None]
        if not webhooks:
            return []
        starts: dict[str, int] = {}
        for webhook in webhooks:
            if webhook.mode == "changes" and webhook.object_type:
                starts[webhook.object_type] = min(starts.get(webhook.object_type, webhook.start_seq), webhook.start_seq)
        specs = [
            system_spec(self.name, router_id(object_type), WebhookRouter, {"object_type": object_type},
                        in_queue=f"{object_type}.changes", initial_position=start)
            for object_type, start in sorted(starts.items())
        ]
        specs.append(system_spec(self.name, "webhooks:batcher", WebhookBatcher, {}, schedule=TICK))
        specs.append(system_spec(self.name, "webhooks:sender", PartnerWebhookSender, {}, schedule=TICK))
        return specs


register_system_pipeline(PartnerWebhooks())
