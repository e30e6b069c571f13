"""The SQLite side of partner streams (`StreamStore`): streams, partitions, checkpoints, leases.

A mixin of `SQLStore`: it uses the store's connections and its one write lock, so each method
is one short ``BEGIN IMMEDIATE`` transaction like every other write. The checks that make a
commit or a lease safe (generation, position, lease holder) run inside that transaction.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from operator import itemgetter
from typing import TYPE_CHECKING

from ..errors import CheckpointMoved, Conflict, NotFound, QuotaExceeded
from ..timeutil import now_ms
from .base_streams import (
    SHARED_LOG_PREFIX,
    FanOut,
    ShareWith,
    StreamPartitionRecord,
    StreamRecord,
    StreamStore,
    StreamTarget,
    check_lease,
    shared_log,
)
from .dialects import Connection

if TYPE_CHECKING:
    from .sql import SQLStore

STREAMS_SCHEMA = 6
"""The migration that adds the streams tables (a read-only opener may look at an older file)."""
FANOUT_SCHEMA = 9
"""The migration that adds fan-out cursors and the streams version."""
SHARED_SCHEMA = 11
"""The migration that adds shared logs."""
_LIVE = "JOIN partners p ON p.id = s.partner_id WHERE p.revoked_at IS NULL"

_STREAM_COLUMNS = "id, partner_id, object_type, query, generation, start_position, created_at"
_SHARED_COLUMNS = "log, joined_at"
_PARTITION_COLUMNS = "partition, checkpoint, updated_at, lease_id, lease_expires_at"


class SQLStreams(StreamStore):
    """`StreamStore` over the tables of migration 6 (see `leo_runtime.store.migrations`)."""

    if TYPE_CHECKING:
        def _conn(self) -> Connection: ...
        def _write(self) -> AbstractContextManager[Connection]: ...
        def _at_least(self, version: int) -> bool: ...
        def _queue_id(self, conn: Connection, name: str, *, create: bool) -> int | None: ...

    def create_stream(
        self, stream_id: str, partner_id: int, object_type: str, query_json: str | None, partitions: int,
        start_position: int | None, *, max_streams: int | None = None, share: ShareWith | None = None,
    ) -> StreamRecord:
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM streams WHERE id = ?", (stream_id,)).fetchone():
                raise Conflict(f"stream '{stream_id}' already exists")
            if max_streams is not None:  # inside the write lock: no other create can pass between count and insert
                owned = conn.execute("SELECT COUNT(*) FROM streams WHERE partner_id = ?", (partner_id,)).fetchone()[0]
                if owned >= max_streams:
                    raise QuotaExceeded("streams", max_streams, f"a partner may have at most {max_streams} streams and "
                                        f"this one has {owned}; delete one (DELETE /v1/streams/ID) or ask the operator "
                                        "to raise server.limits.streams")
            now = now_ms()
            log = None
            if start_position is None:  # inside the write lock: nothing commits between this and the insert
                start_position = conn.execute("SELECT last FROM positions").fetchone()[0]
                if share is not None and _can_follow(conn, share, object_type, start_position, now):
                    scope = conn.execute("SELECT scope FROM partners WHERE id = ?", (partner_id,)).fetchone()
                    log = shared_log(object_type, query_json, scope[0] if scope else None, partitions)
            conn.execute(
                f"INSERT INTO streams({_STREAM_COLUMNS}, partitions, cursor, {_SHARED_COLUMNS}) "
                "VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?)",
                (stream_id, partner_id, object_type, query_json, start_position, now, partitions,
                 None if log else start_position, log, start_position if log else None),
            )
            conn.execute("UPDATE streams_version SET version = version + 1")
            conn.executemany(
                "INSERT INTO stream_partitions(stream_id, partition, checkpoint, updated_at) VALUES (?, ?, ?, ?)",
                [(stream_id, number, start_position, now) for number in range(partitions)],
            )
            return _one(conn, stream_id, _SHARED_COLUMNS)  # type: ignore[return-value]

    def stream(self, stream_id: str) -> StreamRecord | None:
        if not self._at_least(STREAMS_SCHEMA):
            return None
        with self.snapshot():  # the stream and its partitions as of one moment
            return _one(self._conn(), stream_id, self._shared_columns())

    def streams(
        self, partner_id: int | None = None, *, after: tuple[int, str] | None = None, limit: int | None = None
    ) -> list[StreamRecord]:
        if not self._at_least(STREAMS_SCHEMA):
            return []
        conn = self._conn()
        clauses, params = [], []
        if partner_id is not None:
            clauses.append("partner_id = ?")
            params.append(partner_id)
        if after is not None:
            clauses.append("(created_at > ? OR (created_at = ? AND id > ?))")
            params += [after[0], after[0], after[1]]
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        page = f" LIMIT {int(limit)}" if limit is not None else ""
        with self.snapshot():  # streams and their partitions as of one moment (a delete between would split them)
            rows = conn.execute(f"SELECT {_STREAM_COLUMNS}, {self._shared_columns()} FROM streams{where} "
                                f"ORDER BY created_at, id{page}", params).fetchall()
            partitions: dict[str, list[StreamPartitionRecord]] = {}
            for start in range(0, len(rows), 500):
                ids = [row[0] for row in rows[start:start + 500]]
                sql = (f"SELECT stream_id, {_PARTITION_COLUMNS} FROM stream_partitions "
                       f"WHERE stream_id IN ({','.join('?' * len(ids))}) ORDER BY stream_id, partition")
                for stream_id, *columns in conn.execute(sql, ids):
                    partitions.setdefault(stream_id, []).append(StreamPartitionRecord(*columns))
        return [_record(row, tuple(partitions.get(row[0], ()))) for row in rows]

    def _shared_columns(self) -> str:
        return _SHARED_COLUMNS if self._at_least(SHARED_SCHEMA) else "NULL, NULL"

    def live_stream_ids(self) -> tuple[str, ...]:
        if not self._at_least(STREAMS_SCHEMA):
            return ()
        rows = self._conn().execute(
            "SELECT s.id FROM streams s JOIN partners p ON p.id = s.partner_id WHERE p.revoked_at IS NULL ORDER BY s.id"
        )
        return tuple(row[0] for row in rows)

    def delete_stream(self, stream_id: str) -> bool:
        with self._write() as conn:
            conn.execute("DELETE FROM stream_partitions WHERE stream_id = ?", (stream_id,))
            deleted = conn.execute("DELETE FROM streams WHERE id = ?", (stream_id,)).rowcount > 0
            if deleted:
                conn.execute("UPDATE streams_version SET version = version + 1")
            return deleted

    def streams_version(self) -> int:
        if not self._at_least(FANOUT_SCHEMA):
            return 0
        return self._conn().execute("SELECT version FROM streams_version").fetchone()[0]

    def stream_object_types(self) -> tuple[str, ...]:
        if not self._at_least(FANOUT_SCHEMA):
            return ()
        rows = self._conn().execute(f"SELECT DISTINCT s.object_type FROM streams s {_LIVE} ORDER BY s.object_type")
        return tuple(row[0] for row in rows)

    def stream_targets(self, object_type: str) -> list[StreamTarget]:
        if not self._at_least(FANOUT_SCHEMA):
            return []
        log = "s.log" if self._at_least(SHARED_SCHEMA) else "NULL"
        rows = self._conn().execute(
            f"SELECT s.id, s.partitions, s.query, p.scope, s.cursor, {log} FROM streams s {_LIVE} "
            "AND s.object_type = ? ORDER BY s.id",
            (object_type,),
        )
        return [StreamTarget(*row) for row in rows]

    def commit_stream_checkpoint(
        self, stream_id: str, partition: int, position: int, generation: int, lease_id: str | None
    ) -> StreamPartitionRecord:
        with self._write() as conn:
            current, held = _partition_for_update(conn, stream_id, partition)
            if generation != current:
                raise Conflict(
                    f"generation {generation} is stale: stream '{stream_id}' was reset (its generation is {current}); "
                    "read again from its checkpoint and commit with the generation the read returns"
                )
            check_lease(held, lease_id, stream_id, partition, now_ms())
            if position < held.checkpoint:
                raise Conflict(
                    f"position is behind the checkpoint of partition {partition}: a checkpoint only moves forward "
                    "(POST /v1/streams/{id}/reset moves it back)"
                )
            if position == held.checkpoint:
                return held  # committed again: harmless
            updated = now_ms()
            conn.execute(
                "UPDATE stream_partitions SET checkpoint = ?, updated_at = ? WHERE stream_id = ? AND partition = ?",
                (position, updated, stream_id, partition),
            )
            return StreamPartitionRecord(partition, position, updated, held.lease_id, held.lease_expires_at)

    def reset_stream(self, stream_id: str, checkpoints: Mapping[int, int]) -> StreamRecord:
        with self._write() as conn:
            if not conn.execute("UPDATE streams SET generation = generation + 1 WHERE id = ?", (stream_id,)).rowcount:
                raise NotFound(f"no stream '{stream_id}'")
            updated = now_ms()
            for partition, position in checkpoints.items():
                moved = conn.execute(
                    "UPDATE stream_partitions SET checkpoint = ?, updated_at = ? WHERE stream_id = ? AND partition = ?",
                    (position, updated, stream_id, partition),
                ).rowcount
                if not moved:
                    raise NotFound(f"stream '{stream_id}' has no partition {partition}")
            return _one(conn, stream_id, self._shared_columns())  # type: ignore[return-value]

    def lease_stream_partition(
        self, stream_id: str, partition: int, lease_id: str, ttl_ms: int, *, renew: str | None = None
    ) -> StreamPartitionRecord:
        with self._write() as conn:
            _, held = _partition_for_update(conn, stream_id, partition)
            now = now_ms()
            if renew is not None:
                if not (held.leased(now) and held.lease_id == renew):
                    raise Conflict(f"lease {renew!r} on partition {partition} is no longer live (it expired or was "
                                   "taken): take a new lease without Lease-Id, then read from the checkpoint")
                lease_id = renew
            elif held.leased(now):
                raise Conflict(f"partition {partition} is leased by another consumer until its lease expires; "
                               "lease another partition or try again later")
            conn.execute(
                "UPDATE stream_partitions SET lease_id = ?, lease_expires_at = ? WHERE stream_id = ? AND partition = ?",
                (lease_id, now + ttl_ms, stream_id, partition),
            )
            return StreamPartitionRecord(partition, held.checkpoint, held.updated_at, lease_id, now + ttl_ms)

    def stream_records(self, queue: str, after: int, limit: int, max_bytes: int) -> list[tuple[int, bytes]]:
        conn = self._conn()
        queue_id = self._queue_id(conn, queue, create=False)
        if queue_id is None:
            return []
        rows = conn.execute(
            "SELECT seq, CAST(payload AS BLOB) FROM events WHERE queue_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (queue_id, after, limit),
        ).fetchall()
        if sum(map(len, map(itemgetter(1), rows))) >= max_bytes:  # in C: measured row by row only then
            total = 0
            for index, (_, payload) in enumerate(rows):
                total += len(payload)
                if total >= max_bytes:
                    del rows[index + 1:]
                    break
        return rows

    def release_stream_partition(self, stream_id: str, partition: int, lease_id: str) -> bool:
        with self._write() as conn:
            return conn.execute(
                "UPDATE stream_partitions SET lease_id = NULL, lease_expires_at = NULL "
                "WHERE stream_id = ? AND partition = ? AND lease_id = ? AND lease_expires_at > ?",
                (stream_id, partition, lease_id, now_ms()),
            ).rowcount > 0


def apply_fanout(store: SQLStore, conn: Connection, op: FanOut) -> dict[str, int]:
    """Apply a writer's `FanOut` inside its run's transaction: move the cursors (compare-and-set),
    append the records of the streams that still exist; return the partition queues' heads."""
    ids = [key for key in op.records.keys() | {stream_id for stream_id, _, _ in op.cursors}
           if not key.startswith(SHARED_LOG_PREFIX)]
    alive: set[str] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        alive.update(row[0] for row in conn.execute(f"SELECT id FROM streams WHERE id IN ({','.join('?' * len(chunk))})",
                                                    chunk))
    for stream_id, expected, new in op.cursors:
        if stream_id in alive and not conn.execute(
            "UPDATE streams SET cursor = ? WHERE id = ? AND cursor IS ?", (new, stream_id, expected)
        ).rowcount:
            raise CheckpointMoved(f"stream '{stream_id}': its fan-out cursor moved during the writer's run; "
                                  "the run was rolled back and starts again")
    records = [record for key, stream_records in op.records.items()
               if key in alive or key.startswith(SHARED_LOG_PREFIX) for record in stream_records]
    return store._insert(conn, records)[2] if records else {}


def _one(conn: Connection, stream_id: str, shared_columns: str) -> StreamRecord | None:
    row = conn.execute(f"SELECT {_STREAM_COLUMNS}, {shared_columns} FROM streams WHERE id = ?", (stream_id,)).fetchone()
    if row is None:
        return None
    return _record(row, tuple(_partitions(conn, stream_id)))


def _record(row: tuple, partitions: tuple[StreamPartitionRecord, ...]) -> StreamRecord:
    """A stream from a row of `_STREAM_COLUMNS` then `_SHARED_COLUMNS`."""
    *columns, log, joined_at = row
    return StreamRecord(*columns, partitions=partitions, log=log, joined_at=joined_at)


def _can_follow(conn: Connection, share: ShareWith, object_type: str, start: int, now: int) -> bool:
    """Whether a stream starting at `start` can follow the writer at once (inside a write
    transaction): the writer has written every change of its queue, its checkpoint at or past the
    queue's head (read first: a change committed after it lies after `start`, taken before). A
    writer that serves no live stream yet (it never ran, or its streams are gone) is set to start
    at `start`: nobody waits for what lies before."""
    head = conn.execute("SELECT head FROM queues WHERE name = ?", (share.changes,)).fetchone()
    checkpoint = conn.execute("SELECT position FROM checkpoints WHERE bot_id = ? AND queue = ?",
                              (share.writer, share.changes)).fetchone()
    if checkpoint is not None and checkpoint[0] >= (head[0] if head else 0):
        return True
    if conn.execute(f"SELECT 1 FROM streams s {_LIVE} AND s.object_type = ? LIMIT 1", (object_type,)).fetchone():
        return False  # it is behind, for streams that wait for it
    conn.execute(
        "INSERT INTO checkpoints(bot_id, queue, position, updated_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT(bot_id, queue) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
        (share.writer, share.changes, start, now),
    )
    return True


def _partitions(conn: Connection, stream_id: str) -> Iterator[StreamPartitionRecord]:
    rows = conn.execute(
        f"SELECT {_PARTITION_COLUMNS} FROM stream_partitions WHERE stream_id = ? ORDER BY partition", (stream_id,)
    )
    for row in rows:
        yield StreamPartitionRecord(*row)


def _partition_for_update(conn: Connection, stream_id: str, partition: int) -> tuple[int, StreamPartitionRecord]:
    """(the stream's generation, the partition) inside a write transaction; NotFound if absent."""
    row = conn.execute(
        f"SELECT s.generation, {', '.join('p.' + c for c in _PARTITION_COLUMNS.split(', '))} FROM streams s "
        "JOIN stream_partitions p ON p.stream_id = s.id WHERE s.id = ? AND p.partition = ?",
        (stream_id, partition),
    ).fetchone()
    if row is None:
        raise NotFound(f"no partition {partition} in stream '{stream_id}'")
    return row[0], StreamPartitionRecord(*row[1:])
