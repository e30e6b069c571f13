"""Partner streams: partitions, positions, reads, commits, resets by time and leases.

The writer of the stream's object type (`stream_fanout`, one per type) copies each matching
change record of ``{object_type}.changes`` into one of the stream's partition queues
(``streams.<id>.<p>``, ``p = crc32(key) % partitions``) in the transaction that moves its
checkpoint. Streams of the same type, query, partner scope and partition count created while
the writer has written every change share ONE copy instead (``streams.log-<digest>.<p>``,
`partition_source`): each sees the records after its own start. Partition queues are ordinary queues: a read is
`Store.read`, a reset by time is `Store.position_at`, retention is the store's prune. The
partner's checkpoint per partition, the stream's generation and the leases live in the store's
stream tables (`StreamStore`).

Both the HTTP API and the CLI call these functions; they raise `InputError` (422 / exit 1),
`NotFound` (404), `Conflict` (409) or `PositionExpired` (410), with messages that name the field.
"""

from __future__ import annotations

import secrets
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..config.models import LimitsConfig
from ..errors import Gone, InputError, NotFound, QuotaExceeded
from ..jsonio import canonical, parse
from ..safetext import shown
from ..store import Store, StreamPartitionRecord, StreamRecord
from ..store.base_streams import ShareWith, check_lease
from ..timeutil import format_time, now_ms
from ..when import STREAM_START_FORMS, parse_when, resolve
from .positions import decode_position, encode_position, position_tag
from .subscriptions import check_query

MAX_PARTITIONS = 64
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
MAX_WAIT_SECONDS = 60.0
READ_MAX_BYTES = 8 * 1024 * 1024
"""A read answers at most this many bytes of records (and at least one record when there is one)."""
DEFAULT_LEASE_SECONDS = 30.0
MAX_LEASE_SECONDS = 3600.0
WRITERS_PIPELINE = "system:streams"


class PositionExpired(Gone):
    """A read from a position older than retention: records after it may have been pruned (410)."""


def writer_id(object_type: str) -> str:
    """The id of the bot that writes the streams of an object type (``:`` keeps it apart from
    pipelines.yaml ids)."""
    return f"streams:{object_type}"


def partitions_base(stream_id: str) -> str:
    """The prefix of a partner stream's partition queues: ``streams.<id>``."""
    return f"streams.{stream_id}"


def partition_queue(base: str, partition: int) -> str:
    """The queue of one partition: ``<base>.<partition>``."""
    return f"{base}.{partition}"


def partition_source(record: StreamRecord, partition: int) -> tuple[str, int]:
    """Where a partition's records are: the queue, and the position after which its records are
    this stream's (a shared log holds other streams' records from before this one started)."""
    if record.log is not None:
        return partition_queue(record.log, partition), record.joined_at or 0
    return partition_queue(partitions_base(record.id), partition), 0


def partition_of(key: str, partitions: int) -> int:
    """The partition a key's records go to: ``zlib.crc32(key.encode()) % partitions``."""
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % partitions


def new_stream_id() -> str:
    """A fresh, unguessable stream id (``st_`` and 20 hex digits)."""
    return "st_" + secrets.token_hex(10)


# -- creating and describing ----------------------------------------------------------------------
def create_stream(
    store: Store, partner_id: int, object_types: Iterable[str], retention_seconds: float, *, object_type: str,
    query: Mapping[str, Any] | None, partitions: int, start_at: str, limits: LimitsConfig | None = None,
) -> StreamRecord:
    """Validate and add a stream; its writer starts at the position `start_at` names.

    ``start_at``: ``now`` (every change committed after this returns), ``earliest`` (the oldest
    retained change), an RFC 3339 time or ``-PT1H`` (the first change at or after it, clamped to
    retention): see `leo_runtime.when`. With `limits` (``server.limits``), more partitions than
    ``partitions`` or a stream past the partner's ``streams`` is `QuotaExceeded` (counted in the
    creating transaction).
    """
    known = sorted(object_types)
    if object_type not in known:
        raise InputError(f"object_type: unknown object type {shown(object_type)} (known: {', '.join(known) or 'none'})")
    checked = check_query(query, "query")
    if not (isinstance(partitions, int) and 1 <= partitions <= MAX_PARTITIONS) or isinstance(partitions, bool):
        raise InputError(f"partitions: {shown(partitions)} is not a whole number from 1 to {MAX_PARTITIONS}")
    if limits is not None and partitions > limits.partitions:
        raise QuotaExceeded("partitions", limits.partitions, f"a stream may have at most {limits.partitions} "
                            f"partitions, not {partitions}")
    start = start_position(store, start_at, retention_seconds)
    query_json = canonical(checked).decode() if checked else None
    return store.create_stream(new_stream_id(), partner_id, object_type, query_json, partitions, start,
                               max_streams=limits.streams if limits is not None else None,
                               share=ShareWith(writer_id(object_type), f"{object_type}.changes"))


def start_position(store: Store, start_at: object, retention_seconds: float) -> int | None:
    """Where a new stream's writer starts (None: now, fixed inside the creating transaction);
    the forms and their rules are `leo_runtime.when`'s."""
    when = parse_when(start_at, field="start_at", allow=STREAM_START_FORMS)
    if when.kind in ("now", "latest"):
        return None
    return resolve(store, when, retention_seconds, field="start_at", allow=STREAM_START_FORMS).position


def format_duration(seconds: float) -> str:
    """Seconds as an ISO 8601 duration: ``P7D``, ``PT1H``, ``P1DT2H30M``, ``PT0.5S``."""
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    fraction = seconds - whole
    time = "".join(f"{value}{unit}" for value, unit in ((hours, "H"), (minutes, "M")) if value)
    if secs or fraction:
        time += f"{secs + fraction:g}S"
    text = "P" + (f"{days}D" if days else "") + (f"T{time}" if time else "")
    return text if text != "P" else "PT0S"


def describe(store: Store, record: StreamRecord, base_url: str, retention_seconds: float) -> dict[str, Any]:
    """A stream as the API shows it: checkpoint, head and lag per partition."""
    now = now_ms()
    return {
        "id": record.id,
        "url": f"{base_url}/v1/streams/{record.id}",
        "object_type": record.object_type,
        "query": parse(record.query_json) if record.query_json else None,
        "generation": record.generation,
        "retention": format_duration(retention_seconds),
        "created_at": format_time(record.created_at),
        "partitions": [
            {
                "partition": part.partition,
                "checkpoint": encode_position(record.id, part.partition, part.checkpoint),
                "head": encode_position(record.id, part.partition, head),
                "lag": lag,
                "leased_until": format_time(part.lease_expires_at) if part.leased(now) else None,
            }
            for part, head, lag in partition_marks(store, record)
        ],
    }


def partition_marks(store: Store, record: StreamRecord) -> list[tuple[StreamPartitionRecord, int, int]]:
    """(partition, head, lag) of each partition: the head is its newest record's position (the
    stream's start while it has none); the lag counts the records after the checkpoint."""
    marks = []
    for part in record.partitions:
        queue, floor = partition_source(record, part.partition)
        head = max(store.queue_head(queue), record.start_position)
        marks.append((part, head, store.count_after(queue, max(part.checkpoint, floor))))
    return marks


def find_stream(store: Store, partner_id: int, stream_id: str) -> StreamRecord:
    """The partner's stream, or `NotFound`: another partner's stream looks exactly like none."""
    record = store.stream(stream_id) if len(stream_id) <= 100 else None
    if record is None or record.partner_id != partner_id:
        raise NotFound(f"no stream {shown(stream_id)}; GET /v1/streams lists yours")
    return record


def parse_partition(record: StreamRecord, text: object, field: str = "partition") -> int:
    """A partition number given as text or a number: a whole number of the stream's range."""
    count = len(record.partitions)
    value: int | None = None
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    elif isinstance(text, str) and text.isascii() and text.isdecimal() and len(text) <= 4:
        value = int(text)
    if value is None or not 0 <= value < count:
        span = "0" if count == 1 else f"0 to {count - 1}"
        raise InputError(f"{field}: {shown(text)} is not a partition of stream '{record.id}' (it has partitions {span})")
    return value


# -- reading ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Page:
    """One read of a partition: the records after ``after`` (global positions) and the head.
    ``records`` are ``(position, change-record JSON text as UTF-8 bytes)`` pairs."""

    stream_id: str
    partition: int
    generation: int
    after: int
    head: int
    records: Sequence[tuple[int, bytes]]

    @property
    def next_position(self) -> int:
        """Where the next read continues: after the last record, or where this one started."""
        return self.records[-1][0] if self.records else self.after


def read_start(store: Store, record: StreamRecord, partition: int, after: str | None, lease_id: str | None) -> int:
    """Where a read starts: the decoded `after`, else the partition's checkpoint. Checks the
    lease (`Conflict`), the position (`InputError`) and retention (`PositionExpired`)."""
    part = record.partitions[partition]
    check_lease(part, lease_id, record.id, partition, now_ms())
    if after is None:
        position, what = part.checkpoint, "the checkpoint"
    else:
        position, what = decode_position(after, record.id, partition, len(record.partitions), "after"), "after"
        if position > store.last_position():
            raise InputError("after: the position is past the newest record (use a position the API returned)")
    check_retained(store, record, partition, position, what)
    return position


def check_retained(store: Store, record: StreamRecord, partition: int, position: int, what: str = "after") -> None:
    """`PositionExpired` when records of the partition after `position` may have been pruned:
    the position is older than the oldest retained event and the partition has had records since."""
    queue, floor = partition_source(record, partition)
    position = max(position, floor)  # the stream's records start after its floor
    if position < store.first_position() and store.queue_head(queue) > position:
        raise PositionExpired(
            f"{what} is older than the stream's retention: records after it were pruned; "
            f"POST /v1/streams/{record.id}/reset with {{\"to\": \"earliest\"}} to go on from the oldest kept record"
        )


def read_page(store: Store, record: StreamRecord, partition: int, after: int, limit: int) -> Page:
    """The records of a partition after global position `after` (at most `limit`, and at most
    `READ_MAX_BYTES` of them but at least one)."""
    queue, floor = partition_source(record, partition)
    records = store.stream_records(queue, max(after, floor), limit, READ_MAX_BYTES)
    head = max(store.queue_head(queue), record.start_position, records[-1][0] if records else 0)
    return Page(record.id, partition, record.generation, after, head, records)


def page_json(page: Page) -> bytes:
    """``{records, next_position, head, generation}`` as JSON bytes: each record is its stored
    change-record text with ``"position"`` spliced in before its closing brace (never decoded:
    this is the hot path of every read)."""
    tag = position_tag(page.stream_id, page.partition).encode()
    position = b',"position":"' + tag
    parts = [
        b'%b%b%x"}' % (text[:-1], position, seq) if text[:1] == b"{" and text[-1:] == b"}" and text != b"{}"
        else _wrapped(text, tag, seq)
        for seq, text in page.records
    ]
    return b'{"records":[%b],"next_position":"%b%x","head":"%b%x","generation":%d}' % (
        b",".join(parts), tag, page.next_position, tag, page.head, page.generation)


def _wrapped(text: bytes, tag: bytes, seq: int) -> bytes:
    """A record that is not a non-empty JSON object (a pipelines.yaml stream fed plain values)."""
    if text == b"{}":
        return b'{"position":"%b%x"}' % (tag, seq)
    return b'{"value":%b,"position":"%b%x"}' % (text, tag, seq)


# -- committing, resetting, leasing --------------------------------------------------------------------
def commit(store: Store, record: StreamRecord, partition: int, position: str, generation: int,
           lease_id: str | None) -> StreamPartitionRecord:
    """Move a partition's checkpoint to `position` (see `Store.commit_stream_checkpoint`)."""
    seq = decode_position(position, record.id, partition, len(record.partitions), "position")
    if seq > store.last_position():
        raise InputError("position: past the newest record (commit a position the API returned)")
    return store.commit_stream_checkpoint(record.id, partition, seq, generation, lease_id)


def reset(store: Store, record: StreamRecord, to: object, partitions: Sequence[object] | None, retention_seconds: float,
          field: str = "to", partitions_field: str = "partitions") -> tuple[StreamRecord, list[dict[str, Any]]]:
    """Move the checkpoints of `partitions` (default: all) to `to` (`leo_runtime.when`); the
    generation grows.

    Returns the stream afterwards and ``[{partition, position, clamped}]`` (global positions)."""
    if partitions is not None and not partitions:
        raise InputError(f"{partitions_field}: an empty list resets nothing; leave it out to reset every partition")
    chosen = sorted({parse_partition(record, p, partitions_field) for p in partitions}) if partitions is not None else [
        part.partition for part in record.partitions]
    target = resolve(store, parse_when(to, field=field), retention_seconds, field=field)
    updated = store.reset_stream(record.id, {p: target.position for p in chosen})
    return updated, [{"partition": p, "position": target.position, "clamped": target.clamped} for p in chosen]


def lease(store: Store, record: StreamRecord, partition: int, ttl_seconds: float,
          renew: str | None) -> StreamPartitionRecord:
    """Take (or, with `renew`, extend) the partition's lease for `ttl_seconds`."""
    if not (1 <= ttl_seconds <= MAX_LEASE_SECONDS):
        raise InputError(f"ttl_seconds: {shown(ttl_seconds)} is not between 1 and {MAX_LEASE_SECONDS:g}")
    return store.lease_stream_partition(record.id, partition, "ls_" + secrets.token_hex(12), int(ttl_seconds * 1000),
                                        renew=renew)


# -- operators -----------------------------------------------------------------------------------------
def stream_report(store: Store) -> list[dict[str, Any]]:
    """Every stream with its partner, partitions, checkpoints, heads and lags. Checkpoints and
    heads are opaque positions, as the API shows them (`leo streams reset --to` takes them)."""
    records = store.streams()  # first: a store older than the streams tables has none (and maybe no partners)
    names = {partner.id: partner.name for partner in store.partners()} if records else {}
    cursors = {target.id: target.cursor for kind in {record.object_type for record in records}
               for target in store.stream_targets(kind)}
    now = now_ms()
    report = []
    for record in records:
        marks = partition_marks(store, record)
        report.append({
            "id": record.id,
            "partner": names.get(record.partner_id),
            "object_type": record.object_type,
            "query": parse(record.query_json) if record.query_json else None,
            "generation": record.generation,
            "created_at": format_time(record.created_at),
            "writer": writer_id(record.object_type),
            # While it catches up (or waits for the writer to reach its start): the position of
            # record.object_type's changes written so far; None once it follows the writer.
            "writer_cursor": cursors.get(record.id),
            "lag": sum(lag for _, _, lag in marks),
            "partitions": [
                {"partition": part.partition, "checkpoint": encode_position(record.id, part.partition, part.checkpoint),
                 "head": encode_position(record.id, part.partition, head), "lag": lag,
                 "leased_until": format_time(part.lease_expires_at) if part.leased(now) else None,
                 # the start of the live lease's id: enough to tell consumers apart, not to act as one
                 "lease_holder": f"{part.lease_id[:8]}…" if part.leased(now) and part.lease_id else None}
                for part, head, lag in marks
            ],
        })
    return report


def position_in(record: StreamRecord, text: str) -> tuple[int, int] | None:
    """``(partition, global position)`` when `text` is an opaque position of one of the stream's
    partitions (as `stream_report` and the API show them), else None."""
    for part in record.partitions:
        if text.startswith(position_tag(record.id, part.partition)):
            try:
                return part.partition, decode_position(text, record.id, part.partition, len(record.partitions), "to")
            except InputError:
                return None
    return None


def stream_by_id(store: Store, stream_id: str) -> StreamRecord:
    """Any partner's stream (operators), or `NotFound`."""
    record = store.stream(stream_id)
    if record is None:
        raise NotFound(f"no stream {shown(stream_id)}; `leo streams list` shows them")
    return record
