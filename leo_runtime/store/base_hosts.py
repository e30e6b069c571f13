"""The store interface for a cluster of `leo run` processes: the host registry (who is alive and
what it runs) and the token buckets shared by every host (Get Object's rate).

A host is one `leo run` process (several may run on one machine: ``--workers``, or the same store
opened by `leo run` on several machines). Its row is its heartbeat: a host whose ``seen_at`` is
older than ``cluster.lease_ttl`` is dead, whatever its row says. `Store` inherits these methods.
Times are epoch milliseconds.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

ROLES = ("all", "api", "bots")
"""What a host runs: ``all`` (the API and bots), ``api`` (the API only), ``bots`` (bots only)."""

BOT_ROLES = frozenset({"all", "bots"})

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class HostInfo:
    """One `leo run` process: ``id`` is its lease owner id (``name:pid:nonce``), ``address`` the
    base URL of its HTTP API (None when it serves none), ``seen_at`` its last heartbeat."""

    id: str
    name: str
    pid: int
    role: str
    address: str | None
    started_at: int
    seen_at: int

    @property
    def runs_bots(self) -> bool:
        return self.role in BOT_ROLES


@dataclass(frozen=True, slots=True)
class LeaseRow:
    """Who holds a bot's lease (None: nobody) and until when."""

    bot_id: str
    owner: str | None
    expires_at: int | None


class HostStore(ABC):
    """The host registry and shared token buckets (a backend must provide them)."""

    @abstractmethod
    def beat_host(self, host: HostInfo, ttl_ms: int) -> list[HostInfo]:
        """A host's heartbeat, in ONE transaction: insert or refresh its row (``seen_at`` now: a
        host whose row was dropped rejoins), forget hosts not seen for a day, and return the live
        hosts (seen within `ttl_ms`, this one included), oldest first."""

    @abstractmethod
    def unregister_host(self, host_id: str) -> None:
        """Forget a host that stopped (its leases are released apart)."""

    @abstractmethod
    def live_hosts(self, ttl_ms: int) -> list[HostInfo]:
        """The hosts seen within `ttl_ms`, oldest first (a read: no heartbeat)."""

    @abstractmethod
    def lease_rows(self) -> list[LeaseRow]:
        """Every bot's lease holder and expiry (a read; what a host balances its share from)."""

    @abstractmethod
    def step_bucket(self, key: str, step: Callable[[int | None, int | None], tuple[int, int, T]]) -> T:
        """Move the shared token bucket `key` in ONE transaction that every host takes in turn:
        `step(level, updated_at)` (None, None for a new bucket) returns the new level, the new
        ``updated_at`` and the answer handed back. The arithmetic is the caller's
        (`leo_runtime.server.ratelimit`); the store keeps rows."""
