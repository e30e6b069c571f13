"""What `leo run` is composed of besides the pipelines file: the system pipelines.

The runtime runs what it is handed; nothing registers itself by being imported. This is the one
place that names the system pipelines (partner webhooks and partner streams), for ``leo run``
and for the commands that show their bots (``leo status``).
"""

from __future__ import annotations

from ..delivery.partner_webhooks import PartnerWebhooks
from ..delivery.stream_writers import StreamWriters
from ..delivery.system import SystemPipeline


def system_pipelines() -> list[SystemPipeline]:
    """The store-derived bots `leo run` runs beside the file's: partner webhooks, partner streams."""
    return [PartnerWebhooks(), StreamWriters()]
