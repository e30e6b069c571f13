"""Strict JSON input: every refusal says why and where; what passes is exactly RFC 8259."""

from __future__ import annotations

import io

import pytest

from leo_runtime.jsonio import MAX_DEPTH, JSONInputError, canonical, depth_of, iter_lines, parse, parse_document


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'\xef\xbb\xbf{"a":1}', "byte order mark"),
        ('{"a":1}'.encode("utf-16"), "not UTF-8"),
        (b'{"a":NaN}', "NaN and Infinity are not JSON"),
        (b'{"a":-Infinity}', "NaN and Infinity are not JSON"),
        (b'{"a":1,}', "trailing comma"),
        (b'{"a":"\xff"}', "invalid byte 0xff at byte 7"),
        (b'{"a":"\\ud800"}', "surrogate"),
        (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), f"nested deeper than {MAX_DEPTH} levels"),
        (b"[" * 2000 + b"]" * 2000, f"nested deeper than {MAX_DEPTH} levels"),
        (b"1e999", "infinity"),
        (b'{"a":1}{"b":2}', "unexpected content after document"),
        (b'"a\x01"', "control character"),
        (b"// comment\n{}", "not JSON"),
    ],
)
def test_refusals_say_why(data: bytes, reason: str) -> None:
    with pytest.raises(JSONInputError) as info:
        parse(data)
    assert reason in str(info.value)


def test_what_is_json_passes_with_its_nesting_at_the_limit() -> None:
    deep = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    assert depth_of(parse(deep)) == MAX_DEPTH
    assert parse(b' {"a": [1, 2.5, "\xc3\xa9", null, true]} ') == {"a": [1, 2.5, "é", None, True]}
    # Many brackets side by side are not deep.
    assert parse(b"[" + b",".join([b"[]"] * 500) + b"]") == [[]] * 500


def test_ndjson_lines_are_located_and_blank_lines_skipped() -> None:
    handle = io.BytesIO(b'{"a":1}\r\n\n  {"b":2}  \n{"c":NaN}\n{"d":4}\n')
    lines = iter_lines(handle, "in.ndjson")
    assert next(lines) == (1, b'{"a":1}', {"a": 1})
    assert next(lines) == (3, b'{"b":2}', {"b": 2})
    with pytest.raises(JSONInputError) as info:
        next(lines)
    assert str(info.value).startswith("in.ndjson:4: NaN and Infinity are not JSON")
    assert info.value.line == 4


def test_documents_are_an_array_or_ndjson_located_by_line() -> None:
    assert parse_document(b'[{"a":1},\n {"a":2}]', "body") == [{"a": 1}, {"a": 2}]
    assert parse_document(b'{"a":1}\n{"a":2}\n', "body") == [{"a": 1}, {"a": 2}]
    with pytest.raises(JSONInputError, match=r"^body:3: not JSON"):
        parse_document(b'[{"a":1},\n {"a":2},\n {"a":}]', "body")
    with pytest.raises(JSONInputError, match=r"^body:2: not JSON"):
        parse_document(b'{"a":1}\n{"a":\n', "body")
    with pytest.raises(JSONInputError, match=r"^f.json:1: starts with a UTF-8 byte order mark"):
        parse_document(b'\xef\xbb\xbf[{"a":1}]', "f.json")
    with pytest.raises(JSONInputError, match=r"^f.json:1: is UTF-16 or UTF-32"):
        parse_document('[{"a":1}]'.encode("utf-16-le"), "f.json")


def test_canonical_json_sorts_keys_at_every_level() -> None:
    assert canonical({"b": 1, "a": {"d": 2, "c": [3, {"f": 4, "e": 5}]}}) == b'{"a":{"c":[3,{"e":5,"f":4}],"d":2},"b":1}'


@pytest.mark.parametrize(
    ("text", "deep"),
    [
        (b'["' + b"[" * 300 + b'"]', False),  # brackets inside a string do not nest
        (b'["\\"' + b"[" * 300 + b'"]', False),  # nor after an escaped quote
        (b"{\"a\":" * 50 + b"[" * 50 + b"1" + b"]" * 50 + b"}" * 50, False),  # 100 mixed levels
        (b"[{\"a\":" * 50 + b"[1]" + b"}]" * 50, True),  # 101 mixed levels
        (b"[" + b",".join([b'{"a":[1,{"b":"]]]]"}]}'] * 2000) + b"]", False),  # wide, with brackets in strings
    ],
)
def test_nesting_is_judged_on_the_text_outside_strings(text: bytes, deep: bool) -> None:
    if deep:
        with pytest.raises(JSONInputError, match=f"nested deeper than {MAX_DEPTH} levels"):
            parse(text)
    else:
        parse(text)
