"""The webhook side of the store: subscriptions, routed changes, sealed batches, deliveries.

A *webhook* here is anything that seals batches: a partner's webhook (created over the API) or a
``batcher`` bot of pipelines.yaml (its subscription row is made by its first run). Its changes
are *routed* into an index (webhook, window, key) -> position of the key's latest change in the
events table; *sealing* a batch closes the open window (a row, O(1): nothing is copied) and
opens the next; a true-up or ``mode: all`` batch is a *snapshot* whose lines are copied.
Each sealed batch gets one *delivery* per destination (the partner's callback, or a
``webhook_sender`` bot), with its attempts and next attempt kept here so a restart resumes the
retry schedule where it was.

Writes that must commit with a bot's run (routing with the router's checkpoint, sealing with the
batcher's, delivery outcomes with the sender's lease) are `StoreOp`s the bot yields; the store
applies them inside `Store.commit_run`'s transaction, in the order yielded. All times are epoch
milliseconds.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


class StoreOp:
    """A typed write a bot yields; it commits with the bot's run (outputs, checkpoint, state)."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class WebhookRecord:
    """A webhook row. ``partner_id`` None: a batcher bot's subscription (``id`` ``bot:<bot>``)."""

    rid: int
    id: str
    partner_id: int | None
    object_type: str | None
    source_queue: str
    router: str
    query_json: str | None
    callback_url: str | None
    interval_ms: int
    mode: str
    status: str
    start_seq: int
    generation: int
    pending: int
    window_from: int
    next_run_at: int
    true_up: bool
    out_queue: str | None
    readers_json: str | None
    failing: bool
    disabled_reason: str | None
    last_batch_at: int | None
    last_delivered_at: int | None
    last_error: str | None
    created_at: int
    updated_at: int
    secret: str | None = field(default=None, repr=False)
    old_secret: str | None = field(default=None, repr=False)
    """The secret the last rotation replaced: it signs beside ``secret`` until ``old_secret_expires_at``."""
    old_secret_expires_at: int | None = None

    def old_secret_live(self, now: int) -> bool:
        """Whether the secret replaced by the last rotation still signs at `now`."""
        return self.old_secret is not None and self.old_secret_expires_at is not None and now < self.old_secret_expires_at


@dataclass(frozen=True, slots=True)
class NewWebhook:
    """What `Store.create_webhook` writes (``id`` and ``secret`` made by the caller);
    ``max_webhooks``: the partner's quota (None: no limit)."""

    id: str
    partner_id: int
    object_type: str
    source_queue: str
    router: str
    query_json: str | None
    callback_url: str
    secret: str
    interval_ms: int
    mode: str
    now: int
    max_webhooks: int | None = None


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """A batch with what deciding access needs: its webhook's id, partner and readers."""

    bid: int
    id: str
    webhook: int
    webhook_id: str
    partner_id: int | None
    readers_json: str | None
    generation: int
    from_seq: int
    to_seq: int
    records: int
    true_up: bool
    state: str
    created_at: int
    expires_at: int
    fetched_at: int | None


@dataclass(frozen=True, slots=True)
class BatchListing:
    """A batch as the batches list shows it, with its (partner callback's) delivery; ``bid``
    orders the list (and pages it)."""

    id: str
    records: int
    true_up: bool
    created_at: int
    expires_at: int
    fetched_at: int | None
    delivered_at: int | None
    attempts: int
    next_attempt_at: int | None
    last_status: int | None
    last_error: str | None
    bid: int = 0


@dataclass(frozen=True, slots=True)
class SealedBatch:
    """A batch just sealed (handed to `SealWebhooks.describe` for a batcher bot's out queue)."""

    bid: int
    id: str
    webhook_id: str
    records: int
    true_up: bool
    created_at: int


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """A notification to send now: the batch, its webhook and (partner webhooks) where to."""

    batch: int
    batch_id: str
    sender: str
    webhook: int
    webhook_id: str
    records: int
    true_up: bool
    created_at: int
    attempts: int
    round: int
    callback_url: str | None
    secret: str | None = field(default=None, repr=False)
    old_secret: str | None = field(default=None, repr=False)
    """A rotated-out secret that still signs until ``old_secret_expires_at`` (checked per attempt)."""
    old_secret_expires_at: int | None = None


@dataclass(frozen=True, slots=True)
class ChosenReplay:
    """What `WebhookStore.replay_batches` found: the batches notified again (distinct, in the order
    asked), or, when any id is ``unknown`` (not a sealed batch of that webhook) or ``expired``,
    nothing written and those ids named."""

    replayed: list[str]
    unknown: list[str]
    expired: list[str]


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """What one attempt gave. ``next_attempt_at`` None with ``delivered`` False: retries ran out.
    ``gone``: the partner answered 410, so its webhook is disabled."""

    batch: int
    sender: str
    webhook: int
    attempted_at: int
    delivered: bool
    next_attempt_at: int | None
    status: int | None = None
    error: str | None = None
    gone: bool = False


@dataclass(frozen=True, slots=True)
class WebhookStatusRow:
    """A webhook as `leo status` and `leo webhooks list` show it."""

    webhook: WebhookRecord
    partner: str | None
    last_batch_id: str | None
    unfetched: int
    retrying: int
    exhausted: int


# -- ops: writes that commit with a bot's run ---------------------------------------------------
@dataclass(frozen=True, slots=True)
class BotSubscription:
    """A batcher bot's own subscription, created or brought up to date by its routing."""

    id: str
    source_queue: str
    router: str
    interval_ms: int
    out_queue: str | None
    readers_json: str | None


@dataclass(slots=True)
class RouteChanges(StoreOp):
    """Changes a router matched: ``routes`` are (webhook rid, position, key) in position order
    (rid 0 stands for ``subscription``, which is created or updated first). A change at or
    before a webhook's ``start_seq`` is skipped; a key already in the open window keeps only its
    latest position; ``pending`` grows by the keys new to the window."""

    routes: Sequence[tuple[int, int, str]]
    subscription: BotSubscription | None = None


@dataclass(slots=True)
class SealWebhooks(StoreOp):
    """Seal the due windows that hold changes (a no-op for empty ones, whose next run moves on).

    ``webhooks``: only these rids (a batcher bot seals its own); None: every due partner webhook
    in ``changes`` mode without a true-up waiting (snapshots are sealed by the snapshot ops).
    ``describe`` makes the batch.ready event a batcher bot's ``out_queue`` receives. The store
    fills ``sealed``.
    """

    now: int
    retention_ms: int
    webhooks: Sequence[int] | None = None
    describe: Callable[[SealedBatch], str] | None = None
    limit: int = 500
    sealed: list[SealedBatch] = field(default_factory=list)


@dataclass(slots=True)
class StartSnapshot(StoreOp):
    """Begin a snapshot batch for webhook ``webhook`` (unless one is being built): the open
    window closes at the router's checkpoint (the snapshot supersedes it) and a 'building' batch
    is made; later changes go to the next window.

    A snapshot copies nothing the store already holds where it can avoid it: when nothing changed
    since the webhook's last unexpired snapshot (no change record in its source queue since that
    one was built whole, and the webhook unchanged), the new batch is sealed at once and shares
    that one's lines (the lines its builder then adds are ignored). A snapshot's lines are charged
    to its partner: when the partner's unexpired batches already hold ``max_bytes`` bytes of lines
    (``server.limits.batch_bytes``), nothing starts; the webhook's ``last_error`` says why and its
    next run moves one interval on (a true-up stays requested). Nothing accepted is lost: the
    objects and the change windows are untouched, and a later snapshot holds every object. The
    store fills ``sealed`` with a batch sealed at once."""

    webhook: int
    now: int
    retention_ms: int
    max_bytes: int | None = None
    sealed: list[SealedBatch] = field(default_factory=list)


@dataclass(slots=True)
class AddSnapshotLines(StoreOp):
    """Append lines (change records with op 'snapshot') to the webhook's building batch; their
    UTF-8 bytes count toward its partner's ``max_bytes``. Lines that would pass it drop the
    building batch instead (its lines go), with the same ``last_error`` as `StartSnapshot`."""

    webhook: int
    lines: Sequence[str]
    max_bytes: int | None = None
    now: int = 0


@dataclass(slots=True)
class FinishSnapshot(StoreOp):
    """Seal the webhook's building batch: it becomes visible, due for notification, and the
    webhook's next run moves on (its true-up request is served)."""

    webhook: int
    now: int
    retention_ms: int
    sealed: list[SealedBatch] = field(default_factory=list)


@dataclass(slots=True)
class ClaimDeliveries(StoreOp):
    """A webhook_sender bot takes batches (by id) to notify: one delivery each, due now;
    a batch it already has, or one that does not exist, is skipped (counted in ``unknown``)."""

    sender: str
    batch_ids: Sequence[str]
    now: int
    unknown: list[str] = field(default_factory=list)


@dataclass(slots=True)
class RecordDeliveries(StoreOp):
    """Attempt outcomes, written together (a small batched transaction)."""

    outcomes: Sequence[DeliveryOutcome]


class WebhookStore(ABC):
    """The webhook methods of `Store` (see the module docstring). Every write is one
    transaction; reads see the last commit of any process."""

    @abstractmethod
    def create_webhook(self, new: NewWebhook) -> WebhookRecord:
        """Add a partner webhook in ONE transaction. Its first window starts after the newest
        position now (``start_seq``): it receives the changes made from its creation on. Due
        after one interval. Raises `QuotaExceeded` (writing nothing) when the partner already
        has ``new.max_webhooks`` webhooks: counted in the same transaction, so concurrent
        creates cannot pass it."""

    @abstractmethod
    def webhook(self, webhook_id: str) -> WebhookRecord | None:
        """One webhook by id (with its secret), or None."""

    @abstractmethod
    def webhooks(self, *, partner_id: int | None = None) -> list[WebhookRecord]:
        """Webhooks (of one partner, when given), oldest first."""

    @abstractmethod
    def update_webhook(self, webhook_id: str, changes: Mapping[str, Any], now: int) -> WebhookRecord | None:
        """Change a webhook's settings in one transaction; None if unknown. `changes` holds any of
        ``interval_ms``, ``query_json`` (None: no query), ``callback_url`` and ``status``. A new
        interval counts from now; ``status='active'`` also clears a 410's disabled reason."""

    @abstractmethod
    def delete_webhook(self, webhook_id: str) -> bool:
        """Delete a webhook with its batches and deliveries (their routed rows and snapshot lines
        are dropped by `prune`, a page at a time). False if unknown."""

    @abstractmethod
    def request_true_up(self, webhook_id: str) -> WebhookRecord | None:
        """Make the webhook's next batch a snapshot of every matching object; None if unknown."""

    @abstractmethod
    def replay_webhook(self, webhook_id: str, now: int) -> int:
        """Notify again every unfetched, unexpired batch of the webhook: their deliveries are due
        now with a fresh retry schedule. Returns how many batches."""

    @abstractmethod
    def replay_batches(self, webhook_id: str, batch_ids: Sequence[str], now: int) -> ChosenReplay:
        """Notify again exactly the batches `batch_ids` of the webhook (fetched or not; a repeated id
        counts once): their partner deliveries are due now with a fresh retry schedule. All or
        nothing, in ONE transaction: when an id is not a sealed batch of this webhook (unknown,
        another webhook's or partner's, still being built) or is past its expiry, nothing is
        written and the result names them."""

    @abstractmethod
    def rotate_webhook_secret(self, webhook_id: str, secret: str, old_expires_at: int | None,
                              now: int) -> WebhookRecord | None:
        """Replace a partner webhook's signing secret in ONE transaction; None if unknown. The
        current secret becomes the old one and signs beside `secret` until `old_expires_at`
        (None: it stops at once). A secret kept by an earlier rotation is dropped, so at most two
        secrets sign a notification: the new one and the one it replaced."""

    @abstractmethod
    def webhooks_version(self) -> int:
        """A number that changes with every webhook created, changed or deleted (cheap)."""

    @abstractmethod
    def route_subscriptions(self, source_queue: str) -> list[tuple[WebhookRecord, str | None]]:
        """What a router of `source_queue` serves: its partner webhooks in ``changes`` mode whose
        partner is live, each with its partner's scope (JSON text, None: no scope)."""

    @abstractmethod
    def next_seal_at(self) -> int | None:
        """The earliest ``next_run_at`` among partner webhooks that seal windows (``changes`` mode,
        no true-up waiting); None if none."""

    @abstractmethod
    def due_snapshots(self, now: int) -> list[tuple[WebhookRecord, str | None]]:
        """Partner webhooks whose due run is a snapshot (a true-up or ``mode: all``), or that have
        one being built, each with its partner's scope."""

    @abstractmethod
    def due_deliveries(self, sender: str, now: int, limit: int = 1000) -> list[DueDelivery]:
        """Notifications of `sender` due at `now`, oldest due first; for partner webhooks (sender
        '') only those of active webhooks of live partners."""

    @abstractmethod
    def batch(self, batch_id: str) -> BatchRecord | None:
        """A sealed or expired batch by id (a snapshot being built is not there yet), or None."""

    @abstractmethod
    def batches(self, webhook: int, *, unfetched: bool = False, limit: int = 100,
                before: int | None = None) -> list[BatchListing]:
        """A webhook's sealed batches, newest first (unexpired ones only), at most `limit`; with
        `before`, only those older than the batch of that ``bid`` (the next page)."""

    @abstractmethod
    def batch_page(self, batch: BatchRecord, after: str | int | None, limit: int) -> list[tuple[str | int, str]]:
        """Up to `limit` lines of a batch after the cursor `after` (None: from the start), as
        (cursor, JSON text): for a window, each key's latest change in key order; for a
        snapshot, its lines in order. One short read: a download pages through it."""

    @abstractmethod
    def mark_fetched(self, bid: int, now: int) -> None:
        """Note that a batch was downloaded (its last fetch time)."""

    @abstractmethod
    def webhook_status(self, partner_id: int | None = None, *, after: tuple[int, int] | None = None,
                       limit: int | None = None) -> list[WebhookStatusRow]:
        """Every webhook (of one partner when given) with its partner, last batch, unfetched
        batches and delivery counts: by partner name, creation time and ``rid``. One partner's
        may be paged: `after` is the ``(created_at, rid)`` of the previous page's last webhook."""


__all__ = [
    "AddSnapshotLines",
    "BatchListing",
    "BatchRecord",
    "BotSubscription",
    "ChosenReplay",
    "ClaimDeliveries",
    "DeliveryOutcome",
    "DueDelivery",
    "FinishSnapshot",
    "NewWebhook",
    "RecordDeliveries",
    "RouteChanges",
    "SealWebhooks",
    "SealedBatch",
    "StartSnapshot",
    "StoreOp",
    "WebhookRecord",
    "WebhookStatusRow",
    "WebhookStore",
]
