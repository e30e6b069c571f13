"""`leo store copy`: a deployment moved from SQLite to PostgreSQL with real `leo run` processes
on both sides, partners that notice nothing, and a copy killed midway and run again."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import httpx
import psycopg
import pytest

from leo_runtime.store import SQLiteStore, open_store
from leo_runtime.store.postgres import PostgresStore, parse_url

from ..conftest import LEO, Project, leo, ndjson, wait_until
from ..pg import fresh_store_url
from ..receiver import receiver
from .test_webhooks_e2e import PARTNER_PROJECT as PROJECT


def with_password(url: str, password: str) -> str:
    """The same URL with a password (the server trusts 127.0.0.1, so any password connects)."""
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user}:{password}@{host}"


def ingest(root: Path, items: list[dict], env: dict[str, str]) -> None:
    path = root / "items.ndjson"
    path.write_text(ndjson(items))
    done = leo("ingest", "inventory", str(path), "-f", str(root / "pipelines.yaml"), env=env)
    assert done.returncode == 0, done.stderr


def test_a_deployment_moves_from_sqlite_to_postgresql_and_partners_notice_nothing(
    tmp_path: Path, leo_run, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = Project(tmp_path)  # SQLite: leo.db in the folder
    old.write(PROJECT)
    sqlite_env = {"LEO_STORE": ""}
    monkeypatch.delenv("LEO_STORE", raising=False)
    with receiver() as hook:
        run = leo_run(old, "--port", "0")
        run.wait_ready()
        made = leo("partners", "create", "acme", "--json", "-f", str(old.file), env=sqlite_env)
        assert made.returncode == 0, made.stderr
        token = json.loads(made.stdout)["token"]
        auth = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=run.http, headers=auth) as client:
            webhook = client.post("/v1/webhooks", json={"object_type": "inventory", "callback_url": hook.url + "/h",
                                                         "interval": 1})
            assert webhook.status_code == 201, webhook.text
            stream = client.post("/v1/streams", json={"object_type": "inventory", "partitions": 1})
            assert stream.status_code == 201, stream.text
            stream_id = stream.json()["id"]
            ingest(old.root, [{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 9}], sqlite_env)
            wait_until(lambda: hook.delivered("/h"), what="the batch's notification")
            batch_id = hook.delivered("/h")[0].headers["webhook-id"]
            hook_id = webhook.json()["id"]
            wait_until(lambda: client.get(f"/v1/webhooks/{hook_id}/batches").json()[0]["delivered_at"],
                       what="the delivery recorded")
            page = client.get(f"/v1/streams/{stream_id}/partitions/0/records", params={"wait": 10}).json()
            assert [r["key"] for r in page["records"]] == ["A", "B"]
            committed = client.put(f"/v1/streams/{stream_id}/partitions/0/checkpoint",
                                   json={"position": page["next_position"], "generation": page["generation"]})
            assert committed.status_code == 204, committed.text
        assert run.stop() == 0
        before = SQLiteStore(old.db)
        old_last = before.last_position()
        old_objects = [(r.key, r.version, r.data_json) for r in before.list_objects("inventory")]
        before.close()

        url = fresh_store_url()
        shown = with_password(url, "s3cret-pw")
        copied = leo("store", "copy", "sqlite:///leo.db", shown, "--json", cwd=old.root, env=sqlite_env)
        assert copied.returncode == 0, copied.stderr
        summary = json.loads(copied.stdout)
        assert summary["copied"] is True
        assert summary["rows"]["partners"] == 1 and summary["rows"]["batches"] == 1
        assert summary["rows"]["streams"] == 1 and summary["rows"]["webhooks"] == 1
        assert summary["rows"]["events"] > 0 and summary["rows"]["objects"] == 2
        assert "s3cret-pw" not in copied.stdout + copied.stderr

        again = leo("store", "copy", "leo.db", shown, cwd=old.root, env=sqlite_env)
        assert again.returncode == 0, again.stderr
        assert "nothing changed" in again.stdout
        assert "s3cret-pw" not in again.stdout + again.stderr
        again_json = json.loads(leo("store", "copy", "leo.db", url, "--json", cwd=old.root, env=sqlite_env).stdout)
        assert again_json["copied"] is False and again_json["rows"] == summary["rows"]

        new = Project(tmp_path, url)
        pg_env = {"LEO_STORE": url}
        moved = leo_run(new, "--port", "0")
        moved.wait_ready()
        with httpx.Client(base_url=moved.http, headers=auth) as client:
            # The token works, the batch URL downloads the batch, the stream goes on from its checkpoint.
            assert [s["id"] for s in client.get("/v1/streams").json()] == [stream_id]
            body = client.get(f"/v1/batches/{batch_id}")
            assert body.status_code == 200, body.text
            assert [json.loads(line)["key"] for line in body.text.splitlines()] == ["A", "B"]
            ingest(new.root, [{"sku": "C", "quantity": 2}], pg_env)
            page = client.get(f"/v1/streams/{stream_id}/partitions/0/records", params={"wait": 10}).json()
            assert [r["key"] for r in page["records"]] == ["C"]
            wait_until(lambda: len(hook.delivered("/h")) >= 2, what="a new batch from the PostgreSQL host")
            # The delivered batch is not sent again: the PostgreSQL host goes on with the next one.
            assert [r.headers["webhook-id"] for r in hook.delivered("/h")][:1] == [batch_id]
            newer = hook.delivered("/h")[1].headers["webhook-id"]
            assert newer != batch_id and len(hook.delivered("/h")) == 2
            assert [json.loads(line)["key"] for line in client.get(f"/v1/batches/{newer}").text.splitlines()] == ["C"]
        after = open_store(url)
        try:
            changes = after.read("inventory.changes", 0, 1000)
            assert [e.payload["key"] for e in changes] == ["A", "B", "C"]
            assert changes[-1].seq > old_last  # new events continue above the copied positions
            objects = [(r.key, r.version, r.data_json) for r in after.list_objects("inventory")]
            assert objects[:2] == old_objects and [o[:2] for o in objects] == [("A", 1), ("B", 1), ("C", 1)]
            # The same object sent again is unchanged (its hash was copied), a changed one gets version 2.
            ingest(new.root, [{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 3}], pg_env)
            assert [(r.key, r.version) for r in after.list_objects("inventory")] == [("A", 1), ("B", 2), ("C", 1)]
        finally:
            after.close()
        assert moved.stop() == 0

        # The target moved on: copying again would overwrite a live store, so it is refused.
        refused = leo("store", "copy", "leo.db", shown, cwd=old.root, env=sqlite_env)
        assert refused.returncode == 1
        assert "already holds other data" in refused.stderr and "s3cret-pw" not in refused.stderr


def test_a_copy_killed_midway_leaves_the_target_untouched_and_runs_again_to_completion(tmp_path: Path) -> None:
    source = SQLiteStore(tmp_path / "big.db")
    for start in range(0, 300_000, 50_000):
        source.append("orders", [{"n": n, "pad": "x" * 40} for n in range(start, start + 50_000)])
    source.close()
    url = fresh_store_url()
    conninfo, _, _ = parse_url(url)
    proc = subprocess.Popen([LEO, "store", "copy", str(tmp_path / "big.db"), url], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)

    def copying() -> bool:  # the target's write transaction has started writing rows
        with psycopg.connect(conninfo, autocommit=True) as conn:
            rows = conn.execute("SELECT query FROM pg_stat_activity WHERE datname = current_database() "
                                "AND state = 'active' AND query LIKE 'COPY events%'").fetchall()
        return bool(rows) or proc.poll() is not None

    wait_until(copying, timeout=60, interval=0.005, what="the copy writing events")
    assert proc.poll() is None, "the copy finished before it could be killed: make the source larger"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    target = PostgresStore(url)
    try:
        assert target.queue_head("orders") == 0 and target.last_position() == 0  # nothing of it was committed
    finally:
        target.close()
    with psycopg.connect(conninfo, autocommit=True) as conn:  # the killed session's transaction is gone
        wait_until(lambda: not conn.execute(
            "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'COPY events%' "
            "AND pid != pg_backend_pid()").fetchall(), what="the killed copy's session ended")
    done = leo("store", "copy", str(tmp_path / "big.db"), url, "--json", timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows"]["events"] == 300_000
    target = PostgresStore(url)
    try:
        events = target.read("orders", 299_990, 100)
        assert [e.payload["n"] for e in events] == list(range(299_990, 300_000))
        assert target.last_position() == 300_000
    finally:
        target.close()
