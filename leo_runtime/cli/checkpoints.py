"""`leo checkpoints list|reset`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..config import DEFAULT_FILE
from ..errors import InputError, UsageError
from ..when import RESET_FORMS, forms_text
from .app import checkpoints_app
from .common import FileOption, JsonOption, StoreOption, Table, emit_json, handles_errors, out, project_store


@checkpoints_app.command("list")
@handles_errors
def checkpoints_list(
    file: FileOption = Path(DEFAULT_FILE), store: StoreOption = None, as_json: JsonOption = False
) -> None:
    """Every bot's checkpoint in each queue it reads, with the lag behind the head."""
    from ..operations import checkpoint_report

    with project_store(file, store, read_only=True) as (the_store, _):
        # This listing calls the checkpoint its position (what `reset --to POSITION` takes).
        rows = [
            {"bot": row["bot"], "queue": row["queue"], "position": row["checkpoint"], "head": row["head"],
             "lag": row["lag"], "updated_at": row["updated_at"]}
            for row in checkpoint_report(the_store)
        ]
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
    to: Annotated[str, typer.Option("--to", metavar="WHEN", help=f"{forms_text(RESET_FORMS)}; see README, WHEN")],
    queue: Annotated[
        str | None, typer.Option("--queue", "-q", metavar="QUEUE", help="the input queue (default: the bot's 'in')")
    ] = None,
    file: FileOption = Path(DEFAULT_FILE),
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Move a bot's checkpoint; the bot picks it up at its next run (a run in flight is redone)."""
    from ..operations import reset_checkpoint

    with project_store(file, store) as (the_store, config):
        try:
            plan = reset_checkpoint(the_store, config, bot, to, queue, field="--to")
        except InputError as exc:  # a WHEN that does not parse or points nowhere: bad usage
            raise UsageError(str(exc)) from None
    result = plan.as_dict()
    target, before, queue = plan.target, plan.before, plan.queue
    if as_json:
        emit_json(result)
        return
    out.print(
        f"bot '{bot}' on '{queue}': checkpoint {before if before is not None else '(none)'} -> {target.position}"
        f"; it resumes after {target.description} at its next run"
        + (f" ({plan.redo} event(s) redone)" if plan.redo else f" ({plan.skip} event(s) skipped)" if plan.skip else ""),
        markup=False,
    )

