"""Webhooks against real `leo run` processes, the real CLI beside them and a real receiver."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import standardwebhooks

from ..conftest import STORES, LeoRun, Project, leo, ndjson, wait_until
from ..receiver import Receiver, receiver

ADMIN = "e2e-admin-webhooks"
SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk="
PARTNER_PROJECT = """
version: 1
server: {allow_private_callbacks: true}
webhooks: {timeout: 30, retry_schedule: [0.2, 0.2]}
object_types:
  inventory: {key: sku}
pipelines:
  feed:
    bots:
      - {id: low, use: filter, in: inventory.changes, with: {query: {quantity: {lt: 5}}}, out: inventory.low}
"""
INTEGRATOR_PROJECT = """
version: 1
webhooks: {timeout: 5, retry_schedule: [0.2, 0.5]}
object_types:
  inventory: {key: sku}
pipelines:
  erp:
    bots:
      - {id: low-stock, use: filter, in: inventory.changes, with: {query: {quantity: {lt: 5}}}, out: inventory.low_stock}
      - id: erp-batches
        use: batcher
        in: inventory.low_stock
        with: {interval: 1, readers: [erp]}
        out: erp.batches
      - id: erp-notify
        use: webhook_sender
        in: erp.batches
        with: {url: "${ERP_WEBHOOK_URL}", secret: "${ERP_WEBHOOK_SECRET}"}
"""


def token_of(project: Project, name: str, env: dict[str, str] | None = None) -> str:
    made = leo("partners", "create", name, "--json", "-f", str(project.file), env=env)
    assert made.returncode == 0, made.stderr
    return json.loads(made.stdout)["token"]


def ingest(project: Project, *items: dict, env: dict[str, str] | None = None) -> None:
    path = project.root / "items.ndjson"
    path.write_text(ndjson(list(items)))
    done = leo("ingest", "inventory", str(path), "-f", str(project.file), env=env)
    assert done.returncode == 0, done.stderr


def started(project: Project, leo_run: Callable[..., LeoRun], hook: Receiver) -> tuple[LeoRun, str, dict[str, Any]]:
    """`leo run` on the partner project, acme's token, and its webhook notifying `hook` at /h each second."""
    project.write(PARTNER_PROJECT)
    run = leo_run(project, "--port", "0")
    run.wait_ready()
    token = token_of(project, "acme")
    with httpx.Client(base_url=run.http, headers={"Authorization": f"Bearer {token}"}) as client:
        made = client.post("/v1/webhooks", json={"object_type": "inventory", "callback_url": hook.url + "/h",
                                                  "interval": 1})
    assert made.status_code == 201, made.text
    return run, token, made.json()


@pytest.mark.parametrize("project", STORES, indirect=True)
def test_kill_9_between_sealing_and_delivering_delivers_after_restart(project: Project, leo_run) -> None:
    with receiver() as hook:
        hook.hold = threading.Event()  # the first notification hangs: sealed, not delivered
        run, token, made = started(project, leo_run, hook)
        with httpx.Client(base_url=run.http, headers={"Authorization": f"Bearer {token}"}) as client:
            ingest(project, {"sku": "A", "quantity": 1})
            wait_until(lambda: hook.received("/h"), what="the notification in flight")
            batch_id = hook.received("/h")[0].headers["webhook-id"]
        run.proc.send_signal(signal.SIGKILL)
        run.proc.wait(10)
        hook.hold.set()  # its answer goes to a dead connection
        hook.hold = None
        again = leo_run(project, "--port", "0")
        again.wait_ready()
        wait_until(lambda: any(r.headers["webhook-id"] == batch_id for r in hook.delivered("/h")),
                   what="the same notification after the restart")
        assert json.loads(hook.delivered("/h")[0].body)["data"]["batch_id"] == batch_id
        with httpx.Client(base_url=again.http, headers={"Authorization": f"Bearer {token}"}) as client:
            listed = client.get(f"/v1/webhooks/{made['id']}/batches").json()
            wait_until(lambda: client.get(f"/v1/webhooks/{made['id']}/batches").json()[0]["delivered_at"],
                       what="the delivery recorded")
            assert [b["id"] for b in listed] == [batch_id]
            batch = client.get(f"/v1/batches/{batch_id}")
            assert [json.loads(line)["key"] for line in batch.text.splitlines()] == ["A"]
        assert again.stop() == 0


def test_an_integrators_batcher_and_webhook_sender_with_the_cli_beside_them(project: Project, leo_run) -> None:
    project.write(INTEGRATOR_PROJECT)
    with receiver() as erp:
        env = {"ERP_WEBHOOK_URL": erp.url + "/erp", "ERP_WEBHOOK_SECRET": SECRET, "LEO_ADMIN_TOKEN": ADMIN}
        run = leo_run(project, "--port", "0", env=env)
        run.wait_ready()
        reader, stranger = token_of(project, "erp", env), token_of(project, "other", env)
        ingest(project, {"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 9}, {"sku": "C", "quantity": 2}, env=env)
        ingest(project, {"sku": "A", "quantity": 0}, env=env)
        wait_until(lambda: erp.delivered("/erp"), what="the ERP notified")
        first = erp.delivered("/erp")[0]
        body = standardwebhooks.Webhook(SECRET).verify(first.body, first.headers)
        assert body["data"]["webhook_id"] == "erp-batches" and first.headers["webhook-id"] == body["data"]["batch_id"]
        url = body["data"]["url"]
        assert url.startswith(run.http + "/v1/batches/")
        # Every change of the low-stock queue is in some batch, each key at its latest state per batch.
        seen: dict[str, int] = {}
        for received in erp.delivered("/erp"):
            for line in httpx.get(received.json["data"]["url"], headers={"Authorization": f"Bearer {reader}"}).text.splitlines():
                record = json.loads(line)
                seen[record["key"]] = max(seen.get(record["key"], 0), record["version"])
        wait_until(lambda: len(erp.delivered("/erp")) >= 1 and seen, what="records")
        assert httpx.get(url, headers={"Authorization": f"Bearer {stranger}"}).status_code == 404
        assert httpx.get(url, headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 200
        listed = leo("webhooks", "list", "--json", "-f", str(project.file), env=env)
        assert listed.returncode == 0, listed.stderr
        [row] = json.loads(listed.stdout)
        assert (row["id"], row["kind"], row["source_queue"], row["delivery"]) == ("erp-batches", "batcher",
                                                                                  "inventory.low_stock", "ok")
        status = json.loads(leo("status", "--json", "-f", str(project.file), env=env).stdout)
        assert [w["id"] for w in status["webhooks"]] == ["erp-batches"]
        table = leo("status", "-f", str(project.file), env={**env, "COLUMNS": "250"})
        assert "erp-batches" in table.stdout and "webhooks" in table.stdout
        paused = leo("webhooks", "pause", "erp-batches", "-f", str(project.file), env=env)
        assert paused.returncode == 0 and "paused" in paused.stdout
        notified = len(erp.received("/erp"))
        ingest(project, {"sku": "D", "quantity": 1}, env=env)
        wait_until(lambda: json.loads(leo("webhooks", "list", "--json", "-f", str(project.file), env=env).stdout)[0]["unfetched"],
                   what="a batch sealed while paused")
        assert len(erp.received("/erp")) == notified  # sealed, but nobody notified
        assert leo("webhooks", "resume", "erp-batches", "-f", str(project.file), env=env).returncode == 0
        wait_until(lambda: len(erp.delivered("/erp")) > notified, what="the notification after resume")
        replayed = leo("webhooks", "replay", "erp-batches", "--json", "-f", str(project.file), env=env)
        assert replayed.returncode == 0 and json.loads(replayed.stdout)["replayed"] >= 1
        unknown = leo("webhooks", "pause", "erp-batchez", "-f", str(project.file), env=env)
        assert unknown.returncode == 2 and "did you mean 'erp-batches'" in unknown.stderr
        assert run.stop() == 0
        assert SECRET not in run.log() and ADMIN not in run.log()
