"""`leo checkpoints list|reset`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..config import DEFAULT_FILE, Config
from ..errors import UsageError
from ..operations import check_bot, checkpoint_report, reset_target
from ..store import Store
from .app import checkpoints_app
from .common import FileOption, JsonOption, StoreOption, emit_json, handles_errors, open_project, out


@checkpoints_app.command("list")
@handles_errors
def checkpoints_list(
    file: FileOption = Path(DEFAULT_FILE), store: StoreOption = None, as_json: JsonOption = False
) -> None:
    """Every bot's checkpoint in each queue it reads, with the lag behind the head."""
    the_store, _ = open_project(file, store, read_only=True)
    try:
        # This listing calls the checkpoint its position (what `reset --to POSITION` takes).
        rows = [
            {"bot": row["bot"], "queue": row["queue"], "position": row["checkpoint"], "head": row["head"],
             "lag": row["lag"], "updated_at": row["updated_at"]}
            for row in checkpoint_report(the_store)
        ]
    finally:
        the_store.close()
    if as_json:
        emit_json(rows)
        return
    table = Table(title="checkpoints", title_justify="left")
    for column in ("bot", "queue", "position", "head", "lag", "updated"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["bot"], row["queue"], str(row["position"]), str(row["head"]), str(row["lag"]),
                      row["updated_at"])
    out.print(table)


@checkpoints_app.command("reset")
@handles_errors
def checkpoints_reset(
    bot: Annotated[str, typer.Argument(help="bot id")],
    to: Annotated[
        str, typer.Option("--to", help="earliest, latest, an RFC 3339 time, -PT1H (that long ago) or a position")
    ],
    queue: Annotated[str | None, typer.Option("--queue", "-q", help="the input queue (default: the bot's 'in')")] = None,
    file: FileOption = Path(DEFAULT_FILE),
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Move a bot's checkpoint; the bot picks it up at its next run (a run in flight is redone)."""
    the_store, config = open_project(file, store)
    try:
        check_bot(the_store, config, bot)
        queue = queue or _default_queue(the_store, config, bot)
        before = the_store.get_checkpoint(bot, queue)
        target = reset_target(the_store, to)
        the_store.set_checkpoint(bot, queue, target.position)
    finally:
        the_store.close()
    result = {
        "bot": bot,
        "queue": queue,
        "from": before,
        "to": target.position,
        "clamped": target.clamped,
        "target": target.description,
    }
    if as_json:
        emit_json(result)
        return
    note = " (clamped to the oldest retained event)" if target.clamped else ""
    out.print(
        f"bot '{bot}' on '{queue}': checkpoint {before if before is not None else '(none)'} -> {target.position}"
        f"{note}; it resumes after {target.description} at its next run",
        markup=False,
    )


def _default_queue(store: Store, config: Config | None, bot: str) -> str:
    if config is not None:
        for spec in config.bots:
            if spec.id == bot and spec.in_queue:
                return spec.in_queue
    queues = [checkpoint.queue for checkpoint in store.checkpoints(bot)]
    if len(queues) == 1:
        return queues[0]
    raise UsageError(f"bot '{bot}' reads no known queue; pass --queue QUEUE")


