"""What a bot may see of the store (``ctx.store``): reads only, and for a custom bot only its own.

A bot writes by yielding outputs and changing ``ctx.state``; the runtime commits those with its
checkpoint in one transaction. Handing bots the store itself would let ``ctx.store.append()``
inside ``process`` bypass that commit (and write again on every retry of the run).

Two views. `BotStoreView`, what every bot gets: its own queues (``in``, ``out``, its dead-letter
queue), its own checkpoints, and the objects (the integrator's data). Nothing in it leads to a
partner: no partner webhook (their secrets), no partner stream's partitions, no token hash, no
other bot's checkpoints. `SystemStoreView`, for the bots that deliver to partners (shipped with
leo-runtime; see `Bot.system_view`): any queue, and the partner webhooks' rows they work on.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from .errors import BotError
from .safetext import shown

if TYPE_CHECKING:

    from .events import Event
    from .store.base import CheckpointInfo, ObjectRecord, QueueInfo, Store
    from .store.base_streams import StreamTarget
    from .store.base_webhooks import DueDelivery, WebhookRecord


class BotStoreView:
    """Read-only access for a bot to its own queues and checkpoints, and to the objects. Each
    method is the `Store` method of that name; another queue is a `BotError` naming the bot's."""

    __slots__ = ("_bot_id", "_queues", "_store")

    def __init__(self, store: Store, bot_id: str, queues: Collection[str | None]) -> None:
        self._store = store
        self._bot_id = bot_id
        self._queues = frozenset(queue for queue in queues if queue)

    def _own(self, queue: str) -> str:
        if queue not in self._queues:
            mine = ", ".join(sorted(self._queues)) or "none"
            raise BotError(f"bot '{self._bot_id}' reads only its own queues ({mine}), not {shown(queue)}")
        return queue

    def read(self, queue: str, after: int, limit: int = 1000, max_bytes: int | None = None) -> list[Event]:
        """Events of one of the bot's queues after position `after`, oldest first (see `Store.read`)."""
        return self._store.read(self._own(queue), after, limit, max_bytes)

    def queue_head(self, queue: str) -> int:
        """The position of the newest event of one of the bot's queues (0 if none)."""
        return self._store.queue_head(self._own(queue))

    def count_after(self, queue: str, position: int) -> int:
        """How many retained events of one of the bot's queues lie after `position`."""
        return self._store.count_after(self._own(queue), position)

    def get_checkpoint(self, queue: str) -> int | None:
        """The bot's own checkpoint in one of its queues (None if it never ran on it)."""
        return self._store.get_checkpoint(self._bot_id, self._own(queue))

    def get_object(self, object_type: str, key: str) -> ObjectRecord | None:
        """The latest state of one object, or None if never seen."""
        return self._store.get_object(object_type, key)

    def list_objects(self, object_type: str, *, after: str | None = None, limit: int = 1000) -> list[ObjectRecord]:
        """Live objects of a type in key order, after key `after` (see `Store.list_objects`)."""
        return self._store.list_objects(object_type, after=after, limit=limit)


class SystemStoreView(BotStoreView):
    """The delivery bots' view: any queue, every checkpoint, and the webhook rows they work on
    (their writes are store ops they yield, committed with their runs)."""

    __slots__ = ()

    def __init__(self, store: Store, bot_id: str) -> None:
        super().__init__(store, bot_id, ())

    def _own(self, queue: str) -> str:
        return queue

    def queues(self) -> list[QueueInfo]:
        """Every known queue with its depth and head."""
        return self._store.queues()

    def position_at(self, time_ms: int) -> int:
        """The position just before the first event written at or after `time_ms`."""
        return self._store.position_at(time_ms)

    def checkpoints(self, bot_id: str | None = None) -> list[CheckpointInfo]:
        """Every checkpoint (of one bot when given)."""
        return self._store.checkpoints(bot_id)

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
        """Notifications of `sender` due now, oldest first (with the secrets they are signed with)."""
        return self._store.due_deliveries(sender, now, limit)

    # -- what the stream writers read (their writes are FanOut ops they yield) ----------------------
    def streams_version(self) -> int:
        """A number that changes whenever a stream is created or deleted or a partner revoked."""
        return self._store.streams_version()

    def stream_targets(self, object_type: str) -> list[StreamTarget]:
        """The live streams of an object type, with their partners' scopes and fan-out cursors."""
        return self._store.stream_targets(object_type)
