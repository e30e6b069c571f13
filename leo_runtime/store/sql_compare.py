"""Comparing an input with the objects a SQLite store holds: which rows may change something,
and which live keys a full read misses. Nothing here writes the main database.

Sorted inputs (exports, tables read in key order) are compared as a merge: each page of input
is laid beside the next stored objects after the last key settled (``cursor``), fetched in ONE
query as a JSON array of keys and two blobs of 16-byte hashes (the content hashes and the raw
hashes of the texts they came as). A page whose raw hashes equal the stored ones, slot for
slot, is unchanged: no line of it is parsed and no row of it becomes a Python object. Otherwise
only the lines that match no slot are parsed; the page's keys must then rise strictly above
the cursor, and any stored key between the cursor and the page's last key that the page does
not hold is missing (a delete under a full read), so a sorted full read needs no table of the
keys it saw.

A page that is not in order (an unsorted source, a file after another, a key given twice)
switches the batch to comparing key by key: each page's live hashes are looked up, and a full
read notes every key in a temporary table (the keys settled so far are noted first), so that a
key given twice is refused and the missing keys are found by an anti-join at the end.

Rows that may change something go to a `Candidates` sink in input order: written at once (one
transaction) or set aside in a temporary table and written afterwards (see sql_objects).
"""

from __future__ import annotations

import bisect
import itertools
import operator
from collections.abc import Iterable, Iterator
from typing import Protocol

import orjson

from ..errors import ObjectInputError
from .base import ObjectBatch, ObjectPage, ObjectRow, RowPage
from .dialects import Connection

PAGE = 2000
"""Rows compared per round trip when the input gives rows (one IN list stays far below SQLite's
32766 parameters)."""
SLACK = 16
"""Stored objects fetched beyond a page's length: a few deleted keys keep the page aligned."""
LOOKUP_AFTER = 48
"""Lines that miss their slot after which the page's stored hashes are looked up by value (the
input gained or lost keys, which shifts every later line by a slot or more)."""
RANGE_RETRY = 16
"""Unsorted pages looked up key by key after a range scan showed the input is not in order there."""

_NO_HASH = bytes(16)  # stands in for a stored object without a raw hash: no line hashes to it
_loads = orjson.loads
_lt = operator.lt


class Candidates(Protocol):
    """Where rows that may change something go, in input order."""

    def add(self, batch: ObjectBatch, rows: list[ObjectRow]) -> None:
        """Take rows to compare with the current state and write when they differ."""

    def pending(self, keys: list[str]) -> set[str]:
        """Which of `keys` already have rows taken but not yet written (their stored state is stale)."""

    def note_keys_sql(self) -> str | None:
        """A SELECT of the keys of rows taken but not yet written (None when there are none)."""


def pages_of(batch: ObjectBatch) -> Iterator[ObjectPage]:
    """The batch's input as pages: its rows, PAGE at a time, then its pages."""
    rows = iter(batch.rows)
    while chunk := list(itertools.islice(rows, PAGE)):
        yield RowPage(chunk)
    yield from batch.pages


class Comparison:
    """Compares one batch with the stored objects on `conn` (see the module docstring).

    Fills ``batch.counts.unchanged`` (and ``read``) for rows it settles itself; every other row
    goes to `sink`. For a complete batch the missing keys end in ``temp.object_missing``.
    """

    def __init__(self, conn: Connection, batch: ObjectBatch, sink: Candidates) -> None:
        self.conn = conn
        self.batch = batch
        self.object_type = batch.object_type
        self.complete = batch.complete
        self.sink = sink
        self.counts = batch.counts
        self.cursor = ""  # sorted: every key up to here is settled (keys are never empty)
        self.ordered = True
        self.held = 0
        self.number = 0  # pages so far (the seen table remembers where a key came first)
        self._skip_ranges = 0

    def run(self) -> None:
        """Compare every page; raise `ObjectInputError` (or the input's own error) on bad input."""
        prepare_temp(self.conn)
        for page in pages_of(self.batch):
            self.number += 1
            if self.ordered:
                self._sorted_page(page)
            else:
                self._unsorted_page(_parsed(page))
            self.counts.read += len(page)
        if not self.complete:
            return
        if not self.held:
            raise ObjectInputError(
                f"holds no objects: a full read without any would delete every '{self.object_type}' object, so "
                "it is refused (an empty source is more often an outage than an empty catalogue)",
                self.batch.source,
            )
        if self.ordered:  # the keys after the last one read
            self.conn.execute(
                "INSERT OR IGNORE INTO temp.object_missing(key) SELECT key FROM objects "
                "WHERE object_type = ? AND deleted = 0 AND key > ?",
                (self.object_type, self.cursor),
            )
        else:
            self.conn.execute(
                "INSERT OR IGNORE INTO temp.object_missing(key) SELECT key FROM objects WHERE object_type = ? "
                "AND deleted = 0 AND key NOT IN (SELECT key FROM temp.object_seen)",
                (self.object_type,),
            )

    # -- sorted: a merge with the stored objects --------------------------------------------------
    def _sorted_page(self, page: ObjectPage) -> None:
        n = len(page)
        if not n:
            return
        raw = page.raw_hashes
        keys_json, stored_raw, stored_hash = self.conn.execute(
            self.conn.dialect.statement("window"), (_NO_HASH, self.object_type, self.cursor, n + SLACK)
        ).fetchone()
        stored_keys: list[str] = _loads(keys_json)
        m = len(stored_keys)
        if raw is not None and m >= n and stored_raw[:16 * n] == raw:
            # The hot path: every line is the stored object of its slot, byte for byte.
            self.counts.unchanged += n
            self.held += n
            self.cursor = stored_keys[n - 1]
            return
        stored_raw = stored_raw or b""
        stored_hash = stored_hash or b""
        # Which lines are which stored objects (positional first, then by hash when shifted).
        if raw is None:
            unmatched: list[int] = list(range(n))
            keys: list[str | None] = [None] * n
        else:
            unmatched = _mismatches(raw, stored_raw, n, m)
            keys = stored_keys[:n] + [None] * (n - m) if m < n else stored_keys[:n]
            if len(unmatched) > LOOKUP_AFTER and m:
                slot_of = {stored_raw[16 * j:16 * j + 16]: j for j in range(m)}
                keys = [None] * n
                still = []
                for index in range(n):
                    slot = slot_of.get(raw[16 * index:16 * index + 16])
                    if slot is None:
                        still.append(index)
                    else:
                        keys[index] = stored_keys[slot]
                unmatched = still
        parsed: list[ObjectRow] = []
        blank = False
        for index in unmatched:
            row = page.row(index)  # raises the line's located error
            if row is None:
                keys[index] = None
                blank = True
                continue
            keys[index] = row[0]
            parsed.append(row)
        if blank:
            keys = [key for key in keys if key is not None]
        matched = len(keys) - len(parsed)
        present: list[str] = keys  # type: ignore[assignment]  # every line has its key now
        if not present:
            return
        if not (present[0] > self.cursor and all(map(_lt, present, present[1:]))):
            self._switch_to_unsorted()
            self._unsorted_page(_parsed(page))
            return
        self.held += len(present)
        self.counts.unchanged += matched
        last = present[-1]
        beyond = m == n + SLACK and stored_keys[-1] < last  # stored keys past the window are in range too
        in_range = m if beyond else bisect.bisect_right(stored_keys, last)
        candidates: list[ObjectRow] = []
        outside: list[ObjectRow] = []
        found = 0
        index_of = dict(zip(stored_keys, range(in_range), strict=False)) if len(parsed) > 64 else None
        for row in parsed:
            key = row[0]
            if index_of is not None:
                slot = index_of.get(key, -1)
            else:
                slot = bisect.bisect_left(stored_keys, key, 0, in_range)
                if slot == in_range or stored_keys[slot] != key:
                    slot = -1
            if slot < 0:
                if beyond and key > stored_keys[-1]:
                    outside.append(row)
                else:
                    candidates.append(row)  # new here (or deleted): created
                continue
            found += 1
            at = 16 * slot
            if stored_hash[at:at + 16] != row[1] or (
                len(row) > 4 and row[4] is not None and stored_raw[at:at + 16] != row[4]
            ):
                candidates.append(row)
            else:
                self.counts.unchanged += 1
        if outside:
            found += self._compare_outside(outside, candidates)
        if self.complete:
            if found + matched < in_range:
                held = set(present)
                self._note_missing([key for key in stored_keys[:in_range] if key not in held])
            if beyond:
                self.conn.execute(
                    self.conn.dialect.statement("missing_beyond"),
                    (self.object_type, stored_keys[-1], last, orjson.dumps([row[0] for row in outside]).decode()),
                )
        self.cursor = last
        if candidates:
            self.sink.add(self.batch, candidates)

    def _compare_outside(self, rows: list[ObjectRow], candidates: list[ObjectRow]) -> int:
        """Rows past the fetched window (the page skipped many stored keys): looked up by key."""
        live = self._live(rows)
        found = 0
        for row in rows:
            stored = live.get(row[0])
            if stored is not None:
                found += 1
                if stored[0] == row[1] and not (len(row) > 4 and row[4] is not None and stored[1] != row[4]):
                    self.counts.unchanged += 1
                    continue
            candidates.append(row)
        return found

    def _note_missing(self, keys: list[str]) -> None:
        self.conn.executemany("INSERT OR IGNORE INTO temp.object_missing(key) VALUES (?)", [(key,) for key in keys])

    # -- unsorted: key by key ---------------------------------------------------------------------
    def _switch_to_unsorted(self) -> None:
        """From here on keys come in any order: note the keys settled so far as seen (a full read)."""
        self.ordered = False
        if not self.complete:
            return
        conn = self.conn
        conn.execute("DELETE FROM temp.object_seen")
        # Settled so far: the live keys up to the cursor that were not missing, and the keys of
        # rows taken but not yet written (new ones are not stored yet).
        conn.execute(
            "INSERT OR IGNORE INTO temp.object_seen(key, page) SELECT key, 0 FROM objects WHERE object_type = ? "
            "AND deleted = 0 AND key <= ? AND key NOT IN (SELECT key FROM temp.object_missing)",
            (self.object_type, self.cursor),
        )
        pending = self.sink.note_keys_sql()
        if pending:
            conn.execute(f"INSERT OR IGNORE INTO temp.object_seen(key, page) SELECT key, 0 FROM ({pending}) AS pending")
        conn.execute("DELETE FROM temp.object_missing")  # the anti-join at the end finds them again

    def _unsorted_page(self, rows: list[ObjectRow]) -> None:
        if not rows:
            return
        self.held += len(rows)
        if self.complete:
            page = {row[0]: row for row in rows}
            if len(page) < len(rows):
                raise _twice(self.batch, _first_repeat(rows))
            self._note_seen(rows)
            self._compare(rows)
            return
        for part in _in_order(rows):  # a key given again starts a new part: rows apply in order
            self._compare(part)

    def _compare(self, rows: list[ObjectRow]) -> None:
        live = self._live(rows)
        # A partial batch may give a key again: if its earlier row is still to be written, the
        # stored state this one is compared with is stale, so the writer decides.
        forced = set() if self.complete else self.sink.pending([row[0] for row in rows])
        candidates = []
        for row in rows:
            stored = live.get(row[0])
            if (
                stored is None
                or stored[0] != row[1]
                or (len(row) > 4 and row[4] is not None and stored[1] != row[4])
                or row[0] in forced
            ):
                candidates.append(row)
        self.counts.unchanged += len(rows) - len(candidates)
        if candidates:
            self.sink.add(self.batch, candidates)

    def _live(self, rows: list[ObjectRow]) -> dict[str, tuple[bytes, bytes | None]]:
        """{key: (hash, raw_hash)} of the live stored objects among the rows' keys (maybe more).

        Keys in order are one narrow range, read in one sequential scan (about three times as
        fast as looking each key up); a range holding many more stored keys than the rows shows
        the input is not in order there, and keys are then looked up one by one for a while.
        """
        conn, object_type = self.conn, self.object_type
        keys = [row[0] for row in rows]
        if self._skip_ranges:
            self._skip_ranges -= 1
        else:
            limit = 2 * len(keys) + 16
            live = {
                key: (hash_, raw)
                for key, hash_, raw in conn.execute(
                    "SELECT key, hash, raw_hash FROM objects WHERE object_type = ? AND deleted = 0 "
                    "AND key BETWEEN ? AND ? LIMIT ?",
                    (object_type, min(keys), max(keys), limit),
                )
            }
            if len(live) < limit:
                return live
            self._skip_ranges = RANGE_RETRY
        return {
            key: (hash_, raw)
            for key, hash_, raw in conn.execute(
                "SELECT key, hash, raw_hash FROM objects WHERE object_type = ? AND deleted = 0 "
                f"AND key IN ({_marks(len(keys))})",
                (object_type, *keys),
            )
        }

    def _note_seen(self, rows: list[ObjectRow]) -> None:
        keys = [row[0] for row in rows]
        noted = self.conn.execute(
            self.conn.dialect.statement("note_seen"), (self.number, orjson.dumps(keys).decode())
        ).rowcount
        if noted < len(keys):  # a page holds each key once (checked): the others came in an earlier page
            row = self.conn.execute(
                f"SELECT key FROM temp.object_seen WHERE page < ? AND key IN ({_marks(len(keys))}) ORDER BY key LIMIT 1",
                (self.number, *keys),
            ).fetchone()
            raise _twice(self.batch, row[0] if row else "?")


def prepare_temp(conn: Connection) -> None:
    """Create (or empty) this connection's temporary tables for comparing."""
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS object_seen (key TEXT PRIMARY KEY, page INTEGER NOT NULL) WITHOUT ROWID")
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS object_missing (key TEXT PRIMARY KEY) WITHOUT ROWID")
    # The temporary database exists now: give it a page cache like the main one (its default is
    # a few pages, which makes every insert into a large table of seen keys go to its file).
    if pragma := conn.dialect.statement("temp_cache"):
        conn.execute(pragma)
    conn.execute("DELETE FROM temp.object_seen")
    conn.execute("DELETE FROM temp.object_missing")


def missing_keys(conn: Connection, after: str, limit: int) -> list[str]:
    """The next `limit` missing keys after `after`, in key order."""
    return [
        key for (key,) in conn.execute("SELECT key FROM temp.object_missing WHERE key > ? ORDER BY key LIMIT ?", (after, limit))
    ]


def _mismatches(raw: bytes, stored: bytes, n: int, m: int) -> list[int]:
    """Lines whose raw hash differs from the stored one in the same slot (lines past the stored
    slots included); compared 32 lines at a time, one by one only inside a differing block."""
    common = min(n, m)
    out: list[int] = []
    for start in range(0, common, 32):
        end = min(start + 32, common)
        if raw[16 * start:16 * end] != stored[16 * start:16 * end]:
            out.extend(at // 16 for at in range(16 * start, 16 * end, 16) if raw[at:at + 16] != stored[at:at + 16])
    out.extend(range(common, n))
    return out


def _parsed(page: ObjectPage) -> list[ObjectRow]:
    """Every row of a page (blank lines left out), parsed."""
    if isinstance(page, RowPage):
        return page.rows
    rows = []
    for index in range(len(page)):
        row = page.row(index)
        if row is not None:
            rows.append(row)
    return rows


def _first_repeat(rows: Iterable[ObjectRow]) -> str:
    seen: set[str] = set()
    for row in rows:
        if row[0] in seen:
            return row[0]
        seen.add(row[0])
    return "?"


def _in_order(rows: list[ObjectRow]) -> Iterator[list[ObjectRow]]:
    """Split rows into parts without a repeated key, in order."""
    part: list[ObjectRow] = []
    keys: set[str] = set()
    for row in rows:
        if row[0] in keys:
            yield part
            part, keys = [], set()
        part.append(row)
        keys.add(row[0])
    if part:
        yield part


def _twice(batch: ObjectBatch, key: str) -> ObjectInputError:
    return ObjectInputError(
        f"key {key!r} of '{batch.object_type}' appears more than once in one full read; a full snapshot "
        "lists each key once (use snapshot: partial for inputs that hold successive changes)",
        batch.source,
    )


def _marks(count: int) -> str:
    return ",".join("?" * count)
