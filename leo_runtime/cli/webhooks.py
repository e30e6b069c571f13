"""`leo webhooks list|batches|pause|resume|replay|rotate-secret`: partner webhooks and batcher
bots' batches."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from ..config import DEFAULT_FILE
from ..errors import UsageError
from ..timeutil import format_time, now_ms
from .app import webhooks_app
from .common import FileOption, JsonOption, StoreOption, Table, emit_json, handles_errors, out, project_store

if TYPE_CHECKING:
    from ..config import Config

IdArgument = Annotated[str, typer.Argument(help="a webhook id (wh_...) or a batcher bot's id")]


@webhooks_app.command("list")
@handles_errors
def webhooks_list(file: FileOption = Path(DEFAULT_FILE), store: StoreOption = None, as_json: JsonOption = False) -> None:
    """Every webhook with its partner, interval, last batch, unfetched batches and delivery state."""
    from ..delivery.webhooks import webhook_report

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
        table.add_row(*cells)
    out.print(table)


def _set_status(webhook_id: str, status: str, file: Path, store: str | None, as_json: bool) -> None:
    from ..operations import set_webhook_status

    with project_store(file, store) as (the_store, _):
        row = set_webhook_status(the_store, webhook_id, status)
    if as_json:
        emit_json(row or {"id": webhook_id, "status": status})
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
def webhooks_replay(
    webhook_id: IdArgument,
    batches: Annotated[list[str] | None, typer.Option(
        "--batch", "-b", metavar="BATCH",
        help="notify again only this batch (repeat the option for more); all or nothing")] = None,
    file: FileOption = Path(DEFAULT_FILE),
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Notify every batch not downloaded yet again, or only the batches named with --batch.

    Each with a fresh retry schedule. Batches named with --batch are notified whether downloaded
    or not; each must be a retained batch of the webhook, or nothing is sent."""
    from ..delivery.webhooks import replay_chosen
    from ..operations import find_webhook, replay_webhook

    with project_store(file, store) as (the_store, _):
        if batches is None:
            chosen = None
            count = replay_webhook(the_store, webhook_id)
        else:
            chosen = replay_chosen(the_store, find_webhook(the_store, webhook_id).id, batches, now_ms())
            count = len(chosen)
    if as_json:
        emit_json({"id": webhook_id, "replayed": count} | ({"batch_ids": chosen} if chosen is not None else {}))
        return
    what = "unfetched batch(es)" if chosen is None else "batch(es)"
    out.print(f"webhook '{webhook_id}': {count} {what} will be notified again", markup=False)


@webhooks_app.command("batches")
@handles_errors
def webhooks_batches(
    webhook_id: IdArgument,
    status: Annotated[Literal["unfetched", "all"], typer.Option(
        "--status", metavar="unfetched|all", help="unfetched: only batches not downloaded yet")] = "all",
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000, metavar="N", help="the newest N batches")] = 100,
    file: FileOption = Path(DEFAULT_FILE),
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """A webhook's retained batches, newest first, with their notification's state."""
    from ..delivery.webhooks import batch_report
    from ..operations import find_webhook

    with project_store(file, store, read_only=True) as (the_store, config):
        webhook = find_webhook(the_store, webhook_id)
        rows = [batch_report(_base_url(config), batch)
                for batch in the_store.batches(webhook.rid, unfetched=status == "unfetched", limit=limit)]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        out.print(f"webhook '{webhook_id}': no {'unfetched ' if status == 'unfetched' else ''}batches", markup=False)
        return
    table = Table(title=f"batches of {webhook_id}", title_justify="left")
    for column in ("batch", "records", "created", "delivered", "fetched", "attempts", "last error"):
        table.add_column(column, overflow="fold")
    for row in rows:
        cells = (row["id"] + (" (true-up)" if row["true_up"] else ""), str(row["records"]), row["created_at"],
                 row["delivered_at"] or ("next try " + row["next_attempt_at"] if row["next_attempt_at"] else "-"),
                 row["fetched_at"] or "-", str(row["attempts"]), row["last_error"] or "")
        table.add_row(*cells)
    out.print(table)


def _base_url(config: Config | None) -> str:
    """Where batch URLs point: the file's server settings (defaults when the file is broken)."""
    from ..config.models import ServerConfig

    return (config.model.server if config is not None else ServerConfig()).base_url


@webhooks_app.command("rotate-secret")
@handles_errors
def webhooks_rotate_secret(
    webhook_id: Annotated[str, typer.Argument(help="a partner webhook's id (wh_...)")],
    expire_old_after: Annotated[int | None, typer.Option(
        "--expire-old-after", min=0, metavar="SECONDS",
        help="seconds the old secret keeps signing beside the new one (0: it stops now; default 86400, a day; "
             "at most 604800, a week)")] = None,
    file: FileOption = Path(DEFAULT_FILE),
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Give a partner webhook a new signing secret (printed this once).

    The old secret signs beside the new one for --expire-old-after seconds (default a day); a
    secret kept by an earlier rotation stops at once."""
    from ..delivery.webhooks import DEFAULT_EXPIRE_OLD_AFTER, check_expire_old_after, rotate_secret
    from ..errors import InputError
    from ..operations import find_webhook

    try:  # the API's own check: one rule for both
        expire_old_after = check_expire_old_after(
            DEFAULT_EXPIRE_OLD_AFTER if expire_old_after is None else expire_old_after, "--expire-old-after")
    except InputError as exc:
        raise UsageError(str(exc)) from None
    with project_store(file, store) as (the_store, _):
        webhook = find_webhook(the_store, webhook_id)
        if webhook.partner_id is None:
            raise UsageError(f"'{webhook_id}' is a batcher bot: its webhook_sender signs with the secret in "
                             "pipelines.yaml; change it there")
        rotated, secret = rotate_secret(the_store, webhook.id, expire_old_after, now_ms())
    expires = format_time(rotated.old_secret_expires_at)  # None: the old secret stopped at once
    if as_json:
        emit_json({"id": webhook_id, "secret": secret, "old_secret_expires_at": expires})
        return
    out.print(f"webhook '{webhook_id}': new secret {secret}", markup=False)
    out.print("(shown only this once: hand it to the partner)" if expires is None else
              f"(shown only this once: hand it to the partner; the old secret signs too until {expires})", markup=False)
