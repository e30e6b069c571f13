"""The event envelope (Leo's names) and the payload wrappers bots hand back to the runtime.

An `Event` is read from a queue. Its payload is kept as the JSON text that was stored and is
decoded only when a bot looks at it, so a bot that forwards events (``yield event``) passes the
stored text through untouched: no decode, no re-encode.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

_EID_SEQ = re.compile(r"^z/\d{4}/\d{2}/\d{2}/\d{2}/\d{2}/\d+-(\d+)$")

json_loads = json.loads
_scan_once = json.JSONDecoder().scan_once
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def decode_payload(text: str) -> Any:
    """Decode stored JSON text. Stored payloads are compact, so the C scanner alone reads them
    (about twice as fast as ``json.loads``); anything unusual takes the strict path."""
    try:
        value, end = _scan_once(text, 0)
    except StopIteration:
        return json_loads(text)
    if end != len(text):
        return json_loads(text)
    return value


_orjson_loads = orjson.loads
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_NUMBER = b"0" * 19  # the shortest integer orjson may not keep exact has 19 digits


def allow_fast_decoding(events: Sequence[Event]) -> None:
    """Let a page of events decode with orjson (about 3x `decode_payload`) when none of their
    texts holds a run of 19 digits: orjson reads an integer outside 64 bits as a rounded float
    where `decode_payload` keeps it exact, so a page with such a run decodes as before. One
    C-speed look at the page's joined text; the events still decode only when looked at."""
    text = "".join([event.payload_json for event in events]).encode("utf-8", "surrogatepass")
    if _LONG_NUMBER in text.translate(_DIGITS_AS_ZERO):
        return
    for event in events:
        if event._payload is _UNSET:
            event._payload = _FAST


def _decode_fast(text: str) -> Any:
    """`decode_payload` for text known to hold no integer orjson would round; anything orjson
    refuses (NaN, lone surrogates, very deep nesting) takes the usual path."""
    try:
        return _orjson_loads(text)
    except orjson.JSONDecodeError:
        return decode_payload(text)


def dumps(value: Any) -> str:
    """Encode a payload as compact JSON text (UTF-8 kept, NaN refused)."""
    return _dumps(value)


def make_eid(seq: int, timestamp: int) -> str:
    """Leo-style event id: ``z/YYYY/MM/DD/HH/MM/<timestamp ms>-<position>``; sorts by time."""
    moment = datetime.fromtimestamp(timestamp / 1000, tz=UTC)
    return f"z/{moment:%Y/%m/%d/%H/%M}/{timestamp}-{seq:07d}"


def position_of(value: str | int) -> int:
    """The queue position named by an integer, a decimal string or an eid; ValueError otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"invalid position {value}: positions are 0 or more")
        return value
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    match = _EID_SEQ.match(text)
    if match:
        return int(match[1])
    raise ValueError(f"invalid position {value!r}: expected a number or an eid like 'z/2026/11/26/19/10/...-0000042'")


class RawJSON:
    """A payload that is already JSON text; the runtime stores it as is."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"RawJSON({self.text[:60]!r})"


_UNSET: Any = object()
_FAST: Any = object()  # not decoded yet, and `allow_fast_decoding` found orjson safe for it


class Event:
    """One event read from a queue.

    Attributes: ``seq`` (its position: one global, growing sequence over all queues), ``queue``,
    ``payload_json`` (the stored text), ``event_source_timestamp`` and ``timestamp`` (epoch ms),
    ``correlation_json``. ``payload``, ``eid`` and ``correlation_id`` are computed on first use.
    """

    __slots__ = ("_payload", "correlation_json", "event_source_timestamp", "payload_json", "queue", "seq",
                 "timestamp")

    def __init__(
        self,
        seq: int,
        queue: str,
        payload_json: str,
        event_source_timestamp: int | None,
        timestamp: int,
        correlation_json: str | None = None,
    ) -> None:
        self.seq = seq
        self.queue = queue
        self.payload_json = payload_json
        self.event_source_timestamp = event_source_timestamp
        self.timestamp = timestamp
        self.correlation_json = correlation_json
        self._payload = _UNSET

    @property
    def payload(self) -> Any:
        """The decoded payload (decoded once, on first access)."""
        value = self._payload
        if value is _UNSET:
            value = self._payload = decode_payload(self.payload_json)
        elif value is _FAST:
            value = self._payload = _decode_fast(self.payload_json)
        return value

    @property
    def eid(self) -> str:
        """Leo-style event id, derived from the position and the write time."""
        return make_eid(self.seq, self.timestamp)

    @property
    def correlation_id(self) -> dict[str, Any] | None:
        """Where this event came from: ``{"source": queue, "start": position, "units": n}``."""
        return json_loads(self.correlation_json) if self.correlation_json else None

    @property
    def idempotency_key(self) -> str:
        """A key that stays the same when the event is delivered again (for sinks)."""
        return f"{self.queue}:{self.seq}"

    def to_dict(self) -> dict[str, Any]:
        """The envelope as a plain mapping (what ``leo queues tail --json`` prints)."""
        return {
            "eid": self.eid,
            "position": self.seq,
            "queue": self.queue,
            "payload": self.payload,
            "correlation_id": self.correlation_id,
            "event_source_timestamp": self.event_source_timestamp,
            "timestamp": self.timestamp,
        }

    def to_json(self) -> str:
        """The envelope as one line of JSON, splicing the stored payload text in untouched."""
        return (
            f'{{"eid":"{self.eid}","position":{self.seq},"queue":{dumps(self.queue)},'
            f'"payload":{self.payload_json},"correlation_id":{self.correlation_json or "null"},'
            f'"event_source_timestamp":{_num(self.event_source_timestamp)},"timestamp":{self.timestamp}}}'
        )

    def __repr__(self) -> str:
        return f"Event(queue={self.queue!r}, seq={self.seq}, payload={self.payload_json[:60]!r})"


def _num(value: int | None) -> str:
    return "null" if value is None else str(value)


class Output:
    """What a bot yields when it needs more than a payload: another queue or an explicit origin time.

    ``queue`` defaults to the bot's ``out``; ``event_source_timestamp`` defaults to the input's.
    """

    __slots__ = ("event_source_timestamp", "payload", "queue")

    def __init__(self, payload: Any, *, queue: str | None = None, event_source_timestamp: int | None = None):
        self.payload = payload
        self.queue = queue
        self.event_source_timestamp = event_source_timestamp


def encode_payload(payload: Any) -> str:
    """The JSON text to store for a payload: an Event's or RawJSON's text as is, else compact JSON."""
    if isinstance(payload, Event):
        return payload.payload_json
    if isinstance(payload, RawJSON):
        return payload.text
    return _dumps(payload)
