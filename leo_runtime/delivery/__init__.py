"""Delivery to partners: webhook batches and streams, built on the store and the built-in bots.

Importing this package registers their system pipelines (see `leo_runtime.system`).
"""

from . import (
    partner_webhooks,  # noqa: F401  (registers the partner webhooks' system bots)
    stream_writers,  # noqa: F401  (registers the partner streams' writers)
)
