"""How a read page's payloads decode: orjson where a page holds no integer it could round, the
standard library's exact reading otherwise; either way the value is what `json.loads` reads."""

from __future__ import annotations

import json
import math

from leo_runtime.events import Event, allow_fast_decoding

BIG = 123456789012345678901234567890


def page(*texts: str) -> list[Event]:
    events = [Event(index + 1, "q", text, None, 0) for index, text in enumerate(texts)]
    allow_fast_decoding(events)
    return events


def test_a_page_decodes_as_the_standard_library_reads_it() -> None:
    texts = ['{"sku":"S1","quantity":3,"price":1.25,"at":"2026-11-26T19:10:33.123Z"}', '[1,-0,1e5,"\\u00e9",null]',
             f'{{"n":{2**64 - 1},"m":{-(2**63)}}}', '"text"']
    assert [event.payload for event in page(*texts)] == [json.loads(text) for text in texts]


def test_an_integer_past_64_bits_anywhere_in_the_page_stays_exact() -> None:
    for big in (BIG, -(2**63) - 1, 2**64):
        events = page('{"sku":"S1","quantity":3}', f'{{"id":{big},"quantity":1}}')
        assert events[1].payload == {"id": big, "quantity": 1}
        assert type(events[1].payload["id"]) is int
        assert events[0].payload == {"sku": "S1", "quantity": 3}


def test_text_orjson_refuses_still_decodes_as_before() -> None:
    nan, surrogate, infinite = page('{"x":NaN}', '"\\ud800"', "[1e400]")
    assert math.isnan(nan.payload["x"])
    assert surrogate.payload == "\ud800"
    assert infinite.payload == [math.inf]
