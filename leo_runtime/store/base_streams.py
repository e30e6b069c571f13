"""The store interface for partner streams: streams, their partitions, checkpoints and leases.

`Store` inherits these methods; they live apart so the streams code stays in one place. A
stream's records are ordinary queue events (see `leo_runtime.delivery.streams`): only its
bookkeeping is here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import Conflict


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


class StreamStore(ABC):
    """The store's partner streams (`Store` implements these too; a backend must provide them).

    Every write is one transaction; reads see the last commit. Times are epoch milliseconds.
    """

    @abstractmethod
    def create_stream(
        self, stream_id: str, partner_id: int, object_type: str, query_json: str | None, partitions: int,
        start_position: int | None,
    ) -> StreamRecord:
        """Add a stream with `partitions` partitions, generation 1, in ONE transaction.

        ``start_position`` None means "now": the newest position handed out, taken inside the
        transaction, so every change committed after this call returns lies after it. Each
        partition's checkpoint starts there. Raises `Conflict` when the id is taken."""

    @abstractmethod
    def stream(self, stream_id: str) -> StreamRecord | None:
        """One stream with its partitions (in partition order), or None."""

    @abstractmethod
    def streams(self, partner_id: int | None = None) -> list[StreamRecord]:
        """Every stream (of one partner when given), by creation time then id."""

    @abstractmethod
    def live_stream_ids(self) -> tuple[str, ...]:
        """The ids of the streams whose partner is not revoked, sorted: cheap, for the runtime's
        check whether stream writers must start or stop."""

    @abstractmethod
    def delete_stream(self, stream_id: str) -> bool:
        """Remove a stream and its partitions in ONE transaction; False when it is unknown.
        Its partition queues keep their events until retention prunes them."""

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
