"""`leo run`: every pipeline and the HTTP API until a signal."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..config import DEFAULT_FILE
from ..errors import UsageError
from ..store import open_store
from ..timeutil import format_time
from .app import app
from .common import FileOption, JsonOption, StoreOption, handles_errors, load


@app.command()
@handles_errors
def run(
    file: FileOption = Path(DEFAULT_FILE),
    store: StoreOption = None,
    host: Annotated[str | None, typer.Option("--host", help="HTTP host (overrides server.host)")] = None,
    port: Annotated[int | None, typer.Option("--port", help="HTTP port (overrides server.port; 0 picks one)")] = None,
    no_http: Annotated[bool, typer.Option("--no-http", help="run the bots without the HTTP API")] = False,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning or error")] = "info",
    drain_timeout: Annotated[
        float, typer.Option("--drain-timeout", min=0, help="seconds a stop waits for running bots to commit")
    ] = 30.0,
    as_json: JsonOption = False,
) -> None:
    """Run every pipeline and the HTTP API until SIGINT/SIGTERM; reload the file on change."""
    from leo_runtime.runtime import Runtime

    _setup_logging(log_level, as_json)
    config = load(file)
    for warning in config.warnings:
        logging.getLogger("leo.config").warning("%s", warning)
    server_update = {key: value for key, value in (("host", host), ("port", port)) if value is not None}
    if server_update:
        server = config.model.server.model_copy(update=server_update)
        config.model = config.model.model_copy(update={"server": server})
    the_store = open_store(store, Path.cwd()) if store else open_store(config.store_url, config.base_dir)
    runtime = Runtime(config, the_store, serve_http=not no_http, drain_timeout=drain_timeout)
    drained = asyncio.run(runtime.run_until_stopped())
    if not drained:
        # A stuck bot still holds a worker thread: exit without waiting for it (its run was not
        # committed, so the next `leo run` redoes it).
        logging.getLogger("leo").error("exiting with a bot still running")
        os._exit(1)
    the_store.close()


class _JsonLogFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": format_time(int(record.created * 1000)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def _setup_logging(level: str, as_json: bool) -> None:
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise UsageError(f"--log-level must be debug, info, warning or error, not {level!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _JsonLogFormatter() if as_json else logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    )
    root = logging.getLogger("leo")
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    root.propagate = False


