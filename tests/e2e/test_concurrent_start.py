"""Several `leo run` started at once on a store that does not exist yet all come up."""

from __future__ import annotations

import re

import pytest

from ..conftest import STORES, Project, wait_until

TWO_BOTS = """
version: 1
pipelines:
  feed:
    bots:
      - id: low-stock
        use: filter
        in: inventory.in
        with: {query: {quantity: {lt: 5}}}
        out: inventory.low
      - id: nyc
        use: filter
        in: inventory.in
        with: {query: {warehouse: NYC}}
        out: inventory.nyc
"""


@pytest.mark.parametrize("project", STORES, indirect=True)
def test_four_runtimes_started_at_once_on_a_new_store_all_come_up(project: Project, leo_run) -> None:
    project.write(TWO_BOTS)
    assert not project.db.exists()  # (on PostgreSQL: a schema nobody has opened yet)

    runs = [leo_run(project, "--no-http") for _ in range(4)]
    for run in runs:
        run.wait_ready()  # fails if one exited (today: "database is locked" from the migration race)

    store = project.store()

    def holders() -> dict[str, str] | None:
        rows = {bot.bot_id: bot.lease_owner for bot in store.bots() if bot.lease_owner is not None}
        return rows if set(rows) == {"low-stock", "nyc"} else None

    leases = wait_until(holders, what="both bots leased")
    by_pid = {run.proc.pid: run for run in runs}
    for bot, owner in leases.items():
        holder = by_pid[int(owner.split(":")[1])]  # owner is host:pid:nonce
        others = [run for run in runs if run is not holder]
        wait_until(lambda bot=bot, others=others: all(  # held, or this runtime holds its fair share
            re.search(rf"bot '{bot}' runs elsewhere \([^)]*\); standing by", run.log()) for run in others
        ), what=f"the other runtimes to stand by for {bot}")
    assert all(run.proc.poll() is None for run in runs), [run.log() for run in runs]
    for run in runs:
        assert run.stop() == 0, run.log()
