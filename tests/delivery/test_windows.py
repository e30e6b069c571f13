"""The webhook state transitions every store carries out (`leo_runtime.delivery.windows`)."""

from __future__ import annotations

from leo_runtime.delivery import windows
from leo_runtime.store.base_webhooks import DeliveryOutcome


def _webhook(**changes: object) -> dict[str, object]:
    return {"window_from": 10, "pending": 3, "next_run_at": 1_000, "interval_ms": 500, "partner_id": 7, **changes}


def test_a_window_closes_at_the_router_and_never_before_it_began() -> None:
    assert windows.seal(_webhook(), 25, now=1_000) == windows.Seal(to=25, next_run_at=1_500, batch=True, records=3,
                                                                 notify=True)
    assert windows.seal(_webhook(), 4, now=1_000).to == 10  # a router reset below the window
    assert windows.seal(_webhook(), None, now=1_000).to == 10  # a router that never ran


def test_an_empty_window_seals_nothing_and_a_batcher_notifies_no_callback() -> None:
    empty = windows.seal(_webhook(pending=0), 30, now=1_000)
    assert (empty.batch, empty.to) == (False, 30)
    assert windows.seal(_webhook(partner_id=None), 30, now=1_000).notify is False


def test_runs_keep_the_interval_beat_unless_late() -> None:
    assert windows.next_run(_webhook(), now=1_200) == 1_500  # on the beat
    assert windows.next_run(_webhook(), now=9_000) == 9_500  # late: one interval from now


def _outcome(webhook: int, *, delivered: bool = False, retry: int | None = None, gone: bool = False,
             at: int = 100, sender: str = "") -> DeliveryOutcome:
    return DeliveryOutcome(1, sender, webhook, at, delivered, retry, 500 if not delivered else 200,
                           None if delivered else "HTTP 500", gone)


def test_outcomes_are_judged_in_order_the_last_deciding() -> None:
    judgement = windows.judge([
        _outcome(1, retry=200),                     # a retry: an error, not failing yet
        _outcome(2, retry=None),                    # retries ran out: failing
        _outcome(3, delivered=True, at=150),        # delivered: its waiting retries go now
        _outcome(3, retry=300, at=160),             # ... then the next one fails again
        _outcome(4, gone=True),                     # 410: disabled, no state of its own
    ])
    assert judgement.webhooks == {
        1: windows.WebhookState("HTTP 500", None, None),
        2: windows.WebhookState("HTTP 500", True, None),
        3: windows.WebhookState("HTTP 500", False, 150),
    }
    assert judgement.released == {(3, ""): 150}
    assert [outcome.webhook for outcome in judgement.disabled] == [4]
