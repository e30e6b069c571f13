"""What differs between the SQL databases the store runs on, in one place.

The store's SQL is written ONCE (`sql`, `sql_objects`, `sql_compare`, `sql_streams`,
`sql_webhooks`, `sql_console`), in SQLite's spelling with ``?`` parameters. A backend supplies
connections whose ``dialect`` says how to run it:

- mechanical differences (parameter marks, ``INSERT OR IGNORE``, two-argument ``MIN``/``MAX``,
  ``IS ?``, ``CAST(text AS BLOB)``, the temporary schema, DDL types) are translated once per statement text and cached;
- statements that differ in substance are named in `STATEMENTS`, one per dialect side by side,
  and the shared code asks for them by name (``conn.dialect.statement("window")``);
- migrations are written once too: `migration_script` turns SQLite's DDL into PostgreSQL's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

NO_LIMIT = 1 << 62
"""A LIMIT that limits nothing (SQLite's -1 is refused by PostgreSQL)."""


class Cursor(Protocol):
    rowcount: int
    description: Any

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """What the shared SQL code needs of a connection (sqlite3's, or `postgres.PGConnection`)."""

    dialect: Dialect
    in_transaction: bool

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]], /) -> Cursor: ...


# name: (SQLite, PostgreSQL). Only statements whose text differs beyond what `_translate` does.
STATEMENTS: dict[str, tuple[str, str]] = {
    # One page of stored objects, as (keys JSON array, raw hashes concatenated, hashes concatenated).
    "window": (
        "SELECT json_group_array(key), CAST(group_concat(COALESCE(raw_hash, ?), '') AS BLOB), "
        "CAST(group_concat(hash, '') AS BLOB) FROM (SELECT key, raw_hash, hash FROM objects "
        "WHERE object_type = ? AND deleted = 0 AND key > ? ORDER BY key LIMIT ?)",
        # The aggregates take the rows in the subquery's key order (a plain ordered index scan:
        # leo's connections never plan a parallel one); an ORDER BY in each aggregate would sort
        # the page three more times (four times slower).
        "SELECT COALESCE(json_agg(key), '[]'::json)::text, COALESCE(string_agg(COALESCE(raw_hash, ?), ''::bytea), "
        "''::bytea), COALESCE(string_agg(hash, ''::bytea), ''::bytea) FROM (SELECT key, raw_hash, hash FROM objects "
        "WHERE object_type = ? AND deleted = 0 AND key > ? ORDER BY key LIMIT ?) AS w",
    ),
    # Keys of a JSON array parameter, as a one-column table named value.
    "json_keys": ("SELECT value FROM json_each(?)", "SELECT value FROM json_array_elements_text(?::json) AS j(value)"),
    "missing_beyond": (
        "INSERT OR IGNORE INTO temp.object_missing(key) SELECT key FROM objects WHERE object_type = ? "
        "AND deleted = 0 AND key > ? AND key <= ? AND key NOT IN (SELECT value FROM json_each(?))",
        "INSERT INTO pg_temp.object_missing(key) SELECT key FROM objects WHERE object_type = ? "
        "AND deleted = 0 AND key > ? AND key <= ? AND key NOT IN "
        "(SELECT value FROM json_array_elements_text(?::json) AS j(value)) ON CONFLICT DO NOTHING",
    ),
    "note_seen": (
        "INSERT OR IGNORE INTO temp.object_seen(key, page) SELECT value, ? FROM json_each(?)",
        "INSERT INTO pg_temp.object_seen(key, page) SELECT value, ? FROM json_array_elements_text(?::json) AS j(value) "
        "ON CONFLICT DO NOTHING",
    ),
    "pending_keys": (
        "SELECT j.value AS key FROM temp.object_pending AS p, json_each(p.keys) AS j",
        "SELECT j.value AS key FROM pg_temp.object_pending AS p, json_array_elements_text(p.keys::json) AS j(value)",
    ),
    "note_pending_keys": (
        "INSERT OR IGNORE INTO temp.object_pending_keys(key) SELECT value FROM json_each(?)",
        "INSERT INTO pg_temp.object_pending_keys(key) SELECT value FROM json_array_elements_text(?::json) AS j(value) "
        "ON CONFLICT DO NOTHING",
    ),
    "register_runtime": (
        "INSERT OR REPLACE INTO runtimes(owner, file, started_at, seen_at) VALUES (?, ?, ?, ?)",
        "INSERT INTO runtimes(owner, file, started_at, seen_at) VALUES (?, ?, ?, ?) ON CONFLICT (owner) DO UPDATE "
        "SET file = excluded.file, started_at = excluded.started_at, seen_at = excluded.seen_at, reloads = 0, "
        "reload_error = NULL, reload_error_at = NULL",
    ),
    # A write transaction. Writers take turns, in every process and on every host: SQLite's
    # single writer, PostgreSQL's transaction-level advisory lock ("LEOW"; released at commit,
    # rollback or when the connection dies). A check and the write that depends on it (a lease,
    # a quota, a redrive, a seal) never race another writer, and writers never deadlock.
    "begin_write": ("BEGIN IMMEDIATE", "BEGIN; SELECT pg_advisory_xact_lock(1279610711)"),
    # Its commit; on PostgreSQL every other process listening hears of it (`PostgresStore.wait_changed`).
    "commit_write": ("COMMIT", "NOTIFY leo_commit; COMMIT"),
    # A write of the rows of one key alone (a token bucket): on PostgreSQL it takes turns only with
    # writes of the same key (an advisory lock on the key's hash, in the two-number space the
    # writers' one-number lock does not share), so Get Object's rate never waits behind a bot's
    # commit. SQLite has one writer: there it is a write like any other. Nobody waits for it: no NOTIFY.
    "begin_keyed_write": ("BEGIN IMMEDIATE", "BEGIN; SELECT pg_advisory_xact_lock(1279610711, hashtext(?))"),
    "commit_keyed_write": ("COMMIT", "COMMIT"),
    # A read transaction: every statement in it sees the database as of its first read.
    "begin_read": ("BEGIN", "BEGIN ISOLATION LEVEL REPEATABLE READ"),
    # A larger page cache for this connection's temporary tables ('': nothing to set).
    "temp_cache": ("PRAGMA temp.cache_size = -32000", ""),
    # The temporary tables this connection created.
    "temp_tables": (
        "SELECT name FROM sqlite_temp_master WHERE type = 'table'",
        "SELECT relname::text FROM pg_class WHERE relnamespace = pg_my_temp_schema() AND relkind = 'r'",
    ),
    # A shared token bucket, read to be written back in the same transaction (`hosts`).
    "bucket": (
        "SELECT level, updated_at FROM rate_buckets WHERE key = ?",
        "SELECT level, updated_at FROM rate_buckets WHERE key = ? FOR UPDATE",
    ),
    # Positions are handed out one writer at a time: the counter row is locked until commit, so
    # a transaction with a smaller position always commits before one with a larger position
    # (SQLite's single writer gives that for free).
    "reserve": ("SELECT last, last_time FROM positions", "SELECT last, last_time FROM positions FOR UPDATE"),
}


class Dialect:
    """One SQL database's spelling: `sql` turns the shared text into this database's."""

    def __init__(self, name: str, index: int) -> None:
        self.name = name
        self._index = index
        self._cache: dict[str, str] = {}

    def statement(self, name: str) -> str:
        """A named statement of `STATEMENTS` in this dialect (its parameters marked ``?``, like
        every statement the shared code runs)."""
        return STATEMENTS[name][self._index]

    def sql(self, text: str) -> str:
        """The shared statement `text` in this dialect, its parameters still marked ``?`` (cached)."""
        if self._index == 0:
            return text
        done = self._cache.get(text)
        if done is None:
            done = self._cache[text] = _translate(text)
        return done

    def __repr__(self) -> str:
        return f"<dialect {self.name}>"


SQLITE = Dialect("sqlite", 0)
POSTGRES = Dialect("postgresql", 1)

_MINMAX = re.compile(r"\b(MIN|MAX)\(([^(),]+),\s*([^(),]+)\)", re.IGNORECASE)
_OR_IGNORE = re.compile(r"^\s*INSERT OR IGNORE INTO", re.IGNORECASE)
_AS_BLOB = re.compile(r"CAST\(([\w.]+) AS BLOB\)")
_TEMP = re.compile(r"(?<![\w.])temp\.")
_IS_PARAM = re.compile(r"\bIS (NOT )?\?")


def _translate(text: str) -> str:
    """SQLite's spelling to PostgreSQL's, for the mechanical differences (see the module docstring)."""
    out = text
    if _OR_IGNORE.match(out):
        out = _OR_IGNORE.sub("INSERT INTO", out, count=1)
        returning = re.search(r"\sRETURNING\s", out, re.IGNORECASE)
        if returning:
            out = out[:returning.start()] + " ON CONFLICT DO NOTHING" + out[returning.start():]
        else:
            out += " ON CONFLICT DO NOTHING"
    if re.match(r"\s*(CREATE|ALTER)\s", out, re.IGNORECASE):
        out = migration_script(out)
    out = _MINMAX.sub(lambda m: f"{'LEAST' if m[1].upper() == 'MIN' else 'GREATEST'}({m[2]}, {m[3]})", out)
    out = _IS_PARAM.sub(lambda m: "IS DISTINCT FROM ?" if m[1] else "IS NOT DISTINCT FROM ?", out)
    out = _AS_BLOB.sub(r"convert_to(\1, 'UTF8')", out)
    out = _TEMP.sub("pg_temp.", out).replace(" WITHOUT ROWID", "")
    return out


def split_marks(text: str) -> list[str]:
    """The text around each ``?`` parameter mark outside quoted text (one more piece than marks)."""
    pieces = []
    start = 0
    quote = ""
    for index, char in enumerate(text):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "?":
            pieces.append(text[start:index])
            start = index + 1
    pieces.append(text[start:])
    return pieces


_TYPES = [
    (re.compile(r"\bINTEGER PRIMARY KEY\b(?! CHECK)"), "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
    (re.compile(r"\bBLOB\b"), "BYTEA"),
    (re.compile(r"\bTEXT\b"), 'TEXT COLLATE "C"'),
    (re.compile(r"\)\s*WITHOUT ROWID"), ")"),
    (re.compile(r"length\(CAST\(line AS BLOB\)\)"), "octet_length(line)"),
    # SQLite enforces no foreign key (leo never turns it on): neither does PostgreSQL, where each
    # one would cost a trigger per row written (the events' queue_id: every append).
    (re.compile(r"\s+REFERENCES \w+\(\w+\)"), ""),
    (re.compile(r"ESCAPE '\\\\'"), "ESCAPE '\\'"),
]


def migration_script(script: str) -> str:
    """A migration's SQLite DDL as PostgreSQL's: 64-bit integers, byte strings, texts compared
    byte by byte (as SQLite does), identity keys where SQLite hands out rowids, no foreign keys
    (SQLite enforces none)."""
    out = script
    for pattern, replacement in _TYPES:
        out = pattern.sub(replacement, out)
    return out
