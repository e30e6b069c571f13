"""The store interface for partner streams: streams, their partitions, checkpoints and leases.

`Store` inherits these methods; they live apart so the streams code stays in one place. A
stream's records are ordinary queue events (see `leo_runtime.delivery.streams`): only its
bookkeeping is here.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import Conflict
from .base_webhooks import StoreOp

if TYPE_CHECKING:
    from .base import PendingEvent


@dataclass(frozen=True, slots=True)
class StreamPartitionRecord:
    """One partition of a stream: the partner's ``checkpoint`` (a position, exclusive: reading
    resumes after it) and the consumer lease on it (``lease_id`` None, or ``lease_expires_at``
    in the past: nobody holds it)."""

    partition: int
    checkpoint: int
    updated_at: int
    lease_id: str | None = None
    lease_expires_at: int | None = None

    def leased(self, now: int) -> bool:
        """Whether a lease on this partition is live at `now` (epoch ms)."""
        return self.lease_id is not None and (self.lease_expires_at or 0) > now


@dataclass(frozen=True, slots=True)
class StreamRecord:
    """A partner's stream: its object type, query (JSON text, None for every change), its
    partitions by number, its ``generation`` (grows with each reset) and ``start_position``,
    where its writer starts reading ``{object_type}.changes``."""

    id: str
    partner_id: int
    object_type: str
    query_json: str | None
    generation: int
    start_position: int
    created_at: int
    partitions: tuple[StreamPartitionRecord, ...] = ()
    log: str | None = None
    """The base of the shared partition queues the stream reads (``streams.log-<digest>``), or
    None: its own (``streams.<id>``). See `shared_log`."""
    joined_at: int | None = None
    """With `log`: the position after which the shared queues' records are the stream's."""


@dataclass(frozen=True, slots=True)
class StreamTarget:
    """A live stream as its object type's writer sees it (`StreamStore.stream_targets`).

    ``cursor`` is where the writer stands for this stream: None when the stream follows the
    writer's own checkpoint in ``{object_type}.changes``; else the position through which its
    records are written, behind the writer's checkpoint while it catches up (a new stream with
    ``start_at`` earliest or a time), ahead of it while the writer has not reached the stream's
    start yet (a new stream with ``start_at`` now)."""

    id: str
    partitions: int
    query_json: str | None
    scope_json: str | None
    cursor: int | None
    log: str | None = None  # its shared partition queues' base (it then always follows the writer)


SHARED_LOG_PREFIX = "log:"
"""The `FanOut.records` key of a shared log's records: ``log:`` and the log's base."""


def shared_log(object_type: str, query_json: str | None, scope_json: str | None, partitions: int) -> str:
    """The base of the partition queues that the streams of one object type, query, partner
    scope and partition count share: streams that want the same records from the same moment on
    read one copy of them (`StreamStore.create_stream` with ``share=``). The name is a digest of
    those four: the same for every stream and process, never a stream id."""
    what = "\x00".join([object_type, query_json or "", scope_json or "", str(partitions)])
    return "streams.log-" + hashlib.blake2b(what.encode("utf-8", "surrogatepass"), digest_size=10).hexdigest()


@dataclass(frozen=True, slots=True)
class ShareWith:
    """How `StreamStore.create_stream` may start a stream on a shared log: when the object type's
    writer (bot `writer`, reading `changes`) has written every change there is, the new stream
    reads `shared_log` from its start on instead of a copy of its own."""

    writer: str
    changes: str


@dataclass(slots=True)
class FanOut(StoreOp):
    """Records an object type's writer fans out, and the stream cursors they move, committed with
    its run (its checkpoint in ``{object_type}.changes``).

    ``records`` maps a stream id to its records, each a `PendingEvent` for one of its partition
    queues, appended in order; a key ``log:<base>`` holds the records of a shared log (`shared_log`),
    appended whether or not its streams still exist. ``cursors`` are ``(stream id, expected, new)``: the stream's cursor
    moves from ``expected`` to ``new`` (None: it now follows the writer). A stream that no longer
    exists is skipped, its records too (it was deleted during the run); one whose cursor is not
    ``expected`` fails the whole run with `CheckpointMoved` (nothing is written; it is redone)."""

    records: Mapping[str, Sequence[PendingEvent]] = field(default_factory=dict)
    cursors: Sequence[tuple[str, int | None, int | None]] = ()


class StreamStore(ABC):
    """The store's partner streams (`Store` implements these too; a backend must provide them).

    Every write is one transaction; reads see the last commit. Times are epoch milliseconds.
    """

    @abstractmethod
    def create_stream(
        self, stream_id: str, partner_id: int, object_type: str, query_json: str | None, partitions: int,
        start_position: int | None, *, max_streams: int | None = None, share: ShareWith | None = None,
    ) -> StreamRecord:
        """Add a stream with `partitions` partitions, generation 1, in ONE transaction.

        ``start_position`` None means "now": the newest position handed out, taken inside the
        transaction, so every change committed after this call returns lies after it. Each
        partition's checkpoint, and the stream's fan-out cursor, start there. Raises `Conflict`
        when the id is taken, and `QuotaExceeded` (writing nothing) when the partner already has
        `max_streams` streams: counted in the same transaction, so concurrent creates cannot
        pass it. The streams version grows.

        With `share` and a start of now: when the writer's checkpoint in ``share.changes`` is at
        or past that queue's head (it has written every change there is), the stream follows the
        writer at once on its `shared_log` (``log`` set, ``joined_at`` its start, no cursor):
        every change the writer writes from then on lies after the start, and is written once
        for all the streams on that log. A writer that serves no live stream of the type (it
        never ran, or its streams are gone) is first set to start there. Otherwise the stream
        gets queues of its own, as without `share`."""

    @abstractmethod
    def stream(self, stream_id: str) -> StreamRecord | None:
        """One stream with its partitions (in partition order), or None."""

    @abstractmethod
    def streams(
        self, partner_id: int | None = None, *, after: tuple[int, str] | None = None, limit: int | None = None
    ) -> list[StreamRecord]:
        """Every stream (of one partner when given), by creation time then id; a page of them
        with `after` (the ``(created_at, id)`` of the last stream of the previous page) and
        `limit`. One read: a page never holds a stream twice or skips one that existed
        throughout the paging."""

    @abstractmethod
    def live_stream_ids(self) -> tuple[str, ...]:
        """The ids of the streams whose partner is not revoked, sorted."""

    @abstractmethod
    def delete_stream(self, stream_id: str) -> bool:
        """Remove a stream and its partitions in ONE transaction; False when it is unknown.
        Its partition queues keep their events until retention prunes them. The streams
        version grows."""

    @abstractmethod
    def streams_version(self) -> int:
        """A number that changes whenever a stream is created or deleted or a partner is
        revoked (cheap: the stream writers and the runtime compare it)."""

    @abstractmethod
    def stream_object_types(self) -> tuple[str, ...]:
        """The object types that have streams of live partners, sorted (one writer each)."""

    @abstractmethod
    def stream_targets(self, object_type: str) -> list[StreamTarget]:
        """The streams of `object_type` whose partner is live, by id, with their partner's
        scope and fan-out cursor: what that type's writer serves. One read."""

    @abstractmethod
    def commit_stream_checkpoint(
        self, stream_id: str, partition: int, position: int, generation: int, lease_id: str | None
    ) -> StreamPartitionRecord:
        """Move a partition's checkpoint forward to `position`, atomically checked: raises
        `NotFound` (no such stream or partition) or `Conflict` (and writes nothing) when
        `generation` is not the stream's, `position` is behind the checkpoint, or a live lease is
        held under another id than `lease_id` (or `lease_id` names no live lease). Committing
        the checkpoint again is harmless. Returns the partition as it is afterwards."""

    @abstractmethod
    def reset_stream(self, stream_id: str, checkpoints: Mapping[int, int]) -> StreamRecord:
        """Set the checkpoints of some partitions (partition -> position, backwards or forwards)
        and add 1 to the stream's generation, in ONE transaction. Raises `NotFound` for an
        unknown stream or partition. Returns the stream afterwards."""

    @abstractmethod
    def lease_stream_partition(
        self, stream_id: str, partition: int, lease_id: str, ttl_ms: int, *, renew: str | None = None
    ) -> StreamPartitionRecord:
        """Take the partition's lease as `lease_id` for `ttl_ms` when nobody holds a live one,
        or extend it when `renew` is the live lease's id (the id then stays `renew`). Atomic.
        Raises `Conflict` when another live lease holds it (or `renew` is not live), `NotFound`
        for an unknown stream or partition."""

    @abstractmethod
    def stream_records(self, queue: str, after: int, limit: int, max_bytes: int) -> list[tuple[int, bytes]]:
        """``(position, payload JSON text as UTF-8 bytes)`` of the events of `queue` after
        `after`, oldest first: at most `limit`, and stopping with the event whose payload makes
        the total reach `max_bytes` bytes (at least one when there is one). Bytes, because an
        answer is bytes: the text is never decoded on its way out. `Store.read` without the
        envelope: what a partition read needs, and nothing more (it is the hot path)."""

    @abstractmethod
    def release_stream_partition(self, stream_id: str, partition: int, lease_id: str) -> bool:
        """Give the lease up at once if `lease_id` holds it; False when it did not."""


def check_lease(held: StreamPartitionRecord, lease_id: str | None, stream_id: str, partition: int, now: int) -> None:
    """Raise `Conflict` unless a caller sending `lease_id` (None: no Lease-Id header) may read or
    commit the partition at `now`: nobody holds a live lease and the caller names none, or the
    caller names the live one. A caller naming a lease that is no longer live is refused too,
    so a consumer whose lease expired learns it before it commits."""
    if held.leased(now):
        if lease_id != held.lease_id:
            raise Conflict(
                f"partition {partition} of stream '{stream_id}' is leased by a consumer: "
                + ("send the Lease-Id header of the live lease" if lease_id is None
                   else "the Lease-Id sent is not the live lease (it expired and was taken); take a new lease")
            )
    elif lease_id is not None:
        raise Conflict(f"the lease sent (Lease-Id) on partition {partition} of stream '{stream_id}' is no longer live: "
                       "take a new lease, then read from the checkpoint")
