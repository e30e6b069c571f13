"""The fair share of a cluster's bots (`LeaseKeeper.balance`), on a real store shared by keepers
as several `leo run` processes would share it: a host past its share gives back the leases it
took last, a host below it wakes the runners whose lease is free, a host of role api counts for
nothing, a host that stops frees its share for the others."""

from __future__ import annotations

import asyncio
from pathlib import Path

from leo_runtime.leases import LeaseKeeper, fair_share
from leo_runtime.store import SQLiteStore

BOTS = [f"b{n}" for n in range(1, 8)]


def keeper(store: SQLiteStore, name: str, role: str = "all") -> tuple[LeaseKeeper, list[str]]:
    """A keeper whose runners (one per bot) note when they are woken."""
    leases = LeaseKeeper(store, owner=f"elsewhere:{name}:x", role=role)  # another machine: never "gone"
    woken: list[str] = []
    if role != "api":
        for bot in BOTS:
            leases.want(bot, lambda bot=bot: woken.append(bot))
    return leases, woken


async def take_woken(leases: LeaseKeeper, woken: list[str]) -> None:
    """What the woken runners do: take their lease while there is room."""
    for bot in sorted(woken):
        if leases.may_take():
            await leases.acquire(bot, lambda: None)
    woken.clear()


def test_fair_share_is_the_ceiling_of_bots_per_host_for_the_oldest_and_adds_up_to_the_bots() -> None:
    assert [fair_share(7, hosts) for hosts in (0, 1, 2, 3, 7, 8)] == [7, 7, 4, 3, 1, 1]
    assert [fair_share(7, 3, rank) for rank in range(3)] == [3, 2, 2]  # not 3 + 3 + 1
    assert [fair_share(8, 3, rank) for rank in range(3)] == [3, 3, 2]
    for bots, hosts in [(7, 3), (6, 4), (13, 5), (2, 3)]:
        shares = [fair_share(bots, hosts, rank) for rank in range(hosts)]
        assert sum(shares) == bots and max(shares) - min(shares) <= 1


def test_hosts_split_the_bots_evenly_as_they_join_and_leave(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SQLiteStore(tmp_path / "leo.db")
        first, first_woken = keeper(store, "1")
        await first.join()
        await first.balance()
        assert sorted(first_woken) == BOTS  # alone: every free lease is its own
        await take_woken(first, first_woken)

        second, second_woken = keeper(store, "2")
        api, _ = keeper(store, "3", role="api")
        await second.join()
        await api.join()
        await first.balance()  # 2 hosts run bots (the api one does not): share 4 of 7
        yielding = [bot for bot in BOTS if first.must_yield(bot)]
        assert yielding == ["b5", "b6", "b7"]  # the leases taken last go first
        assert sorted(first_woken) == yielding  # their runners are woken to give them back
        for bot in yielding:
            await first.release(bot)
        first_woken.clear()
        await second.balance()
        assert sorted(second_woken) == yielding
        await take_woken(second, second_woken)
        assert [first.holds(bot) for bot in BOTS].count(True) == 4
        assert [second.holds(bot) for bot in BOTS].count(True) == 3

        await first.balance()
        await second.balance()
        assert not any(first.must_yield(bot) or second.must_yield(bot) for bot in BOTS)  # settled
        assert first_woken == [] and second_woken == []  # nobody woken: each holds its share

        for bot in BOTS:  # the first stops: releases, leaves
            if first.holds(bot):
                await first.release(bot)
        await first.leave()
        await second.balance()
        await take_woken(second, second_woken)
        assert all(second.holds(bot) for bot in BOTS)
        store.close()

    asyncio.run(scenario())
