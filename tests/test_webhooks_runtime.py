"""Partner webhooks end to end inside one process: the real runtime and API, a real receiver on
loopback, short intervals (1 s), waits on conditions only."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import standardwebhooks

from leo_runtime.cli.compose import system_pipelines
from leo_runtime.config import load_config
from leo_runtime.objects import delete, ingest
from leo_runtime.operations import status_report
from leo_runtime.partners import create_partner
from leo_runtime.runtime import Runtime
from leo_runtime.store import Store, open_store

from .conftest import Project, async_wait_until
from .receiver import receiver

NYC = {"warehouse": "NYC"}
SETTINGS = """
version: 1
server: {port: 0, allow_private_callbacks: true, limits: {all_mode_min_interval: 1}}
webhooks: {timeout: 2, retry_schedule: [0.2, 0.2, 0.3]}
object_types:
  inventory: {key: sku}
pipelines:
  feed:
    bots:
      - {id: low, use: filter, in: inventory.changes, with: {query: {quantity: {lt: 5}}}, out: inventory.low}
"""


@contextlib.asynccontextmanager
async def running(project: Project, text: str = SETTINGS) -> AsyncIterator[tuple[Runtime, Store, str]]:
    project.write(text)
    os.environ.pop("LEO_ADMIN_TOKEN", None)
    config = load_config(project.file)
    store = open_store(config.store_url, config.base_dir)
    runtime = Runtime(config, store, system=system_pipelines())
    await runtime.start()
    try:
        yield runtime, store, runtime.http_address or ""
    finally:
        await runtime.stop()
        store.close()


async def put(store: Store, *items: dict[str, Any]) -> None:
    await asyncio.to_thread(ingest, store, "inventory", "sku", list(items))


async def create(client: httpx.AsyncClient, url: str, **fields: Any) -> dict[str, Any]:
    made = await client.post("/v1/webhooks", json={"object_type": "inventory", "callback_url": url, "interval": 1, **fields})
    assert made.status_code == 201, made.text
    return made.json()


def partner_client(store: Store, base: str, name: str = "acme", scope: dict | None = None) -> httpx.AsyncClient:
    token = create_partner(store, name, scope)[1]
    return httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)


async def records_of(client: httpx.AsyncClient, notification: dict[str, Any]) -> list[dict[str, Any]]:
    answer = await client.get(notification["data"]["url"])
    assert answer.status_code == 200, answer.text
    assert int(answer.headers["leo-record-count"]) == notification["data"]["records"]
    return [json.loads(line) for line in answer.text.splitlines()]


def run(coroutine: Any) -> None:
    asyncio.run(coroutine)


def test_one_signed_notification_per_interval_with_changes_and_the_batch_holds_the_latest_matching_keys(
    project: Project,
) -> None:
    async def main() -> None:
        with receiver() as hook:
            async with running(project) as (_runtime, store, base), partner_client(store, base, scope=NYC) as client:
                # A long interval first, so that every change below lands in one window for sure.
                webhook = await create(client, hook.url + "/a", query={"quantity": {"lt": 5}}, interval=600)
                await put(store, *({"sku": f"S{i}", "quantity": i, "warehouse": "NYC" if i % 2 else "SFO"} for i in range(8)))
                await put(store, {"sku": "S1", "quantity": 0, "warehouse": "NYC"},
                          {"sku": "S5", "quantity": 2, "warehouse": "NYC"})
                await asyncio.to_thread(delete, store, "inventory", "S3")
                await async_wait_until(lambda: store.webhook(webhook["id"]).pending == 3, what="the changes routed")
                await client.patch(f"/v1/webhooks/{webhook['id']}", json={"interval": 1})
                first = (await async_wait_until(lambda: hook.delivered("/a"), what="the first notification"))[0]
                verified = standardwebhooks.Webhook(webhook["secret"]).verify(first.body, first.headers)
                assert first.headers["webhook-id"] == verified["data"]["batch_id"]
                assert verified["type"] == "batch.ready" and verified["data"]["webhook_id"] == webhook["id"]
                records = await records_of(client, verified)
                # NYC (the scope) and quantity < 5 (the query); each key once, at its latest change.
                assert [(r["key"], r["op"], r["version"]) for r in records] == [
                    ("S1", "updated", 2), ("S3", "deleted", 2), ("S5", "updated", 2)]
                assert records[0]["data"]["quantity"] == 0
                # Intervals without changes send nothing; the next change, one more notification.
                sealed_at = store.webhook(webhook["id"]).last_batch_at
                await async_wait_until(lambda: store.webhook(webhook["id"]).next_run_at > sealed_at + 2500,
                                       what="two more intervals")
                assert len(hook.received("/a")) == 1
                await put(store, {"sku": "S7", "quantity": 1, "warehouse": "NYC"},
                          {"sku": "S9", "quantity": 1, "warehouse": "LA"})
                second = (await async_wait_until(lambda: hook.delivered("/a")[1:], what="the second notification"))[0]
                assert [r["key"] for r in await records_of(client, second.json)] == ["S7"]
                assert second.headers["webhook-id"] != first.headers["webhook-id"]
                listed = (await client.get(f"/v1/webhooks/{webhook['id']}/batches")).json()
                assert [b["id"] for b in listed] == [second.json["data"]["batch_id"], verified["data"]["batch_id"]]
                assert all(b["fetched_at"] for b in listed)

    run(main())


def test_a_receiver_that_fails_for_a_while_gets_the_same_webhook_id_again_and_every_change(project: Project) -> None:
    async def main() -> None:
        with receiver() as hook:
            failing = {"on": True}
            hook.answer = lambda received: (503, {}) if failing["on"] else (200, {})
            async with running(project, SETTINGS.replace("[0.2, 0.2, 0.3]", "[0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3]")) as (
                _runtime, store, base,
            ), partner_client(store, base) as client:
                webhook = await create(client, hook.url + "/down")
                await put(store, {"sku": "A", "quantity": 1})
                await async_wait_until(lambda: len(hook.received("/down")) >= 2, what="a retry")
                retried = hook.received("/down")
                assert retried[0].headers["webhook-id"] == retried[1].headers["webhook-id"]
                # Later intervals go on sealing their own batches while the callback is down.
                await put(store, {"sku": "B", "quantity": 2})
                await async_wait_until(lambda: len({r.headers["webhook-id"] for r in hook.received("/down")}) >= 2,
                                       what="a second batch while down")
                await put(store, {"sku": "A", "quantity": 3})
                status = (await client.get(f"/v1/webhooks/{webhook['id']}")).json()
                assert status["delivery"] == "retrying"
                failing["on"] = False
                await async_wait_until(lambda: {r.headers["webhook-id"] for r in hook.delivered("/down")} >= {
                    r.headers["webhook-id"] for r in hook.received("/down")[:1]}, what="the first batch delivered")

                def settled() -> bool:  # nothing left to seal and every sealed batch's notification delivered
                    batches = store.batches(store.webhook(webhook["id"]).rid)
                    return store.webhook(webhook["id"]).pending == 0 and len(batches) >= 3 and all(
                        b.delivered_at for b in batches)

                await async_wait_until(settled, what="every batch delivered")
                seen: dict[str, int] = {}
                for received in hook.delivered("/down"):
                    for record in await records_of(client, received.json):
                        seen[record["key"]] = max(seen.get(record["key"], 0), record["version"])
                assert seen == {"A": 2, "B": 1}  # every change of the outage arrived in some batch
                assert (await client.get(f"/v1/webhooks/{webhook['id']}")).json()["delivery"] == "ok"

    run(main())


def test_after_the_last_retry_the_webhook_is_failing_its_batches_stay_unfetched_and_replay_resends(
    project: Project,
) -> None:
    async def main() -> None:
        with receiver() as hook:
            hook.answer = lambda received: (500, {})
            async with running(project) as (runtime, store, base), partner_client(store, base) as client:
                webhook = await create(client, hook.url + "/broken")
                await put(store, {"sku": "A", "quantity": 1})
                await async_wait_until(lambda: len(hook.received("/broken")) == 4, what="1 attempt + 3 retries")

                async def state() -> str:
                    return (await client.get(f"/v1/webhooks/{webhook['id']}")).json()["delivery"]

                for _ in range(200):
                    if await state() == "failing":
                        break
                    await asyncio.sleep(0.02)
                assert await state() == "failing"
                report = status_report(store, runtime.config, system=runtime.system)["webhooks"]
                assert [(w["id"], w["partner"], w["delivery"], w["unfetched"], w["failed"]) for w in report] == [
                    (webhook["id"], "acme", "failing", 1, 1)]
                [batch] = (await client.get(f"/v1/webhooks/{webhook['id']}/batches", params={"status": "unfetched"})).json()
                assert batch["attempts"] == 4 and batch["next_attempt_at"] is None and "HTTP 500" in batch["last_error"]
                await put(store, {"sku": "B", "quantity": 1})  # a new batch while failing: its own schedule
                await async_wait_until(lambda: len({r.headers["webhook-id"] for r in hook.received("/broken")}) == 2)
                hook.answer = lambda received: (204, {})
                replayed = await client.post(f"/v1/webhooks/{webhook['id']}/replay")
                assert replayed.status_code == 202 and replayed.json()["replayed"] == 2  # A's and B's: both unfetched
                await async_wait_until(lambda: batch["id"] in {r.headers["webhook-id"] for r in hook.delivered("/broken")},
                                       what="the replayed notification")
                assert len(await records_of(client, {"data": {"url": batch["url"], "records": 1}})) == 1  # still fetchable
                for _ in range(200):
                    if await state() == "ok":
                        break
                    await asyncio.sleep(0.02)
                assert await state() == "ok"

    run(main())


def test_410_disables_redirects_are_not_followed_and_retry_after_is_honoured(project: Project) -> None:
    async def main() -> None:
        with receiver() as hook:
            answers = {"/gone": (410, {}), "/moved": (302, {"location": "/elsewhere"}),
                       "/busy": (429, {"retry-after": "3600"})}
            hook.answer = lambda received: answers.get(received.path, (204, {}))
            async with running(project) as (_runtime, store, base), partner_client(store, base) as client:
                gone = await create(client, hook.url + "/gone")
                moved = await create(client, hook.url + "/moved")
                busy = await create(client, hook.url + "/busy")
                await put(store, {"sku": "A", "quantity": 1})

                async def shown(webhook: dict[str, Any]) -> dict[str, Any]:
                    return (await client.get(f"/v1/webhooks/{webhook['id']}")).json()

                for _ in range(300):
                    if (await shown(gone))["status"] == "disabled":
                        break
                    await asyncio.sleep(0.02)
                assert (await shown(gone))["status"] == "disabled" and (await shown(gone))["delivery"] == "disabled"
                await async_wait_until(lambda: len(hook.received("/moved")) >= 2, what="the redirect retried")
                assert hook.received("/elsewhere") == []
                await async_wait_until(lambda: store.batches(store.webhook(busy["id"]).rid)[0].attempts == 1)
                [listed] = store.batches(store.webhook(busy["id"]).rid)
                assert listed.next_attempt_at is not None and listed.next_attempt_at - listed.created_at >= 3_500_000
                assert len(hook.received("/busy")) == 1
                assert len(hook.received("/gone")) == 1  # nothing more to a disabled webhook
                # Turned on again, it gets what waited.
                answers["/gone"] = (204, {})
                assert (await client.patch(f"/v1/webhooks/{gone['id']}", json={"status": "active"})).json()["status"] == "active"
                await async_wait_until(lambda: hook.delivered("/gone"), what="the notification after re-enabling")
                assert moved["id"]

    run(main())


def test_a_hanging_callback_never_delays_another_webhook(project: Project) -> None:
    async def main() -> None:
        with receiver() as slow, receiver() as fast:
            import threading

            slow.hold = threading.Event()  # never answers until the test ends (past the 2 s timeout)
            async with running(project) as (_runtime, store, base), partner_client(store, base) as client:
                await create(client, slow.url + "/slow")
                await put(store, {"sku": "A", "quantity": 1})
                await async_wait_until(lambda: slow.received("/slow"), what="the slow callback called")
                await create(client, fast.url + "/fast")
                for round_ in range(3):
                    await put(store, {"sku": "B", "quantity": round_})
                    await async_wait_until(lambda n=round_: len(fast.delivered("/fast")) == n + 1, timeout=10,
                                           what="the fast webhook served while the slow one hangs")

    run(main())


def test_true_up_and_all_mode_batches_hold_every_matching_object_as_snapshots(project: Project) -> None:
    async def main() -> None:
        with receiver() as hook:
            async with running(project) as (_runtime, store, base), partner_client(store, base, scope=NYC) as client:
                await put(store, *({"sku": f"S{i:03d}", "quantity": i % 7, "warehouse": "NYC" if i % 2 else "SFO"}
                                   for i in range(2500)))  # past one snapshot page
                expected = sorted(f"S{i:03d}" for i in range(2500) if i % 2 and i % 7 < 3)
                webhook = await create(client, hook.url + "/changes", query={"quantity": {"lt": 3}}, interval=600)
                everything = await create(client, hook.url + "/all", query={"quantity": {"lt": 3}}, mode="all")
                await client.post(f"/v1/webhooks/{webhook['id']}/true-up")
                await client.patch(f"/v1/webhooks/{webhook['id']}", json={"interval": 1})
                for path in ("/changes", "/all"):
                    notification = (await async_wait_until(lambda p=path: hook.delivered(p), what=path))[0].json
                    assert notification["data"]["true_up"] is True
                    records = await records_of(client, notification)
                    assert [r["key"] for r in records] == expected
                    assert {r["op"] for r in records} == {"snapshot"} and all(r["changed_fields"] == [] for r in records)
                # After a true-up the webhook is back to changes; mode all seals a snapshot every interval.
                await put(store, {"sku": "S001", "quantity": 0, "warehouse": "NYC"})
                later = (await async_wait_until(lambda: hook.delivered("/changes")[1:], what="a change batch"))[0].json
                assert later["data"]["true_up"] is False
                assert [(r["key"], r["op"]) for r in await records_of(client, later)] == [("S001", "updated")]
                await async_wait_until(lambda: len(hook.delivered("/all")) >= 2, what="a second all-data batch")
                assert hook.delivered("/all")[1].json["data"]["true_up"] is True
                assert everything["mode"] == "all"

    run(main())


def test_a_restart_resumes_the_retry_schedule_where_it_was(project: Project) -> None:
    settings = SETTINGS.replace("[0.2, 0.2, 0.3]", "[0.2, 3600]")

    async def main() -> None:
        with receiver() as down, receiver() as up:
            down.answer = lambda received: (500, {})
            async with running(project, settings) as (_runtime, store, base), partner_client(store, base) as client:
                failing = await create(client, down.url + "/down")
                await put(store, {"sku": "A", "quantity": 1})
                rid = store.webhook(failing["id"]).rid
                await async_wait_until(lambda: [b.attempts for b in store.batches(rid)] == [2], what="two attempts")
                [before] = store.batches(rid)
                token = client.headers["authorization"]
            async with running(project, settings) as (_runtime, store, base), httpx.AsyncClient(
                base_url=base, headers={"Authorization": token}
            ) as client:
                await create(client, up.url + "/up")
                await put(store, {"sku": "B", "quantity": 1})
                await async_wait_until(lambda: up.delivered("/up"), what="the restarted sender at work")
                [_new, after] = store.batches(rid)
                assert (after.id, after.attempts, after.next_attempt_at) == (before.id, 2, before.next_attempt_at)
                assert len([r for r in down.received("/down") if r.headers["webhook-id"] == before.id]) == 2

    run(main())


def test_all_data_webhooks_at_one_second_do_not_grow_the_store_with_each_batch(project: Project) -> None:
    # What once grew leo.db by 23.5 MB in 30 s: five mode-all webhooks at 1 s over 24 unchanged
    # objects copied all of them into every batch. Unchanged snapshots now share their lines.
    async def main() -> None:
        with receiver() as hook:
            async with running(project) as (_runtime, store, base), partner_client(store, base) as client:
                await put(store, *({"sku": f"S{i:02d}", "quantity": i, "pad": "x" * 500} for i in range(24)))
                made = [await create(client, f"{hook.url}/all{n}", mode="all") for n in range(5)]
                rids = [store.webhook(webhook["id"]).rid for webhook in made]
                await async_wait_until(lambda: all(len(store.batches(rid)) >= 3 for rid in rids), timeout=60,
                                       what="three all-data batches of each webhook")
                lines = store._conn().execute("SELECT COUNT(*) FROM batch_lines").fetchone()[0]
                assert lines == 5 * 24  # one copy per webhook, however many batches
                latest = store.batches(rids[0])[0]
                assert latest.records == 24
                notification = {"data": {"url": f"{base}/v1/batches/{latest.id}", "records": 24}}
                assert len(await records_of(client, notification)) == 24

    run(main())
