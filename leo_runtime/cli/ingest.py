"""`leo ingest TYPE [FILE|-]`: push objects through change detection, as the change detector does."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated

import typer

from ..config import DEFAULT_FILE
from ..errors import InputError, LeoError, UsageError, unknown_name
from .app import app
from .common import FileOption, JsonOption, StoreOption, config_store, emit_json, handles_errors, load, out, progress

if TYPE_CHECKING:
    from ..fieldtypes import FieldCaster
    from ..store import ObjectPage

PROGRESS_FROM = 5000  # objects: shorter inputs finish before a bar would help


@app.command("ingest")
@handles_errors
def ingest(
    object_type: Annotated[str, typer.Argument(help="an object type declared under object_types")],
    source: Annotated[str, typer.Argument(help="a JSON array or NDJSON file (or .csv); - for stdin")] = "-",
    snapshot: Annotated[
        bool, typer.Option("--snapshot", help="the input holds every object of the type: keys it misses are deleted")
    ] = False,
    file: FileOption = Path(DEFAULT_FILE),
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Push objects (a JSON array or NDJSON) through change detection; report what changed.

    Every object is checked first: a bad line or a missing key writes nothing.
    """
    from ..fieldtypes import caster_for
    from ..objects import IngestResult, batch_of_rows

    config = load(file, import_bots=False)  # the object types, not the bots: no custom bot code runs
    declared = config.model.object_types
    if object_type not in declared:
        known = f"declared: {', '.join(declared)}; " if declared else ""
        raise unknown_name("object type", object_type, declared,
                           f"{known}declare it under object_types in {file} (nothing was written)")
    key_field = declared[object_type].key
    name = "stdin" if source == "-" else source
    with _opened(source) as handle:
        try:
            pages, total = _pages(handle, name, key_field, count=not as_json, cast=caster_for(config, object_type))
        except LeoError as exc:
            raise InputError(f"{exc} (nothing was written)") from None
        with (
            closing(config_store(config, store)) as the_store,
            progress(total, f"ingest {object_type}", enabled=not as_json and total >= PROGRESS_FROM) as advance,
        ):
            pending = batch_of_rows(object_type, (), complete=snapshot, source=name, pages=_counted(pages, advance))
            try:
                the_store.apply_objects([pending])  # every object is checked before anything is written
            except LeoError as exc:
                raise InputError(f"{exc} (nothing was written)") from None
    counts = pending.counts
    result = IngestResult(counts.created, counts.updated, counts.unchanged, counts.deleted)
    if as_json:
        emit_json({"object_type": object_type, **result.to_dict()})
        return
    deleted = f", {result.deleted} deleted" if snapshot else ""
    out.print(
        f"ingested {sum(result.to_dict().values())} object(s) of type '{object_type}' from {name}: "
        f"{result.created} created, {result.updated} updated, {result.unchanged} unchanged{deleted}",
        markup=False,
    )


def _pages(
    handle: IO[bytes], name: str, key_field: str, *, count: bool, cast: FieldCaster | None = None
) -> tuple[Iterable[ObjectPage], int]:
    """The input as pages (lazy for NDJSON, whose lines are parsed only where the store does not
    hold them as they are) and how many objects (NDJSON: lines) it holds, by its format (an
    NDJSON input is read an extra time for that only with `count`: it sizes the progress bar)."""
    from ..objects import array_objects, file_lines, ndjson_pages, object_rows, row_pages
    from ..sources.files import csv_objects

    if name.lower().endswith(".csv"):
        data = handle.read()
        return row_pages(object_rows(csv_objects(data, name), key_field, name, cast)), max(data.count(b"\n") - 1, 0)
    start = handle.read(4096).lstrip(b" \t\r\n")
    handle.seek(0)
    if start.startswith(b"["):
        items = list(array_objects(handle.read(), name))
        return row_pages(object_rows(items, key_field, name, cast)), len(items)
    if not count:
        return ndjson_pages(file_lines(handle), name, key_field, cast=cast), 0
    total = sum(1 for _ in file_lines(handle))
    handle.seek(0)
    return ndjson_pages(file_lines(handle), name, key_field, cast=cast), total


def _counted(pages: Iterable[ObjectPage], advance: Callable[[int], None]) -> Iterator[ObjectPage]:
    for page in pages:
        yield page
        advance(len(page))


class _opened:
    """The input as a seekable binary file (stdin is spooled to a temporary file first)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.handle: IO[bytes] | None = None

    def __enter__(self) -> IO[bytes]:
        if self.source == "-":
            self.handle = tempfile.TemporaryFile()
            shutil.copyfileobj(sys.stdin.buffer, self.handle)
            self.handle.seek(0)
        else:
            try:
                self.handle = open(self.source, "rb")
            except OSError as exc:
                raise UsageError(f"cannot read {self.source}: {exc.strerror}") from None
        return self.handle

    def __exit__(self, *exc: object) -> None:
        if self.handle is not None:
            self.handle.close()
