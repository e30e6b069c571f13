"""Partner streams' writer: ONE system bot per object type fans every change out to all its streams.

`leo run` runs ``streams:<type>`` (pipeline ``system:streams``) for each object type that has
streams of live partners. It reads ``<type>.changes`` once: each change is decoded once (only
its key and, when a query needs it, its data) and matched against every stream's query and its
partner's scope (streams whose query holds a field equal to a value are indexed by it, so a
change is tested only against those it can match), and each match is appended, as stored, to
the stream's partition ``streams.<id>.<crc32(key) % partitions>`` in the transaction that moves
the writer's checkpoint (a `FanOut` op). A stream costs no thread, no
store connection and no bot of its own: a thousand idle streams cost what one does.

Streams of the same query, partner scope and partition count created while the writer had
written every change follow it from their start on ONE shared log (`shared_log`): the writer
writes each of its records once, for all of them, and each reads the log after its own start.
Other streams start at different places, so each has a fan-out cursor in the store
(`StreamTarget.cursor`):

- None: the stream follows the writer: every matching change after its checkpoint goes to it.
- ahead of the writer's checkpoint (``start_at: now`` while the writer lags behind the queue):
  the writer's own pass serves it from the first change after the cursor, and once the
  writer's checkpoint has passed the cursor the stream follows the writer.
- behind it (``start_at: earliest`` or a time): the stream catches up in the same bot's runs,
  after the live page, reading the queue from its cursor up to the writer's checkpoint; streams
  at the same cursor share one read (each change decoded once for all of them), and a stream
  behind another catches up to it first, so they merge. A run spends at most `CATCH_UP_SECONDS`
  on it, so live streams wait for one slice at most. A stream that reaches the checkpoint joins
  the followers in the same transaction, with the run's live page.

Each stream's records are appended in the order of their changes, so order per key per
partition holds; a cursor moves (compare-and-set) with the records it covers, so no change is
written twice or skipped, even on kill -9. A stream deleted mid-way gets nothing more (the store
drops the records of streams that no longer exist); a revoked partner's streams are not served.
"""

from __future__ import annotations

import functools
import json
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from json.decoder import scanstring  # type: ignore[attr-defined]  # C, not in the stubs
from typing import Any

from ..bot import BotContext, BotSettings, RunLimits, SinkBot, SystemContext, system_context
from ..events import Event, decode_payload
from ..jsonio import parse
from ..store import PendingEvent
from ..store.base_streams import SHARED_LOG_PREFIX, FanOut, StreamTarget
from .streams import partition_queue, partitions_base
from .subscriptions import MATCH_EVERYTHING, compile_subscription, fanout_limits

FANOUT_RECORDS = 10_000
"""About how many records one commit of a writer appends: a commit holds the store's write lock,
so other writers (an ingest, a partner's checkpoint) wait for one that long at most."""
CATCH_UP_SECONDS = 0.2
"""How long one run may spend catching streams up (after its live page): what a live stream may wait."""
CATCH_UP_RECORDS = FANOUT_RECORDS
"""Records one run appends at most while catching streams up."""
CATCH_UP_PAGE = 2000
"""Events read at a time while catching up (and at most `CATCH_UP_BYTES` of them)."""
CATCH_UP_BYTES = 16_000_000
TICK_SECONDS = 30.0
"""How often a quiet writer looks for streams to catch up; a stream created in this process or
another is noticed at once (the runtime wakes the writer when the streams version changes)."""


@dataclass(frozen=True, slots=True)
class _Target:
    """A stream as the writer serves it: its cursor, partition queues and compiled match
    (``everything``: no query and no scope, so the change's data need not be decoded)."""

    id: str
    cursor: int | None
    queues: tuple[str, ...]
    test: Callable[[Any], bool]
    everything: bool
    equality: tuple[tuple[str, ...], Any] | None  # a field its query or scope holds equal to a scalar


class _Group:
    """Streams served together, indexed by a field each one's query (or scope) holds equal to a
    scalar (``{"warehouse": "NYC"}``): a change is tested only against the streams whose value it
    has, and those without such an equality, not against all of them. The index only narrows:
    each stream's own test decides."""

    __slots__ = ("index", "plain", "targets")

    def __init__(self, targets: list[_Target]) -> None:
        self.targets = targets
        self.plain = [t for t in targets if t.equality is None]
        self.index: dict[tuple[str, ...], dict[Any, list[_Target]]] = {}
        for target in targets:
            if target.equality is not None:
                path, value = target.equality
                self.index.setdefault(path, {}).setdefault(value, []).append(target)

    def fan(self, change: _Change, records: dict[str, list[PendingEvent]]) -> int:
        """Append the change to each stream it is for; return to how many."""
        count = _fan(change, self.plain, records) if self.plain else 0
        if self.index:
            data = change.data()
            for path, streams in self.index.items():
                try:
                    found = streams.get(_value_at(data, path))
                except TypeError:  # a list or an object there: equal to no scalar
                    continue
                if found:
                    count += _fan(change, found, records)
        return count


class _Change:
    """A change record of the queue, read once: its partition key's CRC, and its decoded data
    when a stream's query asks for it (decoded at most once, for all streams)."""

    __slots__ = ("_data", "correlation", "crc", "origin", "seq", "text")

    def __init__(self, seq: int, text: str, origin: int | None, correlation: str, crc: int, data: Any) -> None:
        self.seq = seq
        self.text = text  # the record as stored (appended untouched)
        self.origin = origin
        self.correlation = correlation
        self.crc = crc  # of its key: its partition in a stream of n partitions is crc % n
        self._data = data

    def data(self) -> Any:
        if self._data is _UNREAD:
            self._data = _data_of(self.text)
        return self._data


_UNREAD: Any = object()


class FanoutSettings(BotSettings):
    object_type: str


class StreamFanout(SinkBot[FanoutSettings]):
    """Fans each change of one object type out to every partner stream of that type."""

    name = "stream_fanout"
    description = "fan each change of an object type out to every partner stream of that type"
    system_view = True

    def setup(self, ctx: BotContext) -> None:
        self.version: int | None = None
        self.targets: list[_Target] = []
        self.tests: dict[tuple[str | None, str | None], Callable[[Any], bool]] = {}
        self.page: list[_Change] = []  # the run's live page, for streams that join the followers in it
        self.checkpoint = 0  # the writer's checkpoint when the run started
        self.prepared = False  # process() already read the targets and the checkpoint for this run

    def tick_seconds(self) -> float | None:
        return TICK_SECONDS

    # -- the live page ------------------------------------------------------------------------------
    def process(self, events: Iterator[Event], ctx: BotContext) -> Iterator[FanOut]:
        checkpoint = self._prepare(system_context(ctx))
        self.prepared = True
        try:
            serving = [t for t in self.targets if t.cursor is None or t.cursor >= checkpoint]
            group = _Group(serving)
            page = self.page
            records: dict[str, list[PendingEvent]] = {}
            last = checkpoint
            for event in events:
                last = event.seq
                change = _decode(event)
                if change is not None:
                    page.append(change)
                    group.fan(change, records)
            # Streams the writer has passed the start of follow it from now on.
            moves = [(t.id, t.cursor, None) for t in serving if t.cursor is not None and t.cursor < last]
            if records or moves:
                yield FanOut(records, moves)
        except BaseException:  # the run fails: its tick does not come, the next run prepares again
            self.prepared = False
            raise

    # -- catching up (after every run, and on its own while the queue is quiet) ----------------------
    def tick(self, ctx: BotContext) -> Iterator[FanOut]:
        system = system_context(ctx)
        checkpoint = self.checkpoint if self.prepared else self._prepare(system)
        page, self.page, self.prepared = self.page, [], False
        behind = [t for t in self.targets if t.cursor is not None and t.cursor < checkpoint]
        if not behind:
            return
        start = min(t.cursor for t in behind if t.cursor is not None)
        group = _Group([t for t in behind if t.cursor == start])
        # Up to the next stream's cursor first (they then merge), at most up to the checkpoint.
        upper = min([t.cursor for t in behind if t.cursor is not None and t.cursor > start] + [checkpoint])
        records: dict[str, list[PendingEvent]] = {}
        reached = self._catch_up(system, group, start, upper, records)
        joined = reached >= checkpoint
        if joined:
            for change in page:
                group.fan(change, records)
        ctx.behind = not joined or len(group.targets) < len(behind)
        yield FanOut(records, [(t.id, start, None if joined else reached) for t in group.targets])

    def _catch_up(self, ctx: SystemContext, group: _Group, start: int, upper: int,
                  records: dict[str, list[PendingEvent]]) -> int:
        """Fan the changes in (start, upper] out to `group`, for `CATCH_UP_SECONDS` and about
        `CATCH_UP_RECORDS` records at most; return the position through which they were read."""
        assert ctx.store is not None and ctx.in_queue is not None
        deadline = time.monotonic() + CATCH_UP_SECONDS
        reached, written = start, 0
        while True:  # a page at least, however short the time
            events = ctx.store.read(ctx.in_queue, reached, CATCH_UP_PAGE, CATCH_UP_BYTES)
            for event in events:
                if event.seq > upper:
                    return upper
                change = _decode(event)
                if change is not None:
                    written += group.fan(change, records)
                reached = event.seq
                if written >= CATCH_UP_RECORDS:  # a short commit: other writers (an ingest) wait less
                    return reached
            # Everything up to `upper` was read (unless the read stopped at its byte bound: read on).
            if reached >= upper or (len(events) < CATCH_UP_PAGE
                                    and 4 * sum(len(event.payload_json) for event in events) < CATCH_UP_BYTES):
                return upper
            if time.monotonic() >= deadline:
                return reached

    # -- what the writer serves ----------------------------------------------------------------------
    def _prepare(self, ctx: SystemContext) -> int:
        """Bring the targets up to date and return the writer's checkpoint. Read after the run's
        page was: a stream created since starts after every change of that page."""
        assert ctx.store is not None and ctx.in_queue is not None
        self.page = []
        version = ctx.store.streams_version()
        # A cursor is moved by this bot's own commits, which may have failed: re-read while any moves.
        if version != self.version or any(t.cursor is not None for t in self.targets):
            rows = ctx.store.stream_targets(self.settings.object_type)
            tests = {(row.query_json, row.scope_json): self._test(row) for row in rows}
            self.tests = tests
            # The streams on one shared log are one target: their records are written once.
            targets = (_target(row, tests[(row.query_json, row.scope_json)]) for row in rows)
            self.targets = list({target.id: target for target in targets}.values())
            self.version = version
        self.checkpoint = ctx.store.get_checkpoint(ctx.in_queue) or 0
        return self.checkpoint

    def _test(self, row: StreamTarget) -> Callable[[Any], bool]:
        known = self.tests.get((row.query_json, row.scope_json))
        if known is not None:
            return known
        query = parse(row.query_json) if row.query_json else None
        return compile_subscription(row.id, self.settings.object_type, query, row.scope_json).test


def _target(row: StreamTarget, test: Callable[[Any], bool]) -> _Target:
    """What the writer writes for: the stream's own queues, or the shared log it follows (its id
    then ``log:<base>``, `FanOut.records`' key for the log)."""
    if row.log is not None and row.cursor is None:
        target_id, base = SHARED_LOG_PREFIX + row.log, row.log
    else:
        target_id, base = row.id, partitions_base(row.id)
    return _Target(target_id, row.cursor, tuple(partition_queue(base, p) for p in range(row.partitions)), test,
                   test is MATCH_EVERYTHING, _equality(row))


def _equality(row: StreamTarget) -> tuple[tuple[str, ...], Any] | None:
    """A field the stream's query (or else its partner's scope) holds equal to a string or a
    number, with that value; None when neither has one (booleans and null are not indexed)."""
    for text in (row.query_json, row.scope_json):
        spec = parse(text) if text else None
        if type(spec) is not dict:
            continue
        for field, condition in spec.items():
            if type(condition) is dict and len(condition) == 1 and "eq" in condition:
                condition = condition["eq"]
            if type(condition) in (str, int, float):
                return tuple(field.split(".")), condition
    return None


def _value_at(data: Any, path: tuple[str, ...]) -> Any:
    """The value at a field path of decoded data (as queries walk it), or a marker equal to nothing."""
    for part in path:
        if type(data) is not dict:
            return _UNREAD
        data = data.get(part, _UNREAD)
    return data


_pending = functools.partial(tuple.__new__, PendingEvent)
_scan_once: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
"""PendingEvent((queue, text, origin, correlation)) without the Python-level constructor (hot path)."""
_RECORD_START = '{"object_type":"'
_DATA_KEY = ',"data":'


def _data_of(text: str) -> Any:
    """The ``data`` of a change record, decoded as every bot decodes payloads (integers exact).
    In a record as leo writes it the fields before ``data`` hold no object, so the first
    ``,"data":`` is its key: only the data is decoded; anything else is decoded whole."""
    at = text.find(_DATA_KEY) if text.startswith(_RECORD_START) else -1
    if at > 0:
        try:
            value, end = _scan_once(text, at + len(_DATA_KEY))
        except (StopIteration, ValueError):
            pass
        else:
            if text[end:] == "}":
                return value
    return decode_payload(text)["data"]


def _decode(event: Event) -> _Change | None:
    """A change record of the queue (None for anything else: it goes to no stream). Its key is
    read from the record's fixed start (``{"object_type":"T","key":...``, as leo writes them);
    the rest is decoded only if a stream's query needs it."""
    text = event.payload_json
    key: Any = None
    data = _UNREAD
    if text.startswith(_RECORD_START):
        end = text.find('"', len(_RECORD_START))  # a type name holds no quote or backslash
        if text.startswith(',"key":"', end + 1):
            try:
                key = scanstring(text, end + 9)[0]
            except ValueError:  # not as leo writes them: decoded whole below
                key = None
    if not isinstance(key, str):
        payload = decode_payload(text)
        if type(payload) is not dict or "data" not in payload or not isinstance(payload.get("key"), str):
            return None
        key, data = payload["key"], payload["data"]
    correlation = f'{{"source":"{event.queue}","start":{event.seq},"units":1}}'
    return _Change(event.seq, text, event.event_source_timestamp, correlation,
                   zlib.crc32(key.encode("utf-8", "surrogatepass")), data)


def _fan(change: _Change, targets: list[_Target], records: dict[str, list[PendingEvent]]) -> int:
    """Append the change to each target it is for (after the target's cursor, matching its
    query); return to how many."""
    seq, count = change.seq, 0
    for target in targets:
        cursor = target.cursor
        if (cursor is None or seq > cursor) and (target.everything or target.test(change.data())):
            queues = target.queues
            found = records.get(target.id)
            if found is None:
                found = records[target.id] = []
            found.append(_pending((queues[change.crc % len(queues)], change.text, change.origin, change.correlation)))
            count += 1
    return count


def writer_limits(streams: int) -> RunLimits:
    """The live page of a writer serving `streams` streams (see `fanout_limits`)."""
    return fanout_limits(streams, FANOUT_RECORDS, most=5000)


__all__ = ["CATCH_UP_SECONDS", "FANOUT_RECORDS", "StreamFanout", "writer_limits"]
