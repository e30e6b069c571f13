"""Strict JSON in, compact JSON out: the one place where input JSON is judged.

Every path that accepts JSON (``leo queues put``, the ``file_reader`` and ``change_detector``
sources, ``leo ingest``, the HTTP API) parses with `parse` or `iter_lines`: strict UTF-8 (no
byte order mark, no UTF-16), RFC 8259 only (no NaN/Infinity, no comments, no trailing commas,
no lone surrogates, no control characters in strings, no numbers that overflow a double) and at
most `MAX_DEPTH` levels of nesting. A refusal is a `JSONInputError` whose message says why and
where (``FILE:LINE: reason``, with the column when known).

orjson does the parsing (about 5x the standard library); text that passed is stored as it came,
never re-encoded, so what a queue holds is byte for byte what was accepted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, Any

import orjson

from .errors import InputError

MAX_DEPTH = 100
"""The deepest nesting accepted (objects and arrays); deeper input is refused, never recursed into."""

_BOM = b"\xef\xbb\xbf"


class JSONInputError(InputError):
    """Input that is not strict JSON. ``where`` is ``FILE:LINE`` (or the field / body it came
    from), ``reason`` the plain explanation; ``str()`` joins them, then any ``also`` (more
    problems of the same input, already located)."""

    def __init__(self, reason: str, where: str | None = None, line: int | None = None, *, also: Sequence[str] = ()) -> None:
        self.reason = reason
        self.where = where
        self.line = line  # within the parsed text (1 for a single line) until a caller locates it
        super().__init__("; ".join([f"{where}: {reason}" if where else reason, *also]))


def parse(data: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Decode one JSON document strictly; raise `JSONInputError` (without a location) saying why."""
    if isinstance(data, str):
        try:
            data = data.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise JSONInputError(f"not valid Unicode text: a lone surrogate at character {exc.start + 1}") from None
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise JSONInputError(_reason(data, exc), line=exc.lineno) from None
    if nested_deeper(data, max_depth):
        raise JSONInputError(f"nested deeper than {max_depth} levels")
    return value


def check_each(texts: Sequence[bytes], *, max_depth: int = MAX_DEPTH) -> list[tuple[int, str]]:
    """Judge many JSON texts at once (the bulk path of NDJSON input): ``(index, reason)`` of
    each one that `parse` would refuse, in order. Empty texts are skipped, not judged."""
    loads, decode_error = orjson.loads, orjson.JSONDecodeError
    refused = []
    for index, text in enumerate(texts):
        if not text:
            continue
        try:
            loads(text)
        except decode_error as exc:
            refused.append((index, _reason(text, exc)))
            continue
        if len(text) > max_depth and nested_deeper(text, max_depth):
            refused.append((index, f"nested deeper than {max_depth} levels"))
    return refused


def nested_deeper(data: bytes, max_depth: int = MAX_DEPTH) -> bool:
    """Whether valid JSON text nests deeper than `max_depth` (judged on the text, never by
    walking its decoded value)."""
    return _may_be_deeper(data, max_depth) and _deeper_than(data, max_depth)


def _may_be_deeper(data: bytes, max_depth: int) -> bool:
    """A cheap first look (C-fast counts): fewer brackets than the limit cannot nest deeper."""
    return data.count(b"[") + data.count(b"{") > max_depth


# A JSON string (the text is known valid here), written so the regex engine runs a tight loop.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_ONE_BRACKET = bytes.maketrans(b"{}", b"[]")
_NOT_A_BRACKET = bytes(byte for byte in range(256) if byte not in b"[]{}")


def _deeper_than(data: bytes, max_depth: int) -> bool:
    """Whether valid JSON text nests deeper than `max_depth`, judged on the text: its brackets
    outside strings, as one kind, lose their innermost level per round of a C-speed replace.
    (Walking the decoded value instead takes minutes for a line of millions of small objects.)"""
    brackets = _STRING.sub(b"", data).translate(_ONE_BRACKET, _NOT_A_BRACKET)
    for _ in range(max_depth):
        if not brackets:
            return False
        brackets = brackets.replace(b"[]", b"")
    return bool(brackets)


def depth_of(value: Any) -> int:
    """How deeply `value` nests (a scalar is 0, ``[]`` is 1); iterative, so any depth is safe."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Iterable[Any] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        stack.extend((child, depth) for child in children if isinstance(child, dict | list))
    return deepest


def iter_lines(handle: IO[bytes] | Iterable[bytes], name: str, *, first_line: int = 1) -> Iterator[tuple[int, bytes, Any]]:
    """Parse NDJSON: yield ``(line number, the line's JSON bytes, value)`` per non-blank line.

    A line that is not strict JSON raises `JSONInputError` located at ``name:LINE``. A line ends
    with ``\\n`` (a ``\\r`` before it is dropped); surrounding blanks are not part of the text.
    """
    for number, raw in enumerate(handle, start=first_line):
        text = raw.strip(b" \t\r\n")
        if not text:
            continue
        try:
            value = parse(text)
        except JSONInputError as exc:
            raise JSONInputError(exc.reason, f"{name}:{number}", number) from None
        yield number, text, value


def parse_document(data: bytes, name: str) -> list[Any]:
    """A body or file holding a JSON array or NDJSON (one value per line); the values in order.

    A body starting with ``[`` is one JSON array (its errors are located at the line they are on);
    anything else is NDJSON. `JSONInputError` says where the first problem is.
    """
    check_encoding(data, name)
    stripped = data.lstrip(b" \t\r\n")
    if stripped.startswith(b"["):
        try:
            value = parse(data)
        except JSONInputError as exc:
            line = exc.line or 1
            raise JSONInputError(exc.reason, f"{name}:{line}", line) from None
        return value
    return [value for _, _, value in iter_lines(data.splitlines(keepends=True), name)]


def check_encoding(data: bytes, name: str) -> None:
    """Refuse a BOM or UTF-16/32 up front with one clear message (before line-by-line errors)."""
    if data.startswith(_BOM):
        raise JSONInputError("starts with a UTF-8 byte order mark (BOM): save it as UTF-8 without BOM", f"{name}:1", 1)
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or (len(data) >= 2 and b"\x00" in data[:4]):
        raise JSONInputError("is UTF-16 or UTF-32, not UTF-8: convert it to UTF-8", f"{name}:1", 1)


def canonical(value: Any) -> bytes:
    """Canonical JSON of a value: sorted keys, compact, UTF-8 (what content hashes are taken of)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def dumps(value: Any) -> str:
    """Compact JSON text of a value (UTF-8 kept; NaN and non-JSON types refused with TypeError)."""
    return orjson.dumps(value).decode("utf-8")


def _reason(data: bytes, exc: orjson.JSONDecodeError) -> str:
    message = str(exc).split(": line ", 1)[0]
    if data.startswith(_BOM):
        return "starts with a UTF-8 byte order mark (BOM): save it as UTF-8 without BOM"
    if b"\x00" in data:  # never valid JSON, in a string or out: the usual cause is UTF-16/32
        return "holds NUL bytes: it is UTF-16 or UTF-32, not UTF-8 (or binary data)"
    if "not valid UTF-8" in message:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as bad:
            return f"not UTF-8: invalid byte 0x{data[bad.start]:02x} at byte {bad.start + 1}"
        return f"not UTF-8: {message}"
    near = data[max(exc.pos - 1, 0):exc.pos + 3]
    if b"NaN" in near or b"Inf" in near:
        return f"NaN and Infinity are not JSON (column {exc.colno})"
    if message.startswith("depth limit"):
        return f"nested deeper than {MAX_DEPTH} levels"
    return f"not JSON: {message} (column {exc.colno})"
