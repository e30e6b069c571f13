"""`leo webhooks list|pause|resume|replay`: partner webhooks and batcher bots' batches."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from ..config import DEFAULT_FILE
from ..delivery.webhooks import BOT_PREFIX, public_webhook_id, webhook_report
from ..errors import UsageError
from ..store import Store
from ..store.base_webhooks import WebhookRecord
from ..timeutil import now_ms
from .app import webhooks_app
from .common import FileOption, JsonOption, StoreOption, emit_json, handles_errors, out, project_store

IdArgument = Annotated[str, typer.Argument(help="a webhook id (wh_...) or a batcher bot's id")]


@webhooks_app.command("list")
@handles_errors
def webhooks_list(file: FileOption = Path(DEFAULT_FILE), store: StoreOption = None, as_json: JsonOption = False) -> None:
    """Every webhook with its partner, interval, last batch, unfetched batches and delivery state."""
    with project_store(file, store, read_only=True) as (the_store, _):
        rows = webhook_report(the_store.webhook_status())
    if as_json:
        emit_json(rows)
        return
    print_webhooks(rows)


def print_webhooks(rows: list[dict[str, Any]]) -> None:
    """The webhooks table of `leo webhooks list` and `leo status`."""
    if not rows:
        out.print("webhooks: none", markup=False)
        return
    table = Table(title="webhooks", title_justify="left")
    for column in ("webhook", "partner", "of", "interval", "status", "delivery", "last batch", "unfetched", "last error"):
        table.add_column(column, overflow="fold")
    for row in rows:
        delivery = row["delivery"]
        if row["retrying"] or row["failed"]:
            delivery += f" ({row['retrying']} retrying, {row['failed']} failed)"
        cells = (row["id"], row["partner"] or "-", row["object_type"] or row["source_queue"], f"{row['interval']:g}s",
                 row["status"] + (" (all)" if row["mode"] == "all" else ""), delivery,
                 f"{row['last_batch']} at {row['last_batch_at']}" if row["last_batch"] else "-", str(row["unfetched"]),
                 row["last_error"] or "")
        table.add_row(*(Text(cell) for cell in cells))
    out.print(table)


def _find(the_store: Store, webhook_id: str) -> WebhookRecord:
    webhook = the_store.webhook(webhook_id) or the_store.webhook(BOT_PREFIX + webhook_id)
    if webhook is not None:
        return webhook
    known = [public_webhook_id(w.id) for w in the_store.webhooks()]
    hint = difflib.get_close_matches(webhook_id, known, n=1)
    suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
    raise UsageError(f"unknown webhook '{webhook_id}'{suggestion}; `leo webhooks list` shows them")


def _set_status(webhook_id: str, status: str, file: Path, store: str | None, as_json: bool) -> None:
    with project_store(file, store) as (the_store, _):
        webhook = _find(the_store, webhook_id)
        updated = the_store.update_webhook(webhook.id, {"status": status}, now_ms())
        rows = [row for row in webhook_report(the_store.webhook_status()) if updated and row["id"] == webhook_id]
    if as_json:
        emit_json(rows[0] if rows else {"id": webhook_id, "status": status})
        return
    verb = "paused: its batches are still sealed, notifications wait" if status == "paused" else "resumed"
    out.print(f"webhook '{webhook_id}' {verb}", markup=False)


@webhooks_app.command("pause")
@handles_errors
def webhooks_pause(webhook_id: IdArgument, file: FileOption = Path(DEFAULT_FILE), store: StoreOption = None,
                   as_json: JsonOption = False) -> None:
    """Stop notifying a webhook (its batches are still sealed and fetchable); `resume` sends them."""
    _set_status(webhook_id, "paused", file, store, as_json)


@webhooks_app.command("resume")
@handles_errors
def webhooks_resume(webhook_id: IdArgument, file: FileOption = Path(DEFAULT_FILE), store: StoreOption = None,
                    as_json: JsonOption = False) -> None:
    """Notify a paused webhook again (or one disabled by a 410 from its callback)."""
    _set_status(webhook_id, "active", file, store, as_json)


@webhooks_app.command("replay")
@handles_errors
def webhooks_replay(webhook_id: IdArgument, file: FileOption = Path(DEFAULT_FILE), store: StoreOption = None,
                    as_json: JsonOption = False) -> None:
    """Send the notifications of every batch not downloaded yet again, with a fresh retry schedule."""
    with project_store(file, store) as (the_store, _):
        count = the_store.replay_webhook(_find(the_store, webhook_id).id, now_ms())
    if as_json:
        emit_json({"id": webhook_id, "replayed": count})
        return
    out.print(f"webhook '{webhook_id}': {count} unfetched batch(es) will be notified again", markup=False)
