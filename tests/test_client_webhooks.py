"""The partner client against the real webhook endpoints: register with `create_webhook`, get a
signed notification at a real receiver, check it with `verify_webhook` (the client's own, not
the server's code), download the batch with `fetch_batch`, ask a true-up with `true_up`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from leo_runtime.client import AsyncLeoClient, LeoAPIError, LeoClient, WebhookVerificationError, verify_webhook

from .conftest import Project, async_wait_until, wait_until
from .receiver import Receiver, receiver
from .streams_helpers import STREAMS_PROJECT, RunningRuntime, running_runtime

PROJECT = STREAMS_PROJECT.replace("server: {port: 0}", "server: {port: 0, allow_private_callbacks: true}")


@pytest.fixture
def rt(project: Project, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningRuntime]:
    with running_runtime(project, monkeypatch, PROJECT) as running:
        yield running


@pytest.fixture
def hook_receiver() -> Iterator[Receiver]:
    with receiver() as listening:
        yield listening


def test_a_partner_registers_verifies_fetches_and_trues_up_with_the_client(
    rt: RunningRuntime, hook_receiver: Receiver
) -> None:
    token = rt.partner("acme", scope={"warehouse": "NYC"})
    with LeoClient(rt.url, token) as client:
        hook = client.create_webhook("inventory", f"{hook_receiver.url}/leo", 1, query={"quantity": {"lt": 5}})
        assert hook["secret"].startswith("whsec_") and hook["interval"] == 1 and hook["mode"] == "changes"
        rt.ingest("inventory", [
            {"sku": "A", "warehouse": "NYC", "quantity": 1},
            {"sku": "B", "warehouse": "NYC", "quantity": 9},   # outside the query
            {"sku": "C", "warehouse": "LAX", "quantity": 1},   # outside the scope
        ])
        first = wait_until(lambda: hook_receiver.delivered("/leo"), what="a notification")[0]
        notification = verify_webhook(hook["secret"], first.headers, first.body)
        assert notification["type"] == "batch.ready"
        assert notification["data"]["batch_id"] == first.headers["webhook-id"]
        assert notification["data"]["records"] == 1 and notification["data"]["true_up"] is False
        with pytest.raises(WebhookVerificationError):
            verify_webhook(hook["secret"], first.headers, first.body.replace(b'"records":1', b'"records":9'))
        records = list(client.fetch_batch(notification["data"]["url"]))
        assert [(r["key"], r["op"], r["version"]) for r in records] == [("A", "created", 1)]

        client.true_up(hook["id"])
        rt.ingest("inventory", [{"sku": "D", "warehouse": "NYC", "quantity": 2}])
        true_up = wait_until(
            lambda: [r for r in hook_receiver.delivered("/leo") if verify_webhook(hook["secret"], r.headers, r.body)
                     ["data"]["true_up"]],
            what="the true-up's notification",
        )[0]
        url = verify_webhook(hook["secret"], true_up.headers, true_up.body)["data"]["url"]
        snapshot = list(client.fetch_batch(url))
        assert sorted((r["key"], r["op"]) for r in snapshot) == [("A", "snapshot"), ("D", "snapshot")]

    # Another partner cannot fetch it (the same answer as for a batch that does not exist).
    with LeoClient(rt.url, rt.partner("other")) as stranger, pytest.raises(LeoAPIError) as refused:
        list(stranger.fetch_batch(url))
    assert refused.value.status == 404


def test_the_async_client_does_the_same(rt: RunningRuntime, hook_receiver: Receiver) -> None:
    token = rt.partner("acme")

    async def main() -> list[dict]:
        async with AsyncLeoClient(rt.url, token) as client:
            hook = await client.create_webhook("inventory", f"{hook_receiver.url}/async", "PT1S")
            rt.ingest("inventory", [{"sku": "Z", "warehouse": "NYC", "quantity": 3}])
            received = (await async_wait_until(lambda: hook_receiver.delivered("/async"), what="a notification"))[0]
            url = verify_webhook(hook["secret"], received.headers, received.body)["data"]["url"]
            return [record async for record in client.fetch_batch(url)]

    assert [(r["key"], r["data"]["quantity"]) for r in asyncio.run(main())] == [("Z", 3)]


def test_the_clients_list_replay_and_rotate(rt: RunningRuntime, hook_receiver: Receiver) -> None:
    token = rt.partner("acme")
    with LeoClient(rt.url, token) as client:
        hook = client.create_webhook("inventory", f"{hook_receiver.url}/leo", 1)
        rt.ingest("inventory", [{"sku": "A", "quantity": 1}])
        first = wait_until(lambda: hook_receiver.delivered("/leo"), what="a notification")[0]
        batch_id = first.headers["webhook-id"]
        wait_until(lambda: client.list_batches(hook["id"])[0]["delivered_at"], what="the delivery recorded")
        assert [b["id"] for b in client.list_batches(hook["id"], status="unfetched")] == [batch_id]
        rotated = client.rotate_secret(hook["id"], expire_old_after=600)
        assert rotated["secret"].startswith("whsec_") and rotated["old_secret_expires_at"]
        assert client.replay(hook["id"], [batch_id]) == 1
        again = wait_until(lambda: hook_receiver.delivered("/leo")[1:], what="the chosen replay")[0]
        for secret in (hook["secret"], rotated["secret"]):  # both sign while the old one lives
            assert verify_webhook(secret, again.headers, again.body)["data"]["batch_id"] == batch_id
        with pytest.raises(LeoAPIError) as refused:
            client.replay(hook["id"], ["bat_nope"])
        assert refused.value.status == 404 and "nothing was replayed" in str(refused.value)
    async def the_async_client() -> None:
        async with AsyncLeoClient(rt.url, token) as client:
            assert len(await client.list_batches(hook["id"])) == 1
            assert await client.replay(hook["id"]) == 1  # every unfetched batch
            assert (await client.rotate_secret(hook["id"], expire_old_after=0))["old_secret_expires_at"] is None
    asyncio.run(the_async_client())
