"""What a bot may see of the store (``ctx.store``): reads only.

A bot writes by yielding outputs and changing ``ctx.state``; the runtime commits those with its
checkpoint in one transaction. Handing bots the store itself would let ``ctx.store.append()``
inside ``process`` bypass that commit (and write again on every retry of the run).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:

    from .events import Event
    from .store.base import CheckpointInfo, ObjectRecord, QueueInfo, Store
    from .store.base_webhooks import DueDelivery, WebhookRecord


class StoreView:
    """Read-only access to the store for bots; every method is the `Store` method of that name."""

    __slots__ = ("_store",)

    def __init__(self, store: Store) -> None:
        self._store = store

    def read(self, queue: str, after: int, limit: int = 1000, max_bytes: int | None = None) -> list[Event]:
        """Events of `queue` after position `after`, oldest first (see `Store.read`)."""
        return self._store.read(queue, after, limit, max_bytes)

    def queue_head(self, queue: str) -> int:
        """The position of the newest event of `queue` (0 if none)."""
        return self._store.queue_head(queue)

    def queues(self) -> list[QueueInfo]:
        """Every known queue with its depth and head."""
        return self._store.queues()

    def count_after(self, queue: str, position: int) -> int:
        """How many retained events of `queue` lie after `position`."""
        return self._store.count_after(queue, position)

    def position_at(self, time_ms: int) -> int:
        """The position just before the first event written at or after `time_ms`."""
        return self._store.position_at(time_ms)

    def get_checkpoint(self, bot_id: str, queue: str) -> int | None:
        """A bot's checkpoint in `queue` (None if it never ran on it)."""
        return self._store.get_checkpoint(bot_id, queue)

    def checkpoints(self, bot_id: str | None = None) -> list[CheckpointInfo]:
        """Every checkpoint (of one bot when given)."""
        return self._store.checkpoints(bot_id)

    def get_object(self, object_type: str, key: str) -> ObjectRecord | None:
        """The latest state of one object, or None if never seen."""
        return self._store.get_object(object_type, key)

    def list_objects(self, object_type: str, *, after: str | None = None, limit: int = 1000) -> list[ObjectRecord]:
        """Live objects of a type in key order, after key `after` (see `Store.list_objects`)."""
        return self._store.list_objects(object_type, after=after, limit=limit)

    # -- what the webhook bots read (their writes are store ops they yield) -------------------------
    def webhooks_version(self) -> int:
        """A number that changes whenever a webhook is created, changed or deleted."""
        return self._store.webhooks_version()

    def webhook(self, webhook_id: str) -> WebhookRecord | None:
        """One webhook (or batcher subscription) by id."""
        return self._store.webhook(webhook_id)

    def route_subscriptions(self, source_queue: str) -> list[tuple[WebhookRecord, str | None]]:
        """The webhooks a router of `source_queue` serves, each with its partner's scope."""
        return self._store.route_subscriptions(source_queue)

    def next_seal_at(self) -> int | None:
        """The earliest due time of partner webhooks that seal windows."""
        return self._store.next_seal_at()

    def due_snapshots(self, now: int) -> list[tuple[WebhookRecord, str | None]]:
        """Partner webhooks whose due run is a snapshot, or that have one being built."""
        return self._store.due_snapshots(now)

    def due_deliveries(self, sender: str, now: int, limit: int = 1000) -> list[DueDelivery]:
        """Notifications of `sender` due now, oldest first."""
        return self._store.due_deliveries(sender, now, limit)
