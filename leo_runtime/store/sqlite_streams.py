"""The SQLite side of partner streams (`StreamStore`): streams, partitions, checkpoints, leases.

A mixin of `SQLiteStore`: it uses the store's connections and its one write lock, so each method
is one short ``BEGIN IMMEDIATE`` transaction like every other write. The checks that make a
commit or a lease safe (generation, position, lease holder) run inside that transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from operator import itemgetter
from typing import TYPE_CHECKING

from ..errors import Conflict, NotFound
from ..timeutil import now_ms
from .base_streams import StreamPartitionRecord, StreamRecord, StreamStore, check_lease

STREAMS_SCHEMA = 6
"""The migration that adds the streams tables (a read-only opener may look at an older file)."""

_STREAM_COLUMNS = "id, partner_id, object_type, query, generation, start_position, created_at"
_PARTITION_COLUMNS = "partition, checkpoint, updated_at, lease_id, lease_expires_at"


class SQLiteStreams(StreamStore):
    """`StreamStore` over the tables of migration 6 (see `leo_runtime.store.migrations`)."""

    if TYPE_CHECKING:
        def _conn(self) -> sqlite3.Connection: ...
        def _write(self) -> AbstractContextManager[sqlite3.Connection]: ...
        def _at_least(self, version: int) -> bool: ...
        def _queue_id(self, conn: sqlite3.Connection, name: str, *, create: bool) -> int | None: ...

    def create_stream(
        self, stream_id: str, partner_id: int, object_type: str, query_json: str | None, partitions: int,
        start_position: int | None,
    ) -> StreamRecord:
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM streams WHERE id = ?", (stream_id,)).fetchone():
                raise Conflict(f"stream '{stream_id}' already exists")
            now = now_ms()
            if start_position is None:  # inside the write lock: nothing commits between this and the insert
                start_position = conn.execute("SELECT last FROM positions").fetchone()[0]
            conn.execute(
                f"INSERT INTO streams({_STREAM_COLUMNS}, partitions) VALUES (?, ?, ?, ?, 1, ?, ?, ?)",
                (stream_id, partner_id, object_type, query_json, start_position, now, partitions),
            )
            conn.executemany(
                "INSERT INTO stream_partitions(stream_id, partition, checkpoint, updated_at) VALUES (?, ?, ?, ?)",
                [(stream_id, number, start_position, now) for number in range(partitions)],
            )
            return _one(conn, stream_id)  # type: ignore[return-value]

    def stream(self, stream_id: str) -> StreamRecord | None:
        if not self._at_least(STREAMS_SCHEMA):
            return None
        return _one(self._conn(), stream_id)

    def streams(self, partner_id: int | None = None) -> list[StreamRecord]:
        if not self._at_least(STREAMS_SCHEMA):
            return []
        conn = self._conn()
        where, params = (" WHERE partner_id = ?", (partner_id,)) if partner_id is not None else ("", ())
        rows = conn.execute(f"SELECT {_STREAM_COLUMNS} FROM streams{where} ORDER BY created_at, id", params).fetchall()
        partitions: dict[str, list[StreamPartitionRecord]] = {}
        sql = (f"SELECT stream_id, {_PARTITION_COLUMNS} FROM stream_partitions "
               f"WHERE stream_id IN (SELECT id FROM streams{where}) ORDER BY stream_id, partition")
        for stream_id, *columns in conn.execute(sql, params):
            partitions.setdefault(stream_id, []).append(StreamPartitionRecord(*columns))
        return [StreamRecord(*row, partitions=tuple(partitions.get(row[0], ()))) for row in rows]

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
            return conn.execute("DELETE FROM streams WHERE id = ?", (stream_id,)).rowcount > 0

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
            return _one(conn, stream_id)  # type: ignore[return-value]

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


def _one(conn: sqlite3.Connection, stream_id: str) -> StreamRecord | None:
    row = conn.execute(f"SELECT {_STREAM_COLUMNS} FROM streams WHERE id = ?", (stream_id,)).fetchone()
    if row is None:
        return None
    return StreamRecord(*row, partitions=tuple(_partitions(conn, stream_id)))


def _partitions(conn: sqlite3.Connection, stream_id: str) -> Iterator[StreamPartitionRecord]:
    rows = conn.execute(
        f"SELECT {_PARTITION_COLUMNS} FROM stream_partitions WHERE stream_id = ? ORDER BY partition", (stream_id,)
    )
    for row in rows:
        yield StreamPartitionRecord(*row)


def _partition_for_update(conn: sqlite3.Connection, stream_id: str, partition: int) -> tuple[int, StreamPartitionRecord]:
    """(the stream's generation, the partition) inside a write transaction; NotFound if absent."""
    row = conn.execute(
        f"SELECT s.generation, {', '.join('p.' + c for c in _PARTITION_COLUMNS.split(', '))} FROM streams s "
        "JOIN stream_partitions p ON p.stream_id = s.id WHERE s.id = ? AND p.partition = ?",
        (stream_id, partition),
    ).fetchone()
    if row is None:
        raise NotFound(f"no partition {partition} in stream '{stream_id}'")
    return row[0], StreamPartitionRecord(*row[1:])
