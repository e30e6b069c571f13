"""Wakeups: many idle waiters cost a future each and wake the moment their queue grows."""

from __future__ import annotations

import asyncio

import pytest

from leo_runtime.wakeups import Wakeups

from .conftest import Project


def test_thousands_of_waiters_wake_on_one_append_and_leave_nothing_behind(project: Project) -> None:
    store = project.store()

    async def main() -> None:
        wakeups = Wakeups(store, poll_interval=60)
        await wakeups.start()
        waiters = [asyncio.ensure_future(wakeups.wait("q", 0, timeout=60)) for _ in range(5000)]
        others = [asyncio.ensure_future(wakeups.wait("other", 0, timeout=60)) for _ in range(10)]
        await asyncio.sleep(0)
        assert wakeups.waiting() == 5010
        await asyncio.to_thread(store.append, "q", [{"n": 1}])  # from a worker thread, as bots do
        assert all(await asyncio.gather(*waiters))
        assert not any(future.done() for future in others)
        assert wakeups.waiting() == 10
        for future in others:
            future.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        assert wakeups.waiting() == 0 and wakeups._queue_waiters == {} and wakeups._key_waiters == {}
        await wakeups.stop()

    asyncio.run(main())


def test_wait_returns_at_once_when_already_past_and_false_on_timeout(project: Project) -> None:
    store = project.store()
    store.append("q", [{"n": 1}])

    async def main() -> None:
        wakeups = Wakeups(store, poll_interval=60)
        await wakeups.start()
        assert await wakeups.wait("q", 0, timeout=60) is True
        assert await wakeups.wait("q", 1, timeout=0.01) is False
        kicked = asyncio.ensure_future(wakeups.wait("q", 1, timeout=60, key="bot"))
        await asyncio.sleep(0)
        wakeups.kick("bot")
        assert await kicked is True
        await wakeups.stop()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("project", "poll_interval"),
    # PostgreSQL polls a minute apart: only the commit's NOTIFY can wake the waiter within the test.
    [("sqlite", 0.02), ("postgresql", 0.02), ("postgresql", 60)],
    indirect=["project"],
)
def test_another_process_append_is_noticed(project: Project, poll_interval: float) -> None:
    store = project.store()
    other = project.store()  # separate connections: what another process (or host) looks like
    other.add_append_listener(lambda heads: None)

    async def main() -> None:
        wakeups = Wakeups(store, poll_interval=poll_interval)
        await wakeups.start()
        waiter = asyncio.ensure_future(wakeups.wait("q", 0, timeout=60))
        await asyncio.sleep(0)
        await asyncio.to_thread(other.append, "q", [{"n": 1}])
        assert await asyncio.wait_for(waiter, 20) is True
        assert wakeups.head("q") == 1
        await wakeups.stop()

    try:
        asyncio.run(main())
    finally:
        store.close()
        other.close()
