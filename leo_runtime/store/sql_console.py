"""The SQLite side of `ConsoleStore`: bot history samples and console sessions (migration 7).

A mixin of `SQLStore`, like the webhooks and streams ones: each write is one short
``BEGIN IMMEDIATE`` transaction under the store's write lock.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from ..timeutil import now_ms
from .base_console import BotSample, ConsoleStore
from .dialects import Connection

CONSOLE_SCHEMA = 7
"""The migration that adds bot history and console sessions (a read-only opener may look at an older file)."""

# A bot gets a sample only when one of its counters differs from its latest sample.
_SAMPLE = (
    "INSERT OR IGNORE INTO bot_history(bot_id, at, events_in, events_out, failures) "
    "SELECT b.bot_id, ?, b.events_in, b.events_out, b.failures FROM bots b WHERE NOT EXISTS ("
    "SELECT 1 FROM bot_history h WHERE h.bot_id = b.bot_id "
    "AND h.at = (SELECT MAX(at) FROM bot_history m WHERE m.bot_id = b.bot_id) "
    "AND h.events_in = b.events_in AND h.events_out = b.events_out AND h.failures = b.failures)"
)


class SQLConsole(ConsoleStore):
    """`ConsoleStore` over the tables of migration 7 (see `leo_runtime.store.migrations`)."""

    if TYPE_CHECKING:
        def _conn(self) -> Connection: ...
        def _write(self) -> AbstractContextManager[Connection]: ...
        def _at_least(self, version: int) -> bool: ...

    def sample_bot_history(self, at: int) -> int:
        with self._write() as conn:
            return conn.execute(_SAMPLE, (at,)).rowcount

    def bot_history(self, bot_id: str, since: int) -> list[BotSample]:
        if not self._at_least(CONSOLE_SCHEMA):
            return []
        conn = self._conn()
        columns = "bot_id, at, events_in, events_out, failures"
        baseline = conn.execute(
            f"SELECT {columns} FROM bot_history WHERE bot_id = ? AND at < ? ORDER BY at DESC LIMIT 1", (bot_id, since)
        ).fetchall()
        rows = conn.execute(
            f"SELECT {columns} FROM bot_history WHERE bot_id = ? AND at >= ? ORDER BY at", (bot_id, since)
        ).fetchall()
        return [BotSample(*row) for row in [*baseline, *rows]]

    def prune_bot_history(self, before: int, thin_before: int) -> int:
        with self._write() as conn:
            dropped = conn.execute(
                "DELETE FROM bot_history WHERE at < ? AND at < "
                "(SELECT MAX(at) FROM bot_history m WHERE m.bot_id = bot_history.bot_id)",
                (before,),
            ).rowcount
            return dropped + conn.execute(
                "DELETE FROM bot_history WHERE at < ? AND EXISTS (SELECT 1 FROM bot_history later "
                "WHERE later.bot_id = bot_history.bot_id AND later.at > bot_history.at "
                "AND later.at / 60000 = bot_history.at / 60000)",
                (thin_before,),
            ).rowcount

    def create_console_session(self, token_hash: bytes, csrf: str, expires_at: int) -> None:
        with self._write() as conn:
            now = now_ms()
            conn.execute("DELETE FROM console_sessions WHERE expires_at <= ?", (now,))
            conn.execute(
                "INSERT INTO console_sessions(token_hash, csrf, created_at, expires_at) VALUES (?, ?, ?, ?)",
                (token_hash, csrf, now, expires_at),
            )

    def console_session(self, token_hash: bytes, now: int) -> str | None:
        if not self._at_least(CONSOLE_SCHEMA):
            return None
        row = self._conn().execute(
            "SELECT csrf FROM console_sessions WHERE token_hash = ? AND expires_at > ?", (token_hash, now)
        ).fetchone()
        return row[0] if row else None

    def end_console_session(self, token_hash: bytes) -> bool:
        with self._write() as conn:
            return conn.execute("DELETE FROM console_sessions WHERE token_hash = ?", (token_hash,)).rowcount > 0
