"""Throwaway PostgreSQL databases for tests, on the real server (127.0.0.1:5432 unless
``LEO_TEST_PG`` names another admin URL).

One database per test process (pytest-xdist workers each get their own), created on first use
and dropped when the process ends; each test gets a fresh schema in it (``?schema=...``), which
is as good as a fresh database for the store and far cheaper to make.
"""

from __future__ import annotations

import atexit
import itertools
import os
import threading
import uuid

ADMIN_URL = os.environ.get("LEO_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")

_lock = threading.Lock()
_database: str | None = None
_counter = itertools.count(1)


def _admin():
    import psycopg

    return psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=10)


def database_url() -> str:
    """The URL of this process's throwaway database (created on first call)."""
    global _database
    with _lock:
        if _database is None:
            name = f"leo_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
            with _admin() as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            _database = name
            atexit.register(drop_database, name)
        base, _, _ = ADMIN_URL.rpartition("/")
        return f"{base}/{_database}"


def drop_database(name: str) -> None:
    try:
        with _admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except Exception:  # the server went away: nothing left to drop
        pass


def fresh_store_url() -> str:
    """A store URL no test has used: a new schema in this process's database."""
    return f"{database_url()}?schema=t{next(_counter)}_{uuid.uuid4().hex[:6]}"
