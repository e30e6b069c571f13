"""The host registry and shared token buckets over SQL (`base_hosts.HostStore`).

Every statement is portable (SQLite 3.35+ and PostgreSQL 9.5+: ``ON CONFLICT``, no dialect
functions) but the bucket's read (in `dialects.STATEMENTS`), so a backend supplies only
connections: ``_write()`` (one write transaction whose
row locks every host takes in turn) and ``_conn()`` (a connection for reads)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from ..timeutil import now_ms
from .base_hosts import HostInfo, HostStore, LeaseRow

T = TypeVar("T")

FORGET_AFTER_MS = 86_400_000
"""A host row not refreshed for a day is dropped (a host that comes back inserts it again)."""

HOSTS_SINCE = 10
"""The schema version (migration) that adds the hosts and rate_buckets tables."""

HOST_COLUMNS = "id, name, pid, role, address, started_at, seen_at"

STATEMENTS = {
    "beat": (
        f"INSERT INTO hosts({HOST_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(id) DO UPDATE SET role = excluded.role, address = excluded.address, seen_at = excluded.seen_at"
    ),
    "forget": "DELETE FROM hosts WHERE seen_at < ?",
    "live": f"SELECT {HOST_COLUMNS} FROM hosts WHERE seen_at > ? ORDER BY started_at, id",
    "unregister": "DELETE FROM hosts WHERE id = ?",
    "leases": "SELECT bot_id, lease_owner, lease_expires_at FROM bots ORDER BY bot_id",
    "bucket_put": (
        "INSERT INTO rate_buckets(key, level, updated_at) VALUES (?, ?, ?) "
        "ON CONFLICT(key) DO UPDATE SET level = excluded.level, updated_at = excluded.updated_at"
    ),
}
"""The statements, with ``?`` placeholders (a backend with another paramstyle rewrites them once)."""


class SQLHosts(HostStore):
    """`HostStore` for a SQL backend: it needs ``_write()`` and ``_conn()``."""

    _write: Callable[[], AbstractContextManager[Any]]
    _conn: Callable[[], Any]
    _at_least: Callable[[int], bool]

    def beat_host(self, host: HostInfo, ttl_ms: int) -> list[HostInfo]:
        now = now_ms()
        with self._write() as conn:
            conn.execute(STATEMENTS["forget"], (now - FORGET_AFTER_MS,))
            conn.execute(STATEMENTS["beat"], (host.id, host.name, host.pid, host.role, host.address, host.started_at, now))
            return [HostInfo(*row) for row in conn.execute(STATEMENTS["live"], (now - ttl_ms,)).fetchall()]

    def unregister_host(self, host_id: str) -> None:
        with self._write() as conn:
            conn.execute(STATEMENTS["unregister"], (host_id,))

    def live_hosts(self, ttl_ms: int) -> list[HostInfo]:
        if not self._at_least(HOSTS_SINCE):  # an older store read as it is: nobody registered
            return []
        return [HostInfo(*row) for row in self._conn().execute(STATEMENTS["live"], (now_ms() - ttl_ms,)).fetchall()]

    def lease_rows(self) -> list[LeaseRow]:
        return [LeaseRow(*row) for row in self._conn().execute(STATEMENTS["leases"]).fetchall()]

    def step_bucket(self, key: str, step: Callable[[int | None, int | None], tuple[int, int, T]]) -> T:
        with self._write(key=f"bucket:{key}") as conn:
            row = conn.execute(conn.dialect.statement("bucket"), (key,)).fetchone()
            level, updated_at, answer = step(*(row or (None, None)))
            conn.execute(STATEMENTS["bucket_put"], (key, level, updated_at))
        return answer
