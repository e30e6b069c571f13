"""The store interface for what operators see in the console: a compact history of every bot's
counters (the charts of reads, writes and errors) and the console's sign-in sessions.

Both live in the store, not in a process, so the charts survive a restart and every host of a
cluster draws the same ones, and a session signed in on one host is valid (and ends) on all.
`Store` inherits these methods. Times are epoch milliseconds.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BotSample:
    """A bot's cumulative counters at ``at``: events read, events written and failed runs (the
    store's own counters, so any host's sample of them is the same)."""

    bot_id: str
    at: int
    events_in: int
    events_out: int
    failures: int


class ConsoleStore(ABC):
    """Bot history samples and console sessions (a backend must provide them)."""

    @abstractmethod
    def sample_bot_history(self, at: int) -> int:
        """Note every bot's counters as a sample at `at`, in ONE transaction, for the bots whose
        counters changed since their latest sample (a quiet bot costs no row). A sample of a bot
        already taken at `at` (by another host) is kept as it is. Returns the samples written."""

    @abstractmethod
    def bot_history(self, bot_id: str, since: int) -> list[BotSample]:
        """The bot's samples at or after `since`, oldest first, preceded by its latest sample
        before `since` when there is one (the baseline the first difference is taken from)."""

    @abstractmethod
    def prune_bot_history(self, before: int, thin_before: int) -> int:
        """Drop samples older than `before`, except each bot's latest (a baseline), and of those
        older than `thin_before` keep only the last of each bot and minute (the counters are
        cumulative, so the minute's total stays exact). One transaction; returns how many went."""

    @abstractmethod
    def create_console_session(self, token_hash: bytes, csrf: str, expires_at: int) -> None:
        """Start a console session (its token kept only as a hash, with its CSRF token); expired
        sessions are dropped in the same transaction."""

    @abstractmethod
    def console_session(self, token_hash: bytes, now: int) -> str | None:
        """The CSRF token of the live session with this token hash, or None (unknown, ended or expired)."""

    @abstractmethod
    def end_console_session(self, token_hash: bytes) -> bool:
        """End a session at once (sign-out); True when it existed."""
