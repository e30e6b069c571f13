"""Waking waiters the moment a queue grows, without busy polling.

Appends made through this process's store are announced at once (an append listener). Commits
of other processes (the CLI beside ``leo run``, the bot workers of ``--workers``, the other
hosts of a cluster) are noticed on a thread of its own, so the event loop never waits on the
store: by a cheap check (SQLite's ``data_version``: a few microseconds, no read of any table), or
as soon as PostgreSQL notifies a commit (`Store.wait_changed`); only when something changed are
the queue heads read. It also brings operator controls (pause, checkpoint resets). The check runs
every ``poll_interval`` seconds (0.25), and every ``peer_interval`` (0.02) while other `leo run`
processes share the store (``has_peers``): a long poll in an API process then wakes within about
20 ms of a commit in a bot worker. Thousands of idle waiters cost one future and one timer each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from .store import Store

log = logging.getLogger("leo.wakeups")

POLL_SECONDS = 0.25
"""How often the store is asked whether another process committed (alone on the store)."""

PEER_POLL_SECONDS = 0.02
"""How often while other `leo run` processes share the store (their commits wake long polls here)."""


class Wakeups:
    """Per-queue heads and the futures waiting for them to pass a position."""

    def __init__(self, store: Store, poll_interval: float = POLL_SECONDS, *, peer_interval: float = PEER_POLL_SECONDS,
                 has_peers: Callable[[], bool] = lambda: False) -> None:
        self.store = store
        self.poll_interval = poll_interval
        self.peer_interval = peer_interval
        self.has_peers = has_peers
        self._heads: dict[str, int] = {}
        self._controls: dict[str, tuple[bool, int, str | None]] = {}
        self._queue_waiters: dict[str, dict[asyncio.Future[bool], int]] = {}
        self._key_waiters: dict[str, set[asyncio.Future[bool]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    async def start(self) -> None:
        """Load the current heads and start listening (call from the running loop)."""
        self._loop = asyncio.get_running_loop()
        self._heads, self._controls = await asyncio.to_thread(self._read_marks)
        self.store.add_append_listener(self._from_any_thread)
        self._stopping.clear()
        # A thread, not a task: the store is never called on the event loop.
        self._thread = threading.Thread(target=self._watch_other_processes, name="leo-wakeups", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 10)
            self._thread = None

    def head(self, queue: str) -> int:
        """The newest position of `queue` this process knows of."""
        return self._heads.get(queue, 0)

    def paused(self, key: str) -> bool:
        """Whether an operator paused the bot `key` (as of the last check)."""
        control = self._controls.get(key)
        return control[0] if control else False

    def note_paused(self, key: str) -> None:
        """Record a pause a run found in the store before the next check brought it; the resume
        then differs from what is recorded and wakes the bot (loop thread only)."""
        _, resets, owner = self._controls.get(key, (False, 0, None))
        self._controls[key] = (True, resets, owner)

    def _from_any_thread(self, heads: Mapping[str, int]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self.publish, dict(heads))

    def publish(self, heads: Mapping[str, int]) -> None:
        """Record new heads and wake every waiter they pass (loop thread only)."""
        for queue, head in heads.items():
            if head <= self._heads.get(queue, 0):
                continue
            self._heads[queue] = head
            waiters = self._queue_waiters.get(queue)
            if not waiters:
                continue
            for future, after in list(waiters.items()):
                if head > after and not future.done():
                    future.set_result(True)

    def kick(self, key: str) -> None:
        """Wake whoever waits under `key` (a bot id): a reset, a resume, a file event, a stop."""
        for future in list(self._key_waiters.get(key, ())):
            if not future.done():
                future.set_result(True)

    async def wait(self, queue: str | None, after: int, timeout: float, key: str | None = None) -> bool:
        """Wait until `queue` grows past `after`, `key` is kicked, or `timeout` seconds pass.

        Returns True when woken, False on timeout. Returns at once if the queue is already past.
        """
        if queue is not None and self._heads.get(queue, 0) > after:
            return True
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        timer = loop.call_later(max(timeout, 0), _expire, future)
        if queue is not None:
            self._queue_waiters.setdefault(queue, {})[future] = after
        if key is not None:
            self._key_waiters.setdefault(key, set()).add(future)
        try:
            return await future
        finally:
            timer.cancel()
            if queue is not None:
                waiters = self._queue_waiters.get(queue)
                if waiters is not None:
                    waiters.pop(future, None)
                    if not waiters:
                        del self._queue_waiters[queue]
            if key is not None:
                keyed = self._key_waiters.get(key)
                if keyed is not None:
                    keyed.discard(future)
                    if not keyed:
                        del self._key_waiters[key]

    def waiting(self) -> int:
        """How many waits are pending (for health output and tests)."""
        return sum(len(waiters) for waiters in self._queue_waiters.values())

    def _watch_other_processes(self) -> None:
        """The polling thread: every `poll_interval` (`peer_interval` with peers), ask the store whether
        anyone committed."""
        token: Any = None
        try:
            while not self._stopping.is_set():
                try:
                    interval = min(self.poll_interval, self.peer_interval) if self.has_peers() else self.poll_interval
                    changed, token = self.store.wait_changed(token, interval, self._stopping)
                    if not changed or self._stopping.is_set():
                        continue
                    heads, controls = self._read_marks()
                except Exception as exc:  # a store hiccup must not end wakeups
                    log.warning("cannot check the store for changes: %s", exc)
                    self._stopping.wait(max(self.poll_interval, 1.0))  # a store that is down is not asked in a tight loop
                    continue
                loop = self._loop
                if loop is None or loop.is_closed():
                    return
                try:
                    loop.call_soon_threadsafe(self._apply_marks, heads, controls)
                except RuntimeError:  # the loop closed meanwhile
                    return
        finally:
            with contextlib.suppress(Exception):
                self.store.close_thread()

    def _apply_marks(self, heads: Mapping[str, int], controls: Mapping[str, tuple[bool, int, str | None]]) -> None:
        """Publish heads and wake the bots whose controls changed (loop thread only)."""
        self.publish(heads)
        for key, control in controls.items():
            if self._controls.get(key) != control:
                self._controls[key] = control
                self.kick(key)

    def _read_marks(self) -> tuple[dict[str, int], dict[str, tuple[bool, int, str | None]]]:
        return self.store.queue_heads(), self.store.bot_controls()


def _expire(future: asyncio.Future[bool]) -> None:
    if not future.done():
        future.set_result(False)
