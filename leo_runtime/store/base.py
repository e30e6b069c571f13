"""The store interface: everything durable lives behind it.

Bots, the runtime, the CLI and the HTTP server talk only to `Store`; SQLite (WAL) is the embedded
backend and a PostgreSQL backend can implement the same methods later without touching them.

Positions: every appended event gets the next number of ONE global, growing sequence (``seq``),
shared by all queues. A checkpoint is the position of the last processed event (exclusive:
reading resumes at the first event *after* it); ``0`` means nothing processed yet. Write times
(``timestamp``) never decrease along the sequence, so "the position at a time" is well defined.
Backends must make an event visible to readers only after every smaller position is visible
(SQLite's single writer gives that for free).

All times are epoch milliseconds. Methods are synchronous and thread-safe; the asyncio runtime
calls them from worker threads.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from ..events import Event, RawJSON
from .base_console import ConsoleStore
from .base_hosts import HostStore
from .base_streams import StreamStore
from .base_webhooks import StoreOp, WebhookStore


class PendingEvent(NamedTuple):
    """An event to append: its queue, the payload's JSON text and where it came from."""

    queue: str
    payload_json: str
    event_source_timestamp: int | None = None
    correlation_json: str | None = None


class ObjectRow(NamedTuple):
    """One object to bring up to date: its key, the content hash of its canonical JSON, its JSON
    text (stored as given; UTF-8 bytes are decoded, and the blanks around them dropped, only
    when the object changed) and, when the caller has it, its decoded value (handed on, never
    read by the store). A plain tuple in this order is as good.

    ``raw_hash``, when given, is a hash of the text exactly as it came (see `ObjectPage`); the
    store keeps it beside the content hash so that the same text, read again, is recognised
    without being parsed."""

    key: str
    hash: bytes
    data_json: str | bytes
    value: Any = None
    raw_hash: bytes | None = None


class ObjectPage(Protocol):
    """A page of an input's object texts (NDJSON lines), hashed as they came but not parsed.

    ``raw_hashes`` holds 16 bytes per line, in order: a hash of the line's bytes that also
    depends on the type's key field (so a text is recognised only under the key it was stored
    with). A line whose raw hash equals a stored object's is that object, unchanged, and needs
    no parsing; `row` parses the others when the store asks (raising the input's located error
    for a bad line; None for a blank one). ``raw_hashes`` is None for a page of rows that were
    parsed already (their hashes are in the rows).
    """

    raw_hashes: bytes | None

    def __len__(self) -> int: ...

    def row(self, index: int) -> ObjectRow | None: ...


class RowPage:
    """Rows already parsed and hashed, as an `ObjectPage` (without raw hashes of its own)."""

    __slots__ = ("rows",)
    raw_hashes = None

    def __init__(self, rows: list[ObjectRow]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def row(self, index: int) -> ObjectRow | None:
        return self.rows[index]


class ObjectChange(NamedTuple):
    """A change the store is writing, handed to `ObjectBatch.describe` for its change record.

    ``op`` is ``created``, ``updated`` or ``deleted``; ``data_json`` the new state (the last
    known state for a delete), ``value`` its decoded form when the caller gave one, and
    ``previous_json`` the state an update replaces (None otherwise).
    """

    object_type: str
    key: str
    op: str
    version: int
    changed_at: int
    data_json: str
    value: Any = None
    previous_json: str | None = None


@dataclass(slots=True)
class ObjectCounts:
    """What applying objects did, key by key."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    read: int = 0
    """Input objects compared so far: grows while a long read is compared, before any change is
    written (the runtime's stuck watch reads it as progress)."""


@dataclass(slots=True)
class ObjectBatch:
    """Objects of one type to bring up to date (see `Store.apply_objects`).

    ``rows`` is consumed once, in order, inside the transaction that applies it, so a lazy
    iterable keeps memory flat; an exception it raises rolls everything back. ``complete``: the
    rows are every object the source has, so a live key missing from them is deleted, and a key
    given twice is an error. ``deletes``: keys to delete. ``describe`` turns a change into its
    change-record JSON text (``leo_runtime.objects`` supplies it). ``source`` names the input in
    messages. The store fills ``counts``. ``pages`` may stand in for ``rows`` (consumed the same
    way, after them): texts the store parses only where they differ from what it holds.
    """

    object_type: str
    describe: Callable[[ObjectChange], str]
    rows: Iterable[ObjectRow] = ()
    complete: bool = False
    deletes: Iterable[str] = ()
    source: str = "input"
    counts: ObjectCounts = field(default_factory=ObjectCounts)
    pages: Iterable[ObjectPage] = ()


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event a bot gives up on: it moves to ``queue`` (its payload text untouched) in the
    run's transaction, remembering where it came from (``event.queue`` and ``event.seq``)."""

    queue: str
    event: Event
    error: str
    failures: int


@dataclass(slots=True)
class RunCommit:
    """Everything one bot run writes, committed in ONE transaction by `Store.commit_run`.

    ``in_queue``/``expected``/``position``: the checkpoint moves from ``expected`` to ``position``
    (compare-and-set: if an operator reset it meanwhile, nothing is written). ``outputs`` are
    appended in order, then ``dead_letters`` (each to its queue, with a `dead_letters` record).
    ``state`` replaces the bot's persistent state when not None. ``owner`` must still hold the
    bot's lease. ``objects`` are applied after the outputs, as `Store.apply_objects` does, so a
    source's object changes commit with its cursor; then ``ops`` (typed writes such as a router's
    routed changes, see `base_webhooks`), in order. A run whose only writes are ONE object batch
    (a change detector's read) may be written in several transactions, as `Store.apply_objects`
    writes one batch: its state and lease check commit with the last of them, so a run that
    fails half way is done again and finds what was written unchanged.
    """

    bot_id: str
    owner: str
    in_queue: str | None = None
    expected: int | None = None
    position: int | None = None
    outputs: Sequence[PendingEvent] = ()
    state: Mapping[str, Any] | None = None
    events_in: int = 0
    objects: Sequence[ObjectBatch] = ()
    dead_letters: Sequence[DeadLetter] = ()
    ops: Sequence[StoreOp] = ()


@dataclass(frozen=True, slots=True)
class QueueInfo:
    """A queue: ``head`` is the position of the newest event ever appended to it (0 if none; kept
    after pruning), ``depth`` how many events it holds now."""

    name: str
    head: int
    depth: int
    first: int | None
    oldest_timestamp: int | None
    newest_timestamp: int | None


@dataclass(frozen=True, slots=True)
class CheckpointInfo:
    """Where a bot is in one of its input queues."""

    bot_id: str
    queue: str
    position: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class BotInfo:
    """A bot's durable record: pause flag, lease, run statistics, last error and persistent state."""

    bot_id: str
    pipeline: str | None
    paused: bool
    lease_owner: str | None
    lease_expires_at: int | None
    last_run_at: int | None
    last_error: str | None
    last_error_at: int | None
    error_count: int
    runs: int
    events_in: int
    events_out: int
    state: dict[str, Any] = field(default_factory=dict)
    stuck_since: int | None = None  # a live runtime found its current run stuck since then


@dataclass(frozen=True, slots=True)
class DeadLetterInfo:
    """A dead-lettered event: ``position`` in the dead-letter ``queue``, the bot that gave up on
    it, where it came from, why, and where a redrive sent it (None while waiting)."""

    position: int
    queue: str
    bot_id: str
    source_queue: str
    source_position: int
    error: str
    failures: int
    dead_at: int
    redriven_at: int | None = None
    redriven_queue: str | None = None
    redriven_position: int | None = None


@dataclass(frozen=True, slots=True)
class RuntimeInfo:
    """A `leo run` that registered itself on the store: ``seen_at`` is its last heartbeat."""

    owner: str
    file: str | None
    started_at: int
    seen_at: int
    reloads: int
    reload_error: str | None
    reload_error_at: int | None


@dataclass(frozen=True, slots=True)
class PartnerRecord:
    """A partner account: ``scope_json`` is its scope query as JSON text (None: it sees every
    object), ``token_hash`` the SHA-256 of its token, ``revoked_at`` None while it is live."""

    id: int
    name: str
    scope_json: str | None
    created_at: int
    revoked_at: int | None
    token_hash: bytes = field(repr=False, default=b"")


@dataclass(frozen=True, slots=True)
class ObjectRecord:
    """The latest state of one object: ``data_json`` is its JSON text (its last known state when
    ``deleted``), ``version`` counts its changes from 1, ``seq`` is the position of its latest
    change record in the queue ``{object_type}.changes``, ``changed_at`` that change's time."""

    object_type: str
    key: str
    version: int
    changed_at: int
    deleted: bool
    seq: int
    data_json: str


AppendListener = Callable[[Mapping[str, int]], None]


class Store(WebhookStore, StreamStore, ConsoleStore, HostStore, ABC):
    """The durable store. See the module docstring for positions, times and threading.

    Partner webhooks' rows are `WebhookStore`'s methods (base_webhooks.py), partner streams'
    `StreamStore`'s (base_streams.py), bot history and console sessions `ConsoleStore`'s
    (base_console.py)."""

    url: str

    # -- lifecycle ---------------------------------------------------------------------------
    @abstractmethod
    def close(self) -> None:
        """Close every connection. The store must not be used afterwards."""

    @abstractmethod
    def close_thread(self) -> None:
        """Release what the calling thread holds (its connection); a worker thread that is about
        to end calls it. The store stays usable from every thread."""

    @abstractmethod
    def schema_version(self) -> int:
        """The version of the newest migration applied."""

    @abstractmethod
    def snapshot(self) -> AbstractContextManager[None]:
        """A read transaction on the calling thread: ``with store.snapshot(): ...`` and every read
        of the block sees the store as of its first read (what others commit meanwhile comes
        after). Blocks nest (the outer one decides); no write may happen inside one."""

    # -- queues --------------------------------------------------------------------------------
    @abstractmethod
    def append(
        self,
        queue: str,
        payloads: Iterable[Any],
        *,
        event_source_timestamp: int | None = None,
        correlation_json: str | None = None,
    ) -> tuple[int, int]:
        """Append payloads to `queue` in ONE transaction, in order; return (first, last) position.

        The positions of one append are consecutive: first, first + 1, ..., last.
        A payload is an `Event` or `RawJSON` (its JSON text is stored untouched) or any JSON
        value. ``event_source_timestamp`` defaults to the write time. Returns (0, 0) when
        `payloads` is empty. Listeners are told after the commit.
        """

    def append_texts(self, queue: str, texts: Iterable[str]) -> tuple[int, int]:
        """Append JSON texts already judged strict (`leo_runtime.jsonio`) to `queue` in ONE
        transaction, each stored exactly as given; return (first, last) position, (0, 0) if none.

        For bulk input (``leo queues put``): `texts` may be a long iterator, consumed inside the
        transaction, and anything it raises (Ctrl-C included) rolls the whole append back.
        Positions are consecutive, with one write time; listeners are told after the commit.
        """
        return self.append(queue, map(RawJSON, texts))

    @abstractmethod
    def append_events(self, events: Sequence[PendingEvent]) -> tuple[int, int]:
        """Append prepared events (several queues allowed) in ONE transaction, in order."""

    @abstractmethod
    def read(self, queue: str, after: int, limit: int = 1000, max_bytes: int | None = None) -> list[Event]:
        """Events of `queue` with position > `after`, oldest first, at most `limit` of them.

        With ``max_bytes`` the read stops with the event whose payload makes the total (UTF-8
        bytes) reach that many, so it may pass the limit by that one event; at least one event
        is returned when one is there.
        """

    @abstractmethod
    def queue_head(self, queue: str) -> int:
        """The position of the newest event of `queue` ever appended (0 if none)."""

    @abstractmethod
    def queue_heads(self) -> dict[str, int]:
        """`queue_head` of every known queue, in one cheap call."""

    @abstractmethod
    def queues(self) -> list[QueueInfo]:
        """Every known queue, by name."""

    @abstractmethod
    def count_after(self, queue: str, position: int) -> int:
        """How many retained events of `queue` lie after `position` (a reader's lag)."""

    @abstractmethod
    def position_at(self, time_ms: int) -> int:
        """The position just before the first event written at or after `time_ms`.

        Valid for every queue because positions are global; clamped to the retained events.
        """

    @abstractmethod
    def first_position(self) -> int:
        """The position just before the oldest retained event (what ``earliest`` means)."""

    @abstractmethod
    def last_position(self) -> int:
        """The newest position handed out in the whole store (0 if none)."""

    @abstractmethod
    def prune(self, before_ms: int, limit: int = 10_000) -> int:
        """Delete up to `limit` of the oldest events written before `before_ms`, never one that an
        unexpired webhook batch (or an open window of routed changes) still holds; expired
        batches and their rows go too. Returns how many rows went (called again while it is
        `limit` or more)."""

    @abstractmethod
    def changed_since(self, token: Any) -> tuple[bool, Any]:
        """Cheap check whether anything (any process) committed since `token` was taken.

        Returns (changed, new_token); pass None the first time (which always reports a change).
        """

    def wait_changed(self, token: Any, timeout: float, stopping: threading.Event) -> tuple[bool, Any]:
        """`changed_since`, asked after waiting up to `timeout` seconds (less when `stopping` is
        set). A backend that is told of other processes' commits (PostgreSQL's NOTIFY) returns as
        soon as one comes instead."""
        stopping.wait(timeout)
        return self.changed_since(token)

    @abstractmethod
    def bot_controls(self) -> dict[str, tuple[bool, int, str | None]]:
        """Per bot: (paused, operator checkpoint resets so far, lease owner); cheap, for wakeups:
        a change of any of them wakes the bot's runner (resume, reset, lease released)."""

    @abstractmethod
    def add_append_listener(self, listener: AppendListener) -> None:
        """Call `listener({queue: head})` after every commit that appended to queues via this object."""

    # -- checkpoints ---------------------------------------------------------------------------
    @abstractmethod
    def get_checkpoint(self, bot_id: str, queue: str) -> int | None:
        """The bot's checkpoint in `queue`, or None if it has never run on it."""

    @abstractmethod
    def init_checkpoint(self, bot_id: str, queue: str, position: int) -> int:
        """Create the checkpoint at `position` unless one exists; return the checkpoint in force."""

    @abstractmethod
    def set_checkpoint(self, bot_id: str, queue: str, position: int) -> None:
        """Move (or create) a checkpoint: an operator's reset. A run in flight is rolled back."""

    @abstractmethod
    def checkpoints(self, bot_id: str | None = None) -> list[CheckpointInfo]:
        """Every checkpoint (of one bot when given), by bot and queue."""

    # -- bots ----------------------------------------------------------------------------------
    @abstractmethod
    def ensure_bot(self, bot_id: str, pipeline: str | None) -> None:
        """Create the bot's record if missing (and note its pipeline)."""

    @abstractmethod
    def bot(self, bot_id: str) -> BotInfo | None:
        """One bot's record."""

    @abstractmethod
    def bots(self) -> list[BotInfo]:
        """Every bot's record, by id."""

    @abstractmethod
    def set_paused(self, bot_id: str, paused: bool) -> None:
        """Pause or resume a bot; a paused bot finishes its run and then waits."""

    @abstractmethod
    def is_paused(self, bot_id: str) -> bool:
        """Whether an operator paused the bot (read before each run, so a pause that has returned
        holds for every run that starts after it)."""

    @abstractmethod
    def acquire_lease(
        self, bot_id: str, owner: str, ttl_ms: int, *, is_stale: Callable[[str], bool] | None = None
    ) -> bool:
        """Take or renew the bot's lease for `owner` when free, expired, already ours, or held by
        an owner that `is_stale` says is gone. Atomic; True when `owner` holds it afterwards."""

    @abstractmethod
    def renew_leases(self, owner: str, bot_ids: Sequence[str], ttl_ms: int) -> list[str]:
        """Extend the leases `owner` still holds among `bot_ids`; return the ids it lost."""

    @abstractmethod
    def release_leases(self, owner: str, bot_ids: Sequence[str]) -> None:
        """Give up `owner`'s leases on `bot_ids` so another runtime can take them at once."""

    @abstractmethod
    def commit_run(self, run: RunCommit) -> tuple[int, int]:
        """Commit a bot run atomically: lease check, checkpoint compare-and-set, outputs, state,
        statistics (error count back to 0). Returns the (first, last) positions appended.

        Raises `LeaseLost` or `CheckpointMoved` (and writes nothing) when the lease or the
        checkpoint changed under the run. The lease check is by owner: a lease that expired but
        was not taken by anyone still lets its owner commit (no one else can have run the bot).
        A missing checkpoint, or ``expected=None`` with an ``in_queue``, is `CheckpointMoved`.
        """

    @abstractmethod
    def record_failure(self, bot_id: str, message: str) -> int:
        """Note a failed run (last error, time, error count + 1, not stuck); return the new error count."""

    @abstractmethod
    def mark_stuck(self, bot_id: str, owner: str, since_ms: int) -> None:
        """Note that `owner`'s current run of the bot is stuck since `since_ms` (only while
        `owner` holds the lease). A commit, a failure or releasing the lease clears it."""

    # -- dead letters --------------------------------------------------------------------------
    @abstractmethod
    def dead_letters(
        self, queue: str | None = None, *, bot_id: str | None = None, include_redriven: bool = False
    ) -> list[DeadLetterInfo]:
        """Dead-lettered events still retained, oldest first (of one queue or bot when given);
        by default only those waiting (not redriven yet)."""

    @abstractmethod
    def dead_letter_counts(self) -> dict[str, tuple[int, int]]:
        """Per bot: (dead-lettered events retained, of which still waiting for a redrive)."""

    @abstractmethod
    def redrive_dead_letters(
        self,
        queue: str,
        *,
        to: str | None = None,
        bot_id: str | None = None,
        positions: Sequence[int] | None = None,
    ) -> list[DeadLetterInfo]:
        """Send waiting dead letters of `queue` back, in ONE transaction: each is appended (payload
        text untouched, in order) to `to` or else to the queue it came from, and marked redriven
        with its new position. Narrowed to one bot and/or some positions when given. Returns the
        updated records (empty when nothing waits); listeners are told after the commit."""

    # -- runtimes ------------------------------------------------------------------------------
    @abstractmethod
    def register_runtime(self, owner: str, file: str | None) -> None:
        """Note a running `leo run` (and forget ones not seen for a day)."""

    @abstractmethod
    def note_runtime(self, owner: str, *, reloads: int, reload_error: str | None) -> None:
        """A runtime's heartbeat: refresh ``seen_at`` and its reload outcome (None: the last
        reload, if any, was applied)."""

    @abstractmethod
    def unregister_runtime(self, owner: str) -> None:
        """Forget a runtime that stopped."""

    @abstractmethod
    def runtimes(self) -> list[RuntimeInfo]:
        """Every registered runtime, newest first (stale ones included: compare ``seen_at``)."""

    # -- partners ------------------------------------------------------------------------------
    @abstractmethod
    def create_partner(self, name: str, token_hash: bytes, scope_json: str | None) -> PartnerRecord:
        """Add a partner account in one transaction. Raises `Conflict` (and writes nothing) when
        the name is taken, by a live or a revoked partner."""

    @abstractmethod
    def partner_by_token_hash(self, token_hash: bytes) -> PartnerRecord | None:
        """The partner whose token hashes to `token_hash` (revoked ones included), or None.

        One indexed lookup that sees every commit, this process's or another's: the server calls
        it on every request, so a revocation takes effect on the next one.
        """

    @abstractmethod
    def partner(self, name: str) -> PartnerRecord | None:
        """One partner by name (revoked ones included), or None."""

    @abstractmethod
    def partners(self, *, after: str | None = None, limit: int | None = None) -> list[PartnerRecord]:
        """Every partner, live and revoked, by name; a page of them with `after` (the name of
        the previous page's last partner) and `limit`."""

    @abstractmethod
    def revoke_partner(self, name: str) -> PartnerRecord | None:
        """Revoke a partner (atomic; revoking again keeps the first time); None if unknown. The
        streams version grows (its streams' writers stop serving them)."""

    # -- objects -------------------------------------------------------------------------------
    @abstractmethod
    def get_object(self, object_type: str, key: str) -> ObjectRecord | None:
        """The latest state of one object (deleted ones included, flagged), or None if never seen."""

    @abstractmethod
    def list_objects(
        self, object_type: str, *, after: str | None = None, limit: int = 1000, deleted: bool = False
    ) -> list[ObjectRecord]:
        """Objects of a type in key order (byte order of the UTF-8 key), those after key `after`,
        at most `limit`; deleted ones only when `deleted`. For paging through a type."""

    @abstractmethod
    def apply_objects(self, batches: Sequence[ObjectBatch]) -> tuple[int, int]:
        """Bring objects up to date and append their change records.

        Every row is checked and compared before anything is written: a bad row, a key given
        twice in a complete batch or an error raised by ``rows`` writes nothing. A backend may
        then write in several transactions (SQLite: one batch is compared without the write
        lock and written in transactions of about a second, so other writers beside a long read
        wait that long at most); each transaction holds whole changes, so objects and their
        change queues always agree. Several batches apply in ONE transaction.

        For each batch, in order: every row is compared with the stored object of its key by
        content hash only (stored JSON is never decoded to compare). A new key, or one that was
        deleted, is ``created`` (version 1, or the next version); a different hash is ``updated``
        (version + 1); an equal hash is no change. A ``complete`` batch then deletes every live
        key it did not hold; ``deletes`` delete the named live keys (an unknown or deleted key is
        no change). A delete keeps the last state as the object's data. Each change appends one
        record (``describe``) to the queue ``{object_type}.changes`` in the same transaction, and
        the object row keeps that record's position (``seq``) and time (``changed_at``), so
        objects and their change queues always agree, even after a crash.

        Rows apply in order, as if one at a time: a key given twice in a batch that is not complete
        is compared twice (two changes when the contents differ). Returns the (first, last)
        positions appended ((0, 0) when nothing changed). Raises `ObjectInputError` (and writes
        nothing) when a complete batch holds a key twice or no rows at all (an empty source is
        more often an outage than an empty catalogue); an exception from ``rows`` also rolls
        everything back.
        """

