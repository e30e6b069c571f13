"""The store's SQL, written once for every SQL database (see `dialects` for what differs).

`SQLStore` implements `Store` over connections that a backend supplies (`sqlite.SQLStore`,
`postgres.PostgresStore`): ``_conn()`` is the calling thread's connection (reads outside a
transaction see the last commit), ``_write()`` one write transaction, ``snapshot()`` one
consistent read. Every statement is SQLite's spelling with ``?`` marks; each connection's
``dialect`` runs it in its own.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext, suppress
from typing import Any

from ..errors import CheckpointMoved, Conflict, LeaseLost, StoreError
from ..events import Event, encode_payload
from ..timeutil import now_ms
from . import sql_objects
from .base import (
    AppendListener,
    BotInfo,
    CheckpointInfo,
    DeadLetterInfo,
    ObjectBatch,
    ObjectRecord,
    PartnerRecord,
    PendingEvent,
    QueueInfo,
    RunCommit,
    RuntimeInfo,
    Store,
)
from .dialects import NO_LIMIT, Connection
from .hosts import SQLHosts
from .migrations import SQLITE_MIGRATIONS
from .sql_console import SQLConsole
from .sql_objects import apply_batches
from .sql_streams import SQLStreams
from .sql_webhooks import SQLWebhooks, apply_ops

_INSERT_EVENT = (
    "INSERT INTO events(seq, queue_id, payload, event_source_timestamp, timestamp, correlation_id) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_BOT_COLUMNS = (
    "bot_id, pipeline, paused, lease_owner, lease_expires_at, last_run_at, last_error, last_error_at, "
    "error_count, runs, events_in, events_out, state"
)
_PARTNER_COLUMNS = "id, name, scope, created_at, revoked_at, token_hash"


class SQLStore(SQLWebhooks, SQLStreams, SQLConsole, SQLHosts, Store):
    """`Store` over SQL connections a backend supplies (see the module docstring).

    A backend sets ``url``, ``read_only``, ``_queue_ids``/``_queue_names`` (the queue-id cache),
    ``_listeners``, ``_local`` (thread-local data with ``new_queues``) and ``_schema_seen``, and
    implements the connection methods below.
    """

    url: str
    read_only: bool
    _queue_ids: dict[str, int]
    _queue_names: dict[int, str]
    _listeners: list[AppendListener]
    _schema_seen: int
    _local: Any

    _write_lock: threading.RLock
    _db_error: type[Exception]
    """The driver's base exception (sqlite3.Error, psycopg.Error): a write it fails is rolled back."""

    def _conn(self) -> Connection:
        """The calling thread's connection."""
        raise NotImplementedError

    def _forget(self, conn: Any) -> None:
        """Close a thread's connection, or give it back to a pool (its thread ended, or is done)."""
        raise NotImplementedError

    def _hold(self, conn: Connection) -> None:
        """Make `conn` the calling thread's. When the thread ends its local data goes, and with it
        a holder that forgets the connection then, even if the thread never called `close_thread`
        (a server's worker)."""
        self._local.conn = conn
        self._local.holder = _ThreadConnection(conn, weakref.ref(self))

    def close_thread(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            return
        self._local.conn = None
        self._local.holder = None
        self._forget(conn)

    def _idle(self) -> None:
        """The calling thread's outermost snapshot ended (a backend that lends connections per
        call gives it back here)."""

    def _lost(self, conn: Connection) -> None:
        """A statement on `conn` failed: drop the connection if it is no longer usable."""

    def _error_text(self, exc: Exception) -> str:
        return str(exc)

    def _begin_write(self, conn: Connection) -> None:
        """Start a write transaction (a backend may take a lock of its own first, and must then
        release it in `_end_write`)."""
        conn.execute(conn.dialect.statement("begin_write"))

    def _end_write(self) -> None:
        """The write transaction `_begin_write` started has ended (committed or rolled back)."""

    _keyed_writes = False
    """Whether the backend can run a write of one key's rows beside other writers (`_write`)."""

    @contextmanager
    def _write(self, key: str | None = None) -> Iterator[Connection]:
        """One short write transaction. Writers of this process take turns (a lock), and the
        dialect's ``begin_write`` makes other processes' writers take turns with them.

        With `key`, the transaction writes only rows of that key and checks nothing another writer
        could change (a token bucket): where the backend can (`_keyed_writes`), it takes turns only
        with writes of the same key."""
        if self.read_only:
            raise StoreError(f"store {self.url} is open read-only")
        conn = self._conn()
        keyed = key is not None and self._keyed_writes
        with nullcontext() if keyed else self._write_lock:
            try:
                if keyed:
                    conn.execute(conn.dialect.statement("begin_keyed_write"), (key,))
                else:
                    self._begin_write(conn)
            except self._db_error as exc:
                self._lost(conn)
                raise StoreError(f"store {self.url}: cannot start a write: {self._error_text(exc)}") from exc
            self._local.new_queues = []
            try:
                yield conn
                conn.execute(conn.dialect.statement("commit_keyed_write" if keyed else "commit_write"))
            except BaseException as exc:
                # Some failures end the transaction by themselves; a failing ROLLBACK must not hide `exc`.
                if conn.in_transaction:
                    with suppress(self._db_error):
                        conn.execute("ROLLBACK")
                # Queue ids created by the rolled-back transaction do not exist: forget them.
                for name in self._local.new_queues:
                    self._queue_names.pop(self._queue_ids.pop(name, -1), None)
                if isinstance(exc, self._db_error):
                    self._lost(conn)
                    raise StoreError(
                        f"store {self.url}: write failed and was rolled back: {self._error_text(exc)}"
                    ) from exc
                raise
            finally:
                if not keyed:
                    self._end_write()

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        conn = self._conn()
        depth = getattr(self._local, "snapshots", 0)
        if depth or conn.in_transaction:  # nested (or inside a write): the outer transaction decides
            self._local.snapshots = depth + 1
            try:
                yield
            finally:
                self._local.snapshots = depth
            return
        try:
            conn.execute(conn.dialect.statement("begin_read"))  # every later read sees the first one's snapshot
        except self._db_error as exc:
            self._lost(conn)
            raise StoreError(f"store {self.url}: cannot start a read: {self._error_text(exc)}") from exc
        self._local.snapshots = 1
        try:
            yield
        finally:
            self._local.snapshots = 0
            if conn.in_transaction:
                with suppress(self._db_error):
                    conn.execute("COMMIT")
            self._idle()

    def _open(self) -> None:
        """Migrate (or, read-only, check) the database; a store that fails to open is closed
        (it keeps no file or connection open) and says why."""
        try:
            if self.read_only:
                self._check_readable()
            else:
                self._migrate()
        except BaseException as exc:
            self.close()
            if isinstance(exc, self._db_error):
                raise StoreError(f"store {self.url}: cannot open: {self._error_text(exc)}") from exc
            raise

    def _migrate(self) -> None:
        raise NotImplementedError

    def _check_readable(self) -> None:
        raise NotImplementedError

    def _apply_migrations(self, conn: Connection, run: Callable[[str], None]) -> None:
        """Apply every pending migration in order inside the caller's write transaction: `run`
        executes one migration's script in this database's SQL, then its row is recorded."""
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"
        )
        current = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0]
        self._check_schema(current, reading=False)
        for version, name, script in SQLITE_MIGRATIONS:
            if version > current:
                run(script)
                conn.execute(
                    "INSERT INTO schema_migrations(version, name, applied_at) VALUES (?, ?, ?)", (version, name, now_ms())
                )

    def _check_schema(self, current: int, *, reading: bool) -> None:
        """Refuse a schema newer than this leo-runtime knows; a reading command also an older one
        (it never migrates)."""
        known = max(version for version, _, _ in SQLITE_MIGRATIONS)
        if current > known:
            raise StoreError(
                f"store {self.url} has schema version {current}, newer than this leo-runtime "
                f"understands ({known}); upgrade leo-runtime"
            )
        if reading and current < known:
            raise StoreError(
                f"store {self.url} has schema version {current}, older than this leo-runtime's ({known}); "
                "run `leo run` (or any writing command) to migrate it; reading commands never change a store"
            )

    def schema_version(self) -> int:
        return self._conn().execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0]

    # -- queues ---------------------------------------------------------------------------------
    def _queue_id(self, conn: Connection, name: str, *, create: bool) -> int | None:
        queue_id = self._queue_ids.get(name)
        if queue_id is not None:
            return queue_id
        row = conn.execute("SELECT id FROM queues WHERE name = ?", (name,)).fetchone()
        if row is None:
            if not create:
                return None
            row = conn.execute(
                "INSERT INTO queues(name, head, depth, created_at) VALUES (?, 0, 0, ?) RETURNING id",
                (name, now_ms()),
            ).fetchone()
            self._local.new_queues.append(name)
        self._queue_ids[name] = row[0]
        self._queue_names[row[0]] = name
        return row[0]

    def _reserve(self, conn: Connection) -> tuple[int, int]:
        """The next position to hand out and the write time, inside a write transaction.

        Positions come from a counter row, not from the table's rowid: one is never handed out
        twice, even after the newest events were pruned. Write times never decrease along the
        sequence, even if the wall clock steps back or another process's clock is behind: that
        keeps "the position at a time" exact.
        """
        last, last_time = conn.execute(conn.dialect.statement("reserve")).fetchone()
        now = now_ms()
        return last + 1, now if now >= last_time else last_time

    def _advance(
        self, conn: Connection, last: int, timestamp: int, per_queue: Mapping[int, tuple[int, int]]
    ) -> dict[str, int]:
        """Record the positions handed out and each queue's new head and depth; return the heads."""
        conn.execute("UPDATE positions SET last = ?, last_time = ?", (last, timestamp))
        conn.executemany(
            "UPDATE queues SET head = ?, depth = depth + ? WHERE id = ?",
            [(head, count, queue_id) for queue_id, (count, head) in per_queue.items()],
        )
        return {self._queue_names[queue_id]: head for queue_id, (_, head) in per_queue.items()}

    def _insert(self, conn: Connection, events: Iterable[PendingEvent]) -> tuple[int, int, dict[str, int]]:
        first, timestamp = self._reserve(conn)
        seq = first - 1
        rows = []
        per_queue: dict[int, tuple[int, int]] = {}
        for event in events:
            seq += 1
            queue_id = self._queue_ids.get(event.queue) or self._queue_id(conn, event.queue, create=True)
            source_time = timestamp if event.event_source_timestamp is None else event.event_source_timestamp
            rows.append((seq, queue_id, event.payload_json, source_time, timestamp, event.correlation_json))
            per_queue[queue_id] = (per_queue.get(queue_id, (0, 0))[0] + 1, seq)
        if not rows:
            return 0, 0, {}
        conn.executemany(_INSERT_EVENT, rows)
        return first, seq, self._advance(conn, seq, timestamp, per_queue)

    def _notify(self, heads: Mapping[str, int]) -> None:
        if heads:
            for listener in list(self._listeners):
                listener(heads)

    def append(
        self,
        queue: str,
        payloads: Iterable[Any],
        *,
        event_source_timestamp: int | None = None,
        correlation_json: str | None = None,
    ) -> tuple[int, int]:
        texts = [encode_payload(payload) for payload in payloads]
        if not texts:
            return 0, 0
        with self._write() as conn:
            queue_id = self._queue_id(conn, queue, create=True)
            first, timestamp = self._reserve(conn)
            source_time = timestamp if event_source_timestamp is None else event_source_timestamp
            rows = [(first + i, queue_id, text, source_time, timestamp, correlation_json) for i, text in enumerate(texts)]
            conn.executemany(_INSERT_EVENT, rows)
            last = first + len(rows) - 1
            heads = self._advance(conn, last, timestamp, {queue_id: (len(rows), last)})
        self._notify(heads)
        return first, last

    def append_texts(self, queue: str, texts: Iterable[str]) -> tuple[int, int]:
        iterator = iter(texts)
        head = next(iterator, None)
        if head is None:
            return 0, 0
        with self._write() as conn:
            queue_id = self._queue_id(conn, queue, create=True)
            first, timestamp = self._reserve(conn)
            # This append's constants are written into the statement (they are integers): binding
            # two values per row instead of six makes a bulk append about a third faster.
            insert = (
                "INSERT INTO events(seq, queue_id, payload, event_source_timestamp, timestamp, correlation_id) "
                f"VALUES (?, {int(queue_id)}, ?, {int(timestamp)}, {int(timestamp)}, NULL)"
            )
            count = conn.executemany(insert, zip(itertools.count(first), itertools.chain((head,), iterator))).rowcount
            last = first + count - 1
            heads = self._advance(conn, last, timestamp, {queue_id: (count, last)})
        self._notify(heads)
        return first, last

    def append_events(self, events: Sequence[PendingEvent]) -> tuple[int, int]:
        if not events:
            return 0, 0
        with self._write() as conn:
            first, last, heads = self._insert(conn, events)
        self._notify(heads)
        return first, last

    def read(self, queue: str, after: int, limit: int = 1000, max_bytes: int | None = None) -> list[Event]:
        conn = self._conn()
        queue_id = self._queue_id(conn, queue, create=False)
        if queue_id is None:
            return []
        rows = conn.execute(
            "SELECT seq, payload, event_source_timestamp, timestamp, correlation_id FROM events "
            "WHERE queue_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (queue_id, after, limit),
        ).fetchall()
        # A character is at most 4 UTF-8 bytes: only a page that might pass the bound is measured.
        if max_bytes is not None and len(rows) > 1 and 4 * sum(len(row[1]) for row in rows) >= max_bytes:
            size = 0
            for index, row in enumerate(rows):
                size += _utf8_len(row[1])
                if size >= max_bytes:
                    del rows[index + 1:]
                    break
        return [Event(seq, queue, payload, source, ts, corr) for seq, payload, source, ts, corr in rows]

    def queue_head(self, queue: str) -> int:
        row = self._conn().execute("SELECT head FROM queues WHERE name = ?", (queue,)).fetchone()
        return row[0] if row else 0

    def queue_heads(self) -> dict[str, int]:
        return dict(self._conn().execute("SELECT name, head FROM queues"))

    def queues(self) -> list[QueueInfo]:
        conn = self._conn()
        infos = []
        for queue_id, name, head, depth in conn.execute("SELECT id, name, head, depth FROM queues ORDER BY name"):
            first = conn.execute(
                "SELECT seq, timestamp FROM events WHERE queue_id = ? ORDER BY seq LIMIT 1", (queue_id,)
            ).fetchone()
            newest = conn.execute(
                "SELECT timestamp FROM events WHERE queue_id = ? ORDER BY seq DESC LIMIT 1", (queue_id,)
            ).fetchone()
            infos.append(
                QueueInfo(
                    name=name,
                    head=head,
                    depth=depth,
                    first=first[0] if first else None,
                    oldest_timestamp=first[1] if first else None,
                    newest_timestamp=newest[0] if newest else None,
                )
            )
        return infos

    def count_after(self, queue: str, position: int) -> int:
        conn = self._conn()
        queue_id = self._queue_id(conn, queue, create=False)
        if queue_id is None:
            return 0
        return conn.execute(
            "SELECT COUNT(*) FROM events WHERE queue_id = ? AND seq > ?", (queue_id, position)
        ).fetchone()[0]

    def position_at(self, time_ms: int) -> int:
        conn = self._conn()
        # Two subqueries: each reads one end of the key; MIN and MAX in one SELECT scan the table.
        bounds = conn.execute("SELECT (SELECT MIN(seq) FROM events), (SELECT MAX(seq) FROM events)").fetchone()
        if bounds[0] is None:
            return self.last_position()
        low, high = bounds
        probe = "SELECT seq, timestamp FROM events WHERE seq >= ? ORDER BY seq LIMIT 1"
        if conn.execute(probe, (high,)).fetchone()[1] < time_ms:
            return high
        # Binary search over positions: write times never decrease along the sequence.
        while low < high:
            middle = (low + high) // 2
            seq, timestamp = conn.execute(probe, (middle,)).fetchone()
            if timestamp >= time_ms:
                high = seq
            else:
                low = seq + 1
        return conn.execute(probe, (low,)).fetchone()[0] - 1

    def first_position(self) -> int:
        row = self._conn().execute("SELECT MIN(seq) FROM events").fetchone()
        return row[0] - 1 if row[0] is not None else self.last_position()

    def last_position(self) -> int:
        row = self._conn().execute("SELECT last FROM positions").fetchone()
        return row[0] if row else 0

    def prune(self, before_ms: int, limit: int = 10_000) -> int:
        now = now_ms()
        dropped = self.prune_webhooks(now, limit)  # expired batches first: they may lower the floor
        cutoff = self.position_at(before_ms)
        floor = self.webhook_floor(now, now - before_ms)
        if floor is not None:  # never a change an unexpired batch (or an open window) still holds
            cutoff = min(cutoff, floor)
        with self._write() as conn:
            rows = conn.execute(
                "SELECT queue_id, COUNT(*) FROM (SELECT queue_id FROM events WHERE seq <= ? ORDER BY seq LIMIT ?) AS page "
                "GROUP BY queue_id",
                (cutoff, limit),
            ).fetchall()
            if not rows:
                return dropped
            last = conn.execute(
                "SELECT MAX(seq) FROM (SELECT seq FROM events WHERE seq <= ? ORDER BY seq LIMIT ?) AS page", (cutoff, limit)
            ).fetchone()[0]
            conn.execute("DELETE FROM events WHERE seq <= ?", (last,))
            conn.execute("DELETE FROM dead_letters WHERE seq <= ?", (last,))
            for queue_id, count in rows:
                conn.execute("UPDATE queues SET depth = MAX(depth - ?, 0) WHERE id = ?", (count, queue_id))
        return dropped + sum(count for _, count in rows)

    def bot_controls(self) -> dict[str, tuple[bool, int, str | None]]:
        return {
            bot_id: (bool(paused), resets, owner)
            for bot_id, paused, resets, owner in self._conn().execute(
                "SELECT b.bot_id, b.paused, COALESCE((SELECT SUM(resets) FROM checkpoints c "
                "WHERE c.bot_id = b.bot_id), 0), b.lease_owner FROM bots b"
            )
        }

    def add_append_listener(self, listener: AppendListener) -> None:
        self._listeners.append(listener)

    # -- checkpoints ----------------------------------------------------------------------------
    def get_checkpoint(self, bot_id: str, queue: str) -> int | None:
        row = self._conn().execute(
            "SELECT position FROM checkpoints WHERE bot_id = ? AND queue = ?", (bot_id, queue)
        ).fetchone()
        return row[0] if row else None

    def init_checkpoint(self, bot_id: str, queue: str, position: int) -> int:
        with self._write() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO checkpoints(bot_id, queue, position, updated_at) VALUES (?, ?, ?, ?)",
                (bot_id, queue, position, now_ms()),
            )
            return conn.execute(
                "SELECT position FROM checkpoints WHERE bot_id = ? AND queue = ?", (bot_id, queue)
            ).fetchone()[0]

    def set_checkpoint(self, bot_id: str, queue: str, position: int) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO checkpoints(bot_id, queue, position, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(bot_id, queue) DO UPDATE SET position = excluded.position, "
                "updated_at = excluded.updated_at, resets = checkpoints.resets + 1",
                (bot_id, queue, position, now_ms()),
            )

    def checkpoints(self, bot_id: str | None = None) -> list[CheckpointInfo]:
        sql = "SELECT bot_id, queue, position, updated_at FROM checkpoints"
        params: tuple = ()
        if bot_id is not None:
            sql += " WHERE bot_id = ?"
            params = (bot_id,)
        return [CheckpointInfo(*row) for row in self._conn().execute(sql + " ORDER BY bot_id, queue", params)]

    # -- bots -----------------------------------------------------------------------------------
    def ensure_bot(self, bot_id: str, pipeline: str | None) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO bots(bot_id, pipeline) VALUES (?, ?) "
                "ON CONFLICT(bot_id) DO UPDATE SET pipeline = COALESCE(excluded.pipeline, bots.pipeline)",
                (bot_id, pipeline),
            )

    def _at_least(self, version: int) -> bool:
        """Whether the database has migration `version` (a read-only opener may not migrate)."""
        if self._schema_seen < version:
            self._schema_seen = self.schema_version()
        return self._schema_seen >= version

    def _bot_columns(self) -> str:
        return _BOT_COLUMNS + (", stuck_since" if self._at_least(3) else ", NULL")

    def bot(self, bot_id: str) -> BotInfo | None:
        row = self._conn().execute(f"SELECT {self._bot_columns()} FROM bots WHERE bot_id = ?", (bot_id,)).fetchone()
        return _bot_info(row) if row else None

    def bots(self) -> list[BotInfo]:
        return [_bot_info(row) for row in self._conn().execute(f"SELECT {self._bot_columns()} FROM bots ORDER BY bot_id")]

    def set_paused(self, bot_id: str, paused: bool) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO bots(bot_id, paused) VALUES (?, ?) ON CONFLICT(bot_id) DO UPDATE SET paused = ?",
                (bot_id, int(paused), int(paused)),
            )

    def is_paused(self, bot_id: str) -> bool:
        row = self._conn().execute("SELECT paused FROM bots WHERE bot_id = ?", (bot_id,)).fetchone()
        return bool(row and row[0])

    def acquire_lease(
        self, bot_id: str, owner: str, ttl_ms: int, *, is_stale: Callable[[str], bool] | None = None
    ) -> bool:
        with self._write() as conn:
            conn.execute("INSERT OR IGNORE INTO bots(bot_id) VALUES (?)", (bot_id,))
            holder, expires = conn.execute(
                "SELECT lease_owner, lease_expires_at FROM bots WHERE bot_id = ?", (bot_id,)
            ).fetchone()
            now = now_ms()
            free = holder is None or holder == owner or (expires or 0) <= now or (
                is_stale is not None and is_stale(holder)
            )
            if free:
                conn.execute(
                    "UPDATE bots SET lease_owner = ?, lease_expires_at = ? WHERE bot_id = ?",
                    (owner, now + ttl_ms, bot_id),
                )
            return free

    def renew_leases(self, owner: str, bot_ids: Sequence[str], ttl_ms: int) -> list[str]:
        if not bot_ids:
            return []
        lost = []
        with self._write() as conn:
            expires = now_ms() + ttl_ms
            for bot_id in bot_ids:
                updated = conn.execute(
                    "UPDATE bots SET lease_expires_at = ? WHERE bot_id = ? AND lease_owner = ?",
                    (expires, bot_id, owner),
                ).rowcount
                if not updated:
                    lost.append(bot_id)
        return lost

    def release_leases(self, owner: str, bot_ids: Sequence[str]) -> None:
        with self._write() as conn:
            conn.executemany(
                "UPDATE bots SET lease_owner = NULL, lease_expires_at = NULL, stuck_since = NULL "
                "WHERE bot_id = ? AND lease_owner = ?",
                [(bot_id, owner) for bot_id in bot_ids],
            )

    def commit_run(self, run: RunCommit) -> tuple[int, int]:
        if run.objects and sql_objects.in_two_steps(run):  # a long read must not hold the write lock
            return sql_objects.commit_run(self, run, self._finish_run)
        with self._write() as conn:
            now = now_ms()
            self._finish_run(conn, run, 0)
            if run.in_queue is not None and run.position is not None:
                moved = conn.execute(
                    "UPDATE checkpoints SET position = ?, updated_at = ? "
                    "WHERE bot_id = ? AND queue = ? AND position = ?",
                    (run.position, now, run.bot_id, run.in_queue, run.expected),
                ).rowcount
                if not moved:
                    raise CheckpointMoved(
                        f"bot '{run.bot_id}': checkpoint on '{run.in_queue}' was moved during the run; "
                        "the run was rolled back and starts again from the new checkpoint"
                    )
            if not run.dead_letters:
                first, last, heads = self._insert(conn, run.outputs)
            else:
                first, last, heads = self._insert(conn, [*run.outputs, *map(_dead_letter_event, run.dead_letters)])
                conn.executemany(
                    "INSERT INTO dead_letters(seq, queue, bot_id, source_queue, source_seq, error, failures, dead_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (last - len(run.dead_letters) + 1 + index, letter.queue, run.bot_id, letter.event.queue,
                         letter.event.seq, letter.error, letter.failures, now)
                        for index, letter in enumerate(run.dead_letters)
                    ],
                )
            if run.objects:
                objects = apply_batches(self, conn, run.objects)
                if objects.changes:
                    conn.execute("UPDATE bots SET events_out = events_out + ? WHERE bot_id = ?", (objects.changes, run.bot_id))
                    first, last = first or objects.first, objects.last
                    heads.update(objects.heads)
            if run.ops:
                heads.update(apply_ops(self, conn, run.ops))
        self._notify(heads)
        return first, last

    def _finish_run(self, conn: Connection, run: RunCommit, changes: int) -> None:
        """Record a run (its state, counters) if `run.owner` still holds the bot's lease, else raise."""
        held = conn.execute(
            "UPDATE bots SET last_run_at = ?, error_count = 0, runs = runs + 1, events_in = events_in + ?, "
            "events_out = events_out + ?, state = COALESCE(?, state), stuck_since = NULL "
            "WHERE bot_id = ? AND lease_owner = ?",
            (now_ms(), run.events_in, len(run.outputs) + changes,
             json.dumps(run.state) if run.state is not None else None, run.bot_id, run.owner),
        ).rowcount
        if not held:
            raise LeaseLost(f"bot '{run.bot_id}': lost its lease to another runtime; this run was rolled back")

    def record_failure(self, bot_id: str, message: str) -> int:
        with self._write() as conn:
            conn.execute("INSERT OR IGNORE INTO bots(bot_id) VALUES (?)", (bot_id,))
            return conn.execute(
                "UPDATE bots SET last_error = ?, last_error_at = ?, error_count = error_count + 1, stuck_since = NULL, "
                "failures = failures + 1 "
                "WHERE bot_id = ? RETURNING error_count",
                (message, now_ms(), bot_id),
            ).fetchone()[0]

    def mark_stuck(self, bot_id: str, owner: str, since_ms: int) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE bots SET stuck_since = ? WHERE bot_id = ? AND lease_owner = ?", (since_ms, bot_id, owner)
            )

    # -- dead letters ---------------------------------------------------------------------------
    def dead_letters(
        self, queue: str | None = None, *, bot_id: str | None = None, include_redriven: bool = False
    ) -> list[DeadLetterInfo]:
        if not self._at_least(3):
            return []
        where, params = _dead_letter_filter(queue, bot_id, None, include_redriven)
        rows = self._conn().execute(f"SELECT {_DEAD_LETTER_COLUMNS} FROM dead_letters{where} ORDER BY seq", params)
        return [DeadLetterInfo(*row) for row in rows]

    def dead_letter_counts(self) -> dict[str, tuple[int, int]]:
        if not self._at_least(3):
            return {}
        rows = self._conn().execute(
            "SELECT bot_id, COUNT(*), COUNT(*) - COUNT(redriven_at) FROM dead_letters GROUP BY bot_id"
        )
        return {bot_id: (total, waiting) for bot_id, total, waiting in rows}

    def redrive_dead_letters(
        self,
        queue: str,
        *,
        to: str | None = None,
        bot_id: str | None = None,
        positions: Sequence[int] | None = None,
    ) -> list[DeadLetterInfo]:
        where, params = _dead_letter_filter(queue, bot_id, positions, False, "d.")
        with self._write() as conn:
            letters = [
                (DeadLetterInfo(*row), payload, source_time)
                for *row, payload, source_time in conn.execute(
                    f"SELECT {_DEAD_LETTER_COLUMNS_OF_D}, e.payload, e.event_source_timestamp FROM dead_letters d "
                    f"JOIN events e ON e.seq = d.seq{where} ORDER BY d.seq",
                    params,
                ).fetchall()
            ]
            if not letters:
                return []
            pending = [
                PendingEvent(to or letter.source_queue, payload, source_time,
                             f'{{"source":{json.dumps(letter.queue)},"start":{letter.position},"units":1}}')
                for letter, payload, source_time in letters
            ]
            first, _, heads = self._insert(conn, pending)
            now = now_ms()
            conn.executemany(
                "UPDATE dead_letters SET redriven_at = ?, redriven_queue = ?, redriven_seq = ? WHERE seq = ?",
                [(now, event.queue, first + index, letter.position)
                 for index, ((letter, _, _), event) in enumerate(zip(letters, pending, strict=True))],
            )
            redriven = [
                dataclasses.replace(letter, redriven_at=now, redriven_queue=event.queue, redriven_position=first + index)
                for index, ((letter, _, _), event) in enumerate(zip(letters, pending, strict=True))
            ]
        self._notify(heads)
        return redriven

    # -- runtimes -------------------------------------------------------------------------------
    def register_runtime(self, owner: str, file: str | None) -> None:
        with self._write() as conn:
            now = now_ms()
            conn.execute("DELETE FROM runtimes WHERE seen_at < ?", (now - 86_400_000,))
            conn.execute(
                conn.dialect.statement("register_runtime"),
                (owner, file, now, now),
            )

    def note_runtime(self, owner: str, *, reloads: int, reload_error: str | None) -> None:
        with self._write() as conn:
            now = now_ms()
            conn.execute(
                "UPDATE runtimes SET seen_at = ?, reloads = ?, reload_error = ?, "
                "reload_error_at = CASE WHEN ? IS NULL THEN NULL "
                "WHEN reload_error IS ? THEN reload_error_at ELSE ? END WHERE owner = ?",
                (now, reloads, reload_error, reload_error, reload_error, now, owner),
            )

    def unregister_runtime(self, owner: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM runtimes WHERE owner = ?", (owner,))

    def runtimes(self) -> list[RuntimeInfo]:
        if not self._at_least(3):
            return []
        rows = self._conn().execute(
            "SELECT owner, file, started_at, seen_at, reloads, reload_error, reload_error_at FROM runtimes "
            "ORDER BY started_at DESC"
        )
        return [RuntimeInfo(*row) for row in rows]

    # -- partners ---------------------------------------------------------------------------------
    def create_partner(self, name: str, token_hash: bytes, scope_json: str | None) -> PartnerRecord:
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM partners WHERE name = ?", (name,)).fetchone():
                raise Conflict(f"partner '{name}' already exists; choose another name")
            row = conn.execute(
                f"INSERT INTO partners(name, token_hash, scope, created_at) VALUES (?, ?, ?, ?) "
                f"RETURNING {_PARTNER_COLUMNS}",
                (name, token_hash, scope_json, now_ms()),
            ).fetchone()
        return PartnerRecord(*row)

    def partner_by_token_hash(self, token_hash: bytes) -> PartnerRecord | None:
        row = self._conn().execute(
            f"SELECT {_PARTNER_COLUMNS} FROM partners WHERE token_hash = ?", (token_hash,)
        ).fetchone()
        return PartnerRecord(*row) if row else None

    def partner(self, name: str) -> PartnerRecord | None:
        row = self._conn().execute(f"SELECT {_PARTNER_COLUMNS} FROM partners WHERE name = ?", (name,)).fetchone()
        return PartnerRecord(*row) if row else None

    def partners(self, *, after: str | None = None, limit: int | None = None) -> list[PartnerRecord]:
        rows = self._conn().execute(
            f"SELECT {_PARTNER_COLUMNS} FROM partners WHERE name > ? ORDER BY name LIMIT ?",
            (after if after is not None else "", limit if limit is not None else NO_LIMIT),
        )
        return [PartnerRecord(*row) for row in rows]

    def revoke_partner(self, name: str) -> PartnerRecord | None:
        with self._write() as conn:
            row = conn.execute(
                f"UPDATE partners SET revoked_at = COALESCE(revoked_at, ?) WHERE name = ? RETURNING {_PARTNER_COLUMNS}",
                (now_ms(), name),
            ).fetchone()
            if row is not None:  # its streams' writers stop serving them
                conn.execute("UPDATE streams_version SET version = version + 1")
        return PartnerRecord(*row) if row else None

    # -- objects ----------------------------------------------------------------------------------
    def get_object(self, object_type: str, key: str) -> ObjectRecord | None:
        row = self._conn().execute(
            "SELECT o.version, o.changed_at, o.deleted, o.seq, d.data FROM objects o JOIN object_data d ON d.id = o.data_id "
            "WHERE o.object_type = ? AND o.key = ?",
            (object_type, key),
        ).fetchone()
        if row is None:
            return None
        version, changed_at, deleted, seq, data = row
        return ObjectRecord(object_type, key, version, changed_at, bool(deleted), seq, data)

    def list_objects(
        self, object_type: str, *, after: str | None = None, limit: int = 1000, deleted: bool = False
    ) -> list[ObjectRecord]:
        live = "" if deleted else " AND o.deleted = 0"
        rows = self._conn().execute(
            "SELECT o.key, o.version, o.changed_at, o.deleted, o.seq, d.data "
            "FROM objects o JOIN object_data d ON d.id = o.data_id "
            f"WHERE o.object_type = ?{live} AND o.key > ? ORDER BY o.key LIMIT ?",
            (object_type, after or "", limit),
        )
        return [
            ObjectRecord(object_type, key, version, changed_at, bool(gone), seq, data)
            for key, version, changed_at, gone, seq, data in rows
        ]

    def apply_objects(self, batches: Sequence[ObjectBatch]) -> tuple[int, int]:
        return sql_objects.apply_objects(self, batches)



class _ThreadConnection:
    """A thread's connection, held in the thread's local data: when the thread ends, this goes
    with its local data and the store forgets the connection."""

    __slots__ = ("conn", "store")

    def __init__(self, conn: Connection, store: weakref.ref[SQLStore]) -> None:
        self.conn = conn
        self.store = store

    def __del__(self) -> None:
        store = self.store()
        if store is None or getattr(store._local, "holder", self) is not self:  # closed already, or replaced
            return
        with suppress(Exception):  # at interpreter exit, anything may be gone already
            store._forget(self.conn)


_DEAD_LETTER_COLUMNS = (
    "seq, queue, bot_id, source_queue, source_seq, error, failures, dead_at, redriven_at, redriven_queue, redriven_seq"
)
_DEAD_LETTER_COLUMNS_OF_D = ", ".join(f"d.{column}" for column in _DEAD_LETTER_COLUMNS.split(", "))


def _dead_letter_filter(
    queue: str | None, bot_id: str | None, positions: Sequence[int] | None, include_redriven: bool, table: str = ""
) -> tuple[str, list[Any]]:
    """A WHERE clause over dead_letters (columns prefixed with `table`, like ``d.``) and its parameters."""
    clauses: list[str] = []
    params: list[Any] = []
    if queue is not None:
        clauses.append(f"{table}queue = ?")
        params.append(queue)
    if bot_id is not None:
        clauses.append(f"{table}bot_id = ?")
        params.append(bot_id)
    if positions is not None:
        clauses.append(f"{table}seq IN ({', '.join('?' * len(positions))})" if positions else "1 = 0")
        params.extend(positions)
    if not include_redriven:
        clauses.append(f"{table}redriven_at IS NULL")
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _dead_letter_event(letter: Any) -> PendingEvent:
    """The event a dead letter appends: the payload text untouched, its origin time kept, and a
    correlation id naming the queue and position it came from (Leo's ``source``/``start``)."""
    event = letter.event
    return PendingEvent(
        letter.queue,
        event.payload_json,
        event.event_source_timestamp,
        f'{{"source":{json.dumps(event.queue)},"start":{event.seq},"units":1}}',
    )


def _bot_info(row: tuple) -> BotInfo:
    (bot_id, pipeline, paused, owner, expires, last_run, last_error, last_error_at, errors, runs,
     events_in, events_out, state, stuck_since) = row
    return BotInfo(
        bot_id=bot_id,
        pipeline=pipeline,
        paused=bool(paused),
        lease_owner=owner,
        lease_expires_at=expires,
        last_run_at=last_run,
        last_error=last_error,
        last_error_at=last_error_at,
        error_count=errors,
        runs=runs,
        events_in=events_in,
        events_out=events_out,
        state=json.loads(state) if state else {},
        stuck_since=stuck_since,
    )


def _utf8_len(text: str) -> int:
    """The size of `text` in UTF-8 bytes (what ``max_bytes`` counts); O(1) for ASCII text."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
