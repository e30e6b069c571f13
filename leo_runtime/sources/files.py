"""Object files: a JSON array (``.json``), NDJSON (``.ndjson``, ``.jsonl``) or CSV (``.csv``).

Every reader yields `ObjectRow`s lazily and raises a located error (``FILE:LINE: reason``) at
the first problem. JSON is strict (`leo_runtime.jsonio`); an NDJSON line's text is stored as it
came. CSV values are text (the header names the fields); a row whose field count differs from
the header's is an error, which also catches a file cut off in the middle of a row.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

from ..errors import ObjectInputError
from ..fieldtypes import FieldCaster
from ..jsonio import JSONInputError, check_encoding
from ..objects import SourceObject, array_objects, file_lines, ndjson_pages, object_rows, row_pages
from ..store import ObjectPage

SUFFIXES = (".json", ".ndjson", ".jsonl", ".csv")
"""File name endings the readers understand."""


def is_object_file(path: Path) -> bool:
    """A file a folder source reads: a known ending, and not hidden (``.name``: a writer's temp file)."""
    return path.suffix.lower() in SUFFIXES and not path.name.startswith(".")


def read_pages(path: Path, shown: str, key_field: str, cast: FieldCaster | None = None) -> Iterator[ObjectPage]:
    """The objects of one file as pages, by its ending (see the module docstring): NDJSON lines
    as `NdjsonPage`s (parsed only where the store does not hold them as they are), the
    others parsed into rows. `cast`: the object type's declared fields (CSV text becomes typed)."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".ndjson", ".jsonl"):
            with path.open("rb") as handle:
                check_encoding(handle.read(4), shown)
                handle.seek(0)
                yield from ndjson_pages(file_lines(handle), shown, key_field, cast=cast)
        elif suffix == ".json":
            data = path.read_bytes()
            check_encoding(data, shown)
            yield from row_pages(object_rows(array_objects(data, shown), key_field, shown, cast))
        elif suffix == ".csv":
            yield from row_pages(object_rows(csv_objects(path.read_bytes(), shown), key_field, shown, cast))
        else:
            raise ObjectInputError(f"unknown file type '{suffix}' (known: {', '.join(SUFFIXES)})", shown)
    except FileNotFoundError:
        gone = ObjectInputError("the file disappeared while it was read; it is read again on the next run", shown)
        gone.transient = True
        raise gone from None
    except IsADirectoryError:
        raise ObjectInputError("is a folder, not a file", shown) from None


def csv_objects(data: bytes, shown: str) -> Iterator[SourceObject]:
    """The rows of a CSV file as objects (field names from the header, values as text)."""
    if data.startswith(b"\xef\xbb\xbf"):  # spreadsheets write a BOM: it is not part of the first name
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise JSONInputError(f"not UTF-8: invalid byte 0x{data[exc.start]:02x}", f"{shown}:{line}", line) from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            return
        if len(set(header)) != len(header) or not all(name.strip() for name in header):
            raise ObjectInputError("the header must name every column once", f"{shown}:1")
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                raise ObjectInputError(
                    f"the row has {len(row)} fields, the header {len(header)} (is the file complete?)",
                    f"{shown}:{reader.line_num}",
                )
            yield SourceObject(dict(zip(header, row, strict=True)), f"{shown}:{reader.line_num}")
    except csv.Error as exc:
        raise ObjectInputError(f"not CSV: {exc}", f"{shown}:{reader.line_num}") from None

