"""The SQLite side of the object store: applying `ObjectBatch`es, every change written with its
change record in the same transaction.

One batch (an ingest, a change detector's read) is applied in two steps. First it is compared
with the stored objects in a READ transaction (`sql_compare`: other writers go on
meanwhile); the rows that may change something are set aside in a temporary table and every
row is checked, so a bad row anywhere fails here, before anything is written. Then the rows set
aside are compared again with the current state and written, in write transactions of at most
WRITE_SECONDS each with a pause between them, so that `leo queues put` or the ingest API beside
a long read wait a moment, not the whole read. Each write transaction holds whole changes
(object row, data and change record); a run's state (its source's cursor) commits with the
last one, so a crash in between leaves objects and their change queues agreeing, and the run,
done again, finds what was written unchanged.

Several batches in one call, or a run that also appends events, are compared and written page
by page inside ONE write transaction instead (the comparison then sees what earlier pages
wrote, so rows apply in order across batches).
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Callable, Sequence
from itertools import accumulate
from typing import TYPE_CHECKING, Any

import orjson

from ..errors import LeaseLost, StoreError
from .base import ObjectBatch, ObjectChange, ObjectRow, RunCommit
from .dialects import Connection
from .sql_compare import PAGE, Comparison, _in_order, _marks, missing_keys

if TYPE_CHECKING:
    from .sql import SQLStore

WRITE_SECONDS = 2.0
"""How long one write transaction of a long apply may hold SQLite's write lock (far below the
busy timeout other writers wait; each pause costs a long apply a few percent)."""
WRITE_PAUSE_SECONDS = 0.12
"""The pause between two write transactions of a long apply: longer than the 100 ms between two
tries of SQLite's busy handler, so a writer waiting in another process gets its turn."""
WRITE_ROWS = PAGE
"""Rows written between two looks at the clock."""
MEMORY_ROWS = 4096
"""Rows set aside in memory before they go to the temporary table (as one of its rows)."""

_NO_RAW_HASH = bytes(16)
_loads = orjson.loads

_INSERT_EVENT = (
    "INSERT INTO events(seq, queue_id, payload, event_source_timestamp, timestamp, correlation_id) "
    "VALUES (?, ?, ?, ?, ?, NULL)"
)
_INSERT_OBJECT = (
    "INSERT INTO objects(object_type, key, version, hash, deleted, changed_at, seq, data_id, raw_hash) "
    "VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?)"
)
_UPDATE_OBJECT = (
    "UPDATE objects SET version = ?, hash = ?, deleted = 0, changed_at = ?, seq = ?, raw_hash = ? "
    "WHERE object_type = ? AND key = ?"
)
_MARK_DELETED = "UPDATE objects SET version = ?, deleted = 1, changed_at = ?, seq = ? WHERE object_type = ? AND key = ?"
_NOTE_RAW_HASH = "UPDATE objects SET raw_hash = ? WHERE object_type = ? AND key = ?"
_INSERT_DATA = "INSERT INTO object_data(id, data) VALUES (?, ?)"
_UPDATE_DATA = "UPDATE object_data SET data = ? WHERE id = ?"

# A pending change: (key, op, version, data_json, value, previous_json, hash (None for a delete),
# data_id (None for a key never stored), raw_hash).
_Pending = tuple[str, str, int, str, Any, "str | None", "bytes | None", "int | None", "bytes | None"]


class ObjectWriter:
    """Compares rows with the current state and writes the changes, on one connection inside
    one write transaction of `store`."""

    def __init__(self, store: SQLStore, conn: Connection) -> None:
        self.store = store
        self.conn = conn
        self.first = 0
        self.last = 0
        self.changes = 0
        self.heads: dict[str, int] = {}
        self._last_data_id: int | None = None

    def rows(self, batch: ObjectBatch, rows: list[ObjectRow]) -> None:
        """Apply rows in order, as if one at a time (a key given again is compared again)."""
        if batch.complete:  # a complete batch holds each key once (the comparison checked)
            self._rows(batch, rows)
            return
        for part in _in_order(rows):
            self._rows(batch, part)

    def _rows(self, batch: ObjectBatch, rows: list[ObjectRow]) -> None:
        object_type = batch.object_type
        conn = self.conn
        stored = {
            key: (version, deleted, data_id, hash_, raw)
            for key, version, deleted, data_id, hash_, raw in conn.execute(
                "SELECT key, version, deleted, data_id, hash, raw_hash FROM objects "
                f"WHERE object_type = ? AND key IN ({_marks(len(rows))})",
                (object_type, *(row[0] for row in rows)),
            )
        }
        pending: list[_Pending] = []
        updated: list[int] = []
        raw_hashes: list[tuple[bytes, str, str]] = []
        for row in rows:
            key, hash_, data_json = row[0], row[1], row[2]
            value = row[3] if len(row) > 3 else None
            raw_hash = row[4] if len(row) > 4 else None
            old = stored.get(key)
            if old is not None and not old[1] and old[3] == hash_:
                batch.counts.unchanged += 1
                if raw_hash is not None and old[4] != raw_hash:  # the same content in another text
                    raw_hashes.append((raw_hash, object_type, key))
                continue
            if type(data_json) is bytes:
                data_json = data_json.strip(b" \t\r\n").decode()
            if old is None:
                pending.append((key, "created", 1, data_json, value, None, hash_, None, raw_hash))
            elif old[1]:
                pending.append((key, "created", old[0] + 1, data_json, value, None, hash_, old[2], raw_hash))
            else:
                pending.append((key, "updated", old[0] + 1, data_json, value, None, hash_, old[2], raw_hash))
                updated.append(old[2])
        if raw_hashes:
            conn.executemany(_NOTE_RAW_HASH, raw_hashes)
        if updated:
            previous = dict(conn.execute(f"SELECT id, data FROM object_data WHERE id IN ({_marks(len(updated))})", updated))
            pending = [item if item[1] != "updated" else (*item[:5], previous[item[7]], *item[6:]) for item in pending]
        self._write(batch, pending)

    def delete(self, batch: ObjectBatch, keys: Sequence[str]) -> None:
        """Delete the live ones among `keys` (a delete record keeps the last state)."""
        rows = self.conn.execute(
            "SELECT o.key, o.version, d.data, o.data_id FROM objects o JOIN object_data d ON d.id = o.data_id "
            f"WHERE o.object_type = ? AND o.deleted = 0 AND o.key IN ({_marks(len(keys))})",
            (batch.object_type, *keys),
        ).fetchall()
        self._write(batch, [(key, "deleted", version + 1, data, None, None, None, ref, None) for key, version, data, ref in rows])

    def _new_data_id(self) -> int:
        if self._last_data_id is None:  # inside the write transaction: nobody else hands ids out
            self._last_data_id = self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM object_data").fetchone()[0]
        self._last_data_id += 1
        return self._last_data_id

    def _write(self, batch: ObjectBatch, pending: list[_Pending]) -> None:
        if not pending:
            return
        store, conn = self.store, self.conn
        object_type = batch.object_type
        queue = f"{object_type}.changes"
        queue_id = store._queue_id(conn, queue, create=True)
        first, timestamp = store._reserve(conn)
        describe = batch.describe
        counts = batch.counts
        events: list[tuple[int, int, str, int, int]] = []
        inserts: list[tuple[str, str, int, bytes, int, int, int, bytes | None]] = []
        updates: list[tuple[int, bytes, int, int, bytes | None, str, str]] = []
        deletes: list[tuple[int, int, int, str, str]] = []
        new_data: list[tuple[int, str]] = []
        changed_data: list[tuple[str, int]] = []
        seq = first - 1
        for key, op, version, data_json, value, previous_json, hash_, data_id, raw_hash in pending:
            seq += 1
            text = describe(ObjectChange(object_type, key, op, version, timestamp, data_json, value, previous_json))
            events.append((seq, queue_id, text, timestamp, timestamp))
            if hash_ is None:
                deletes.append((version, timestamp, seq, object_type, key))
                counts.deleted += 1
                continue
            if data_id is None:
                data_id = self._new_data_id()
                new_data.append((data_id, data_json))
                inserts.append((object_type, key, version, hash_, timestamp, seq, data_id, raw_hash))
            else:
                changed_data.append((data_json, data_id))
                updates.append((version, hash_, timestamp, seq, raw_hash, object_type, key))
            if op == "created":
                counts.created += 1
            else:
                counts.updated += 1
        conn.executemany(_INSERT_EVENT, events)
        if new_data:
            conn.executemany(_INSERT_DATA, new_data)
            conn.executemany(_INSERT_OBJECT, inserts)
        if changed_data:
            conn.executemany(_UPDATE_DATA, changed_data)
            conn.executemany(_UPDATE_OBJECT, updates)
        if deletes:
            conn.executemany(_MARK_DELETED, deletes)
        self.heads.update(store._advance(conn, seq, timestamp, {queue_id: (len(events), seq)}))
        self.first = self.first or first
        self.last = seq
        self.changes += len(events)


# -- one write transaction: compare and write page by page --------------------------------------------
class _WriteNow:
    """Candidates written as soon as they are found (inside the caller's write transaction)."""

    def __init__(self, writer: ObjectWriter) -> None:
        self.writer = writer

    def add(self, batch: ObjectBatch, rows: list[ObjectRow]) -> None:
        self.writer.rows(batch, rows)

    def pending(self, keys: list[str]) -> set[str]:
        return set()

    def note_keys_sql(self) -> str | None:
        return None


def apply_batches(store: SQLStore, conn: Connection, batches: Sequence[ObjectBatch]) -> ObjectWriter:
    """Apply `batches` in order on `conn`, inside the caller's write transaction."""
    writer = ObjectWriter(store, conn)
    try:
        for batch in batches:
            Comparison(conn, batch, _WriteNow(writer)).run()
            _delete_missing(writer, batch, deadline=None)
            _delete_named(writer, batch)
    finally:
        _clear_temp(conn)
    return writer


def _delete_missing(writer: ObjectWriter, batch: ObjectBatch, deadline: float | None, after: str = "") -> str | None:
    """Delete the keys a complete batch missed, PAGE at a time from after `after`; returns the
    last key deleted when `deadline` passed first (None when done)."""
    if not batch.complete:
        return None
    while keys := missing_keys(writer.conn, after, PAGE):
        writer.delete(batch, keys)
        after = keys[-1]
        if deadline is not None and time.monotonic() > deadline:
            return after
    return None


def _delete_named(writer: ObjectWriter, batch: ObjectBatch) -> None:
    deletes = batch.deletes if isinstance(batch.deletes, list | tuple) else list(batch.deletes)
    for start in range(0, len(deletes), PAGE):
        writer.delete(batch, list(dict.fromkeys(deletes[start:start + PAGE])))


# -- two steps: compare in a read transaction, then write in short transactions -----------------------
class _SetAside:
    """Candidates kept for writing later, in order: in memory, then in ``temp.object_pending``,
    one table row per MEMORY_ROWS rows (keys as a JSON array, hashes and texts as blobs: one
    insert per group costs far less than one per row)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.buffer: list[ObjectRow] = []
        self.buffered_keys: set[str] = set()
        self.spilled = False
        self._keyed = False  # temp.object_pending_keys holds the keys set aside (for `pending`)
        self._read_after = 0

    def add(self, batch: ObjectBatch, rows: list[ObjectRow]) -> None:
        self.buffer.extend(rows)
        if not batch.complete:  # only a partial batch may give a key again
            self.buffered_keys.update(row[0] for row in rows)
        if len(self.buffer) >= MEMORY_ROWS:
            self._flush()

    def pending(self, keys: list[str]) -> set[str]:
        found = self.buffered_keys.intersection(keys)
        if self.spilled:
            if not self._keyed:
                self.conn.execute("CREATE TEMP TABLE IF NOT EXISTS object_pending_keys (key TEXT PRIMARY KEY) WITHOUT ROWID")
                self.conn.execute(
                    f"INSERT OR IGNORE INTO temp.object_pending_keys(key) {self.conn.dialect.statement('pending_keys')}"
                )
                self._keyed = True
            found.update(
                key for (key,) in self.conn.execute(
                    f"SELECT key FROM temp.object_pending_keys WHERE key IN ({_marks(len(keys))})", keys
                )
            )
        return found

    def note_keys_sql(self) -> str | None:
        self._flush()
        return self.conn.dialect.statement("pending_keys") if self.spilled else None

    def _flush(self) -> None:
        if not self.buffer:
            return
        conn = self.conn
        if not self.spilled:
            conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS object_pending (id INTEGER PRIMARY KEY, keys TEXT NOT NULL, "
                "hashes BLOB NOT NULL, raw_hashes BLOB NOT NULL, lengths BLOB NOT NULL, data BLOB NOT NULL)"
            )
            self.spilled = True
        rows = self.buffer
        texts = [row[2] if type(row[2]) is bytes else row[2].encode() for row in rows]
        keys = orjson.dumps([row[0] for row in rows]).decode()
        conn.execute(
            "INSERT INTO temp.object_pending(keys, hashes, raw_hashes, lengths, data) VALUES (?, ?, ?, ?, ?)",
            (
                keys,
                b"".join([row[1] for row in rows]),
                b"".join([(row[4] if len(row) > 4 else None) or _NO_RAW_HASH for row in rows]),
                array("Q", map(len, texts)).tobytes(),
                b"".join(texts),
            ),
        )
        if self._keyed:
            conn.execute(conn.dialect.statement("note_pending_keys"), (keys,))
        self.buffer = []
        self.buffered_keys = set()

    def take(self) -> list[ObjectRow]:
        """The next rows set aside, in order ([] when all were taken)."""
        if not self.spilled:
            taken, self.buffer = self.buffer, []
            return taken
        self._flush()
        group = self.conn.execute(
            "SELECT id, keys, hashes, raw_hashes, lengths, data FROM temp.object_pending WHERE id > ? ORDER BY id LIMIT 1",
            (self._read_after,),
        ).fetchone()
        if group is None:
            return []
        self._read_after, keys_json, hashes, raw_hashes, lengths, data = group
        sizes = array("Q")
        sizes.frombytes(lengths)
        ends = list(accumulate(sizes))
        starts = [0, *ends[:-1]]
        return [
            # Plain tuples in ObjectRow's order (cheaper to build).
            (key, hashes[at:at + 16], data[start:end], None, raw if (raw := raw_hashes[at:at + 16]) != _NO_RAW_HASH else None)
            for key, start, end, at in zip(_loads(keys_json), starts, ends, range(0, len(hashes), 16), strict=True)
        ]  # type: ignore[return-value]


class _TwoSteps:
    """One batch: compared in a read transaction, then written in steps (see the module docstring)."""

    def __init__(self, store: SQLStore, batch: ObjectBatch) -> None:
        self.store = store
        self.batch = batch
        self.conn = store._conn()
        self.aside = _SetAside(self.conn)
        self._stage = "rows"
        self._taken: list[ObjectRow] = []  # rows taken from those set aside, not written yet
        self._missing_after = ""

    def compare(self) -> None:
        """Compare every row (raising on bad input: nothing is written then)."""
        conn = self.conn
        conn.execute(conn.dialect.statement("begin_read"))  # a read snapshot, no write lock (temp tables are this connection's)
        try:
            Comparison(conn, self.batch, self.aside).run()
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def write(self, writer: ObjectWriter, deadline: float) -> bool:
        """Write until done (True) or past `deadline` (False: call again in a new transaction)."""
        batch = self.batch
        while self._stage == "rows":
            if not self._taken:
                self._taken = self.aside.take()
                if not self._taken:
                    self._stage = "missing"
                    break
            rows, self._taken = self._taken[:WRITE_ROWS], self._taken[WRITE_ROWS:]
            writer.rows(batch, rows)
            if time.monotonic() > deadline:
                return False
        if self._stage == "missing":
            after = _delete_missing(writer, batch, deadline, self._missing_after)
            if after is not None:
                self._missing_after = after
                return False
            self._stage = "named"
        _delete_named(writer, batch)
        self._stage = "done"
        return True

    def run(self, each: Callable[[Connection, ObjectWriter, bool], None] | None = None) -> tuple[int, int]:
        """Compare, then write in steps; `each(conn, writer, done)` runs at the end of every write
        transaction (it may raise to roll that one back). Returns the (first, last) positions."""
        store = self.store
        if store.read_only:
            raise StoreError(f"store {store.url} is open read-only")
        first = last = 0
        try:
            self.compare()
            if each is None and not self._has_writes():
                return 0, 0  # all unchanged: no write transaction at all
            while True:
                with store._write() as conn:
                    if conn is not self.conn:  # the temporary tables live on this thread's connection
                        raise StoreError("objects must be written on the thread that compared them")
                    writer = ObjectWriter(store, conn)
                    done = self.write(writer, time.monotonic() + WRITE_SECONDS)
                    if each is not None:
                        each(conn, writer, done)
                store._notify(writer.heads)
                first, last = first or writer.first, writer.last or last
                if done:
                    return first, last
                time.sleep(WRITE_PAUSE_SECONDS)  # let other writers in
        finally:
            _clear_temp(self.conn)


    def _has_writes(self) -> bool:
        batch = self.batch
        if not isinstance(batch.deletes, list | tuple):
            batch.deletes = list(batch.deletes)
        if self.aside.buffer or self.aside.spilled or batch.deletes:
            return True
        return batch.complete and self.conn.execute("SELECT 1 FROM temp.object_missing LIMIT 1").fetchone() is not None


def apply_objects(store: SQLStore, batches: Sequence[ObjectBatch]) -> tuple[int, int]:
    """`Store.apply_objects`: one batch in two steps, several in one write transaction."""
    if len(batches) == 1:
        return _TwoSteps(store, batches[0]).run()
    with store._write() as conn:
        writer = apply_batches(store, conn, batches)
    store._notify(writer.heads)
    return writer.first, writer.last


def in_two_steps(run: RunCommit) -> bool:
    """Whether a run's commit applies its objects in two steps: one batch and nothing else to
    append (events that must commit with the run keep everything in one transaction)."""
    return len(run.objects) == 1 and not run.outputs and not run.dead_letters and not run.ops and run.in_queue is None


def commit_run(
    store: SQLStore, run: RunCommit, finish: Callable[[Connection, RunCommit, int], None]
) -> tuple[int, int]:
    """`Store.commit_run` for a run `in_two_steps`: `finish(conn, run, changes)` records the run
    (and checks its lease) in the last write transaction; the ones before check the lease too."""

    def each(conn: Connection, writer: ObjectWriter, done: bool) -> None:
        if done:
            finish(conn, run, writer.changes)
            return
        held = conn.execute(
            "UPDATE bots SET events_out = events_out + ? WHERE bot_id = ? AND lease_owner = ?",
            (writer.changes, run.bot_id, run.owner),
        ).rowcount
        if not held:
            raise LeaseLost(f"bot '{run.bot_id}': lost its lease to another runtime; the rest of this run was rolled back")

    return _TwoSteps(store, run.objects[0]).run(each)


def _clear_temp(conn: Connection) -> None:
    """Empty the temporary tables (their pages go back to the temporary file's free list)."""
    created = {name for (name,) in conn.execute(conn.dialect.statement("temp_tables"))}
    for table in ("object_seen", "object_missing"):
        if table in created:  # (never created on this connection otherwise)
            conn.execute(f"DELETE FROM temp.{table}")
    conn.execute("DROP TABLE IF EXISTS temp.object_pending")  # dropped: faster than emptying a large one
    conn.execute("DROP TABLE IF EXISTS temp.object_pending_keys")

