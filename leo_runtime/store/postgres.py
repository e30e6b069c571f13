"""The PostgreSQL store: the same SQL as SQLite's (`sql`), over psycopg 3 connections from a pool.

Connections: every thread takes one connection from the pool (autocommit: reads outside a
transaction see the last commit) and gives it back when it ends or calls `close_thread`. Writes
are ``BEGIN ... COMMIT`` transactions that take turns, in every process and on every host: each
holds a transaction-level advisory lock (released at commit, rollback, or when its connection
dies: see `dialects`, ``begin_write``). That keeps every guarantee the shared SQL has on SQLite, whose single writer gives the
same: a check and the write that depends on it (a lease, a quota, a redrive, a seal) never race
another writer, and nothing deadlocks. Reads (and a long comparison of objects) never wait.

Positions are gapless for readers: transactions that take positions commit in position order
(the write lock, and the counter row locked ``FOR UPDATE`` in the taking transaction, see
`dialects`), so a reader never sees a position while a smaller one is still to come.

Other processes learn of a commit through ``NOTIFY leo_commit`` (sent by every write
transaction, delivered at commit): `changed_since` and `wait_changed` listen on a connection of
their own, so a long poll on one host wakes as soon as another host commits.

Migrations: the SQLite migrations, translated (`dialects.migration_script`), applied in one
transaction under an advisory lock, so processes opening a new database take turns.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import ClientCursor
from psycopg import sql as pgsql
from psycopg.adapt import Loader
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool, PoolTimeout

from ..errors import StoreError
from ..safetext import redact_urls
from .base import AppendListener
from .dialects import POSTGRES, migration_script, split_marks
from .sql import SQLStore

SCHEMES = ("postgresql", "postgres")
_OWN_OPTIONS = {"schema", "pool_size", "pool_timeout"}
# libpq settings a URL may set itself. Without them a connect to a host that drops packets waits
# for the OS (minutes), and a statement on a connection whose peer vanished without a word (a
# network cut, a host powered off) waits hours for TCP to notice: keepalives and tcp_user_timeout
# turn both into an error within about half a minute, and the host gives up its leases in time.
_LIBPQ_DEFAULTS = {"connect_timeout": "10", "keepalives": "1", "keepalives_idle": "10",
                   "keepalives_interval": "5", "keepalives_count": "3", "tcp_user_timeout": "30000"}
_IDLE_IN_TRANSACTION_MS = 60_000
_RECONNECT_EVERY = 2.0  # at most this many seconds between two tries to reach a server that went away
_MIGRATION_LOCK = 0x4C454F31  # "LEO1": the advisory lock migrations take
_CHANNEL = "leo_commit"  # every write's commit notifies it (dialects: commit_write)
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class _Numeric(Loader):
    """PostgreSQL's numeric (what SUM of integers gives) as int when whole, like SQLite."""

    def load(self, data: Any) -> int | float:
        value = Decimal(bytes(data).decode())
        return int(value) if value == value.to_integral_value() else float(value)


class _Cursor(ClientCursor):
    """Statements go as text, parameters written in (`PGConnection.bind`): like SQLite, a literal
    takes its type from where it stands."""


class PGConnection:
    """A psycopg connection that runs the shared SQL (``?`` marks, SQLite's spelling)."""

    dialect = POSTGRES
    __slots__ = ("raw", "trace")

    def __init__(self, raw: psycopg.Connection) -> None:
        self.raw = raw
        self.trace: Callable[[str], None] | None = None

    def set_trace_callback(self, trace: Callable[[str], None] | None) -> None:
        """Call `trace` with every statement run (as sqlite3's connection does)."""
        self.trace = trace

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor:
        if self.trace is not None:
            self.trace(sql)
        cursor = self.raw.cursor()
        cursor.execute(self.bind(sql, params))
        return cursor

    def bind(self, sql: str, params: Sequence[Any]) -> str:
        """The statement in PostgreSQL's SQL with its parameters written in as literals (see `_literal`)."""
        pieces = _templates.get(sql)
        if pieces is None:
            pieces = _templates[sql] = split_marks(POSTGRES.sql(sql))
        if len(pieces) != len(params) + 1:
            raise psycopg.ProgrammingError(f"the statement has {len(pieces) - 1} parameter(s), {len(params)} given")
        if not params:
            return pieces[0]
        out = [pieces[0]]
        for value, piece in zip(params, pieces[1:], strict=True):
            literal = _LITERALS.get(type(value))
            out.append(literal(value) if literal is not None else self._adapted(value))
            out.append(piece)
        return "".join(out)

    def _adapted(self, value: Any) -> str:
        return pgsql.Literal(value).as_string(self.raw)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Any:
        """Many rows: a plain INSERT goes as one COPY (several times faster than statements)."""
        if self.trace is not None:
            self.trace(sql)
        copy = _copy_plan(sql)
        if copy is not None:
            return self._copy(copy, rows)
        # Anything else: the statements joined, a few hundred per round trip.
        count = 0
        cursor = self.raw.cursor()
        batch: list[str] = []
        for row in rows:
            batch.append(self.bind(sql, row))
            if len(batch) == 500:
                count += _run_all(cursor, batch)
                batch = []
        if batch:
            count += _run_all(cursor, batch)
        return _Copied(count)

    def _copy(self, plan: tuple[str, tuple[Any, ...], tuple[int, ...]], rows: Iterable[Sequence[Any]]) -> _Copied:
        statement, constants, slots = plan
        count = 0
        fields = _COPY_FIELDS
        lines: list[str] = []
        size = 0
        with self.raw.cursor() as cursor, cursor.copy(statement) as copy:
            values = list(constants)
            for row in rows:
                if slots:
                    for slot, value in zip(slots, row, strict=True):
                        values[slot] = value
                    row = values
                line = "\t".join([fields.get(type(value), _copy_other)(value) for value in row])
                lines.append(line)
                size += len(line)
                if size > 1 << 20:
                    copy.write("\n".join(lines) + "\n")
                    count += len(lines)
                    lines, size = [], 0
            if lines:
                copy.write("\n".join(lines) + "\n")
                count += len(lines)
        return _Copied(count)

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != TransactionStatus.IDLE


def _run_all(cursor: psycopg.Cursor, statements: list[str]) -> int:
    """Run statements in one round trip; the rows they changed."""
    cursor.execute(";".join(statements))
    count = max(cursor.rowcount, 0)
    while cursor.nextset():
        count += max(cursor.rowcount, 0)
    return count


def _text(value: str) -> str:
    if "\x00" in value:
        raise psycopg.DataError("PostgreSQL text cannot hold NUL (\\u0000) characters")
    return "'" + value.replace("'", "''") + "'" if "'" in value else "'" + value + "'"


def _integer(value: int) -> str:
    return str(value) if value >= 0 else f"({value})"


def _float(value: float) -> str:
    return repr(value) if math.isfinite(value) else f"'{value!r}'::float8".replace("inf", "Infinity").replace("nan", "NaN")


def _bytes(value: bytes | bytearray | memoryview) -> str:
    return "'\\x" + bytes(value).hex() + "'::bytea"


# Literals written by hand for the types the store binds (far faster than adapting each value; the
# server's standard_conforming_strings, set on every connection, makes '...' take backslashes as
# they are). Any other type goes through psycopg's own quoting.
_LITERALS: dict[type, Callable[[Any], str]] = {
    str: _text,
    int: _integer,
    bool: lambda value: "'1'" if value else "'0'",  # true/false, or 1/0 where an integer is wanted (as SQLite)
    type(None): lambda value: "NULL",
    float: _float,
    bytes: _bytes,
    bytearray: _bytes,
    memoryview: _bytes,
}
_templates: dict[str, list[str]] = {}


def _copy_text(value: str) -> str:
    if "\\" in value or "\n" in value or "\r" in value or "\t" in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return value


def _copy_other(value: Any) -> str:
    raise psycopg.DataError(f"cannot copy a {type(value).__name__} value")


# COPY's text format, field by field (written by hand: several times faster than adapting rows).
_COPY_FIELDS: dict[type, Callable[[Any], str]] = {
    str: _copy_text,
    int: str,
    bool: lambda value: "1" if value else "0",  # a boolean or an integer column takes it
    type(None): lambda value: "\\N",
    float: repr,
    bytes: lambda value: "\\\\x" + value.hex(),
    bytearray: lambda value: "\\\\x" + value.hex(),
    memoryview: lambda value: "\\\\x" + value.hex(),
}


class _Copied:
    """What `PGConnection.executemany` gives back: the rows written (by a COPY, or statements)."""

    __slots__ = ("rowcount",)

    def __init__(self, rowcount: int) -> None:
        self.rowcount = rowcount


_PLAIN_INSERT = re.compile(r"^\s*INSERT INTO ([\w.]+)\s*\(([^)]*)\)\s*VALUES\s*\(([^)]*)\)\s*$", re.IGNORECASE)
_copy_plans: dict[str, tuple[str, tuple[Any, ...], tuple[int, ...]] | None] = {}


def _copy_plan(sql: str) -> tuple[str, tuple[Any, ...], tuple[int, ...]] | None:
    """(COPY statement, constant values, the slots parameters fill (empty: all)) for a plain
    ``INSERT INTO t(columns) VALUES (?, 5, NULL, ...)``; None for anything else (cached)."""
    if sql in _copy_plans:
        return _copy_plans[sql]
    plan = None
    match = _PLAIN_INSERT.match(sql)
    if match:
        table, columns = match[1], [column.strip() for column in match[2].split(",")]
        values = [value.strip() for value in match[3].split(",")]
        constants: list[Any] = []
        slots: list[int] = []
        for index, value in enumerate(values):
            if value == "?":
                slots.append(index)
                constants.append(None)
            elif value.upper() == "NULL":
                constants.append(None)
            elif re.fullmatch(r"-?\d+", value):
                constants.append(int(value))
            else:
                break
        else:
            if len(values) == len(columns):
                table = "pg_temp." + table[5:] if table.startswith("temp.") else table
                plan = (f"COPY {table} ({', '.join(columns)}) FROM STDIN", tuple(constants),
                        () if len(slots) == len(values) else tuple(slots))
    _copy_plans[sql] = plan
    return plan


def parse_url(url: str) -> tuple[str, str, dict[str, str]]:
    """(libpq connection URL, the URL with its password masked, leo's own options) of a
    ``postgresql://`` store URL. ``${VAR}`` is the environment variable's value (a missing one
    is an error naming it); libpq's own environment (PGPASSWORD, PGPASSFILE ...) works too."""

    def expand(match: re.Match[str]) -> str:
        value = os.environ.get(match[1])
        if value is None:
            raise StoreError(f"store URL {redact_urls(_VARIABLE.sub('${…}', url))}: environment variable "
                             f"{match[1]} is not set")
        return value

    expanded = _VARIABLE.sub(expand, url.strip())
    shown = redact_urls(url.strip()) if "${" in url else redact_urls(expanded)
    parts = urlsplit(expanded)
    if parts.scheme not in SCHEMES:
        raise StoreError(f"store URL {shown}: not a postgresql:// URL")
    options: dict[str, str] = {}
    libpq: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        (options.__setitem__(key, value) if key in _OWN_OPTIONS else libpq.append((key, value)))
    schema = options.get("schema")
    if schema is not None and not _SCHEMA_NAME.match(schema):
        raise StoreError(f"store URL {shown}: schema must be a plain name (letters, digits, _), not {schema!r}")
    given = {key for key, _ in libpq}
    libpq += [(key, value) for key, value in _LIBPQ_DEFAULTS.items() if key not in given]
    conninfo = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(libpq), ""))
    return conninfo, shown, options


class _Pool(ConnectionPool):
    """psycopg's pool, retrying a lost server every `_RECONNECT_EVERY` seconds at most.

    The pool replaces a broken connection in the background and, while the server stays away,
    doubles the delay between tries (1, 2, 4, ... s): after a cut of a minute its next try could be
    a minute away, and the host would rejoin the cluster that much later than its store came back."""

    def _add_connection(self, attempt: Any, growing: bool = False) -> None:
        if attempt is not None and getattr(attempt, "delay", 0.0) * 2 > _RECONNECT_EVERY:
            attempt.delay = _RECONNECT_EVERY / 2  # doubled after this try fails: _RECONNECT_EVERY
        super()._add_connection(attempt, growing)


class PostgresStore(SQLStore):
    """`Store` over one PostgreSQL database (see the module docstring).

    ``read_only=True`` (the CLI's reading commands) creates and migrates nothing: a database
    without leo's tables, or of an older schema, is a StoreError saying what to run.
    """

    _db_error = psycopg.Error
    _keyed_writes = True

    def __init__(self, url: str, *, read_only: bool = False) -> None:
        conninfo, self.url, options = parse_url(url)
        self.schema = options.get("schema")
        try:
            pool_size = int(options.get("pool_size", 32))
            pool_timeout = float(options.get("pool_timeout", 30))
        except ValueError:
            raise StoreError(f"store {self.url}: pool_size and pool_timeout must be numbers") from None
        self.read_only = read_only
        self._local = threading.local()
        self._write_lock = threading.RLock()
        self._queue_ids: dict[str, int] = {}
        self._queue_names: dict[int, str] = {}
        self._listeners: list[AppendListener] = []
        self._schema_seen = 0
        self._closed = False
        self._taken: set[PGConnection] = set()
        self._taken_lock = threading.Lock()
        self._listen: psycopg.Connection | None = None
        self._listen_lock = threading.Lock()
        self._commits = 0
        self._conninfo = conninfo
        problem = self._last_error()  # a clear error at once, not a pool retrying in the background
        if problem is not None:
            raise StoreError(f"store {self.url}: cannot connect: {problem}")
        # The pool's own reconnect attempts would log a line per try while the server is away;
        # leo says once per beat what it cannot do (`cannot renew leases`, `cannot check the store`).
        logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
        self._pool = _Pool(
            conninfo,
            min_size=1,
            max_size=max(pool_size, 1),
            timeout=pool_timeout,
            kwargs={"autocommit": True, "cursor_factory": _Cursor},
            configure=self._configure,
            open=False,
            name=self.url,
        )
        try:
            self._pool.open(wait=True, timeout=pool_timeout)
        except PoolTimeout as exc:
            self._pool.close()
            raise StoreError(f"store {self.url}: cannot connect: {self._last_error() or exc}") from None
        self._open()

    def _last_error(self) -> str | None:
        try:
            with psycopg.connect(self._conninfo, connect_timeout=5):
                return None
        except psycopg.Error as exc:
            return _message(exc)

    def _configure(self, raw: psycopg.Connection) -> None:
        raw.adapters.register_loader("numeric", _Numeric)
        raw.execute("SET standard_conforming_strings = on")  # parameters are written in as '...' literals
        # The store reads in keyset pages (``WHERE queue_id = ? AND seq > ? ORDER BY seq LIMIT ?``):
        # an ordered index scan that stops after a page. Before a fresh table has statistics the
        # planner prefers a bitmap scan of every later row, sorted (ten times slower per page).
        raw.execute("SET enable_bitmapscan = off")
        # Pages are read in key order through aggregates that keep their input's order (dialects:
        # window); short statements gain nothing from parallel workers anyway.
        raw.execute("SET max_parallel_workers_per_gather = 0")
        # Writers take turns through one lock held for their transaction: a host that vanished in
        # the middle of one (a network cut the server has not noticed) would hold it, and every
        # other host's writes, until TCP gave up, hours later. No transaction of leo's sits idle
        # between statements for long; the server ends one that does, and its lock with it.
        raw.execute(f"SET idle_in_transaction_session_timeout = {_IDLE_IN_TRANSACTION_MS}")
        if self.schema:
            raw.execute(pgsql.SQL("SET search_path TO {}").format(pgsql.Identifier(self.schema)))

    # -- connections and transactions ---------------------------------------------------------
    def _conn(self) -> PGConnection:
        conn: PGConnection | None = getattr(self._local, "conn", None)
        if conn is not None and not conn.raw.closed:
            return conn
        if conn is not None:  # broken: give it back (the pool drops it) and take another
            self.close_thread()
        if self._closed:
            raise StoreError(f"store {self.url} is closed")
        try:
            raw = self._pool.getconn()
        except PoolTimeout as exc:
            raise StoreError(f"store {self.url}: no connection free in the pool ({exc})") from None
        conn = PGConnection(raw)
        self._hold(conn)
        with self._taken_lock:
            self._taken.add(conn)
        return conn

    def _lost(self, conn: PGConnection) -> None:  # type: ignore[override]
        if conn.raw.closed or conn.raw.broken:  # the server went away: the next call takes a new one
            self.close_thread()

    def _error_text(self, exc: Exception) -> str:
        return _message(exc)

    def _forget(self, conn: PGConnection) -> None:
        with self._taken_lock:
            if conn not in self._taken:
                return
            self._taken.discard(conn)
        if conn.in_transaction and not conn.raw.closed:
            with suppress(psycopg.Error):
                conn.raw.execute("ROLLBACK")
        with suppress(Exception):
            self._pool.putconn(conn.raw)

    def _idle(self) -> None:
        """A thread's store call, or snapshot, ended: its connection goes back to the pool.

        Connections are lent per call, not held per thread: the API's worker threads (dozens) and
        every bot's thread would otherwise each keep one open for as long as the thread lives, a
        host would need a connection per thread, and a cluster of hosts would exhaust the server's
        ``max_connections`` (100 by default) while most of them sat idle."""
        local = self._local
        conn = getattr(local, "conn", None)
        if (conn is not None and not getattr(local, "calls", 0) and not getattr(local, "snapshots", 0)
                and (not conn.in_transaction or conn.raw.broken or conn.raw.closed)):
            self.close_thread()

    def close(self) -> None:
        self._closed = True
        with self._taken_lock:
            taken, self._taken = list(self._taken), set()
        for conn in taken:
            # Closed, not rolled back and given back: another thread may be in a statement on it
            # (waiting for a server that went away would keep this call, and the process, waiting
            # too). The server rolls back what a closed connection left open.
            with suppress(Exception):
                conn.raw.close()
        with self._listen_lock:
            self._drop_listen()
        with suppress(Exception):
            self._pool.close(timeout=5)
        self._local = threading.local()

    def changed_since(self, token: Any) -> tuple[bool, Any]:
        """Whether any process committed since `token`: commits NOTIFY, a connection of this
        store listens (opened on first use)."""
        with self._listen_lock:
            self._take_notices(0.01)  # a commit's notice may still be on its way when its committer returns
            commits = self._commits
        return commits != token, commits

    def _take_notices(self, timeout: float, stop_after: int | None = None) -> None:
        """Count the commits notified within `timeout` (the caller holds `_listen_lock`). The
        listening connection is opened on first use, and again after the server dropped it:
        whatever happened meanwhile is unknown, so a new connection counts as a change."""
        try:
            if self._listen is None or self._listen.closed or self._listen.broken:
                self._drop_listen()
                listen = psycopg.connect(self._conninfo, autocommit=True)
                listen.execute(f"LISTEN {_CHANNEL}")
                self._listen = listen
                self._commits += 1
            for _ in self._listen.notifies(timeout=timeout, stop_after=stop_after):
                self._commits += 1
        except psycopg.Error as exc:
            self._drop_listen()  # the next call connects again
            raise StoreError(f"store {self.url}: cannot listen for commits: {_message(exc)}") from None

    def _drop_listen(self) -> None:
        """Close the listening connection, if any (the caller holds `_listen_lock`)."""
        if self._listen is not None:
            with suppress(psycopg.Error):
                self._listen.close()
            self._listen = None

    def wait_changed(self, token: Any, timeout: float, stopping: threading.Event) -> tuple[bool, Any]:
        """Returns as soon as a commit's NOTIFY comes (any process, any host), or after `timeout`."""
        deadline = time.monotonic() + timeout
        while not stopping.is_set():
            changed, token = self.changed_since(token)
            left = deadline - time.monotonic()
            if changed or left <= 0:
                return changed, token
            with self._listen_lock:  # block until a notice (or a slice of the wait has passed)
                self._take_notices(min(left, 0.25), stop_after=1)
        return self.changed_since(token)

    # -- schema ---------------------------------------------------------------------------------
    def _migrate(self) -> None:
        with self._write() as conn:
            if self.schema:
                conn.raw.execute(pgsql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(pgsql.Identifier(self.schema)))
            conn.raw.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            if not self._has_migrations(conn) and self._foreign_tables(conn):
                raise StoreError(
                    f"store {self.url}: the database (schema {self.schema or 'public'}) holds tables that are not "
                    "leo's; use an empty database or another schema (?schema=leo)"
                )
            self._apply_migrations(conn, lambda script: conn.raw.execute(migration_script(script)))

    def _has_migrations(self, conn: PGConnection) -> bool:
        return bool(conn.execute(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() "
            "AND table_name = 'schema_migrations'"
        ).fetchone()[0])

    def _foreign_tables(self, conn: PGConnection) -> bool:
        row = conn.execute(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() "
            "AND table_name != 'schema_migrations'"
        ).fetchone()
        return bool(row[0])

    def _check_readable(self) -> None:
        if not self._has_migrations(self._conn()):
            raise StoreError(
                f"store {self.url}: the database holds no leo store yet (a writing command such as "
                "`leo run` or `leo queues put` sets it up)"
            )
        self._check_schema(self.schema_version(), reading=True)


# Not lent per call: the snapshot hands its connection back itself when it ends (`_idle`); the
# others manage connections themselves.
_NOT_LENT = frozenset({"snapshot", "close", "close_thread", "changed_since", "wait_changed"})


def _lent_per_call(method: Callable[..., Any]) -> Callable[..., Any]:
    """`method`, giving the thread's connection back to the pool when its outermost store call
    returns outside a transaction. A server that went away, or a connection it dropped, is a
    StoreError there, as every other store trouble is (callers never see psycopg's errors)."""

    @functools.wraps(method)
    def call(self: PostgresStore, *args: Any, **kwargs: Any) -> Any:
        local = self._local
        depth = getattr(local, "calls", 0)
        local.calls = depth + 1
        try:
            return method(self, *args, **kwargs)
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            if depth:
                raise
            raise StoreError(f"store {self.url}: {_message(exc)}") from exc
        finally:
            local.calls = depth
            if not depth:
                self._idle()

    return call


for _name in dir(PostgresStore):
    _method = inspect.getattr_static(PostgresStore, _name)
    if not _name.startswith("_") and _name not in _NOT_LENT and inspect.isfunction(_method):
        setattr(PostgresStore, _name, _lent_per_call(_method))


def _message(exc: BaseException) -> str:
    """A psycopg error's first line, without any password it might quote."""
    return redact_urls(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
