"""The SQLite side of the object store: rows are compared with the stored objects by content hash,
a page at a time, and every change is written with its change record in the caller's transaction.

Comparing never decodes stored JSON: a page of keys is looked up in one query (key, hash,
version, deleted) and only the hashes are compared. The old state of a key that did change is
read back (and handed on) so its change record can name the fields that changed. A complete
batch notes the keys it held in a temporary table; when the type holds more live objects than
that afterwards, the missing ones are found by an anti-join and deleted, a page at a time.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from ..errors import ObjectInputError
from .base import ObjectBatch, ObjectChange, ObjectRow

if TYPE_CHECKING:
    from .sqlite import SQLiteStore

PAGE = 2000
"""Rows compared per round trip (one IN list; SQLite allows 32766 parameters)."""
RANGE_RETRY = 16
"""Pages looked up key by key after a range scan showed the input is not sorted there."""

_INSERT_EVENT = (
    "INSERT INTO events(seq, queue_id, payload, event_source_timestamp, timestamp, correlation_id) "
    "VALUES (?, ?, ?, ?, ?, NULL)"
)
_INSERT_OBJECT = (
    "INSERT INTO objects(object_type, key, version, hash, deleted, changed_at, seq, data_id) VALUES (?, ?, ?, ?, 0, ?, ?, ?)"
)
_UPDATE_OBJECT = (
    "UPDATE objects SET version = ?, hash = ?, deleted = 0, changed_at = ?, seq = ? WHERE object_type = ? AND key = ?"
)
_MARK_DELETED = "UPDATE objects SET version = ?, deleted = 1, changed_at = ?, seq = ? WHERE object_type = ? AND key = ?"
_INSERT_DATA = "INSERT INTO object_data(id, data) VALUES (?, ?)"
_UPDATE_DATA = "UPDATE object_data SET data = ? WHERE id = ?"

# A pending change: (key, op, version, data_json, value, previous_json, hash (None for a delete),
# data_id (None for a key never stored)).
_Pending = tuple[str, str, int, str, Any, "str | None", "bytes | None", "int | None"]


def _marks(count: int) -> str:
    return ",".join("?" * count)


class ObjectWriter:
    """Applies `ObjectBatch`es on one connection inside one write transaction of `store`."""

    def __init__(self, store: SQLiteStore, conn: sqlite3.Connection) -> None:
        self.store = store
        self.conn = conn
        self.first = 0
        self.last = 0
        self.changes = 0
        self.heads: dict[str, int] = {}
        self._seen_ready = False
        self._last_data_id: int | None = None
        self._skip_ranges = 0  # pages to look up key by key before trying a range scan again

    def apply(self, batch: ObjectBatch) -> None:
        """Apply one batch (see `Store.apply_objects`); fills ``batch.counts``."""
        complete = batch.complete
        self._skip_ranges = 0
        if complete:
            self._clear_seen()
        held = 0
        rows = iter(batch.rows)
        for number in itertools.count():
            chunk = list(itertools.islice(rows, PAGE))  # a page at a time, never the whole input
            if not chunk:
                break
            page = {row[0]: row for row in chunk}
            if len(page) < len(chunk):  # a key given twice in this page
                if complete:
                    raise _twice(batch, _first_repeat(chunk))
                for part in _in_order(chunk):  # rows apply in order: a repeated key starts a new part
                    self._compare(batch, part)
                continue
            held += self._page(batch, page, number)
        if complete:
            if not held:
                raise ObjectInputError(
                    f"holds no objects: a full read without any would delete every '{batch.object_type}' object, so "
                    "it is refused (an empty source is more often an outage than an empty catalogue)",
                    batch.source,
                )
            self._delete_missing(batch, held)
            self._clear_seen()
        deletes = batch.deletes if isinstance(batch.deletes, list | tuple) else list(batch.deletes)
        for start in range(0, len(deletes), PAGE):
            self._delete(batch, list(dict.fromkeys(deletes[start:start + PAGE])))

    # -- comparing --------------------------------------------------------------------------------
    def _page(self, batch: ObjectBatch, page: dict[str, ObjectRow], number: int) -> int:
        if batch.complete:
            self._note_seen(batch, page, number)
        self._compare(batch, page)
        return len(page)

    def _compare(self, batch: ObjectBatch, page: dict[str, ObjectRow]) -> None:
        object_type = batch.object_type
        conn = self.conn
        # The hot path: one query for the live hashes of the page, compared in bulk; only keys
        # whose hash differs (new, deleted or changed ones) are looked at one by one.
        live = self._live_hashes(object_type, page)
        get = live.get
        differing = [row for key, row in page.items() if get(key) != row[1]]
        batch.counts.unchanged += len(page) - len(differing)
        if not differing:
            return
        stored = {
            key: (version, deleted, data_id)
            for key, version, deleted, data_id in conn.execute(
                f"SELECT key, version, deleted, data_id FROM objects WHERE object_type = ? AND key IN ({_marks(len(differing))})",
                (object_type, *(row[0] for row in differing)),
            )
        }
        pending: list[_Pending] = []
        updated: list[int] = []
        for key, hash_, data_json, value in differing:
            if type(data_json) is bytes:
                data_json = data_json.strip(b" \t\r\n").decode()
            old = stored.get(key)
            if old is None:
                pending.append((key, "created", 1, data_json, value, None, hash_, None))
            elif old[1]:
                pending.append((key, "created", old[0] + 1, data_json, value, None, hash_, old[2]))
            else:
                pending.append((key, "updated", old[0] + 1, data_json, value, None, hash_, old[2]))
                updated.append(old[2])
        if updated:
            previous = dict(conn.execute(f"SELECT id, data FROM object_data WHERE id IN ({_marks(len(updated))})", updated))
            pending = [item if item[1] != "updated" else (*item[:5], previous[item[7]], *item[6:]) for item in pending]
        self._write(batch, pending)

    def _live_hashes(self, object_type: str, page: dict[str, ObjectRow]) -> dict[str, bytes]:
        """{key: hash} of the live stored objects among the page's keys (and maybe a few others).

        Sources are often sorted by key (exports, tables read in key order): then the page's
        keys are one narrow range, read in one sequential scan, about three times as fast as
        looking each key up. A page whose range holds many more stored keys than the page shows
        the source is not sorted there; the batch then looks keys up one by one for a while.
        """
        conn = self.conn
        if self._skip_ranges:
            self._skip_ranges -= 1
        else:
            limit = 2 * len(page) + 16
            live = dict(
                conn.execute(
                    "SELECT key, hash FROM objects WHERE object_type = ? AND deleted = 0 AND key BETWEEN ? AND ? LIMIT ?",
                    (object_type, min(page), max(page), limit),
                )
            )
            if len(live) < limit:
                return live
            # Not sorted here (or a new sorted file began): look keys up, and try again later.
            self._skip_ranges = RANGE_RETRY
        return dict(
            conn.execute(
                f"SELECT key, hash FROM objects WHERE object_type = ? AND deleted = 0 AND key IN ({_marks(len(page))})",
                (object_type, *page),
            )
        )

    # -- complete reads and deletes ----------------------------------------------------------------
    def _clear_seen(self) -> None:
        if not self._seen_ready:
            self.conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS object_seen (key TEXT PRIMARY KEY, page INTEGER NOT NULL) WITHOUT ROWID"
            )
            self._seen_ready = True
        self.conn.execute("DELETE FROM temp.object_seen")

    def _note_seen(self, batch: ObjectBatch, page: dict[str, ObjectRow], number: int) -> None:
        try:
            self.conn.execute(
                "INSERT INTO temp.object_seen(key, page) SELECT value, ? FROM json_each(?)", (number, orjson.dumps(list(page)))
            )
        except sqlite3.IntegrityError:
            row = self.conn.execute(
                f"SELECT key FROM temp.object_seen WHERE page < ? AND key IN ({_marks(len(page))}) LIMIT 1",
                (number, *page),
            ).fetchone()
            raise _twice(batch, row[0] if row else "?") from None

    def _delete_missing(self, batch: ObjectBatch, held: int) -> None:
        # Every key the batch held is live now: more live keys than that means some are missing.
        live = self.conn.execute(
            "SELECT COUNT(*) FROM objects WHERE object_type = ? AND deleted = 0", (batch.object_type,)
        ).fetchone()[0]
        if live <= held:
            return
        after = ""
        while True:
            # A page is read in full before it is changed: never update rows under an open cursor.
            keys = [
                key
                for (key,) in self.conn.execute(
                    "SELECT key FROM objects WHERE object_type = ? AND deleted = 0 AND key > ? "
                    "AND key NOT IN (SELECT key FROM temp.object_seen) ORDER BY key LIMIT ?",
                    (batch.object_type, after, PAGE),
                )
            ]
            if not keys:
                return
            self._delete(batch, keys)
            after = keys[-1]

    def _delete(self, batch: ObjectBatch, keys: Sequence[str]) -> None:
        rows = self.conn.execute(
            "SELECT o.key, o.version, d.data, o.data_id FROM objects o JOIN object_data d ON d.id = o.data_id "
            f"WHERE o.object_type = ? AND o.deleted = 0 AND o.key IN ({_marks(len(keys))})",
            (batch.object_type, *keys),
        ).fetchall()
        self._write(batch, [(key, "deleted", version + 1, data, None, None, None, ref) for key, version, data, ref in rows])

    # -- writing ----------------------------------------------------------------------------------
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
        inserts: list[tuple[str, str, int, bytes, int, int, int]] = []
        updates: list[tuple[int, bytes, int, int, str, str]] = []
        deletes: list[tuple[int, int, int, str, str]] = []
        new_data: list[tuple[int, str]] = []
        changed_data: list[tuple[str, int]] = []
        seq = first - 1
        for key, op, version, data_json, value, previous_json, hash_, data_id in pending:
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
                inserts.append((object_type, key, version, hash_, timestamp, seq, data_id))
            else:
                changed_data.append((data_json, data_id))
                updates.append((version, hash_, timestamp, seq, object_type, key))
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


def apply_batches(store: SQLiteStore, conn: sqlite3.Connection, batches: Iterable[ObjectBatch]) -> ObjectWriter:
    """Apply `batches` in order on `conn` (inside the caller's write transaction)."""
    writer = ObjectWriter(store, conn)
    for batch in batches:
        writer.apply(batch)
    return writer


def _first_repeat(rows: list[ObjectRow]) -> str:
    seen: set[str] = set()
    for row in rows:
        if row[0] in seen:
            return row[0]
        seen.add(row[0])
    return "?"


def _in_order(rows: list[ObjectRow]) -> Iterator[dict[str, ObjectRow]]:
    """Split rows into parts without a repeated key, in order."""
    part: dict[str, ObjectRow] = {}
    for row in rows:
        if row[0] in part:
            yield part
            part = {}
        part[row[0]] = row
    if part:
        yield part


def _twice(batch: ObjectBatch, key: str) -> ObjectInputError:
    return ObjectInputError(
        f"key {key!r} of '{batch.object_type}' appears more than once in one full read; a full snapshot "
        "lists each key once (use snapshot: partial for inputs that hold successive changes)",
        batch.source,
    )
