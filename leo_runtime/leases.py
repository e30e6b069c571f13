"""Who runs a bot: lease owners are ``host:pid:nonce`` so a restart on the same host can take
over at once from a process that is gone (killed with -9), instead of waiting for expiry.
`LeaseKeeper` holds one runtime's leases."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import uuid
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from .errors import LeoError
from .store import Store

log = logging.getLogger("leo.runtime")

LEASE_TTL_MS = 30_000


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
    giving them back. A runner is handed this, never the runtime.

    Every store call runs in a worker thread (``executor``), never on the event loop; the set
    of held leases is changed on the loop only.
    """

    def __init__(self, store: Store, *, owner: str | None = None, ttl_ms: int = LEASE_TTL_MS,
                 executor: Executor | None = None) -> None:
        self.store = store
        self.owner = owner or make_owner()
        self.ttl_ms = ttl_ms
        self._executor = executor
        self._held: dict[str, Callable[[], None]] = {}  # bot id -> what to call when the lease is lost

    def holds(self, bot_id: str) -> bool:
        return bot_id in self._held

    async def acquire(self, bot_id: str, on_lost: Callable[[], None]) -> bool:
        """Take the bot's lease when free, expired, ours, or held by a process that is gone.
        `on_lost` is called (on the loop) if a renewal later finds it taken by someone else."""
        got = await self._call(self.store.acquire_lease, bot_id, self.owner, self.ttl_ms, is_stale=owner_is_gone)
        if got:
            self._held[bot_id] = on_lost
        return bool(got)

    def forget(self, bot_id: str) -> None:
        """Note that the lease is gone (a commit found it taken) without asking the store."""
        self._held.pop(bot_id, None)

    async def release(self, bot_id: str) -> None:
        """Give the lease back so another runtime can take it at once (a store error is logged)."""
        self._held.pop(bot_id, None)
        try:
            await self._call(self.store.release_leases, self.owner, [bot_id])
        except LeoError as exc:
            log.warning("cannot release the lease of bot '%s': %s", bot_id, exc)

    async def renew_forever(self) -> None:
        """Renew every held lease each third of the TTL; tell the runners of leases that were lost."""
        while True:
            await asyncio.sleep(self.ttl_ms / 3000)
            await self.renew()

    async def renew(self) -> None:
        """Renew the held leases once."""
        held = sorted(self._held)
        if not held:
            return
        try:
            lost = await self._call(self.store.renew_leases, self.owner, held, self.ttl_ms)
        except LeoError as exc:
            log.warning("cannot renew leases: %s", exc)
            return
        for bot_id in lost:
            on_lost = self._held.pop(bot_id, None)
            if on_lost is not None:
                log.warning("bot '%s' lost its lease; standing by", bot_id)
                on_lost()

    def _call(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        return asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(func, *args, **kwargs))
