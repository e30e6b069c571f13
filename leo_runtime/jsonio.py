"""Strict JSON in, compact JSON out: the one place where input JSON is judged.

Every path that accepts JSON (``leo queues put``, the ``file_reader`` and ``change_detector``
sources, ``leo ingest``, the HTTP API) parses with `parse` or `iter_lines`: strict UTF-8 (no
byte order mark, no UTF-16), RFC 8259 only (no NaN/Infinity, no comments, no trailing commas,
no lone surrogates, no control characters in strings, no numbers that overflow a double) and at
most `MAX_DEPTH` levels of nesting. A refusal is a `JSONInputError` whose message says why and
where (``FILE:LINE: reason``, with the column when known).

One reading: what is accepted means the same to every reader. So an object that names a key
twice is refused (parsers disagree on which value wins: orjson and Python keep the last, many
keep the first), and so is an integer outside 64 bits, from `MIN_INT` to `MAX_INT` (orjson
would turn it into a rounded float, and JavaScript readers round past 2**53 anyway: send such
numbers as strings). The refusal names the key or the number's place (``query.quantity``).

orjson does the parsing (about 5x the standard library); text that passed is stored as it came,
never re-encoded, so what a queue holds is byte for byte what was accepted. The two checks above
cost a few C-speed byte counts per document (`check_reading`); only a document that may hold a
repeated key or a long integer is walked, token by token, to find it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, Any

import orjson

from .errors import InputError
from .safetext import shown

MAX_DEPTH = 100
"""The deepest nesting accepted (objects and arrays); deeper input is refused, never recursed into."""
MIN_INT = -(1 << 63)
MAX_INT = (1 << 64) - 1
"""Integers are kept exact from `MIN_INT` to `MAX_INT` (what orjson reads and writes exactly);
beyond, they are refused (in JSON, YAML and the command line alike)."""

_BOM = b"\xef\xbb\xbf"


class JSONInputError(InputError):
    """Input that is not strict JSON. ``where`` is ``FILE:LINE`` (or the field / body it came
    from), ``reason`` the plain explanation; ``str()`` joins them, then any ``also`` (more
    problems of the same input, already located).

    A problem inside the document (a repeated key, an integer out of range) also has ``path``:
    the keys and indexes leading to it (``("query", "quantity")``), and ``problem``: the reason
    without that path (an HTTP answer names the field as ``body.query.quantity`` instead)."""

    def __init__(self, reason: str, where: str | None = None, line: int | None = None, *, also: Sequence[str] = (),
                 path: Sequence[str | int] = (), problem: str | None = None) -> None:
        self.reason = reason
        self.where = where
        self.line = line  # within the parsed text (1 for a single line) until a caller locates it
        self.path = tuple(path)
        self.problem = problem or reason
        self.in_content = problem is not None  # valid JSON syntax, refused for what it says
        super().__init__("; ".join([f"{where}: {reason}" if where else reason, *also]))

    def located(self, where: str, line: int | None) -> JSONInputError:
        """The same problem located at `where` (``FILE:LINE``)."""
        return JSONInputError(self.reason, where, line, path=self.path, problem=self.problem)


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
    check_reading(data, value)
    return value


def check_each(texts: Sequence[bytes], *, max_depth: int = MAX_DEPTH) -> list[tuple[int, str]]:
    """Judge many JSON texts at once (the bulk path of NDJSON input): ``(index, reason)`` of
    each one that `parse` would refuse, in order. Empty texts are skipped, not judged.

    The checks after decoding are made on the whole batch first (`_plain_batch`: a few C-speed
    passes over the joined text); only a batch they cannot clear is judged text by text."""
    try:
        values = [orjson.loads(text) for text in texts if text]
    except orjson.JSONDecodeError:
        values = None
    if values is not None and _plain_batch(texts, values, max_depth):
        return []
    return _check_one_by_one(texts, max_depth)


_BRACKETS_AND_NEWLINES = bytes(byte for byte in range(256) if byte not in b"[]{}\n")


def _plain_batch(texts: Sequence[bytes], values: list[Any], max_depth: int) -> bool:
    """Whether valid JSON texts (`values`, what they decode to) surely pass `check_reading` and
    the depth limit; False means "judge each" (never that one is bad).

    Each sum below bounds its per-text counterpart: an encoding never has more colons than its
    text (plus escaped ones), so equal totals mean equal counts in every text; a run of 19
    digits or more than `max_depth` brackets on one line is looked for in the joined text."""
    joined = b"\n".join(texts)
    if b"u003" in joined or orjson.dumps(values).count(b":") != joined.count(b":"):
        return False
    if len(joined) >= len(_LONG_NUMBER) and _LONG_NUMBER in joined.translate(_DIGITS_AS_ZERO):
        return False
    brackets = joined.translate(None, _BRACKETS_AND_NEWLINES)
    return len(brackets) - len(texts) < max_depth or max(map(len, brackets.split(b"\n"))) <= max_depth


def _check_one_by_one(texts: Sequence[bytes], max_depth: int) -> list[tuple[int, str]]:
    loads, decode_error = orjson.loads, orjson.JSONDecodeError
    refused = []
    for index, text in enumerate(texts):
        if not text:
            continue
        try:
            value = loads(text)
        except decode_error as exc:
            refused.append((index, _reason(text, exc)))
            continue
        if len(text) > max_depth and nested_deeper(text, max_depth):
            refused.append((index, f"nested deeper than {max_depth} levels"))
            continue
        try:
            check_reading(text, value)
        except JSONInputError as exc:
            refused.append((index, exc.reason))
    return refused


# -- one reading: no repeated keys, no integers past 64 bits -------------------------------------------
_ESCAPED_COLONS = (b"\\u003a", b"\\u003A")
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_NUMBER = b"0" * 19  # the shortest integer outside MIN_INT..MAX_INT has 19 digits


def check_reading(data: bytes, value: Any, dumped: bytes | None = None) -> None:
    """Refuse (`JSONInputError`, with the path and column) valid JSON text `data` that names a
    key twice in one object or holds an integer outside `MIN_INT`..`MAX_INT`. `value` is what
    orjson decoded of it; `dumped`, when the caller has it, ``orjson.dumps(value)`` (any options).

    Cheap for ordinary text: orjson keeps one member per key, so its encoding of `value` has as
    many ``:`` as `data` (plus its ``\\u003a`` escapes) unless a member was dropped; and a long
    integer needs a run of 19 digits. Only when a count says maybe is the text walked (`_find`).
    """
    colons = data.count(b":")
    if colons > 1:  # one member cannot repeat a key
        if dumped is None:
            dumped = orjson.dumps(value)
        escaped = sum(map(data.count, _ESCAPED_COLONS)) if b"u003" in data else 0
        # Without a dropped member the counts are equal; with one, the encoding has fewer (a
        # false alarm, from an escaped backslash before the text u003a, only costs the walk).
        if dumped.count(b":") != colons + escaped:
            _find(data)
    if len(data) >= len(_LONG_NUMBER) and _LONG_NUMBER in data.translate(_DIGITS_AS_ZERO):
        _find(data)


_TOKEN = re.compile(rb'(?P<string>"[^"\\]*(?:\\.[^"\\]*)*")|(?P<number>-?[0-9][0-9.eE+\-]*)|(?P<mark>[{}\[\],:])')


def _find(data: bytes) -> None:
    """Walk valid JSON text token by token; raise at the first repeated key or integer out of range."""
    # Each open container: [keys seen, the current key] for an object, [None, index] for an array.
    stack: list[list[Any]] = []
    expecting_key = False
    for token in _TOKEN.finditer(data):
        kind = token.lastgroup
        if kind == "mark":
            mark = token[0]
            if mark == b"{":
                stack.append([set(), None])
                expecting_key = True
            elif mark == b"[":
                stack.append([None, 0])
            elif mark in (b"}", b"]"):
                stack.pop()
                expecting_key = False
            elif mark == b",":
                top = stack[-1]
                if top[0] is None:
                    top[1] += 1
                else:
                    expecting_key = True
        elif kind == "string":
            if expecting_key:
                expecting_key = False
                top = stack[-1]
                key = orjson.loads(token[0])
                top[1] = key
                if key in top[0]:
                    path = _path(stack[:-1])
                    _refuse(data, token.start(), path, f"duplicate key {shown(key)}", " in the object at", "",
                            "an object may name each key once")
                top[0].add(key)
        else:
            text = token[0]
            if b"." not in text and b"e" not in text and b"E" not in text and not MIN_INT <= int(text) <= MAX_INT:
                number = shown(text.decode(), 40).strip("'")
                _refuse(data, token.start(), _path(stack), f"integer {number}", " at", " is outside 64 bits",
                        f"leo keeps integers exact from {MIN_INT} to {MAX_INT}; send larger ones as strings")


def _path(containers: list[list[Any]]) -> list[str | int]:
    return [frame[1] for frame in containers]


def _refuse(data: bytes, at: int, path: list[str | int], subject: str, where: str, verb: str, hint: str) -> None:
    """Raise the problem found at byte `at` of `data`, with its line, column and path:
    ``SUBJECT WHERE PATH VERB (column N): HINT`` (the path left out at the top level)."""
    line_start = data.rfind(b"\n", 0, at) + 1
    line = data.count(b"\n", 0, at) + 1
    column = len(data[line_start:at].decode("utf-8", "replace")) + 1
    place = f"{where} {format_path(path)}" if path else ""
    raise JSONInputError(f"{subject}{place}{verb} (column {column}): {hint}", line=line, path=path,
                         problem=f"{subject}{verb}: {hint}")


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")


def format_path(path: Sequence[str | int]) -> str:
    """A path inside a document as text: ``query.quantity``, ``items[3].sku``, ``["a.b"]``."""
    parts: list[str] = []
    for element in path:
        if isinstance(element, int):
            parts.append(f"[{element}]")
        elif _NAME.fullmatch(element):
            parts.append(f".{element}" if parts else element)
        else:
            parts.append(f"[{shown(element)}]")
    return "".join(parts)


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
            raise exc.located(f"{name}:{number}", number) from None
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
            raise exc.located(f"{name}:{line}", line) from None
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
