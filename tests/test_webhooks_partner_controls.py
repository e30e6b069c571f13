"""What a partner controls of its webhook, over the real API with a real receiver: rotating the
signing secret (both secrets sign until the old one expires) and replaying chosen batches (all or
nothing, only its own)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import standardwebhooks

from leo_runtime.store import Store

from .conftest import Project, async_wait_until
from .receiver import Received, receiver
from .test_webhooks_runtime import create, partner_client, put, run, running


def verifies(secret: str, received: Received) -> bool:
    """Whether the Standard Webhooks reference verifier accepts the notification with `secret`."""
    try:
        standardwebhooks.Webhook(secret).verify(received.body, received.headers)
    except standardwebhooks.webhooks.WebhookVerificationError:
        return False
    return True


async def batches_of(client: httpx.AsyncClient, webhook_id: str) -> dict[str, dict[str, Any]]:
    listed = await client.get(f"/v1/webhooks/{webhook_id}/batches")
    assert listed.status_code == 200, listed.text
    return {batch["id"]: batch for batch in listed.json()}


def ids_received(hook: Any, path: str) -> list[str]:
    return [r.headers["webhook-id"] for r in hook.delivered(path)]


def test_after_a_rotation_both_secrets_verify_until_the_old_one_expires(project: Project) -> None:
    async def main() -> None:
        with receiver() as hook:
            async with running(project) as (_, store, base), partner_client(store, base) as client:
                webhook = await create(client, hook.url + "/h")
                first = webhook["secret"]
                rotated = await client.post(f"/v1/webhooks/{webhook['id']}/rotate-secret", json={"expire_old_after": 3600})
                assert rotated.status_code == 200, rotated.text
                second = rotated.json()["secret"]
                assert second.startswith("whsec_") and second != first
                expires = datetime.fromisoformat(rotated.json()["old_secret_expires_at"])
                assert abs(expires - datetime.now(tz=UTC) - timedelta(hours=1)) < timedelta(minutes=1)
                shown = (await client.get(f"/v1/webhooks/{webhook['id']}")).json()
                assert shown["old_secret_expires_at"] == rotated.json()["old_secret_expires_at"] and "secret" not in shown
                await put(store, {"sku": "A", "quantity": 1})
                await async_wait_until(lambda: hook.delivered("/h"), what="a notification during the rotation")
                during = hook.delivered("/h")[0]
                assert len(during.headers["webhook-signature"].split(" ")) == 2
                assert verifies(first, during) and verifies(second, during)  # receivers with either secret accept it
                # Rotating again with no grace: only the newest signs; the two before it no longer do.
                again = await client.post(f"/v1/webhooks/{webhook['id']}/rotate-secret", json={"expire_old_after": 0})
                assert again.status_code == 200 and again.json()["old_secret_expires_at"] is None
                third = again.json()["secret"]
                await put(store, {"sku": "B", "quantity": 1})
                await async_wait_until(lambda: len(hook.delivered("/h")) == 2, what="a notification after it")
                after = hook.delivered("/h")[1]
                assert " " not in after.headers["webhook-signature"]
                assert verifies(third, after) and not verifies(second, after) and not verifies(first, after)
                assert (await client.get(f"/v1/webhooks/{webhook['id']}")).json()["old_secret_expires_at"] is None
                # Without a body the old secret signs for a day.
                default = await client.post(f"/v1/webhooks/{webhook['id']}/rotate-secret")
                assert default.status_code == 200, default.text
                expires = datetime.fromisoformat(default.json()["old_secret_expires_at"])
                assert abs(expires - datetime.now(tz=UTC) - timedelta(days=1)) < timedelta(minutes=1)

    run(main())


def test_rotating_is_for_the_partners_own_webhooks_and_checks_its_input(project: Project) -> None:
    async def main() -> None:
        with receiver() as hook:
            async with running(project) as (_, store, base), partner_client(store, base) as acme, \
                    partner_client(store, base, "globex") as globex:
                webhook = await create(acme, hook.url + "/h")
                stolen = await globex.post(f"/v1/webhooks/{webhook['id']}/rotate-secret", json={"expire_old_after": 0})
                assert stolen.status_code == 404 and stolen.headers["content-type"] == "application/problem+json"
                assert stolen.json()["detail"] == f"no webhook '{webhook['id']}'"
                for body in ({"expire_old_after": -1}, {"expire_old_after": 604_801}, {"expire_old_after": "3600"},
                             {"expire_old_after": 1.5}, {"expire_old_after": True}, {"expire_old_after": None},
                             {"expire": 5}, [], "x"):
                    refused = await acme.post(f"/v1/webhooks/{webhook['id']}/rotate-secret", json=body)
                    assert refused.status_code == 422, (body, refused.text)
                    assert refused.headers["content-type"] == "application/problem+json"
                unsent = await acme.post(f"/v1/webhooks/{webhook['id']}/rotate-secret", content=b'{"expire_old_after": 5}')
                assert unsent.status_code == 415  # a body needs its Content-Type
                assert (await acme.post("/v1/webhooks/wh_nope/rotate-secret")).status_code == 404
                # Nothing above changed the secret: the webhook's first one still verifies alone.
                await put(store, {"sku": "A", "quantity": 1})
                await async_wait_until(lambda: hook.delivered("/h"), what="a notification")
                notified = hook.delivered("/h")[0]
                assert " " not in notified.headers["webhook-signature"] and verifies(webhook["secret"], notified)

    run(main())


async def delivered_batches(client: httpx.AsyncClient, store: Store, hook: Any, path: str) -> tuple[str, list[str]]:
    """A webhook of the client's partner with two batches, both delivered to `path` (and recorded)."""
    webhook = await create(client, hook.url + path)
    for count, key in enumerate(("A", "B"), start=1):
        await put(store, {"sku": key, "quantity": 1})
        await async_wait_until(lambda count=count: len(hook.delivered(path)) == count, what=f"the batch of {key}")
    ids = ids_received(hook, path)
    for _ in range(500):  # the sender records the outcomes a tick after the receiver answered
        listed = await batches_of(client, webhook["id"])
        if all(listed[id_]["delivered_at"] for id_ in ids):
            break
        await asyncio.sleep(0.02)
    return webhook["id"], ids


def test_a_chosen_replay_resends_exactly_those_batches(project: Project) -> None:
    async def main() -> None:
        with receiver() as hook:
            async with running(project) as (_, store, base), partner_client(store, base) as client:
                webhook_id, (first, second) = await delivered_batches(client, store, hook, "/h")
                assert (await client.get(f"/v1/batches/{first}")).status_code == 200  # downloaded: replayed all the same
                replayed = await client.post(f"/v1/webhooks/{webhook_id}/replay", json={"batch_ids": [first, first]})
                assert replayed.status_code == 202 and replayed.json() == {"replayed": 1}  # a repeated id counts once
                await async_wait_until(lambda: ids_received(hook, "/h").count(first) == 2, what="the chosen batch again")
                listed = await batches_of(client, webhook_id)
                assert (listed[second]["attempts"], listed[second]["next_attempt_at"]) == (1, None)  # not the other one
                assert ids_received(hook, "/h").count(second) == 1
                again = hook.delivered("/h")[-1]
                assert json.loads(again.body)["data"]["batch_id"] == first
                # Without a body: every batch not downloaded yet, as before (the second one only).
                everything = await client.post(f"/v1/webhooks/{webhook_id}/replay")
                assert everything.status_code == 202 and everything.json() == {"replayed": 1}
                await async_wait_until(lambda: ids_received(hook, "/h").count(second) == 2, what="the unfetched batch")
                assert ids_received(hook, "/h").count(first) == 2

    run(main())
