"""Every top-level setting of pipelines.yaml takes effect on reload in everything that reads it, or
the reload log names it as needing a restart: each one edited under a real `leo run`.

Seen: after ``retention: P7D -> P1D`` and ``webhooks.timeout: 15 -> 3``, the API used the new
values and the running bots kept the old ones, without a word in the log.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from ..conftest import LeoRun, Project, wait_until
from ..receiver import Receiver, receiver

ADMIN = "e2e-admin-reload"
BASE = """
version: 1
server: {port: 0, allow_private_callbacks: true}
retention: P7D
webhooks: {timeout: 30, retry_schedule: [0.2, 0.2]}
object_types:
  inventory: {key: sku}
pipelines:
  feed:
    bots:
      - {id: low, use: filter, in: inventory.changes, with: {query: {quantity: {lt: 5}}}, out: inventory.low}
"""


@dataclass
class Live:
    """A running `leo run` of `BASE`, a partner with a webhook (interval 1 s) to `hook`."""

    project: Project
    run: LeoRun
    hook: Receiver
    token: str
    webhook: str

    def client(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.run.http, headers={"Authorization": f"Bearer {token or self.token}"}, timeout=30)

    def edit(self, old: str, new: str) -> None:
        """Change the file and wait until the reload that follows is done (or refused)."""
        text = self.project.file.read_text()
        assert old in text, old
        before = self.run.log().count(" reloaded: ") + self.run.log().count("changed but is invalid")
        self.project.file.write_text(text.replace(old, new))
        wait_until(lambda: self.run.log().count(" reloaded: ") + self.run.log().count("changed but is invalid") > before,
                   what="the reload")

    def ingest(self, *objects: dict[str, Any]) -> None:
        with self.client(ADMIN) as admin:
            done = admin.post("/v1/admin/objects/inventory", json=list(objects))
        assert done.status_code == 200, done.text

    def batches(self) -> list[dict[str, Any]]:
        with self.client() as client:
            return client.get(f"/v1/webhooks/{self.webhook}/batches").json()

    def new_batch(self, sku: str) -> dict[str, Any]:
        """Ingest a change and return the batch it was sealed into."""
        known = {batch["id"] for batch in self.batches()}
        self.ingest({"sku": sku, "quantity": 1})
        return wait_until(lambda: next((b for b in self.batches() if b["id"] not in known), None), what="a new batch")


@contextmanager
def live(project: Project, leo_run: Callable[..., LeoRun], text: str = BASE) -> Iterator[Live]:
    project.write(text)
    with receiver() as hook:
        run = leo_run(project, env={"LEO_ADMIN_TOKEN": ADMIN})
        run.wait_ready()
        with httpx.Client(base_url=run.http, headers={"Authorization": f"Bearer {ADMIN}"}) as admin:
            token = admin.post("/v1/admin/partners", json={"name": "acme"}).json()["token"]
        with httpx.Client(base_url=run.http, headers={"Authorization": f"Bearer {token}"}) as client:
            made = client.post("/v1/webhooks", json={"object_type": "inventory", "callback_url": hook.url + "/h",
                                                      "interval": 1})
        assert made.status_code == 201, made.text
        yield Live(project, run, hook, token, made.json()["id"])
        assert run.stop() == 0


def ms(text: str) -> int:
    from leo_runtime.timeutil import parse_time

    return parse_time(text)


# -- each setting: edit it under `leo run`, then see it in the API and in the bots that read it ------------
def retention(it: Live) -> None:
    before = it.new_batch("A")
    assert ms(before["expires_at"]) - ms(before["created_at"]) == 7 * 86_400_000
    it.edit("retention: P7D", "retention: P1D")
    with it.client() as client:  # the API
        assert client.post("/v1/streams", json={"object_type": "inventory"}).json()["retention"] == "P1D"
    after = it.new_batch("B")  # the partner webhooks' batcher (a bot)
    assert ms(after["expires_at"]) - ms(after["created_at"]) == 86_400_000
    assert "applied retention" in it.run.log()


def webhooks_timeout(it: Live) -> None:
    it.edit("timeout: 30", "timeout: 1")
    it.hook.hold = threading.Event()  # the callback hangs from now on
    try:
        started = time.monotonic()
        batch = it.new_batch("A")
        wait_until(lambda: next(b for b in it.batches() if b["id"] == batch["id"])["last_error"], timeout=20,
                   what="the attempt to time out after the new 1 s (not the old 30 s)")
        assert time.monotonic() - started < 25
        assert "applied webhooks" in it.run.log()
    finally:
        it.hook.hold.set()


def webhooks_retry_schedule(it: Live) -> None:
    it.edit("retry_schedule: [0.2, 0.2]", "retry_schedule: [3600]")
    it.hook.answer = lambda received: (500, {})
    batch = it.new_batch("A")
    listed = wait_until(lambda: next((b for b in it.batches() if b["id"] == batch["id"] and b["next_attempt_at"]
                                      and b["attempts"]), None), what="the failed attempt")
    assert ms(listed["next_attempt_at"]) - ms(listed["created_at"]) > 3000 * 1000  # the new schedule, not 0.2 s


def server_public_url(it: Live) -> None:
    it.edit("server: {port: 0,", "server: {public_url: 'https://leo.example.com', port: 0,")
    with it.client() as client:  # the API
        assert client.post("/v1/streams", json={"object_type": "inventory"}).json()["url"].startswith(
            "https://leo.example.com/v1/streams/")
    batch = it.new_batch("A")  # the sender (a bot) hands out the new URL
    wait_until(lambda: any(json.loads(r.body)["data"]["batch_id"] == batch["id"] for r in it.hook.received("/h")))
    notified = next(json.loads(r.body) for r in it.hook.received("/h") if json.loads(r.body)["data"]["batch_id"] == batch["id"])
    assert notified["data"]["url"] == f"https://leo.example.com/v1/batches/{batch['id']}"


def server_get_object_rate(it: Live) -> None:
    it.ingest({"sku": "A", "quantity": 1})
    it.edit("server: {port: 0,", "server: {get_object_rate: 2, port: 0,")
    with it.client() as client:
        assert client.get("/v1/objects/inventory/A").headers["ratelimit-limit"] == "2"


def server_allow_private_callbacks(it: Live) -> None:
    it.edit("allow_private_callbacks: true", "allow_private_callbacks: false")
    with it.client() as client:  # the API refuses a loopback callback now
        made = client.post("/v1/webhooks", json={"object_type": "inventory", "callback_url": it.hook.url + "/x",
                                                 "interval": 1})
        assert made.status_code == 422, made.text
    seen = len(it.hook.received("/h"))
    batch = it.new_batch("A")  # ... and the sender (a bot) no longer calls it
    listed = wait_until(lambda: next((b for b in it.batches() if b["id"] == batch["id"] and b["last_error"]), None),
                        what="the refused delivery")
    assert "private" in listed["last_error"] or "loopback" in listed["last_error"], listed
    assert len(it.hook.received("/h")) == seen


def server_max_ingest_bytes(it: Live) -> None:
    it.edit("server: {port: 0,", "server: {max_ingest_bytes: 100, port: 0,")
    with it.client(ADMIN) as admin:
        answer = admin.post("/v1/admin/objects/inventory", json=[{"sku": f"S{n}", "quantity": n} for n in range(20)])
    assert answer.status_code == 413 and "server.max_ingest_bytes" in answer.json()["detail"]


def server_limits(it: Live) -> None:
    it.edit("server: {port: 0,", "server: {limits: {streams: 1, batch_bytes: 10MB}, port: 0,")
    with it.client() as client:
        assert client.post("/v1/streams", json={"object_type": "inventory"}).status_code == 201
        refused = client.post("/v1/streams", json={"object_type": "inventory"})
    assert refused.status_code == 422 and refused.json()["limit"] == "streams", refused.text
    assert "applied server.limits" in it.run.log()


def server_metrics_public(it: Live) -> None:
    assert httpx.get(f"{it.run.http}/metrics").status_code in (401, 403)
    it.edit("server: {port: 0,", "server: {metrics_public: true, port: 0,")
    assert httpx.get(f"{it.run.http}/metrics").status_code == 200


def object_types(it: Live) -> None:
    with it.client(ADMIN) as admin:
        assert admin.post("/v1/admin/objects/order", json=[{"po_number": "P1"}]).status_code == 422
        it.edit("  inventory: {key: sku}\n", "  inventory: {key: sku}\n  order: {key: po_number}\n")
        assert admin.post("/v1/admin/objects/order", json=[{"po_number": "P1"}]).json()["created"] == 1
    assert "applied object_types" in it.run.log()


def pipelines(it: Live) -> None:
    it.edit("lt: 5", "lt: 50")
    it.ingest({"sku": "A", "quantity": 20})
    wait_until(lambda: "reloaded: restarted feed" in it.run.log())
    done = it.run.log()
    assert "restarted feed" in done


def version(it: Live) -> None:
    it.edit("version: 1", "version: 2")
    assert "unsupported version 2" in it.run.log()
    assert it.new_batch("A")  # the old configuration goes on


def store(it: Live) -> None:
    it.edit("version: 1\n", "version: 1\nstore: sqlite:///other.db\n")
    assert "'store' changed in" in it.run.log() and "restart leo run to apply it" in it.run.log()
    assert it.new_batch("A")  # still the store it started with
    assert not (it.project.root / "other.db").exists()


def server_host(it: Live) -> None:
    it.edit("server: {port: 0,", "server: {host: 0.0.0.0, port: 0,")
    assert "'server.host' changed in" in it.run.log() and "restart leo run to apply it" in it.run.log()
    with it.client() as client:  # still served where it was
        assert client.get("/healthz").status_code == 200


def server_port(it: Live) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]
    it.edit("port: 0,", f"port: {free},")
    assert "'server.port' changed in" in it.run.log()
    with it.client() as client:
        assert client.get("/healthz").status_code == 200


def cluster_lease_ttl(it: Live) -> None:
    it.edit("version: 1\n", "version: 1\ncluster: {lease_ttl: 30}\n")
    assert "'cluster.lease_ttl' changed in" in it.run.log() and "restart leo run to apply it" in it.run.log()
    assert it.new_batch("A")  # the bots go on


def cluster_workers(it: Live) -> None:
    it.edit("version: 1\n", "version: 1\ncluster: {workers: 1}\n")
    assert "'cluster.workers' changed in" in it.run.log() and "restart leo run to apply it" in it.run.log()
    store = it.project.store()
    assert len(store.live_hosts(15_000)) == 1  # no worker started
    store.close()
    assert it.new_batch("A")


def _connection_limit(name: str, value: str) -> Callable[[Live], None]:
    """A connection limit of the edge: set once when the server starts, so a reload names it as
    needing a restart and the server goes on serving."""

    def case(it: Live) -> None:
        it.edit("server: {port: 0,", f"server: {{port: 0, {name}: {value},")
        assert f"'server.{name}' changed in" in it.run.log() and "restart leo run to apply it" in it.run.log()
        with it.client() as client:
            assert client.get("/healthz").status_code == 200

    case.__name__ = f"server_{name}"
    return case


SETTINGS = [retention, webhooks_timeout, webhooks_retry_schedule, server_public_url, server_get_object_rate,
            server_allow_private_callbacks, server_max_ingest_bytes, server_limits, server_metrics_public, object_types,
            pipelines, version, store, server_host, server_port, cluster_lease_ttl, cluster_workers,
            *(_connection_limit(name, value) for name, value in (
                ("max_connections", "500"), ("header_timeout", "5"), ("body_timeout", "20"), ("keep_alive_timeout", "3"),
                ("max_header_bytes", "16384")))]


@pytest.mark.parametrize("setting", SETTINGS, ids=[case.__name__ for case in SETTINGS])
def test_a_setting_edited_under_leo_run_reaches_everything_that_reads_it(
    project: Project, leo_run: Callable[..., LeoRun], setting: Callable[[Live], None]
) -> None:
    with live(project, leo_run) as it:
        setting(it)
        assert "Traceback" not in it.run.log()


def test_the_command_lines_port_holds_across_reloads(project: Project, leo_run: Callable[..., LeoRun]) -> None:
    project.write(BASE.replace("port: 0,", "port: 1,"))  # the file's port is never bound: --port 0 beats it
    run = leo_run(project, "--port", "0")
    run.wait_ready()
    project.file.write_text(project.file.read_text().replace("retention: P7D", "retention: P2D"))
    wait_until(lambda: " reloaded: " in run.log(), what="the reload")
    assert "applied retention" in run.log() and "server.port" not in run.log()
    assert httpx.get(f"{run.http}/healthz").status_code == 200
    assert run.stop() == 0


def test_every_setting_of_the_file_is_covered_here() -> None:
    """A new setting must be tested here (and listed in config/reloading.py)."""
    from leo_runtime.config import PipelinesFile, ServerConfig
    from leo_runtime.config.reloading import APPLIED, NEEDS_RESTART

    split = ("server_", "webhooks_", "cluster_")
    tested = {case.__name__.replace("_", ".", 1) if case.__name__.startswith(split) else case.__name__ for case in SETTINGS}
    listed = set(APPLIED) | set(NEEDS_RESTART)
    assert set(PipelinesFile.model_fields) <= {path.split(".")[0] for path in listed}
    assert {f"server.{name}" for name in ServerConfig.model_fields} <= listed | {"server.public_url"}
    assert {path for path in listed if not path.startswith("webhooks")} <= tested
