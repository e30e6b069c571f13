"""The embedded store: one SQLite file in WAL mode.

Concurrency: every thread gets its own connection; writers in this process take a lock so they
never wait on SQLite's busy handler, other processes (the CLI beside ``leo run``) wait up to
``busy_timeout``. Every write is one short ``BEGIN IMMEDIATE`` transaction; reads need none
(WAL readers see the last commit and never block the writer).
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

from ..errors import StoreError
from .base import AppendListener
from .dialects import SQLITE, Connection
from .ownership import APPLICATION_ID, check_header, check_writable, ownership, reader_uri
from .sql import SQLStore


class _Connection(sqlite3.Connection):
    """sqlite3's connection, saying which SQL it speaks (see `dialects`)."""

    dialect = SQLITE


class SQLiteStore(SQLStore):
    """`Store` over one SQLite database file (see the module docstring for concurrency).

    Opening refuses a file that is not a leo store (see `ownership`) and leaves it untouched.
    Read-write (the default), it creates the file if missing, marks and migrates it, in one
    transaction that concurrent openers take in turn. ``read_only=True`` (the CLI's reading
    commands) creates, migrates and writes nothing: a missing file, an empty one or an older
    schema is a StoreError that says what to run; every write method raises StoreError.
    """

    _db_error = sqlite3.Error

    def __init__(
        self, path: str | Path, *, busy_timeout: float = 30.0, synchronous: str = "NORMAL", read_only: bool = False
    ) -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self._busy_timeout = busy_timeout
        if synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise StoreError(f"store URL: synchronous must be off, normal, full or extra, not {synchronous!r}")
        self._synchronous = synchronous.upper()
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._write_lock = threading.RLock()
        self._lock_file: Any = None  # the open lock file every leo writer of the file takes (False: none)
        self._lock_depth = 0  # nested writes of the thread holding _write_lock
        self._queue_ids: dict[str, int] = {}
        self._queue_names: dict[int, str] = {}
        self._listeners: list[AppendListener] = []
        self._closed = False
        self._version_conn: sqlite3.Connection | None = None
        self._version_lock = threading.Lock()
        self.read_only = read_only
        self._reader: tuple[str, bool] | None = None  # read-only: (URI, add query_only)
        self._schema_seen = 0
        if not self.path.parent.exists():
            raise StoreError(f"store {self.url}: directory {self.path.parent} does not exist")
        if read_only and not self.path.exists():
            raise StoreError(
                f"store {self.url}: {self.path} does not exist (reading commands never create a store: "
                "check the path, or create the store with `leo run` or `leo queues put`)"
            )
        check_header(self.path, self.url)
        if not read_only:
            check_writable(self.path, self.url)
        self._open()

    # -- connections and transactions ---------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise StoreError(f"store {self.url} is closed")
            try:
                conn = self._connect()
                conn.execute(f"PRAGMA synchronous={self._synchronous}")
                conn.execute("PRAGMA cache_size=-32000")
                # Temporary tables (a long read's rows set aside) in a file: memory stays flat whatever
                # their size, and small ones never leave the page cache anyway.
                conn.execute("PRAGMA temp_store=FILE")
            except sqlite3.Error as exc:
                raise StoreError(f"store {self.url}: cannot open: {exc}") from exc
            self._hold(conn)
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    def _connect(self) -> sqlite3.Connection:
        """A new connection: read-write, or for a read-only store the way `reader_uri` chose.
        (WAL mode is a property of the file, set once when the store is opened for writing.)"""
        if self._reader is None:
            return sqlite3.connect(
                self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False, factory=_Connection
            )
        uri, query_only = self._reader
        conn = sqlite3.connect(
            uri, uri=True, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False, factory=_Connection
        )
        if query_only:
            conn.execute("PRAGMA query_only=ON")
        return conn

    def _begin_write(self, conn: Connection) -> None:
        """Take the write lock: first this store's lock file, which every leo process on the file
        takes in turn (`flock` wakes a waiter the moment it is released), then SQLite's lock.
        SQLite's own busy handler sleeps up to 100 ms at a time, and a short sleep misses the gap
        between another process's back-to-back writes: with several `leo run` processes on one
        file (``--workers``, roles) either way a process would starve. Other programs writing
        the file are still waited for by ``busy_timeout``. The lock file is held only for the
        length of one write transaction (never while bot code runs); a leo process stopped
        (SIGSTOP) inside one holds the others' writes until it goes on or dies (the kernel
        releases the lock of a dead process at once)."""
        if self._lock_file is None:
            self._lock_file = _open_lock_file(self.path)
        if self._lock_file is not False and self._lock_depth == 0:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX)  # the GIL is released while it waits
        self._lock_depth += 1
        try:
            super()._begin_write(conn)
        except BaseException:
            self._end_write()
            raise

    def _end_write(self) -> None:
        self._lock_depth -= 1
        if self._lock_file not in (None, False) and self._lock_depth == 0:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)

    def _forget(self, conn: sqlite3.Connection) -> None:
        """Close a thread's connection (it ended, or said it is done). SQLite keeps the file's
        descriptor open while other connections of this process hold locks on the file, and
        hands it to the next connection opened: descriptors stay bounded by the connections
        open at once, never by the threads that ever ran."""
        with self._connections_lock:
            if conn in self._connections:
                self._connections.remove(conn)
        with suppress(sqlite3.Error):
            conn.close()

    def close(self) -> None:
        self._closed = True
        if self._lock_file not in (None, False):
            with suppress(OSError):
                self._lock_file.close()
        self._lock_file = False
        with self._connections_lock:
            for conn in self._connections:
                with suppress(sqlite3.Error):
                    conn.close()
            self._connections.clear()
        self._local = threading.local()

    # -- schema ---------------------------------------------------------------------------------
    def _migrate(self) -> None:
        """Check the file is leo's, mark it, apply pending migrations: ONE transaction, so a
        failure leaves the file as it was and concurrent openers of a new file take turns."""
        with self._write() as conn:
            if ownership(conn, self.url, self.path) != "leo":
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")

            def run(script: str) -> None:
                for statement in _statements(script):
                    conn.execute(statement)

            self._apply_migrations(conn, run)
        self._use_wal()

    def _use_wal(self) -> None:
        """Put the file in WAL mode (it stays so). Switching needs the file to itself for a
        moment and SQLite does not wait for that, so a busy file is retried up to busy_timeout."""
        conn = self._conn()
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.005)
        if str(mode).lower() != "wal":
            raise StoreError(f"store {self.url}: cannot switch the file to WAL mode (it stays in {mode} mode)")

    def _check_readable(self) -> None:
        """Read-only opening: the file must already be a leo store of this schema version."""
        self._reader = reader_uri(self.path)
        conn = self._conn()
        if ownership(conn, self.url, self.path) == "new":
            raise StoreError(
                f"store {self.url}: {self.path} is empty, not a leo store yet (a writing command such as "
                "`leo run` or `leo queues put` sets it up)"
            )
        self._check_schema(self.schema_version(), reading=True)

    def changed_since(self, token: Any) -> tuple[bool, Any]:
        # data_version is per connection: it must always be asked on the same one.
        with self._version_lock:
            if self._version_conn is None:
                self._version_conn = self._connect()
                with self._connections_lock:
                    self._connections.append(self._version_conn)
            version = self._version_conn.execute("PRAGMA data_version").fetchone()[0]
        return version != token, version

def _open_lock_file(path: Path) -> Any:
    """The lock file that leo writers of the store at `path` take in turn, named by the file's
    device and inode in the temporary folder (nothing is added beside the store, and every path
    to one file finds the same lock); False where it cannot be opened (SQLite's lock alone then
    orders the writers)."""
    import tempfile

    try:
        info = os.stat(path)
        name = Path(tempfile.gettempdir()) / f"leo-store-{info.st_dev}-{info.st_ino}.lock"
        return os.fdopen(os.open(name, os.O_RDONLY | os.O_CREAT, 0o666), "rb")  # flock needs no write access
    except OSError:
        return False


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (a ';' inside a string or trigger stays put)."""
    statements: list[str] = []
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n\t;"):
                statements.append(pending.strip())
            pending = ""
    if pending.strip(" \n\t;"):
        statements.append(pending.strip().rstrip(";"))
    return statements
