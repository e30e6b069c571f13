"""Webhook windows and delivery outcomes: the state transitions, written once for every store.

A store keeps the rows (webhooks, batches, deliveries: see `leo_runtime.store.base_webhooks`).
What a seal does to a webhook's window, when its next run comes, and what a page of delivery
outcomes makes of each webhook are decided here; the store (`store.sql_webhooks`, the same SQL
on SQLite and PostgreSQL) only reads and writes the rows, inside the run's transaction. The retry
schedule of one delivery is the sender's (`webhooks.judge`): an outcome carries its next try.

A window (``generation``) gathers a webhook's routed changes after ``window_from``, a position
of its source queue. Sealing closes it at the router's checkpoint: every change up to there is
routed, so the batch holds exactly the changes in (window_from, checkpoint], and the next window
starts there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

GONE_REASON = "the callback answered 410 Gone"


class DeliveryOutcome(Protocol):
    """What one attempt gave (the store's `base_webhooks.DeliveryOutcome`; this module imports
    nothing of the store, which calls it)."""

    @property
    def webhook(self) -> int: ...
    @property
    def sender(self) -> str: ...
    @property
    def attempted_at(self) -> int: ...
    @property
    def delivered(self) -> bool: ...
    @property
    def next_attempt_at(self) -> int | None: ...
    @property
    def error(self) -> str | None: ...
    @property
    def gone(self) -> bool: ...


def next_run(webhook: Mapping[str, Any], now: int) -> int:
    """The next run after a due one: on the interval's beat, or one interval from now when late."""
    following = webhook["next_run_at"] + webhook["interval_ms"]
    return following if following > now else now + webhook["interval_ms"]


def window_end(webhook: Mapping[str, Any], router_position: int | None) -> int:
    """Where a window closes: at the router's position in the source queue (every change up to
    there is routed), never before the window began."""
    return max(router_position or 0, webhook["window_from"])


@dataclass(frozen=True, slots=True)
class Seal:
    """What sealing one due webhook does.

    ``batch``: the window holds changes, so a batch of ``records`` keys is sealed over
    (``window_from``, ``to``] and, for a partner's webhook (``notify``), its callback is due at
    once. Either way the next window starts after ``to`` and the webhook runs again at ``next_run_at``.
    """

    to: int
    next_run_at: int
    batch: bool
    records: int
    notify: bool


def seal(webhook: Mapping[str, Any], router_position: int | None, now: int) -> Seal:
    """The seal of a due webhook (a row with window_from, pending, next_run_at, interval_ms, partner_id)."""
    return Seal(
        to=window_end(webhook, router_position),
        next_run_at=next_run(webhook, now),
        batch=bool(webhook["pending"]),
        records=webhook["pending"],
        notify=webhook["partner_id"] is not None,
    )


def snapshot_refused(held: int, max_bytes: int) -> str:
    """Why a snapshot waits (the webhook's last_error; it is tried again at its next run)."""
    return (
        f"server.limits.batch_bytes: this partner's unexpired batches hold {held:,} bytes of snapshot lines, the "
        f"most it may ({max_bytes:,}); the snapshot was not made and is tried again at the next interval (batches "
        "expire with retention; deleting a webhook frees its batches at once)"
    )


@dataclass(slots=True)
class WebhookState:
    """What a page of outcomes leaves of one webhook: ``last_error`` (None after a delivery),
    ``failing`` (True: a delivery ran out of retries, False: one got through, None: unchanged)
    and ``last_delivered_at`` (None: unchanged)."""

    last_error: str | None = None
    failing: bool | None = None
    last_delivered_at: int | None = None


@dataclass(slots=True)
class Judgement:
    """A page of delivery outcomes judged: the webhooks' new states (only those whose state an
    outcome set), the (webhook, sender) pairs whose waiting retries go now (the callback answers
    again: at that time), and the outcomes that disable their webhook (410 Gone)."""

    webhooks: dict[int, WebhookState] = field(default_factory=dict)
    released: dict[tuple[int, str], int] = field(default_factory=dict)
    disabled: list[DeliveryOutcome] = field(default_factory=list)


def judge(outcomes: Iterable[DeliveryOutcome]) -> Judgement:
    """Judge outcomes in order (the last one of a webhook decides its state)."""
    judgement = Judgement()
    for outcome in outcomes:
        if outcome.delivered:
            judgement.webhooks[outcome.webhook] = WebhookState(None, False, outcome.attempted_at)
            judgement.released[(outcome.webhook, outcome.sender)] = outcome.attempted_at
        elif outcome.gone:
            judgement.disabled.append(outcome)
        else:
            state = judgement.webhooks.setdefault(outcome.webhook, WebhookState())
            state.last_error = outcome.error
            if outcome.next_attempt_at is None:
                state.failing = True
    return judgement
