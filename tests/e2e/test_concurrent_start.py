"""Several `leo run` started at once on a store that does not exist yet all come up."""

from __future__ import annotations

import sqlite3

from ..conftest import Project, wait_until

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


def test_four_runtimes_started_at_once_on_a_new_store_all_come_up(project: Project, leo_run) -> None:
    project.write(TWO_BOTS)
    assert not project.db.exists()

    runs = [leo_run(project, "--no-http") for _ in range(4)]
    for run in runs:
        run.wait_ready()  # fails if one exited (today: "database is locked" from the migration race)

    def holders() -> dict[str, str] | None:
        conn = sqlite3.connect(project.db)
        try:
            rows = dict(conn.execute("SELECT bot_id, lease_owner FROM bots WHERE lease_owner IS NOT NULL"))
        finally:
            conn.close()
        return rows if set(rows) == {"low-stock", "nyc"} else None

    leases = wait_until(holders, what="both bots leased")
    by_pid = {run.proc.pid: run for run in runs}
    for bot, owner in leases.items():
        holder = by_pid[int(owner.split(":")[1])]  # owner is host:pid:nonce
        others = [run for run in runs if run is not holder]
        wait_until(lambda bot=bot, others=others: all(
            f"bot '{bot}' runs elsewhere (lease held); standing by" in run.log() for run in others
        ), what=f"the other runtimes to stand by for {bot}")
    assert all(run.proc.poll() is None for run in runs), [run.log() for run in runs]
    for run in runs:
        assert run.stop() == 0, run.log()
