"""`leo run`: every pipeline and the HTTP API until a signal."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..config import DEFAULT_FILE
from ..errors import LeoError, UsageError
from .app import app
from .common import FileOption, JsonOption, StoreOption, config_store, handles_errors, load

if TYPE_CHECKING:
    from leo_runtime.runtime import Runtime


@app.command()
@handles_errors
def run(
    file: FileOption = Path(DEFAULT_FILE),
    store: StoreOption = None,
    host: Annotated[str | None, typer.Option("--host", metavar="HOST", help="HTTP host (overrides server.host)")] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", min=0, max=65535, metavar="PORT", help="HTTP port (overrides server.port; 0 picks one)"),
    ] = None,
    no_http: Annotated[bool, typer.Option("--no-http", help="run the bots without the HTTP API")] = False,
    log_level: Annotated[str, typer.Option("--log-level", metavar="LEVEL", help="debug, info, warning or error")] = "info",
    drain_timeout: Annotated[
        float, typer.Option("--drain-timeout", min=0, metavar="SECONDS", help="seconds a stop waits for running bots to commit")
    ] = 30.0,
    as_json: JsonOption = False,
    role: Annotated[str, typer.Option("--role", metavar="ROLE", help="all (API and bots), api (the API, no bots) or bots "
                                      "(bots; HTTP serves /healthz and /metrics only)")] = "all",
    workers: Annotated[int | None, typer.Option("--workers", min=0, max=64, metavar="N", help="bot worker processes to start "
                                                "beside this one, which then serves the API only (overrides "
                                                "cluster.workers; 0: one process runs everything)")] = None,
) -> None:
    """Run every pipeline and the HTTP API until SIGINT/SIGTERM; reload the file on change."""
    import asyncio

    from ..logs import setup_logging
    from ..runtime import Runtime
    from ..store.base_hosts import ROLES
    from ..workers import die_with_parent
    from .compose import system_pipelines

    die_with_parent()
    if role not in ROLES:
        raise UsageError(f"--role must be one of {', '.join(ROLES)}, not {role!r}")

    if host is not None and not host.strip():
        raise UsageError("--host must name an interface, like 127.0.0.1 or 0.0.0.0 (all of them)")
    if not math.isfinite(drain_timeout):
        raise UsageError(f"--drain-timeout must be a number of seconds, not {drain_timeout}")
    setup_logging(log_level, as_json)
    config = load(file)
    for warning in config.warnings:
        logging.getLogger("leo.config").warning("%s", warning)
    # --host / --port beat the file's, also after a reload of it (the runtime applies them).
    server_update = {key: value for key, value in (("host", host), ("port", port)) if value is not None}
    # cluster.workers is for the default role; --role api or bots runs one process of that role.
    count = (config.model.cluster.workers if role == "all" else 0) if workers is None else workers
    if count and role != "all":
        raise UsageError(f"--workers starts bot workers beside an API process: it goes with --role all, not {role}")
    if count and no_http:
        raise UsageError("--workers starts bot workers beside an API process: it does not go with --no-http")
    the_store = config_store(config, store)
    runtime = Runtime(config, the_store, serve_http=not no_http, drain_timeout=drain_timeout, system=system_pipelines(),
                      server_overrides=server_update, role="api" if count else role)
    if count:
        worker_args = ["run", "-f", str(file), "--role", "bots", "--workers", "0", "--no-http", "--log-level", log_level,
                       "--drain-timeout", repr(drain_timeout), *(["--store", store] if store else []),
                       *(["--json"] if as_json else [])]
        drained = asyncio.run(_with_workers(runtime, worker_args, count, drain_timeout))
    else:
        drained = asyncio.run(runtime.run_until_stopped())
    if not drained:
        # A stuck bot still holds a worker thread: exit without waiting for it (its run was not
        # committed, so the next `leo run` redoes it).
        logging.getLogger("leo").error("exiting with a bot still running")
        os._exit(1)
    the_store.close()


async def _with_workers(runtime: Runtime, worker_args: list[str], count: int, drain_timeout: float) -> bool:
    """This process serves the API while `count` bot workers run the bots; all stop together."""
    from leo_runtime.workers import WorkerPool

    pool = WorkerPool(worker_args, count, on_give_up=runtime.request_stop)
    await pool.start()
    try:
        drained = await runtime.run_until_stopped()
    finally:
        workers_drained = await pool.stop(drain_timeout)
    if pool.gave_up:
        raise LeoError("a bot worker could not start (see its error above); leo run stopped")
    return drained and workers_drained
