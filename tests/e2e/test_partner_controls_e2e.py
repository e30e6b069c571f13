"""Secret rotation and chosen replays against real `leo run` processes, the real CLI beside them,
a real receiver and the Standard Webhooks reference verifier; a restart in between changes nothing."""

from __future__ import annotations

import json
import time
from datetime import datetime

import httpx

from leo_runtime.store.base_webhooks import BotSubscription, RouteChanges

from ..conftest import Project, leo, wait_until
from ..receiver import Received, Receiver, receiver
from ..test_webhooks_partner_controls import verifies
from ..webhook_helpers import commit
from .test_webhooks_e2e import PARTNER_PROJECT, ingest, started


def cli(project: Project, *args: str) -> dict | list:
    done = leo("webhooks", *args, "--json", "-f", str(project.file))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def batch_notified(hook: Receiver, count: int) -> Received | None:
    """The first notification of the `count`th batch delivered. A notification may come twice (it
    was delivered just before a `leo run` stopped, its outcome not yet recorded: at least once)."""
    firsts: dict[str, Received] = {}
    for received in hook.delivered("/h"):
        firsts.setdefault(received.headers["webhook-id"], received)
    return list(firsts.values())[count - 1] if len(firsts) >= count else None


def test_a_rotation_survives_a_restart_and_the_old_secret_stops_when_it_expires(project: Project, leo_run) -> None:
    with receiver() as hook:
        run, token, made = started(project, leo_run, hook)
        first = made["secret"]
        # The operator rotates it (a partner could POST /rotate-secret): printed once, stored at once.
        rotated = cli(project, "rotate-secret", made["id"], "--expire-old-after", "3600")
        second = rotated["secret"]
        assert second.startswith("whsec_") and second != first and rotated["old_secret_expires_at"]
        [listed] = cli(project, "list")
        assert listed["old_secret_expires_at"] == rotated["old_secret_expires_at"] and "secret" not in listed
        assert run.stop() == 0
        again = leo_run(project, "--port", "0")  # a restart in between changes nothing
        again.wait_ready()
        ingest(project, {"sku": "A", "quantity": 1})
        during = wait_until(lambda: batch_notified(hook, 1), timeout=90, what="a notification after the restart")
        assert during.headers["webhook-signature"].count("v1,") == 2
        assert verifies(first, during) and verifies(second, during)
        # Rotated again over the API with a 2 s grace: the secret kept from before is dropped at once.
        with httpx.Client(base_url=again.http, headers={"Authorization": f"Bearer {token}"}) as client:
            answer = client.post(f"/v1/webhooks/{made['id']}/rotate-secret", json={"expire_old_after": 2})
        assert answer.status_code == 200, answer.text
        third, expires = answer.json()["secret"], datetime.fromisoformat(answer.json()["old_secret_expires_at"])
        ingest(project, {"sku": "B", "quantity": 1})
        second_rotation = wait_until(lambda: batch_notified(hook, 2), timeout=90,
                                     what="a notification during the second rotation")
        # (whether `second` still signs it depends on the machine's speed)
        assert verifies(third, second_rotation) and not verifies(first, second_rotation)
        assert again.stop() == 0
        wait_until(lambda: time.time() > expires.timestamp(), timeout=10, what="the old secret to expire")
        last = leo_run(project, "--port", "0")
        last.wait_ready()
        ingest(project, {"sku": "C", "quantity": 1})
        after = wait_until(lambda: batch_notified(hook, 3), timeout=90, what="a notification after the old secret expired")
        assert after.headers["webhook-signature"].count("v1,") == 1
        assert verifies(third, after) and not verifies(second, after)
        assert last.stop() == 0


def test_operators_list_a_webhooks_batches_and_replay_chosen_ones_beside_leo_run(project: Project, leo_run) -> None:
    with receiver() as hook:
        run, token, made = started(project, leo_run, hook)
        with httpx.Client(base_url=run.http, headers={"Authorization": f"Bearer {token}"}) as client:
            for count, key in enumerate(("A", "B"), start=1):
                ingest(project, {"sku": key, "quantity": 1})
                wait_until(lambda count=count: len(hook.delivered("/h")) == count, what=f"the batch of {key}")
            first, second = (received.headers["webhook-id"] for received in hook.delivered("/h"))
            wait_until(lambda: all(b["delivered_at"] for b in cli(project, "batches", made["id"])), what="deliveries")
            assert client.get(f"/v1/batches/{first}").status_code == 200
        listed = cli(project, "batches", made["id"])
        assert [b["id"] for b in listed] == [second, first]  # newest first
        assert listed[1]["url"] == f"http://127.0.0.1:8765/v1/batches/{first}"  # server.public_url's default base
        assert listed[1]["fetched_at"] and listed[1]["attempts"] == 1 and listed[1]["records"] == 1
        assert [b["id"] for b in cli(project, "batches", made["id"], "--status", "unfetched")] == [second]
        table = leo("webhooks", "batches", made["id"], "-f", str(project.file), env={"COLUMNS": "300"})
        assert table.returncode == 0 and first in table.stdout and second in table.stdout
        replayed = cli(project, "replay", made["id"], "--batch", first, "--batch", first)
        assert replayed == {"id": made["id"], "replayed": 1, "batch_ids": [first]}
        wait_until(lambda: [r.headers["webhook-id"] for r in hook.delivered("/h")].count(first) == 2,
                   what="the chosen batch notified again")
        refused = leo("webhooks", "replay", made["id"], "--batch", first, "--batch", "bat_nope", "-f", str(project.file))
        assert refused.returncode == 2 and refused.stderr.strip().splitlines() == [
            f"error: no batch 'bat_nope' in webhook '{made['id']}'; nothing was replayed"]
        assert [b["attempts"] for b in cli(project, "batches", made["id"])] == [1, 2]  # nothing more was sent
        assert run.stop() == 0


def test_cli_rotation_refuses_what_it_cannot_rotate(project: Project) -> None:
    project.write(PARTNER_PROJECT)
    store = project.store()
    try:  # a batcher bot's subscription, as its first run makes it
        subscription = BotSubscription("bot:erp-batches", "inventory.low", "erp-batches", 60_000, "erp.batches", None)
        commit(store, RouteChanges([(0, 1, "A")], subscription), bot="erp-batches")
    finally:
        store.close()
    batcher = leo("webhooks", "rotate-secret", "erp-batches", "-f", str(project.file))
    assert batcher.returncode == 2 and batcher.stderr.strip().splitlines() == [
        "error: 'erp-batches' is a batcher bot: its webhook_sender signs with the secret in pipelines.yaml; change it there"]
    unknown = leo("webhooks", "rotate-secret", "wh_nope", "-f", str(project.file))
    assert unknown.returncode == 2 and "unknown webhook 'wh_nope'" in unknown.stderr
    too_long = leo("webhooks", "rotate-secret", "erp-batches", "--expire-old-after", "604801", "-f", str(project.file))
    assert too_long.returncode == 2
    assert leo("webhooks", "batches", "wh_nope", "-f", str(project.file)).returncode == 2
    assert leo("webhooks", "batches", "erp-batches", "-f", str(project.file)).returncode == 0
