"""`leo deadletters`: events bots gave up on (``on_error.dead_letter``), and sending them back."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from ..config import DEFAULT_FILE, NAME_PATTERN, Config
from ..errors import UsageError
from ..operations import dead_letter_report
from ..store import Store
from .app import deadletters_app
from .common import FileOption, JsonOption, StoreOption, emit_json, err, handles_errors, out, project_store


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
    with project_store(file, store) as (the_store, _):
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
        table.add_row(*(Text(cell) for cell in cells))  # bot text verbatim, never rich markup
    out.print(table)


@deadletters_app.command("redrive")
@handles_errors
def deadletters_redrive(
    queue: Annotated[str, typer.Argument(help="the dead-letter queue")],
    to: Annotated[
        str | None, typer.Option("--to", help="send them to this queue instead of the queue each came from")
    ] = None,
    bot: Annotated[str | None, typer.Option("--bot", help="only the events this bot gave up on")] = None,
    positions: Annotated[
        list[int] | None, typer.Option("--position", help="only this dead-letter position (repeatable)")
    ] = None,
    file: FileOption = Path(DEFAULT_FILE),
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Send dead-lettered events back to the queue they came from (or --to another), all at once.

    They are appended again (payload untouched) and marked as sent back in one transaction."""
    if to is not None and not re.fullmatch(NAME_PATTERN, to):
        raise UsageError(f"--to {to!r} is not a queue name: letters, digits, '_', '.' and '-'")
    if to == queue:
        raise UsageError(f"--to is '{queue}', the dead-letter queue itself: name the queue the events should go to")
    if positions is not None and any(position < 1 for position in positions):
        raise UsageError("--position takes the position of a dead-lettered event (1 or more)")
    with project_store(file, store) as (the_store, config):
        _check_selection(the_store, queue, bot, positions)
        redriven = the_store.redrive_dead_letters(queue, to=to, bot_id=bot, positions=positions)
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
    for note in _other_readers(config, redriven):
        err.print(note, markup=False)


def _check_selection(store: Store, queue: str, bot: str | None, positions: list[int] | None) -> None:
    """UsageError when `queue` holds no dead letters at all, or a --position is not waiting in it."""
    every = store.dead_letters(queue, include_redriven=True)
    if not every:
        queues = sorted({letter.queue for letter in store.dead_letters(include_redriven=True)})
        known = f"; dead-letter queues: {', '.join(queues)}" if queues else "; no bot has dead-lettered an event yet"
        raise UsageError(f"queue '{queue}' holds no dead-lettered events{known}")
    if bot is not None and not any(letter.bot_id == bot for letter in every):
        bots = sorted({letter.bot_id for letter in every})
        raise UsageError(f"no event in '{queue}' was dead-lettered by bot '{bot}' (it holds events of: {', '.join(bots)})")
    if positions:
        waiting = {letter.position for letter in every if letter.redriven_at is None}
        missing = sorted(set(positions) - waiting)
        if missing:
            raise UsageError(
                f"position(s) {', '.join(map(str, missing))} are not waiting in '{queue}' "
                "(already sent back, or not dead letters): see `leo deadletters list --all`"
            )


def _other_readers(config: Config | None, redriven: list[Any]) -> list[str]:
    """Notes for queues that bots other than the one that gave up also read: they see it again."""
    if config is None:
        return []
    notes = []
    for queue in sorted({letter.redriven_queue for letter in redriven}):
        senders = {letter.bot_id for letter in redriven if letter.redriven_queue == queue}
        others = sorted(spec.id for spec in config.bots if spec.in_queue == queue and spec.id not in senders)
        if others:
            notes.append(f"note: '{queue}' is also read by {', '.join(others)}: they will get these events again")
    return notes
