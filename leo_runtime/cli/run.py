"""`leo run`: every pipeline and the HTTP API until a signal."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ..config import DEFAULT_FILE
from ..errors import UsageError
from ..safetext import bounded, redact_urls
from ..timeutil import format_time
from .app import app
from .common import FileOption, JsonOption, StoreOption, config_store, handles_errors, load


@app.command()
@handles_errors
def run(
    file: FileOption = Path(DEFAULT_FILE),
    store: StoreOption = None,
    host: Annotated[str | None, typer.Option("--host", help="HTTP host (overrides server.host)")] = None,
    port: Annotated[
        int | None, typer.Option("--port", min=0, max=65535, help="HTTP port (overrides server.port; 0 picks one)")
    ] = None,
    no_http: Annotated[bool, typer.Option("--no-http", help="run the bots without the HTTP API")] = False,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning or error")] = "info",
    drain_timeout: Annotated[
        float, typer.Option("--drain-timeout", min=0, help="seconds a stop waits for running bots to commit")
    ] = 30.0,
    as_json: JsonOption = False,
) -> None:
    """Run every pipeline and the HTTP API until SIGINT/SIGTERM; reload the file on change."""
    from leo_runtime.runtime import Runtime

    if host is not None and not host.strip():
        raise UsageError("--host must name an interface, like 127.0.0.1 or 0.0.0.0 (all of them)")
    if not math.isfinite(drain_timeout):
        raise UsageError(f"--drain-timeout must be a number of seconds, not {drain_timeout}")
    _setup_logging(log_level, as_json)
    config = load(file)
    for warning in config.warnings:
        logging.getLogger("leo.config").warning("%s", warning)
    server_update = {key: value for key, value in (("host", host), ("port", port)) if value is not None}
    if server_update:
        server = config.model.server.model_copy(update=server_update)
        config.model = config.model.model_copy(update={"server": server})
    the_store = config_store(config, store)
    runtime = Runtime(config, the_store, serve_http=not no_http, drain_timeout=drain_timeout)
    drained = asyncio.run(runtime.run_until_stopped())
    if not drained:
        # A stuck bot still holds a worker thread: exit without waiting for it (its run was not
        # committed, so the next `leo run` redoes it).
        logging.getLogger("leo").error("exiting with a bot still running")
        os._exit(1)
    the_store.close()


# A log line is bounded (a reload error or a bot's exception may quote a huge value) and never
# shows a URL's password, whoever wrote the message.
MAX_LOG_MESSAGE = 10_000


def _safe(text: str) -> str:
    return bounded(redact_urls(text), MAX_LOG_MESSAGE)


class _JsonLogFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": format_time(int(record.created * 1000)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": _safe(record.getMessage()),
        }
        if record.exc_info:
            entry["exception"] = _safe(self.formatException(record.exc_info))
        return json.dumps(entry)


class _TextLogFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:
        return _safe(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:
        return _safe(super().formatException(ei))


def _setup_logging(level: str, as_json: bool) -> None:
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int) or level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise UsageError(f"--log-level must be debug, info, warning or error, not {level!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _JsonLogFormatter() if as_json else _TextLogFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    )
    root = logging.getLogger("leo")
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    root.propagate = False
