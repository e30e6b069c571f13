"""Objects: the latest state of every object per type and key, and its changes as change records.

Content is compared by a hash of canonical JSON (sorted keys, compact, UTF-8; blake2b), never by
decoding stored rows: an object pushed again with identical content is no change, whatever its
key order or spacing. The JSON text an object came with is stored as it came (an NDJSON line is
kept byte for byte); only the hash is taken of the canonical form. The store compares and writes
(`Store.apply_objects`); this module validates input, hashes it and writes the change records
(README, "Objects and change records"):

    {"object_type": "inventory", "key": "SKU-1", "op": "updated", "version": 3,
     "changed_at": "2026-11-26T19:10:33.123Z", "changed_fields": ["quantity"], "data": {...}}

``changed_fields`` lists the top-level fields whose value differs from the previous state: every
field of the object for ``created`` and ``deleted`` (a missing object has none), the differing
ones for ``updated``. A delete's ``data`` is the last known state.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import IO, Any, NamedTuple

import orjson

from .errors import ObjectInputError
from .fieldtypes import FieldCaster
from .jsonio import MAX_DEPTH, JSONInputError, check_encoding, check_reading, iter_lines, nested_deeper, parse
from .store import ObjectBatch, ObjectChange, ObjectPage, ObjectRow, RowPage, Store
from .timeutil import format_time

_SORTED = orjson.OPT_SORT_KEYS
_blake2b = hashlib.blake2b
_loads = orjson.loads
_dumps = orjson.dumps
_DEEP_BYTES = 2 * MAX_DEPTH + 1  # the shortest text nested deeper than MAX_DEPTH


class SourceObject(NamedTuple):
    """An object as read from an input: its decoded value, where it was read (``FILE:LINE``,
    ``body: item 3``) and, when the input had it on its own, its JSON text (stored untouched)."""

    value: Any
    where: str
    text: str | None = None


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What an ingest did, key by key."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def content_hash(value: Any) -> bytes:
    """The content hash of a JSON value: the first 16 bytes of the blake2b digest of its
    canonical JSON (taken whole and cut: a ``digest_size`` argument costs more than the hash)."""
    return _blake2b(_dumps(value, option=_SORTED)).digest()[:16]


def object_key(value: Any, key_field: str, where: str) -> str:
    """The key of an object: its `key_field`, a non-empty string or an integer (as decimal text).

    Raises `ObjectInputError` located at `where` when `value` is not an object or has no usable key.
    """
    if type(value) is not dict:
        raise ObjectInputError(f"expected a JSON object, got {_kind(value)}", where)
    key = value.get(key_field)
    if type(key) is str:
        if key:
            return key
        raise ObjectInputError(f"key field '{key_field}' is an empty string", where)
    if type(key) is int:
        return str(key)
    if key_field not in value:
        raise ObjectInputError(f"missing key field '{key_field}'", where)
    raise ObjectInputError(f"key field '{key_field}' must be a non-empty string or an integer, not {_kind(key)}", where)


def object_rows(
    items: Iterable[Any], key_field: str, source: str, cast: FieldCaster | None = None
) -> Iterator[ObjectRow]:
    """Validate and hash objects lazily (the hot path of ingest and detection).

    An item is a `SourceObject` (located, maybe with its JSON text) or a plain value (located as
    ``SOURCE: item N``). `cast` casts the object type's declared fields first (an object it
    changes is stored as its cast JSON). Raises `ObjectInputError` at the first invalid one.
    """
    for number, item in enumerate(items, start=1):
        if type(item) is SourceObject:
            value, where, text = item
        else:
            value, where, text = item, None, None
        if cast is not None and type(value) is dict:
            cast_value = cast(value, where or f"{source}: item {number}")
            if cast_value is not value:
                value, text = cast_value, None
        # Inline the common case: a dict with a non-empty string key.
        key = value.get(key_field) if type(value) is dict else None
        if type(key) is not str or not key:
            key = object_key(value, key_field, where or f"{source}: item {number}")
        try:
            canonical = _dumps(value, option=_SORTED)
            if text is None:
                text = _dumps(value).decode()
        except TypeError as exc:  # a value built by code, not parsed: bytes, a set, a non-text key ...
            raise ObjectInputError(f"not JSON: {exc}", where or f"{source}: item {number}") from None
        yield ObjectRow(key, _blake2b(canonical).digest()[:16], text, value)


PAGE_LINES = 2000
"""NDJSON lines per `NdjsonPage`: the store compares a page with what it holds in one query."""


def raw_hash_person(key_field: str, cast: FieldCaster | None = None) -> bytes:
    """The blake2b personalisation of raw hashes for a type keyed by `key_field`: a line stored
    under one key field is never taken for unchanged under another (its key may differ), nor
    under other declared field types (its cast value may differ)."""
    material = key_field.encode() if cast is None else key_field.encode() + b"\0" + cast.signature
    return _blake2b(material, digest_size=16).digest()


class NdjsonPage:
    """A page of NDJSON lines, hashed as they came and parsed only when the store asks (see
    `store.ObjectPage`). Line ``first + i`` of `name` is ``lines[i]``; errors name it so.

    The raw hashes are taken when the store first asks for them: a store comparing key by key
    (an input out of key order) never does, and its rows then carry none."""

    __slots__ = ("_raw_hashes", "cast", "first", "key_field", "lines", "name", "person")

    def __init__(self, lines: list[bytes], name: str, key_field: str, first: int, person: bytes,
                 cast: FieldCaster | None = None) -> None:
        self.lines = lines
        self.name = name
        self.key_field = key_field
        self.first = first
        self.person = person
        self.cast = cast
        self._raw_hashes: bytes | None = None

    @property
    def raw_hashes(self) -> bytes:
        if self._raw_hashes is None:
            blake2b, person = _blake2b, self.person
            self._raw_hashes = b"".join([blake2b(line, digest_size=16, person=person).digest() for line in self.lines])
        return self._raw_hashes

    def __len__(self) -> int:
        return len(self.lines)

    def row(self, index: int) -> ObjectRow | None:
        """The row of line `index` (None for a blank line); raises its located error."""
        raw_hashes = self._raw_hashes
        raw_hash = raw_hashes[16 * index:16 * index + 16] if raw_hashes is not None else None
        return _ndjson_row(self.lines[index], self.name, self.first + index, self.key_field, raw_hash, self.cast)


def ndjson_pages(lines: Iterable[bytes], name: str, key_field: str, *, first_line: int = 1,
                 size: int = PAGE_LINES, cast: FieldCaster | None = None) -> Iterator[NdjsonPage]:
    """The NDJSON `lines` (bytes, without their ``\\n``) as `NdjsonPage`s of `size` lines: hashing
    a line as it came costs a third of parsing and canonicalising it, and most lines of a source
    read again are byte for byte what the store holds. `cast`: the type's declared fields."""
    person = raw_hash_person(key_field, cast)
    source = iter(lines)
    first = first_line
    while page := list(itertools.islice(source, size)):
        yield NdjsonPage(page, name, key_field, first, person, cast)
        first += len(page)


def row_pages(rows: Iterable[ObjectRow], size: int = PAGE_LINES) -> Iterator[RowPage]:
    """Rows (checked and hashed, lazily) as pages of `size`."""
    source = iter(rows)
    while page := list(itertools.islice(source, size)):
        yield RowPage(page)


def _ndjson_row(raw: bytes, name: str, number: int, key_field: str, raw_hash: bytes | None,
                cast: FieldCaster | None = None) -> ObjectRow | None:
    """One NDJSON line checked and hashed (None when blank): ``NAME:LINE: reason`` on error."""
    try:
        value = _loads(raw)  # JSON allows the blanks around a value (a CRLF's \r included)
    except orjson.JSONDecodeError:
        text = raw.strip(b" \t\r\n")
        if not text:
            return None
        value = _parse_line(text, name, number)  # raises, with jsonio's explanation
    if cast is not None and type(value) is dict:
        cast_value = cast(value, f"{name}:{number}")
        if cast_value is not value:  # stored as cast; its raw hash still recognises the line as it came
            value, raw = cast_value, _dumps(cast_value)
    if type(value) is dict:
        key = value.get(key_field)
        if type(key) is not str or not key:
            key = object_key(value, key_field, f"{name}:{number}")
    else:
        key = object_key(value, key_field, f"{name}:{number}")
    # Nesting deeper than MAX_DEPTH needs twice that many bytes: only lines that long are looked at.
    if len(raw) > _DEEP_BYTES and nested_deeper(raw):
        raise JSONInputError(f"nested deeper than {MAX_DEPTH} levels", f"{name}:{number}", number)
    canonical = _dumps(value, option=_SORTED)
    try:
        check_reading(raw, value, canonical)  # a repeated key, an integer past 64 bits
    except JSONInputError as exc:
        raise exc.located(f"{name}:{number}", number) from None
    # A plain tuple in ObjectRow's order: building the named tuple costs more than the hash.
    return (key, _blake2b(canonical).digest()[:16], raw, None, raw_hash)  # type: ignore[return-value]


def file_lines(handle: IO[bytes], chunk_size: int = 1 << 20) -> Iterator[bytes]:
    """The lines of a binary file (split at ``\\n`` only, as editors count them), read in large
    chunks: about twice as fast as iterating the file."""
    pending: list[bytes] = []  # the start of a line that goes on in the next chunk
    while chunk := handle.read(chunk_size):
        lines = chunk.split(b"\n")
        if len(lines) == 1:  # a line longer than a chunk: keep its pieces, join once
            pending.append(chunk)
            continue
        if pending:
            pending.append(lines[0])
            lines[0] = b"".join(pending)
        pending = [lines.pop()]
        yield from lines
    if pending and any(pending):
        yield b"".join(pending)


def change_record(change: ObjectChange) -> str:
    """The change record of `change` as JSON text; the object's JSON text is spliced in untouched."""
    if change.op == "updated":
        fields = changed_fields(_loads(change.previous_json or "{}"), _value(change))
    else:
        data = _value(change)
        fields = sorted(data) if type(data) is dict else []
    return (
        f'{{"object_type":{_type_text(change.object_type)},"key":{_dumps(change.key).decode()},"op":"{change.op}",'
        f'"version":{change.version},"changed_at":"{_time_text(change.changed_at)}",'
        f'"changed_fields":{_dumps(fields).decode()},"data":{change.data_json}}}'
    )


def changed_fields(previous: Any, current: Any) -> list[str]:
    """Top-level fields whose values differ (by canonical JSON, so 1 and true differ), sorted."""
    if type(previous) is not dict or type(current) is not dict:
        return []
    changed = []
    for name in previous.keys() | current.keys():
        if name not in previous or name not in current:
            changed.append(name)
        else:
            old, new = previous[name], current[name]
            if old is new:
                continue
            if type(old) is not type(new) or old != new or _dumps(old, option=_SORTED) != _dumps(new, option=_SORTED):
                changed.append(name)
    return sorted(changed)


def batch(
    object_type: str,
    key_field: str,
    objects: Iterable[Any],
    *,
    complete: bool = False,
    deletes: Iterable[str] = (),
    source: str = "ingest",
    cast: FieldCaster | None = None,
) -> ObjectBatch:
    """An `ObjectBatch` for the store: objects validated and hashed lazily, as the store reads them.

    ``complete``: the objects are everything the source has (a full snapshot), so live keys that
    are missing become deletes. `cast`: the type's declared fields. Hand it to
    `Store.apply_objects`, or yield it from a source bot to commit it with the bot's state.
    """
    return ObjectBatch(
        object_type=object_type,
        describe=change_record,
        rows=object_rows(objects, key_field, source, cast),
        complete=complete,
        deletes=deletes,
        source=source,
    )


def batch_of_rows(
    object_type: str,
    rows: Iterable[ObjectRow],
    *,
    complete: bool = False,
    source: str = "ingest",
    pages: Iterable[ObjectPage] = (),
) -> ObjectBatch:
    """An `ObjectBatch` of rows already checked and hashed (`object_rows`, `NdjsonPage.row`), and
    of pages (`ndjson_pages`, `row_pages`) after them."""
    return ObjectBatch(
        object_type=object_type, describe=change_record, rows=rows, complete=complete, source=source, pages=pages
    )


def ingest(
    store: Store,
    object_type: str,
    key_field: str,
    objects: Iterable[Any],
    *,
    snapshot: bool = False,
    source: str = "ingest",
    cast: FieldCaster | None = None,
) -> IngestResult:
    """Push objects through change detection; return what changed (every object is checked
    before anything is written, see `Store.apply_objects`).

    Each object must be a JSON object whose `key_field` is a non-empty string or an integer (an
    integer key becomes its decimal text). Items are plain values (located as ``SOURCE: item N``
    in errors) or `SourceObject`s (located as they say, their text stored untouched). Every object
    is checked before the transaction commits: one invalid object raises `ObjectInputError` (or
    the `JSONInputError` its reader raised) and nothing is written. With ``snapshot``, the objects
    are the whole type: live keys missing from them are deleted. `cast`: the type's declared fields.
    """
    pending = batch(object_type, key_field, objects, complete=snapshot, source=source, cast=cast)
    store.apply_objects([pending])
    counts = pending.counts
    return IngestResult(counts.created, counts.updated, counts.unchanged, counts.deleted)


def delete(store: Store, object_type: str, key: str) -> bool:
    """Delete one object: its delete record (holding its last state) is appended to
    ``{object_type}.changes`` in the same transaction. False when the key is unknown or already
    deleted (nothing is written)."""
    pending = ObjectBatch(object_type=object_type, describe=change_record, deletes=[key], source="delete")
    store.apply_objects([pending])
    return pending.counts.deleted == 1


def parse_objects(data: bytes, name: str) -> Iterator[SourceObject]:
    """The objects of a body or file holding a JSON array or NDJSON (strict JSON via jsonio).

    NDJSON lines keep their text (stored untouched) and are located ``NAME:LINE``; array items are
    located ``NAME: item N``. A syntax error raises `JSONInputError` at ``NAME:LINE``. Values are
    yielded as parsed; `object_rows` checks that they are objects with a key.
    """
    check_encoding(data, name)
    if data.lstrip(b" \t\r\n").startswith(b"["):
        yield from array_objects(data, name)
        return
    for number, text, value in iter_lines(data.split(b"\n"), name):
        yield SourceObject(value, f"{name}:{number}", text.decode())


def array_objects(data: bytes, name: str) -> Iterator[SourceObject]:
    """The items of one JSON array document, located ``NAME: item N``."""
    try:
        value = parse(data)
    except JSONInputError as exc:
        line = exc.line or 1
        raise exc.located(f"{name}:{line}", line) from None
    if type(value) is not list:
        raise ObjectInputError(f"expected a JSON array of objects, got {_kind(value)}", f"{name}:1")
    for number, item in enumerate(value, start=1):
        yield SourceObject(item, f"{name}: item {number}")


def _parse_line(text: bytes, name: str, number: int) -> Any:
    try:
        return parse(text)
    except JSONInputError as exc:
        raise exc.located(f"{name}:{number}", number) from None


def _value(change: ObjectChange) -> Any:
    return change.value if change.value is not None else _loads(change.data_json)


@functools.lru_cache(maxsize=256)
def _type_text(object_type: str) -> str:
    return _dumps(object_type).decode()


_last_time: tuple[int, str] = (-1, "")


def _time_text(ms: int) -> str:
    # The changes of one transaction share their time: format it once (one tuple: thread-safe).
    global _last_time
    cached = _last_time
    if cached[0] != ms:
        cached = _last_time = (ms, format_time(ms) or "")
    return cached[1]


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


__all__ = [
    "PAGE_LINES",
    "IngestResult",
    "NdjsonPage",
    "SourceObject",
    "array_objects",
    "batch",
    "batch_of_rows",
    "change_record",
    "changed_fields",
    "content_hash",
    "delete",
    "file_lines",
    "ingest",
    "ndjson_pages",
    "object_key",
    "object_rows",
    "parse_objects",
    "raw_hash_person",
    "row_pages",
]
