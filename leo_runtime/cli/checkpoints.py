"""`leo checkpoints list|reset`."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..config import DEFAULT_FILE, Config
from ..errors import UsageError
from ..operations import check_bot, checkpoint_report, reset_target
from ..safetext import shown
from ..store import Store
from .app import checkpoints_app
from .common import FileOption, JsonOption, StoreOption, emit_json, handles_errors, out, project_store


@checkpoints_app.command("list")
@handles_errors
def checkpoints_list(
    file: FileOption = Path(DEFAULT_FILE), store: StoreOption = None, as_json: JsonOption = False
) -> None:
    """Every bot's checkpoint in each queue it reads, with the lag behind the head."""
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
    to: Annotated[
        str, typer.Option("--to", help="earliest, latest, an RFC 3339 time, -PT1H (that long ago) or a position")
    ],
    queue: Annotated[str | None, typer.Option("--queue", "-q", help="the input queue (default: the bot's 'in')")] = None,
    file: FileOption = Path(DEFAULT_FILE),
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Move a bot's checkpoint; the bot picks it up at its next run (a run in flight is redone)."""
    with project_store(file, store) as (the_store, config):
        check_bot(the_store, config, bot)
        queue = _input_queue(the_store, config, bot, queue)
        before = the_store.get_checkpoint(bot, queue)
        target = reset_target(the_store, to)
        the_store.set_checkpoint(bot, queue, target.position)
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


def _input_queue(store: Store, config: Config | None, bot: str, wanted: str | None) -> str:
    """The queue to reset: `wanted` when the bot reads it, else the bot's only input.

    A bot's inputs are its ``in:`` in the pipelines file; for a bot no longer in the file (or
    with the file invalid), the queues it has checkpoints in.
    """
    spec = next((spec for spec in config.bots if spec.id == bot), None) if config is not None else None
    if spec is not None:
        inputs = [spec.in_queue] if spec.in_queue else []
    else:
        inputs = sorted({checkpoint.queue for checkpoint in store.checkpoints(bot)})
    if not inputs:
        kind = f"a {spec.kind} bot" if spec is not None else "a bot without checkpoints"
        raise UsageError(f"bot '{bot}' reads no queue ({kind}): it has no checkpoint to reset")
    if wanted is None:
        if len(inputs) == 1:
            return inputs[0]
        raise UsageError(f"bot '{bot}' reads {', '.join(inputs)}; pass --queue QUEUE")
    if wanted not in inputs:
        hint = difflib.get_close_matches(wanted, inputs, n=1)
        suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
        raise UsageError(
            f"bot '{bot}' does not read queue {shown(wanted)}{suggestion}; it reads {', '.join(inputs)}"
        )
    return wanted
