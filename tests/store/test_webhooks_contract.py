"""The webhook side of the store: routing, O(1) sealing, snapshots, deliveries, retention."""

from __future__ import annotations

import json

import orjson
import pytest

from leo_runtime.objects import delete, ingest
from leo_runtime.partners import create_partner
from leo_runtime.store import RunCommit, Store
from leo_runtime.store.base_webhooks import (
    AddSnapshotLines,
    BotSubscription,
    ClaimDeliveries,
    DeliveryOutcome,
    FinishSnapshot,
    NewWebhook,
    RecordDeliveries,
    RouteChanges,
    SealWebhooks,
    StartSnapshot,
    StoreOp,
    WebhookRecord,
)

from .conftest import CLOCK_START, FakeClock

ROUTER = "webhooks:inventory"
DAY = 86_400_000


def commit(store: Store, *ops: StoreOp, bot: str = ROUTER) -> None:
    """Commit store ops as a bot's run would (the bot holds its lease)."""
    assert store.acquire_lease(bot, "test-owner", 60_000)
    store.commit_run(RunCommit(bot_id=bot, owner="test-owner", ops=list(ops)))


def make_webhook(store: Store, clock: FakeClock, *, interval_ms: int = 1000, mode: str = "changes") -> WebhookRecord:
    partner = store.partner("acme") or create_partner(store, "acme")[0]
    return store.create_webhook(NewWebhook(f"wh_{clock.now}_{mode}", partner.id, "inventory", "inventory.changes", ROUTER,
                                           None, "https://partner.example/hook", "whsec_AAAA", interval_ms, mode, clock.now))


def route_all(store: Store, webhook: WebhookRecord, after: int = 0) -> int:
    """Route every change after `after` to the webhook and move the router's checkpoint; return it."""
    events = store.read("inventory.changes", after, 100_000)
    routes = [(webhook.rid, event.seq, event.payload["key"]) for event in events]
    commit(store, RouteChanges(routes))
    position = events[-1].seq if events else after
    store.set_checkpoint(ROUTER, "inventory.changes", position)
    return position


def lines(store: Store, batch_id: str) -> list[dict]:
    batch = store.batch(batch_id)
    assert batch is not None
    return [orjson.loads(text) for _, text in store.batch_page(batch, None, 100_000)]


def test_a_sealed_batch_holds_each_key_once_at_its_latest_change(store: Store, clock: FakeClock) -> None:
    ingest(store, "inventory", "sku", [{"sku": "OLD", "quantity": 1}])  # before the webhook: not for it
    webhook = make_webhook(store, clock)
    ingest(store, "inventory", "sku", [{"sku": f"S{i}", "quantity": i} for i in range(5)])
    ingest(store, "inventory", "sku", [{"sku": "S1", "quantity": 10}, {"sku": "OLD", "quantity": 2}])
    delete(store, "inventory", "S2")
    route_all(store, webhook)
    assert store.webhook(webhook.id).pending == 6  # S0..S4 and OLD: distinct keys
    seal = SealWebhooks(clock.advance(1000), DAY)
    commit(store, seal, bot="webhooks:batcher")
    [sealed] = seal.sealed
    assert sealed.records == 6 and not sealed.true_up
    records = {line["key"]: line for line in lines(store, sealed.id)}
    assert sorted(records) == ["OLD", "S0", "S1", "S2", "S3", "S4"]
    assert (records["S1"]["version"], records["S1"]["data"]["quantity"]) == (2, 10)
    assert records["S2"]["op"] == "deleted" and records["OLD"]["version"] == 2
    after = store.webhook(webhook.id)
    assert after.pending == 0 and after.next_run_at == CLOCK_START + 2000
    # The next window starts empty: later changes go to the next batch only.
    ingest(store, "inventory", "sku", [{"sku": "S3", "quantity": 99}])
    route_all(store, webhook, store.get_checkpoint(ROUTER, "inventory.changes") or 0)
    seal = SealWebhooks(clock.advance(1000), DAY)
    commit(store, seal, bot="webhooks:batcher")
    assert [line["key"] for line in lines(store, seal.sealed[0].id)] == ["S3"]
    assert lines(store, sealed.id)[0]["key"] == "OLD"  # the first batch did not change


def test_an_interval_without_changes_seals_nothing(store: Store, clock: FakeClock) -> None:
    webhook = make_webhook(store, clock)
    seal = SealWebhooks(clock.advance(5000), DAY)
    commit(store, seal, bot="webhooks:batcher")
    assert seal.sealed == [] and store.batches(webhook.rid) == []
    assert store.webhook(webhook.id).next_run_at == clock.now + 1000  # late: one interval from now


def test_sealing_costs_the_same_whatever_the_window_holds(store: Store, clock: FakeClock) -> None:
    webhook = make_webhook(store, clock)
    routes = [(webhook.rid, 10_000_000 + index, f"K{index:06d}") for index in range(20_000)]
    commit(store, RouteChanges(routes))
    seal = SealWebhooks(clock.advance(1000), DAY)
    statements: list[str] = []
    store._conn().set_trace_callback(statements.append)  # type: ignore[attr-defined]
    commit(store, seal, bot="webhooks:batcher")
    store._conn().set_trace_callback(None)  # type: ignore[attr-defined]
    assert seal.sealed[0].records == 20_000
    assert not any("webhook_index" in statement for statement in statements)  # nothing copied or rewritten


def test_routing_skips_changes_before_the_webhook_and_counts_keys_once(store: Store, clock: FakeClock) -> None:
    webhook = make_webhook(store, clock)
    commit(store, RouteChanges([(webhook.rid, webhook.start_seq, "EARLY"), (webhook.rid, webhook.start_seq + 1, "A"),
                                (webhook.rid, webhook.start_seq + 2, "A"), (webhook.rid, webhook.start_seq + 3, "B")]))
    commit(store, RouteChanges([(webhook.rid, webhook.start_seq + 4, "A")]))
    assert store.webhook(webhook.id).pending == 2


def test_a_batcher_subscription_is_made_by_its_first_routing(store: Store, clock: FakeClock) -> None:
    first, last = store.append("erp.in", [{"n": 1}, {"n": 2}])
    subscription = BotSubscription("bot:erp", "erp.in", "erp", 1000, "erp.batches", '["acme"]')
    commit(store, RouteChanges([(0, first, f"#{first}"), (0, last, f"#{last}")], subscription=subscription), bot="erp")
    record = store.webhook("bot:erp")
    assert record is not None and record.partner_id is None and record.pending == 2 and record.window_from == first - 1
    store.set_checkpoint("erp", "erp.in", last)
    seal = SealWebhooks(clock.advance(1000), DAY, webhooks=[record.rid], describe=lambda sealed: json.dumps({"batch": sealed.id}))
    commit(store, seal, bot="erp")
    [event] = store.read("erp.batches", 0)
    assert event.payload == {"batch": seal.sealed[0].id}
    assert [line["n"] for line in lines(store, seal.sealed[0].id)] == [1, 2]
    assert store.batch(seal.sealed[0].id).readers_json == '["acme"]'
    claim = ClaimDeliveries("erp-notify", [seal.sealed[0].id, "bat_unknown"], clock.now)
    commit(store, claim, bot="erp-notify")
    assert claim.unknown == ["bat_unknown"]
    assert [d.batch_id for d in store.due_deliveries("erp-notify", clock.now)] == [seal.sealed[0].id]


def test_a_snapshot_supersedes_the_open_window(store: Store, clock: FakeClock) -> None:
    webhook = make_webhook(store, clock)
    ingest(store, "inventory", "sku", [{"sku": "A", "quantity": 1}])
    route_all(store, webhook)
    store.request_true_up(webhook.id)
    assert store.next_seal_at() is None  # the batcher's snapshot work, not a window
    [(due, _scope)] = store.due_snapshots(clock.advance(1000))
    finish = FinishSnapshot(due.rid, clock.now, DAY)
    commit(store, StartSnapshot(due.rid, clock.now, DAY), AddSnapshotLines(due.rid, ['{"key":"A","op":"snapshot"}']),
           bot="webhooks:batcher")
    assert store.due_snapshots(clock.now) and store.batches(webhook.rid) == []  # still being built: invisible
    commit(store, finish, bot="webhooks:batcher")
    [sealed] = finish.sealed
    assert sealed.true_up and sealed.records == 1
    assert lines(store, sealed.id) == [{"key": "A", "op": "snapshot"}]
    after = store.webhook(webhook.id)
    assert not after.true_up and after.pending == 0
    assert store.due_deliveries("", clock.now)[0].batch_id == sealed.id


def test_delivery_outcomes_keep_the_retry_schedule_and_flag_failing(store: Store, clock: FakeClock) -> None:
    webhook = make_webhook(store, clock)
    commit(store, RouteChanges([(webhook.rid, webhook.start_seq + 1, "A")]))
    seal = SealWebhooks(clock.advance(1000), DAY)
    commit(store, seal, bot="webhooks:batcher")
    [due] = store.due_deliveries("", clock.now)
    failed = DeliveryOutcome(due.batch, "", due.webhook, clock.now, False, clock.now + 5000, 500, "HTTP 500")
    commit(store, RecordDeliveries([failed]), bot="webhooks:sender")
    assert store.due_deliveries("", clock.now) == []
    [again] = store.due_deliveries("", clock.advance(5000))
    assert (again.attempts, again.round) == (1, 1)
    [status] = store.webhook_status()
    assert (status.retrying, status.exhausted, status.unfetched) == (1, 0, 1)
    gave_up = DeliveryOutcome(due.batch, "", due.webhook, clock.now, False, None, None, "cannot connect")
    commit(store, RecordDeliveries([gave_up]), bot="webhooks:sender")
    [status] = store.webhook_status()
    assert status.webhook.failing and (status.retrying, status.exhausted) == (0, 1)
    assert store.replay_webhook(webhook.id, clock.now) == 1
    [replayed] = store.due_deliveries("", clock.now)
    assert (replayed.attempts, replayed.round) == (2, 0)  # a fresh schedule; attempts keep counting
    done = DeliveryOutcome(due.batch, "", due.webhook, clock.now, True, None, 204)
    commit(store, RecordDeliveries([done]), bot="webhooks:sender")
    [status] = store.webhook_status()
    assert not status.webhook.failing and status.retrying == 0
    assert store.batches(webhook.rid)[0].delivered_at == clock.now


def test_a_410_disables_the_webhook_until_it_is_turned_on(store: Store, clock: FakeClock) -> None:
    webhook = make_webhook(store, clock)
    commit(store, RouteChanges([(webhook.rid, webhook.start_seq + 1, "A")]))
    commit(store, SealWebhooks(clock.advance(1000), DAY), bot="webhooks:batcher")
    [due] = store.due_deliveries("", clock.now)
    gone = DeliveryOutcome(due.batch, "", due.webhook, clock.now, False, clock.now, 410, "HTTP 410", gone=True)
    commit(store, RecordDeliveries([gone]), bot="webhooks:sender")
    assert store.webhook(webhook.id).status == "disabled"
    assert store.due_deliveries("", clock.now) == []  # nothing goes to a disabled webhook
    store.update_webhook(webhook.id, {"status": "active"}, clock.now)
    assert store.webhook(webhook.id).disabled_reason is None
    assert [d.batch_id for d in store.due_deliveries("", clock.now)] == [due.batch_id]


def test_retention_keeps_what_unexpired_batches_hold_and_drops_them_after(store: Store, clock: FakeClock) -> None:
    webhook = make_webhook(store, clock)
    ingest(store, "inventory", "sku", [{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 2}])
    route_all(store, webhook)
    seal = SealWebhooks(clock.advance(1000), 10 * DAY)
    commit(store, seal, bot="webhooks:batcher")
    batch_id = seal.sealed[0].id
    clock.advance(3 * DAY)
    store.append("other", [{"x": 1}])
    assert store.prune(clock.now - DAY) == 0  # events past retention, but the batch still holds them
    assert len(lines(store, batch_id)) == 2
    clock.advance(8 * DAY)  # the batch expires
    assert store.prune(clock.now - DAY) > 0
    assert store.read("inventory.changes", 0) == []
    gone = store.batch(batch_id)
    assert gone is not None and gone.state == "gone"  # a tombstone: the API answers 410
    clock.advance(20 * DAY)
    store.prune(clock.now - DAY)
    assert store.batch(batch_id) is None


def test_deleting_a_webhook_hides_its_batches_and_prune_drops_its_rows(store: Store, clock: FakeClock) -> None:
    webhook = make_webhook(store, clock)
    commit(store, RouteChanges([(webhook.rid, webhook.start_seq + 1, "A")]))
    seal = SealWebhooks(clock.advance(1000), DAY)
    commit(store, seal, bot="webhooks:batcher")
    commit(store, RouteChanges([(webhook.rid, webhook.start_seq + 2, "B")]))
    version = store.webhooks_version()
    assert store.delete_webhook(webhook.id) and not store.delete_webhook(webhook.id)
    assert store.webhooks_version() > version
    assert store.webhook(webhook.id) is None and store.batch(seal.sealed[0].id) is None
    store.prune(clock.now - DAY)
    assert store._conn().execute("SELECT COUNT(*) FROM webhook_index").fetchone()[0] == 0  # type: ignore[attr-defined]
    assert store._conn().execute("SELECT COUNT(*) FROM webhooks").fetchone()[0] == 0  # type: ignore[attr-defined]


@pytest.mark.parametrize("field", ["interval_ms", "query_json", "callback_url", "status"])
def test_update_changes_only_what_it_is_given(store: Store, clock: FakeClock, field: str) -> None:
    webhook = make_webhook(store, clock)
    value = {"interval_ms": 5000, "query_json": '{"a":1}', "callback_url": "https://x.example/h", "status": "paused"}[field]
    updated = store.update_webhook(webhook.id, {field: value}, clock.advance(10))
    column = {"interval_ms": "interval_ms", "query_json": "query_json", "callback_url": "callback_url", "status": "status"}
    assert getattr(updated, column[field]) == value
    unchanged = {"interval_ms", "query_json", "callback_url", "status"} - {field}
    assert all(getattr(updated, name) == getattr(webhook, name) for name in unchanged)
    assert store.update_webhook("wh_missing", {field: value}, clock.now) is None
