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

from .conftest import CLOCK_START, Backend, FakeClock

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


def test_the_webhook_quota_holds_under_concurrent_creates_from_several_stores(backend, clock: FakeClock) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from leo_runtime.errors import QuotaExceeded

    stores = [backend.open() for _ in range(4)]
    acme = create_partner(stores[0], "acme")[0]

    def create(index: int) -> str:
        new = NewWebhook(f"wh_{index}", acme.id, "inventory", "inventory.changes", ROUTER, None,
                         "https://partner.example/hook", "whsec_AAAA", 1000, "changes", clock.now, max_webhooks=9)
        try:
            return stores[index % 4].create_webhook(new).id
        except QuotaExceeded as exc:
            assert (exc.limit, exc.maximum) == ("webhooks", 9)
            return "refused"

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(create, range(60)))
    assert results.count("refused") == 51 and len(stores[0].webhooks(partner_id=acme.id)) == 9
    assert stores[1].delete_webhook(next(result for result in results if result != "refused"))
    assert create(100) == "wh_100" and create(101) == "refused"  # a deleted webhook frees its place


def snapshot(store: Store, webhook: WebhookRecord, clock: FakeClock, lines: list[str], *, max_bytes: int | None = None,
             retention: int = DAY) -> list:
    """Build one snapshot of `lines` as the batcher does (start, add, finish); the batches it sealed."""
    start = StartSnapshot(webhook.rid, clock.now, retention, max_bytes=max_bytes)
    finish = FinishSnapshot(webhook.rid, clock.now, retention)
    commit(store, start, AddSnapshotLines(webhook.rid, lines, max_bytes=max_bytes, now=clock.now), finish,
           bot="webhooks:batcher")
    return start.sealed + finish.sealed


def line_rows(store: Store) -> int:
    return store._conn().execute("SELECT COUNT(*) FROM batch_lines").fetchone()[0]  # type: ignore[attr-defined]


def test_an_unchanged_snapshot_shares_the_lines_of_the_last_one(store: Store, clock: FakeClock) -> None:
    webhook = make_webhook(store, clock, mode="all")
    ingest(store, "inventory", "sku", [{"sku": f"S{i}", "quantity": i} for i in range(24)])
    texts = [f'{{"key":"S{i}","op":"snapshot"}}' for i in range(24)]
    [first] = snapshot(store, webhook, clock, texts)
    clock.advance(1000)
    start = StartSnapshot(webhook.rid, clock.now, DAY)
    commit(store, start, AddSnapshotLines(webhook.rid, texts), FinishSnapshot(webhook.rid, clock.now, DAY),
           bot="webhooks:batcher")  # nothing changed: sealed at the start, sharing; the lines added go nowhere
    assert [sealed.records for sealed in start.sealed] == [24]
    listed = store.batches(webhook.rid)
    assert [b.records for b in listed] == [24, 24] and listed[1].id == first.id and line_rows(store) == 24
    assert lines(store, listed[0].id) == lines(store, first.id) == [orjson.loads(text) for text in texts]
    assert store.due_deliveries("", clock.now)[-1].batch_id == listed[0].id  # notified like any batch
    ingest(store, "inventory", "sku", [{"sku": "S0", "quantity": 99}])  # a change: the next one is a copy
    clock.advance(1000)
    [third] = snapshot(store, webhook, clock, texts[:3])
    assert line_rows(store) == 27 and len(lines(store, third.id)) == 3
    # A query change (or any change of the webhook) makes the next one a copy too.
    clock.advance(1000)
    store.update_webhook(webhook.id, {"query_json": '{"quantity":{"lt":5}}'}, clock.now)
    clock.advance(1000)
    snapshot(store, webhook, clock, texts[:5])
    assert line_rows(store) == 32


def test_a_snapshot_built_while_changes_came_is_not_shared(store: Store, clock: FakeClock) -> None:
    webhook = make_webhook(store, clock, mode="all")
    ingest(store, "inventory", "sku", [{"sku": "A", "quantity": 1}])
    commit(store, StartSnapshot(webhook.rid, clock.now, DAY), AddSnapshotLines(webhook.rid, ['{"key":"A"}']),
           bot="webhooks:batcher")
    ingest(store, "inventory", "sku", [{"sku": "B", "quantity": 1}])  # while it is built (a page a run)
    commit(store, AddSnapshotLines(webhook.rid, ['{"key":"B"}']), FinishSnapshot(webhook.rid, clock.now, DAY),
           bot="webhooks:batcher")
    clock.advance(1000)
    snapshot(store, webhook, clock, ['{"key":"A"}', '{"key":"B"}'])
    assert line_rows(store) == 4


def test_snapshot_lines_are_charged_to_the_partners_byte_quota(store: Store, clock: FakeClock) -> None:
    webhook = make_webhook(store, clock, mode="all", interval_ms=60_000)
    clock.advance(1)
    other = make_webhook(store, clock, mode="all", interval_ms=60_000)  # the same partner's
    line = '{"key":"A","pad":"' + "x" * 80 + '"}'  # 100 bytes
    assert len(snapshot(store, webhook, clock, [line] * 5, max_bytes=1000)) == 1  # 500 held
    ingest(store, "inventory", "sku", [{"sku": "A", "quantity": 1}])
    clock.advance(1000)
    assert snapshot(store, other, clock, [line] * 6, max_bytes=1000) == []  # 500 + 600 > 1000: dropped whole
    refused = store.webhook(other.id)
    assert refused is not None and refused.last_error is not None
    assert refused.last_error.startswith("server.limits.batch_bytes: this partner's unexpired batches hold 500 bytes")
    assert refused.next_run_at == other.next_run_at + 60_000  # tried again an interval later
    assert store.batches(other.rid) == [] and line_rows(store) == 5
    assert len(snapshot(store, other, clock, [line] * 5, max_bytes=1000)) == 1  # exactly the quota: made
    clock.advance(1000)
    assert snapshot(store, webhook, clock, [line], max_bytes=1000) == []  # held >= quota: not even started
    assert store.webhook(webhook.id).last_error.startswith("server.limits.batch_bytes")  # type: ignore[union-attr]
    clock.advance(2 * DAY)  # the batches expire and retention drops their lines: room again
    store.prune(clock.now - DAY)
    assert line_rows(store) == 0 and len(snapshot(store, webhook, clock, [line] * 9, max_bytes=1000)) == 1


def test_shared_lines_stay_until_the_last_snapshot_sharing_them_expires(store: Store, clock: FakeClock) -> None:
    webhook = make_webhook(store, clock, mode="all")
    [owner] = snapshot(store, webhook, clock, ['{"key":"A"}', '{"key":"B"}'], retention=2 * DAY)
    clock.advance(DAY)
    [sharer] = snapshot(store, webhook, clock, ["ignored"], retention=2 * DAY)
    clock.advance(DAY + 1000)  # the owner expired, its sharer did not
    store.prune(clock.now - DAY)
    assert store.batch(owner.id).state == "expired" and store.batch(sharer.id).state == "sealed"  # type: ignore[union-attr]
    assert [line["key"] for line in lines(store, sharer.id)] == ["A", "B"]
    clock.advance(DAY)
    store.prune(clock.now - DAY)
    assert line_rows(store) == 0 and store.batch(owner.id).state == "gone"  # type: ignore[union-attr]


def sealed_batches(store: Store, clock: FakeClock, webhook: WebhookRecord, count: int) -> list[str]:
    """Seal `count` batches of one change each for the webhook; their ids, oldest first."""
    ids = []
    for index in range(count):
        commit(store, RouteChanges([(webhook.rid, webhook.start_seq + 1 + index, f"K{index}")]))
        seal = SealWebhooks(clock.advance(1000), DAY)
        commit(store, seal, bot="webhooks:batcher")
        ids.append(seal.sealed[0].id)
    return ids


def test_a_chosen_replay_makes_only_those_batches_due_again_fetched_or_not(store: Store, clock: FakeClock) -> None:
    webhook = make_webhook(store, clock)
    first, _, third = sealed_batches(store, clock, webhook, 3)
    done = [DeliveryOutcome(due.batch, "", due.webhook, clock.now, True, None, 204)
            for due in store.due_deliveries("", clock.now)]
    commit(store, RecordDeliveries(done), bot="webhooks:sender")
    store.mark_fetched(store.batch(first).bid, clock.now)  # downloaded: a chosen replay sends it all the same
    assert store.due_deliveries("", clock.now) == []
    result = store.replay_batches(webhook.id, [third, first, third], clock.now)
    assert (result.replayed, result.unknown, result.expired) == ([third, first], [], [])  # a repeat counts once
    due = store.due_deliveries("", clock.now)
    assert sorted(d.batch_id for d in due) == sorted([first, third]) and all(d.round == 0 for d in due)


def test_a_chosen_replay_is_all_or_nothing(store: Store, clock: FakeClock) -> None:
    webhook = make_webhook(store, clock)
    early, late = sealed_batches(store, clock, webhook, 2)
    other_partner = create_partner(store, "globex")[0]
    other = store.create_webhook(NewWebhook("wh_other", other_partner.id, "inventory", "inventory.changes", ROUTER, None,
                                            "https://globex.example/hook", "whsec_BBBB", 1000, "changes", clock.now))
    [theirs] = sealed_batches(store, clock, other, 1)
    done = [DeliveryOutcome(due.batch, "", due.webhook, clock.now, True, None, 204)
            for due in store.due_deliveries("", clock.now)]
    commit(store, RecordDeliveries(done), bot="webhooks:sender")
    result = store.replay_batches(webhook.id, [late, theirs, "bat_nope"], clock.now)
    assert (result.replayed, result.unknown, result.expired) == ([], [theirs, "bat_nope"], [])
    assert store.due_deliveries("", clock.now) == []  # nothing was made due, not even its own batch
    expiry = store.batch(early).expires_at  # `late` was sealed a second after: still retained then
    result = store.replay_batches(webhook.id, [late, early], expiry)
    assert (result.replayed, result.unknown, result.expired) == ([], [], [early])
    assert store.due_deliveries("", clock.now) == []
    clock.now = expiry
    store.prune(clock.now - DAY)  # a tombstone now: still expired (410), not unknown
    assert store.replay_batches(webhook.id, [early], clock.now).expired == [early]
    assert store.replay_batches("wh_unknown", [late], clock.now).unknown == [late]
    assert store.replay_batches(webhook.id, [late], clock.now).replayed == [late]


def test_rotating_a_secret_keeps_only_the_one_it_replaced(backend: Backend, store: Store, clock: FakeClock) -> None:
    webhook = make_webhook(store, clock)  # secret whsec_AAAA
    sealed_batches(store, clock, webhook, 1)
    rotated = store.rotate_webhook_secret(webhook.id, "whsec_BBBB", clock.now + 60_000, clock.now)
    assert rotated is not None and (rotated.secret, rotated.old_secret) == ("whsec_BBBB", "whsec_AAAA")
    assert rotated.old_secret_live(clock.now) and not rotated.old_secret_live(clock.now + 60_000)
    [due] = store.due_deliveries("", clock.now)
    assert (due.secret, due.old_secret, due.old_secret_expires_at) == ("whsec_BBBB", "whsec_AAAA", clock.now + 60_000)
    again = backend.open().webhook(webhook.id)  # another process, or after a restart: the same
    assert (again.secret, again.old_secret, again.old_secret_expires_at) == ("whsec_BBBB", "whsec_AAAA", clock.now + 60_000)
    twice = store.rotate_webhook_secret(webhook.id, "whsec_CCCC", clock.now + 1000, clock.now)
    assert (twice.secret, twice.old_secret) == ("whsec_CCCC", "whsec_BBBB")  # AAAA no longer signs
    at_once = store.rotate_webhook_secret(webhook.id, "whsec_DDDD", None, clock.now)
    assert (at_once.secret, at_once.old_secret, at_once.old_secret_expires_at) == ("whsec_DDDD", None, None)
    assert store.rotate_webhook_secret("wh_unknown", "whsec_EEEE", None, clock.now) is None
    store.delete_webhook(webhook.id)
    assert store.rotate_webhook_secret(webhook.id, "whsec_EEEE", None, clock.now) is None


def test_a_replay_while_an_attempt_is_in_flight_is_not_undone_by_its_outcome(store: Store, clock: FakeClock) -> None:
    webhook = make_webhook(store, clock)
    [batch] = sealed_batches(store, clock, webhook, 1)
    [due] = store.due_deliveries("", clock.now)
    attempted_at = clock.now  # the attempt starts; the partner replays before its answer is recorded
    assert store.replay_batches(webhook.id, [batch], clock.advance(5)).replayed == [batch]
    done = DeliveryOutcome(due.batch, "", due.webhook, attempted_at, True, None, 204)
    commit(store, RecordDeliveries([done]), bot="webhooks:sender")
    [again] = store.due_deliveries("", clock.now)  # still due: the replay is sent after all
    assert (again.batch_id, again.attempts, again.round) == (batch, 1, 0)
    listed = store.batches(webhook.rid)[0]
    assert listed.delivered_at == attempted_at and listed.next_attempt_at == clock.now
    assert store.replay_webhook(webhook.id, clock.advance(5)) == 1  # the same for a replay of every unfetched batch
    failed = DeliveryOutcome(due.batch, "", due.webhook, clock.now - 1, False, clock.now + 60_000, 500, "HTTP 500")
    commit(store, RecordDeliveries([failed]), bot="webhooks:sender")
    assert [d.batch_id for d in store.due_deliveries("", clock.now)] == [batch]
