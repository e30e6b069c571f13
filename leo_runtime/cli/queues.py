"""`leo queues list|tail|put`: inspect and feed queues."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Annotated, Any

import typer

from ..config import DEFAULT_FILE
from ..errors import UsageError
from ..events import RawJSON
from ..operations import queue_report
from ..store import Store
from ..timeutil import format_time
from .app import queues_app
from .common import FileOption, JsonOption, StoreOption, emit_json, handles_errors, open_project, out, progress
from .status import print_queues

PUT_CHUNK = 1000


@queues_app.command("list")
@handles_errors
def queues_list(file: FileOption = Path(DEFAULT_FILE), store: StoreOption = None, as_json: JsonOption = False) -> None:
    """Every queue with its depth and head."""
    the_store, _ = open_project(file, store, read_only=True)
    try:
        queues = queue_report(the_store)
    finally:
        the_store.close()
    if as_json:
        emit_json(queues)
    else:
        print_queues(queues)


@queues_app.command("tail")
@handles_errors
def queues_tail(
    queue: Annotated[str, typer.Argument(help="queue name")],
    count: Annotated[int, typer.Option("-n", "--lines", min=0, help="how many of the newest events")] = 10,
    follow: Annotated[bool, typer.Option("--follow", help="keep printing new events until Ctrl-C")] = False,
    file: FileOption = Path(DEFAULT_FILE),
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print the newest events of a queue (--json: one event per line)."""
    the_store, _ = open_project(file, store, read_only=True)
    try:
        known = {info.name for info in the_store.queues()}
        if queue not in known and not follow:
            raise UsageError(_unknown_queue(queue, known))
        events = _last_events(the_store, queue, count)
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
    except KeyboardInterrupt:
        pass
    finally:
        the_store.close()


def _unknown_queue(queue: str, known: set[str]) -> str:
    import difflib

    hint = difflib.get_close_matches(queue, sorted(known), n=1)
    suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
    return f"unknown queue '{queue}'{suggestion}; see `leo queues list`"


def _last_events(store: Store, queue: str, count: int) -> list[Any]:
    if count == 0:
        return []
    # Walk back from the head in pages: positions are global, so a queue's events are sparse.
    head = store.queue_head(queue)
    found: list[Any] = []
    window = max(count * 4, 1000)
    start = head
    first = store.first_position()
    while start > first and len(found) < count:
        start = max(first, start - window)
        page = store.read(queue, start, count + len(found) + window)
        found = [event for event in page if event.seq <= head]
        window *= 4
    return found[-count:]


def _print_event(event: Any, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(event.to_json() + "\n")
    else:
        sys.stdout.write(f"{event.seq}\t{format_time(event.timestamp)}\t{event.payload_json}\n")
    sys.stdout.flush()


@queues_app.command("put")
@handles_errors
def queues_put(
    queue: Annotated[str, typer.Argument(help="queue name")],
    source: Annotated[str, typer.Argument(help="NDJSON file, one payload per line; - for stdin")] = "-",
    file: FileOption = Path(DEFAULT_FILE),
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Append payloads (one JSON value per line) to a queue. Nothing is written if a line is bad."""
    import re

    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*", queue):
        raise UsageError(f"invalid queue name {queue!r}: use letters, digits, '_', '.', '-'")
    with _spooled(source) as handle:
        total = _validate_lines(handle, source)
        the_store, _ = open_project(file, store)
        first = last = 0
        try:
            with progress(total, f"put {queue}", enabled=not as_json and total >= 5000) as advance:
                handle.seek(0)
                for chunk in _chunks(handle, PUT_CHUNK):
                    start, end = the_store.append(queue, chunk)
                    first = first or start
                    last = end
                    advance(len(chunk))
        finally:
            the_store.close()
    if as_json:
        emit_json({"queue": queue, "count": total, "first": first, "last": last})
    else:
        span = f" (positions {first}-{last})" if total else ""
        out.print(f"put {total} event(s) on queue '{queue}'{span}", markup=False)


class _spooled:
    """The input as a seekable binary file (stdin is spooled to a temporary file)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.handle: IO[bytes] | None = None

    def __enter__(self) -> IO[bytes]:
        if self.source == "-":
            spool = tempfile.TemporaryFile()
            shutil.copyfileobj(sys.stdin.buffer, spool)
            spool.seek(0)
            self.handle = spool
        else:
            try:
                self.handle = open(self.source, "rb")
            except OSError as exc:
                raise UsageError(f"cannot read {self.source}: {exc.strerror}") from None
        return self.handle

    def __exit__(self, *exc: Any) -> None:
        if self.handle is not None:
            self.handle.close()


def _validate_lines(handle: IO[bytes], source: str) -> int:
    name = "stdin" if source == "-" else source
    count = 0
    problems = []
    for number, raw in enumerate(handle, start=1):
        text = raw.strip()
        if not text:
            continue
        try:
            json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            problems.append(f"{name}:{number}: not JSON: {exc}")
            if len(problems) >= 5:
                break
            continue
        count += 1
    if problems:
        raise UsageError("; ".join(problems) + " (nothing was written)")
    return count


def _chunks(handle: IO[bytes], size: int) -> Iterator[list[RawJSON]]:
    chunk: list[RawJSON] = []
    for raw in handle:
        text = raw.strip()
        if text:
            chunk.append(RawJSON(text.decode("utf-8")))
            if len(chunk) >= size:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


