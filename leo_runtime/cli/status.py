"""`leo status`: bots, queues, webhooks and streams at a glance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import DEFAULT_FILE
from .app import app
from .common import FileOption, JsonOption, StoreOption, Table, emit_json, handles_errors, out, project_store
from .streams import print_streams
from .webhooks import print_webhooks


@app.command()
@handles_errors
def status(file: FileOption = Path(DEFAULT_FILE), store: StoreOption = None, as_json: JsonOption = False) -> None:
    """Bots (state, checkpoint, lag, dead letters, last error), queues (depth, head), webhooks, streams."""
    from ..operations import status_report
    from .compose import system_pipelines

    with project_store(file, store, read_only=True) as (the_store, config):
        report = status_report(the_store, config, system=system_pipelines())
    if as_json:
        emit_json(report)
        return
    out.print(f"store: {report['store']}", markup=False)
    for runtime in report["runtimes"]:
        out.print(f"leo run {runtime['owner']}: up since {runtime['started_at']}, {runtime['reloads']} reload(s)",
                  markup=False)
        if runtime["reload_failed"]:
            # Bot and user text is printed verbatim (never read as rich markup).
            out.print(f"  the last reload failed at {runtime['reload_error_at']} (the running pipelines keep "
                      f"running): {runtime['reload_error']}", markup=False)
    print_hosts(report["hosts"])
    bots = Table(title="bots", title_justify="left")
    for column in ("bot", "pipeline", "state", "checkpoint", "lag", "runs", "in", "out", "dead", "last run", "last error"):
        bots.add_column(column, overflow="fold")
    for bot in report["bots"]:
        where = ", ".join(f"{c['queue']}@{c['checkpoint']}" for c in bot["checkpoints"]) or "-"
        state = bot["state"] + (f" since {bot['stuck_since']}" if bot["stuck_since"] else "")
        dead = f"{bot['dead_letters_waiting']}/{bot['dead_letters']}" if bot["dead_letters"] else "-"
        cells = (bot["id"], bot["pipeline"] or "-", state, where, str(bot["lag"]), str(bot["runs"]), str(bot["events_in"]),
                 str(bot["events_out"]), dead, bot["last_run_at"] or "-", bot["last_error"] or "")
        bots.add_row(*cells)
    out.print(bots)
    for bot in report["bots"]:
        rejected = bot.get("rejected")
        if rejected and rejected.get("count"):
            out.print(f"bot '{bot['id']}' refused {rejected['count']} input line(s); latest:", markup=False)
            for message in rejected.get("recent", []):
                out.print(f"  {message}", markup=False)
    if any(bot["dead_letters"] for bot in report["bots"]):
        out.print("dead: dead-lettered events waiting/total (see `leo deadletters list`)", markup=False)
    print_queues(report["queues"])
    print_webhooks(report["webhooks"])
    print_streams(report["streams"])


def print_hosts(hosts: list[dict[str, Any]]) -> None:
    table = Table(title="hosts", title_justify="left")
    for column in ("host", "role", "pid", "address", "up since", "last seen", "bots"):
        table.add_column(column, overflow="fold")
    for host in hosts:
        table.add_row(host["host"], host["role"], str(host["pid"]), host["address"] or "-", host["started_at"],
                      host["last_seen"], f"{len(host['bots'])}: {', '.join(host['bots'])}" if host["bots"] else "0")
    out.print(table)


@app.command()
@handles_errors
def hosts(file: FileOption = Path(DEFAULT_FILE), store: StoreOption = None, as_json: JsonOption = False) -> None:
    """The live `leo run` processes (hosts) on the store: role, pid, API address, heartbeat, the bots each runs."""
    from ..leases import LEASE_TTL_MS
    from ..operations import host_report

    with project_store(file, store, read_only=True) as (the_store, config):
        ttl_ms = int(config.model.cluster.lease_ttl * 1000) if config is not None else LEASE_TTL_MS
        report = host_report(the_store, ttl_ms)
    if as_json:
        emit_json(report)
        return
    if not report:
        out.print("no live host: no leo run is running on this store", markup=False)
        return
    print_hosts(report)


def print_queues(queues: list[dict[str, Any]]) -> None:
    table = Table(title="queues", title_justify="left")
    for column in ("queue", "depth", "head", "oldest", "newest"):
        table.add_column(column)
    for queue in queues:
        table.add_row(queue["name"], str(queue["depth"]), str(queue["head"]), queue["oldest_at"] or "-",
                      queue["newest_at"] or "-")
    out.print(table)


