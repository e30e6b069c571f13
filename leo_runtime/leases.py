"""Who runs a bot: lease owners are ``host:pid:nonce`` so a restart on the same host can take
over at once from a process that is gone (killed with -9), instead of waiting for expiry.
`LeaseKeeper` holds one runtime's leases.

Several `leo run` processes on one store (a cluster: ``--workers`` on one machine, or several
machines) share the bots by the same leases. Each host heartbeats its row in the store's host
registry; every `BALANCE_SECONDS` it counts the live hosts that run bots and holds at most its fair
share (``ceil(bots / hosts)`` for the ``bots % hosts`` oldest, the floor for the others): past it,
it gives leases back at their bots' next run boundary; below it, it wakes its standing-by runners
whose lease is free (never held, released, expired, or held by a process of this machine that is
gone) so they take it. A host killed with ``kill -9`` stops renewing: its leases expire within the
TTL and the others take them at their next balance, so its bots run elsewhere within ``lease_ttl +
BALANCE_SECONDS``."""

from __future__ import annotations

import functools
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

from .errors import LeoError
from .store import Store
from .store.base_hosts import HostInfo, LeaseRow
from .timeutil import now_ms

if TYPE_CHECKING:  # `leo status` reads LEASE_TTL_MS; only `leo run` keeps leases
    import asyncio

log = logging.getLogger("leo.runtime")

LEASE_TTL_MS = 15_000
"""The default of ``cluster.lease_ttl`` (in ms)."""

BALANCE_SECONDS = 1.0
"""How often a host looks at the cluster (live hosts, free leases) to hold its fair share."""

BEAT_SECONDS_MAX = 5.0
"""A host heartbeats (and renews its leases) every third of the TTL, and at least this often: a
listing that counts hosts seen within the default TTL (`/metrics`) never drops a live one."""


def make_owner() -> str:
    """A lease owner id: ``host:pid:nonce`` (the pid lets a restart on this host reclaim at once)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_is_gone(owner: str) -> bool:
    """True when `owner` is a process of this host that no longer runs (killed, crashed)."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


class LeaseKeeper:
    """The leases one runtime holds: its owner id, which bots it holds, taking, renewing and
    giving them back, and its fair share of a cluster's bots. A runner is handed this, never
    the runtime.

    Every store call runs in a worker thread (``executor``), never on the event loop; the set
    of held leases is changed on the loop only.
    """

    def __init__(self, store: Store, *, owner: str | None = None, ttl_ms: int = LEASE_TTL_MS,
                 executor: Executor | None = None, role: str = "all") -> None:
        self.store = store
        self.owner = owner or make_owner()
        self.ttl_ms = ttl_ms
        self.role = role
        self.address: str | None = None  # the HTTP API this host serves (set once it is bound)
        self.started_at = now_ms()
        self.hosts: list[HostInfo] = []  # the live hosts as of the last heartbeat or balance
        self._executor = executor
        self._held: dict[str, Callable[[], None]] = {}  # bot id -> what to call when the lease is lost
        # bot id -> until when (time.monotonic) the lease surely holds: the start of the last store
        # call that took or renewed it, plus the ttl (the store dates it later, never earlier).
        self._valid_until: dict[str, float] = {}
        self._wanted: dict[str, Callable[[], None]] = {}  # bot id -> how to wake its runner
        self._yielding: set[str] = set()  # held leases to give back at their bot's next run boundary
        self._share: int | None = None  # None: no cap (no look at the cluster yet)

    # -- what runners ask -------------------------------------------------------------------------
    def holds(self, bot_id: str) -> bool:
        """Whether this host holds the bot's lease and it has surely not expired (a host that
        cannot reach its store stops running the bot before another host may take it)."""
        return bot_id in self._held and self._valid_until.get(bot_id, 0.0) > time.monotonic()

    def want(self, bot_id: str, wake: Callable[[], None]) -> None:
        """A runner for `bot_id` runs here: count it in the share, wake it when its lease is free."""
        self._wanted[bot_id] = wake

    def unwant(self, bot_id: str) -> None:
        self._wanted.pop(bot_id, None)
        self._yielding.discard(bot_id)

    def may_take(self) -> bool:
        """Whether this host holds less than its fair share (a runner may try to take its lease)."""
        return self._share is None or len(self._held) < self._share

    def must_yield(self, bot_id: str) -> bool:
        """Whether the bot's lease is to be given back now, at a run boundary (this host holds
        more than its share: a host joined)."""
        return bot_id in self._yielding

    async def acquire(self, bot_id: str, on_lost: Callable[[], None]) -> bool:
        """Take the bot's lease when free, expired, ours, or held by a process that is gone.
        `on_lost` is called (on the loop) if a renewal later finds it taken by someone else."""
        asked_at = time.monotonic()
        got = await self._call(self.store.acquire_lease, bot_id, self.owner, self.ttl_ms, is_stale=owner_is_gone)
        if got:
            self._held[bot_id] = on_lost
            self._valid_until[bot_id] = asked_at + self.ttl_ms / 1000
        return bool(got)

    def forget(self, bot_id: str) -> None:
        """Note that the lease is gone (a commit found it taken) without asking the store."""
        self._held.pop(bot_id, None)
        self._valid_until.pop(bot_id, None)
        self._yielding.discard(bot_id)

    async def release(self, bot_id: str) -> None:
        """Give the lease back so another runtime can take it at once (a store error is logged)."""
        self.forget(bot_id)
        try:
            await self._call(self.store.release_leases, self.owner, [bot_id])
        except LeoError as exc:
            log.warning("cannot release the lease of bot '%s': %s", bot_id, exc)

    # -- the host's heartbeat, its leases' renewal ------------------------------------------------
    @property
    def beat_seconds(self) -> float:
        """How often the heartbeat and the renewal happen."""
        return min(self.ttl_ms / 3000, BEAT_SECONDS_MAX)

    def host(self) -> HostInfo:
        """This host's registry row as of now."""
        name, _, rest = self.owner.partition(":")
        pid = rest.partition(":")[0]
        return HostInfo(self.owner, name, int(pid) if pid.isdigit() else os.getpid(), self.role, self.address,
                        self.started_at, now_ms())

    async def join(self) -> None:
        """Register this host (its first heartbeat). Until the first `balance` its runners may take
        any free lease (alone on the store, that is every bot, at once)."""
        await self.beat()

    async def leave(self) -> None:
        """Drop this host's row (its runners released their leases as they stopped)."""
        try:
            await self._call(self.store.unregister_host, self.owner)
        except LeoError as exc:
            log.warning("cannot unregister this host: %s", exc)

    async def beat(self) -> None:
        """The host's heartbeat: refresh its row, note the live hosts."""
        try:
            self.hosts = _alive(await self._within_beat(self.store.beat_host, self.host(), self.ttl_ms))
        except (LeoError, TimeoutError) as exc:
            log.warning("cannot refresh this host's heartbeat: %s",
                        exc or f"no answer from the store within {self.beat_seconds:g}s")

    async def renew_forever(self) -> None:
        """Every `beat_seconds`: the heartbeat, and every held lease renewed; the runners of
        leases that were lost are told."""
        import asyncio

        while True:
            await asyncio.sleep(self.beat_seconds)
            await self.beat()
            await self.renew()

    async def renew(self) -> None:
        """Renew the held leases once."""
        held = sorted(self._held)
        if not held:
            return
        asked_at = time.monotonic()
        try:
            lost = await self._within_beat(self.store.renew_leases, self.owner, held, self.ttl_ms)
        except (LeoError, TimeoutError) as exc:
            log.warning("cannot renew leases: %s", exc or f"no answer from the store within {self.beat_seconds:g}s")
            # The store is out of reach: a lease that may have expired meanwhile is given up here
            # (its runner stands by and takes it again once the store answers and it is free).
            expired = [bot_id for bot_id in held if self._valid_until.get(bot_id, 0.0) <= asked_at + self.beat_seconds]
            if expired:
                log.warning("giving up %d lease(s) that may expire before the store answers again: %s",
                            len(expired), ", ".join(expired))
            self._lose(expired)
            return
        for bot_id in held:
            if bot_id not in lost and bot_id in self._held:
                self._valid_until[bot_id] = asked_at + self.ttl_ms / 1000
        for bot_id in lost:
            if bot_id in self._held:
                log.warning("bot '%s' lost its lease; standing by", bot_id)
        self._lose(lost)

    def _lose(self, bot_ids: Iterable[str]) -> None:
        """Forget these leases and tell their runners (on the loop)."""
        for bot_id in bot_ids:
            on_lost = self._held.pop(bot_id, None)
            self._valid_until.pop(bot_id, None)
            self._yielding.discard(bot_id)
            if on_lost is not None:
                on_lost()

    # -- the fair share ---------------------------------------------------------------------------
    async def balance_forever(self) -> None:
        import asyncio

        while True:
            await asyncio.sleep(BALANCE_SECONDS)
            await self.balance()

    async def balance(self) -> None:
        """Look at the cluster once: size this host's share; past it, mark leases to be given back
        (their runners are woken to do it at their run boundary); below it, wake runners whose
        lease is free so they take it."""
        try:
            hosts, leases = await self._call(self._look)
        except LeoError as exc:
            log.warning("cannot look at the cluster's hosts and leases: %s", exc)
            return
        self.hosts = hosts = _alive(hosts)
        workers = [host.id for host in hosts if host.runs_bots and host.id != self.owner] + [self.owner]
        workers.sort(key=lambda owner: next((n for n, host in enumerate(hosts) if host.id == owner), len(hosts)))
        share = self._share = fair_share(len(self._wanted), len(workers), workers.index(self.owner))
        self._yielding &= set(self._held)
        keeping = len(self._held) - len(self._yielding)
        if keeping > share:  # a host joined: the leases taken last go first
            for bot_id in [bot_id for bot_id in reversed(self._held) if bot_id not in self._yielding][:keeping - share]:
                self._yielding.add(bot_id)
                self._wake(bot_id)
            return
        if len(self._held) >= share:
            return
        now = now_ms()
        rows = {row.bot_id: row for row in leases}
        free = [bot_id for bot_id in self._wanted if bot_id not in self._held and _free(rows.get(bot_id), self.owner, now)]
        import random

        random.shuffle(free)  # hosts below their share wake different runners, not the same few
        for bot_id in free[:share - len(self._held)]:
            self._wake(bot_id)

    def _wake(self, bot_id: str) -> None:
        wake = self._wanted.get(bot_id)
        if wake is not None:
            wake()

    def _look(self) -> tuple[list[HostInfo], list[LeaseRow]]:
        return self.store.live_hosts(self.ttl_ms), self.store.lease_rows()

    async def _within_beat(self, func: Callable[..., Any], *args: Any) -> Any:
        """`func(*args)` in a worker thread; an answer later than the next beat counts as none
        (TimeoutError): a store out of reach may keep a call waiting for a connection far longer
        than the leases last."""
        import asyncio

        return await asyncio.wait_for(self._call(func, *args), self.beat_seconds)

    def _call(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        import asyncio

        return asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(func, *args, **kwargs))


def fair_share(bots: int, hosts: int, rank: int = 0) -> int:
    """How many bots the host `rank` (0: the oldest) of `hosts` hosts that run bots holds: the
    ``bots % hosts`` oldest ``ceil(bots / hosts)``, the others the floor, so that the shares add up
    to `bots` and no two hosts differ by more than one (with ceil for all, 7 bots on 3 hosts could
    stay 3 + 3 + 1)."""
    whole, extra = divmod(bots, max(1, hosts))
    return whole + (rank < extra)


def _free(row: LeaseRow | None, owner: str, now: int) -> bool:
    """Whether a lease may be taken: never held, released, expired, ours, or its holder is gone."""
    return (row is None or row.owner is None or row.owner == owner or (row.expires_at or 0) <= now
            or owner_is_gone(row.owner))


def _alive(hosts: list[HostInfo]) -> list[HostInfo]:
    """`hosts` without the processes of this machine that are gone (killed: their rows linger)."""
    return [host for host in hosts if not owner_is_gone(host.id)]
