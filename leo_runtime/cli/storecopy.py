"""`leo store copy SOURCE TARGET`: move a deployment's state to another store (SQLite to PostgreSQL)."""

from __future__ import annotations

import sys
import time
from contextlib import ExitStack, closing
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..config import DEFAULT_FILE
from ..errors import UsageError
from ..timeutil import now_ms
from .app import store_app
from .common import (
    FileOption,
    JsonOption,
    StoreOption,
    _is_terminal,
    emit_json,
    err,
    handles_errors,
    open_project,
    out,
    progress,
)

if TYPE_CHECKING:
    from ..store.sql import SQLStore


@store_app.command("copy")
@handles_errors
def copy(
    stores: Annotated[list[str] | None, typer.Argument(
        metavar="[SOURCE] TARGET", show_default=False,
        help="the store to copy (default: the project's, as -f/--store say) and the new store to fill: a SQLite "
             "path or URL, or a postgresql:// URL",
    )] = None,
    file: FileOption = Path(DEFAULT_FILE),
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Copy a store's whole state into a new store (SQLite to PostgreSQL); safe to re-run.

    Queues, checkpoints, bots, objects, partners, webhooks and batches, streams: everything,
    in one transaction on TARGET (migrated first). An interrupted copy leaves TARGET as it was:
    run it again. A second run after a complete one changes nothing. Without SOURCE the copy
    is of the project's store (--store, LEO_STORE or the pipelines file's `store:`).

    Stop `leo run` on SOURCE first: the copy is a snapshot of SOURCE as of its start (a warning
    names any `leo run` still heartbeating there).
    """
    from ..store import open_store  # here: every other command starts without the store's code
    from ..store.copy import copy_store, count_rows
    from ..store.sql import SQLStore

    started = time.monotonic()
    named = stores or []
    if not 1 <= len(named) <= 2:
        raise UsageError("leo store copy takes [SOURCE] TARGET: the store to copy (default: the project's) and "
                         f"the new store to fill, not {len(named)} argument(s)")
    with ExitStack() as opened:
        if len(named) == 2:  # named on the command line: it beats --store, LEO_STORE and the file
            src = opened.enter_context(closing(open_store(named[0], Path.cwd(), read_only=True)))
        else:
            src = opened.enter_context(closing(open_project(file, store, read_only=True)[0]))
        dst = opened.enter_context(closing(open_store(named[-1], Path.cwd())))
        if not isinstance(src, SQLStore) or not isinstance(dst, SQLStore):  # pragma: no cover - every store is SQL
            raise UsageError("store copy: both stores must be leo SQL stores")
        running = _running(src)
        if running:
            err.print(f"warning: a `leo run` wrote to {src.url} in the last minute ({', '.join(running)}): what it "
                      "writes after this copy starts is not copied; stop it first to move everything")
        total = count_rows(src)
        with progress(total, "copy", enabled=not as_json and total > 0 and _is_terminal(sys.stderr)) as advance:
            result = copy_store(src, dst, progress=advance)
        source_url, target_url = src.url, dst.url
    if as_json:
        emit_json({"source": source_url, "target": target_url, **result.to_dict(), "source_running": running,
                   "seconds": round(time.monotonic() - started, 3)})
        return
    if not result.copied:
        out.print(f"{target_url} already holds exactly what {source_url} holds ({result.total} rows): nothing changed")
        return
    for name, rows in result.rows.items():
        out.print(f"  {name:<20} {rows:>10}")
    out.print(f"copied {result.total} rows in {len(result.rows)} tables from {source_url} to {target_url} "
              f"(schema version {result.schema_version}) in {time.monotonic() - started:.1f} s")


RECENT_MS = 60_000  # a runtime heartbeats every lease_ttl / 3 (5 s by default)


def _running(store: SQLStore) -> list[str]:
    """The `leo run`s registered on `store` that were seen within the last minute."""
    now = now_ms()
    return [runtime.owner for runtime in store.runtimes() if now - runtime.seen_at < RECENT_MS]
