"""`leo queues list|tail|put`: inspect and feed queues."""

from __future__ import annotations

import contextlib
import io
import os
import re
import stat
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Annotated, Any

import typer

from ..config import DEFAULT_FILE
from ..errors import UsageError, unknown_name
from ..safetext import printable
from ..timeutil import format_time
from .app import queues_app
from .common import FileOption, JsonOption, StoreOption, emit_json, err, handles_errors, out, progress, project_store
from .status import print_queues


@queues_app.command("list")
@handles_errors
def queues_list(file: FileOption = Path(DEFAULT_FILE), store: StoreOption = None, as_json: JsonOption = False) -> None:
    """Every queue with its depth and head."""
    from ..operations import queue_report

    with project_store(file, store, read_only=True) as (the_store, _):
        queues = queue_report(the_store)
    if as_json:
        emit_json(queues)
    else:
        print_queues(queues)


@queues_app.command("tail")
@handles_errors
def queues_tail(
    queue: Annotated[str, typer.Argument(help="queue name")],
    count: Annotated[
        int, typer.Option("-n", "--lines", min=0, max=1_000_000, metavar="N", help="how many of the newest events")
    ] = 10,
    follow: Annotated[bool, typer.Option("--follow", help="keep printing new events until Ctrl-C")] = False,
    file: FileOption = Path(DEFAULT_FILE),
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print the newest events of a queue (--json: one event per line)."""
    from ..operations import known_queues, last_events

    with project_store(file, store, read_only=True) as (the_store, config), contextlib.suppress(KeyboardInterrupt):
        if queue not in (known := known_queues(the_store, config)):
            raise unknown_name("queue", queue, known, "see `leo queues list`")
        events = last_events(the_store, queue, count)
        position = events[-1].seq if events else the_store.last_position()
        for event in events:
            _print_event(event, as_json)
        while follow:
            fresh = the_store.read(queue, position, 1000)
            for event in fresh:
                _print_event(event, as_json)
            if fresh:
                position = fresh[-1].seq
            else:
                time.sleep(0.2)




def _print_event(event: Any, as_json: bool) -> None:
    # A payload is outside text: shown through `printable` (JSON stays JSON with the same value).
    if as_json:
        sys.stdout.write(printable(_event_json(event), json=True) + "\n")
    else:
        shown = printable(printable(event.payload_json, json=True))  # JSON's escapes; raw C0 only if not strict JSON
        sys.stdout.write(f"{event.seq}\t{format_time(event.timestamp)}\t{shown}\n")
    sys.stdout.flush()


def _event_json(event: Any) -> str:
    """One line of strict JSON for `event`, whatever its stored text: a payload that is not
    strict JSON (written before input was checked, or by a bot's RawJSON) is shown as a string
    in ``payload_text`` with ``payload_error`` saying why, and ``payload`` null."""
    from ..jsonio import JSONInputError, dumps, parse

    try:
        parse(event.payload_json)
    except JSONInputError as exc:
        return dumps({
            "eid": event.eid, "position": event.seq, "queue": event.queue, "payload": None,
            "payload_text": event.payload_json, "payload_error": exc.reason, "correlation_id": event.correlation_id,
            "event_source_timestamp": event.event_source_timestamp, "timestamp": event.timestamp,
        })
    return event.to_json()


@queues_app.command("put")
@handles_errors
def queues_put(
    queue: Annotated[str, typer.Argument(help="queue name")],
    source: Annotated[str, typer.Argument(help="NDJSON file, one payload per line; - for stdin")] = "-",
    create: Annotated[bool, typer.Option(
        "--create", help="the queue is new: neither the store nor the pipelines file knows it yet")] = False,
    file: FileOption = Path(DEFAULT_FILE),
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Append payloads (one JSON value per line) to a queue: every line, or none if one is bad.

    The queue is one the store holds or the pipelines file names; a new one needs --create."""
    from ..jsonio import JSONInputError
    from ..operations import known_queues
    from ..staging import publish, stage_lines

    if not QUEUE_NAME.fullmatch(queue):
        raise UsageError(f"invalid queue name {queue!r}: use letters, digits, '_', '.', '-'")
    name = "stdin" if source == "-" else source
    try:
        with _opened(source) as handle:
            size = _size_of(handle)
            label = f"check {name}"
            with progress(size, label, enabled=not as_json and size >= CHECK_BAR_BYTES, unit="bytes") as advance:
                try:
                    staged = stage_lines(handle, name, advance=advance)
                except JSONInputError as exc:
                    raise JSONInputError(f"{exc}; nothing was written") from None  # bad input: exit 1
        with (
            staged,
            project_store(file, store) as (the_store, config),
        ):
            if not create and queue not in (known := known_queues(the_store, config)):
                raise unknown_name("queue", queue, known, "see `leo queues list`, or pass --create for a new queue "
                                   "(nothing was written)")
            with progress(staged.count, f"put {queue}", enabled=not as_json and staged.count >= 5000) as advance:
                first, last = publish(the_store, queue, staged, advance=advance)
    except KeyboardInterrupt:
        err.print(f"interrupted: nothing was put on queue '{queue}'", markup=False)
        raise typer.Exit(130) from None
    if as_json:
        emit_json({"queue": queue, "count": staged.count, "first": first, "last": last})
    else:
        span = f" (positions {first}-{last})" if staged.count else ""
        out.print(f"put {staged.count} event(s) on queue '{queue}'{span}", markup=False)


QUEUE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
CHECK_BAR_BYTES = 16 << 20  # inputs this big show a bar while they are checked


@contextmanager
def _opened(source: str) -> Iterator[IO[bytes]]:
    """The input as a binary stream: stdin for ``-``, else the file (a clear error if unreadable)."""
    if source == "-":
        yield sys.stdin.buffer
        return
    try:
        handle = open(source, "rb")  # noqa: SIM115 (closed below; the error path must not hide the cause)
    except OSError as exc:
        raise UsageError(f"cannot read {source}: {exc.strerror}") from None
    with handle:
        yield handle


def _size_of(handle: IO[bytes]) -> int:
    """The size of a regular file (0 for stdin, pipes and the like: their bar waits for the put)."""
    try:
        info = os.fstat(handle.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        return 0
    return info.st_size if stat.S_ISREG(info.st_mode) else 0
