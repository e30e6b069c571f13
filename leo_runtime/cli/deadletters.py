"""`leo deadletters`: events bots gave up on (``on_error.dead_letter``), and sending them back."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from ..config import DEFAULT_FILE
from ..errors import UsageError, unknown_name
from .app import deadletters_app
from .common import FileOption, JsonOption, StoreOption, Table, emit_json, err, handles_errors, out, project_store


@deadletters_app.command("list")
@handles_errors
def deadletters_list(
    queue: Annotated[str | None, typer.Argument(help="only this dead-letter queue")] = None,
    include_redriven: Annotated[bool, typer.Option("--all", help="include events already sent back")] = False,
    file: FileOption = Path(DEFAULT_FILE),
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Dead-lettered events waiting to be sent back: where they came from and why they failed."""
    from ..operations import dead_letter_queues, dead_letter_report

    with project_store(file, store) as (the_store, config):
        if queue is not None and queue not in (known := dead_letter_queues(the_store, config)):
            raise unknown_name("dead-letter queue", queue, known, "it is a queue named by a bot's on_error.dead_letter")
        letters = dead_letter_report(the_store, queue, include_redriven=include_redriven)
    if as_json:
        emit_json(letters)
        return
    if not letters:
        out.print("no dead-lettered events" + (f" in '{queue}'" if queue else "") + " waiting", markup=False)
        return
    table = Table(title="dead letters", title_justify="left")
    columns = ["queue", "position", "bot", "from", "failures", "dead at", "error"]
    for column in [*columns, "sent to"] if include_redriven else columns:
        table.add_column(column, overflow="fold")
    for letter in letters:
        cells = [letter["queue"], str(letter["position"]), letter["bot"],
                 f"{letter['source_queue']}@{letter['source_position']}", str(letter["failures"]), letter["dead_at"],
                 letter["error"]]
        if include_redriven:
            sent = letter["redriven_queue"]
            cells.append(f"{sent}@{letter['redriven_position']}" if sent else "-")
        table.add_row(*cells)  # bot text verbatim, never rich markup (see common.Table)
    out.print(table)


@deadletters_app.command("redrive")
@handles_errors
def deadletters_redrive(
    queue: Annotated[str, typer.Argument(help="the dead-letter queue")],
    to: Annotated[
        str | None, typer.Option("--to", metavar="QUEUE", help="send them to this queue instead of the queue each came from")
    ] = None,
    bot: Annotated[str | None, typer.Option("--bot", metavar="BOT", help="only the events this bot gave up on")] = None,
    positions: Annotated[
        list[int] | None, typer.Option("--position", metavar="POSITION", help="only this dead-letter position (repeatable)")
    ] = None,
    file: FileOption = Path(DEFAULT_FILE),
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Send dead-lettered events back to the queue they came from (or --to another), all at once.

    They are appended again (payload untouched) and marked as sent back in one transaction."""
    from ..config import NAME_PATTERN
    from ..operations import other_readers, redrive_dead_letters

    if to is not None and not re.fullmatch(NAME_PATTERN, to):
        raise UsageError(f"--to {to!r} is not a queue name: letters, digits, '_', '.' and '-'")
    if to == queue:
        raise UsageError(f"--to is '{queue}', the dead-letter queue itself: name the queue the events should go to")
    if positions is not None and any(position < 1 for position in positions):
        raise UsageError("--position takes the position of a dead-lettered event (1 or more)")
    with project_store(file, store) as (the_store, config):
        redriven = redrive_dead_letters(the_store, queue, to=to, bot=bot, positions=positions)
    rows = [
        {"position": letter.position, "bot": letter.bot_id, "source_queue": letter.source_queue,
         "source_position": letter.source_position, "queue": letter.redriven_queue,
         "new_position": letter.redriven_position}
        for letter in redriven
    ]
    if as_json:
        emit_json({"queue": queue, "count": len(rows), "redriven": rows})
    else:
        for row in rows:
            out.print(f"{queue}@{row['position']} (from {row['source_queue']}@{row['source_position']}) -> "
                      f"{row['queue']}@{row['new_position']}", markup=False)
        out.print(f"sent back {len(rows)} event(s) from '{queue}'", markup=False)
    for note in other_readers(config, redriven):
        err.print(note, markup=False)

