"""GET /metrics of a real `leo run`: known traffic in, the scraped VALUES checked (not only the names)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from ..conftest import LEO, OBJECTS_PIPELINE, Project, leo, wait_until
from ..receiver import receiver

ADMIN = "e2e-admin-metrics"
PROJECT = OBJECTS_PIPELINE.replace("version: 1\n", """version: 1
server: {allow_private_callbacks: true, get_object_rate: 0.01%s}
webhooks: {timeout: 10, retry_schedule: [0.2, 0.2]}
""", 1)
STREAM_READS = "/v1/streams/{stream_id}/partitions/{partition}/records"


def scrape(base: str, token: str | None = ADMIN) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Every sample of GET /metrics, parsed by prometheus-client: {name: {sorted labels: value}}."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = httpx.get(base + "/metrics", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict[str, Any], name: str, **labels: str) -> float | None:
    return samples.get(name, {}).get(tuple(sorted(labels.items())))


def test_the_metrics_of_a_running_leo_count_what_it_did_and_read_the_store(project: Project, leo_run) -> None:
    project.write(PROJECT % "")
    with receiver() as hook:
        answers = iter([500])  # the first notification fails, every later one gets through
        hook.answer = lambda received: (next(answers, 204), {})
        run = leo_run(project, "--port", "0", env={"LEO_ADMIN_TOKEN": ADMIN})
        run.wait_ready()
        admin = httpx.Client(base_url=run.http, headers={"Authorization": f"Bearer {ADMIN}"})
        made = admin.post("/v1/admin/partners", json={"name": "acme"})
        assert made.status_code == 201, made.text
        partner = httpx.Client(base_url=run.http, headers={"Authorization": f"Bearer {made.json()['token']}"})
        hook_made = partner.post("/v1/webhooks", json={"object_type": "inventory", "callback_url": hook.url + "/h",
                                                        "interval": 1})
        assert hook_made.status_code == 201, hook_made.text
        stream = partner.post("/v1/streams", json={"object_type": "inventory"}).json()
        ingested = admin.post("/v1/admin/objects/inventory", json=[
            {"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 2}, {"sku": "C", "quantity": 9}])
        assert ingested.json() == {"created": 3, "updated": 0, "unchanged": 0}
        wait_until(lambda: hook.delivered("/h"), what="the notification, after one failure")
        wait_until(lambda: stream_records(partner, stream["id"]) == 3, what="the stream's records")
        # Get Object at 0.01/s: the first call passes, the next three are refused.
        statuses = [partner.get("/v1/objects/inventory/A").status_code for _ in range(4)]
        assert statuses == [200, 429, 429, 429]
        assert partner.get("/v1/objects/inventory/nope").status_code == 429
        assert httpx.get(run.http + "/v1/objects/inventory/A", headers={"Authorization": "Bearer leo_wrong"}).status_code == 401

        samples = wait_until(lambda: done(scrape(run.http)), what="the runs and the deliveries counted")
        feed = {"pipeline": "feed", "bot": "low-stock"}  # OBJECTS_PIPELINE's filter
        assert value(samples, "leo_bot_events_read_total", **feed) == 3
        assert value(samples, "leo_bot_events_written_total", **feed, queue="inventory.low_stock") == 2
        assert value(samples, "leo_bot_runs_total", **feed, outcome="ok") >= 1
        assert value(samples, "leo_bot_runs_total", **feed, outcome="error") is None
        assert value(samples, "leo_webhook_deliveries_total", partner="acme", outcome="retry") == 1
        assert value(samples, "leo_webhook_deliveries_total", partner="acme", outcome="delivered") == 1
        assert value(samples, "leo_webhook_delivery_duration_seconds_count", partner="acme") == 2
        assert value(samples, "leo_get_object_requests_total", partner="acme", status="200") == 1
        assert value(samples, "leo_get_object_requests_total", partner="acme", status="429") == 4
        assert value(samples, "leo_get_object_requests_total", partner="", status="401") == 1
        get_object = {"route": "/v1/objects/{object_type}/{key}", "method": "GET"}
        assert value(samples, "leo_http_request_duration_seconds_count", **get_object, status="429") == 4
        # The stream read took the fast lane (not FastAPI's route): measured under the route's template.
        assert value(samples, "leo_http_request_duration_seconds_count", route=STREAM_READS, method="GET",
                     status="200") >= 1
        # Gauges from the store.
        heads = {queue["name"]: queue["head"] for queue in cli_json(project, "queues", "list")}
        assert value(samples, "leo_queue_head_position", queue="inventory.low_stock") == heads["inventory.low_stock"]
        assert value(samples, "leo_bot_lag_events", **feed, queue="inventory.changes") == 0
        assert value(samples, "leo_bot_lag_seconds", **feed, queue="inventory.changes") == 0
        assert value(samples, "leo_bot_state", **feed, state="running") == 1
        assert value(samples, "leo_bot_state", **feed, state="paused") == 0
        assert value(samples, "leo_stream_lag_events", partner="acme", stream=stream["id"]) == 3
        assert value(samples, "leo_webhook_unfetched_batches", partner="acme") == 1
        assert value(samples, "leo_hosts") == 1
        # Labels stay bounded: no key, id or URL of a request is ever a label value.
        labels = {label for series in samples.values() for key in series for label in key}
        assert not [pair for pair in labels if "/A" in pair[1] or "nope" in pair[1] or hook.url in pair[1]]

        # leo run samples the bots' counters into the store every few seconds (the console's charts).
        store = project.store()
        try:
            wait_until(lambda: [s.events_in for s in store.bot_history("low-stock", 0)][-1:] == [3], timeout=60,
                       what="a history sample of the filter's reads")
        finally:
            store.close()

        # A paused bot and an event waiting: the state and the lag follow the store.
        assert leo("bots", "pause", "low-stock", "-f", str(project.file)).returncode == 0
        admin.post("/v1/admin/objects/inventory", json=[{"sku": "D", "quantity": 0}])
        later = wait_until(lambda: lagging(scrape(run.http)), what="the lag of the paused bot")
        assert value(later, "leo_bot_state", **feed, state="paused") == 1
        assert value(later, "leo_bot_state", **feed, state="running") == 0
        assert value(later, "leo_bot_lag_seconds", **feed, queue="inventory.changes") >= 0

        # The admin token is needed: none is a 401, a partner's is refused.
        assert httpx.get(run.http + "/metrics").status_code == 401
        assert partner.get("/metrics").status_code == 403
        assert run.stop() == 0


def test_metrics_public_serves_without_a_token(project: Project, leo_run) -> None:
    project.write(PROJECT % ", metrics_public: true")
    run = leo_run(project, "--port", "0", env={"LEO_ADMIN_TOKEN": ""})
    run.wait_ready()
    samples = scrape(run.http, token=None)
    assert value(samples, "leo_hosts") == 1
    assert value(samples, "leo_bot_state", pipeline="feed", bot="low-stock", state="running") == 1
    assert run.stop() == 0


def test_metrics_need_the_admin_token_and_are_off_without_one(project: Project, leo_run) -> None:
    project.write(PROJECT % "")
    run = leo_run(project, "--port", "0", env={"LEO_ADMIN_TOKEN": ""})
    run.wait_ready()
    refused = httpx.get(run.http + "/metrics", headers={"Authorization": "Bearer anything"})
    assert refused.status_code == 403 and "LEO_ADMIN_TOKEN" in refused.json()["detail"]
    assert run.stop() == 0


def test_cli_commands_never_load_what_only_the_server_needs(project: Project) -> None:
    project.write(PROJECT % "")
    assert leo("queues", "put", "inventory.changes", "-", "-f", str(project.file), input="{}\n").returncode == 0
    probe = ("import sys\nfrom leo_runtime.cli import main\ntry:\n    main()\nexcept SystemExit:\n    pass\n"
             "print(sorted(m for m in ('prometheus_client', 'jinja2', 'leo_runtime.server.metrics', "
             "'leo_runtime.server.console') if m in sys.modules))")
    for args in (["--help"], ["status", "-f", str(project.file)], ["status", "--json", "-f", str(project.file)]):
        done = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=60)
        assert done.stdout.strip().splitlines()[-1] == "[]", (args, done.stdout, done.stderr)
    assert LEO  # the same interpreter as the `leo` script


def stream_records(partner: httpx.Client, stream_id: str) -> int:
    return len(partner.get(f"/v1/streams/{stream_id}/partitions/0/records").json()["records"])


def done(samples: dict[str, Any]) -> dict[str, Any] | None:
    delivered = value(samples, "leo_webhook_deliveries_total", partner="acme", outcome="delivered")
    read = value(samples, "leo_bot_events_read_total", pipeline="feed", bot="low-stock")
    unfetched = value(samples, "leo_webhook_unfetched_batches", partner="acme")
    return samples if delivered and read == 3 and unfetched == 1 else None


def lagging(samples: dict[str, Any]) -> dict[str, Any] | None:
    lag = value(samples, "leo_bot_lag_events", pipeline="feed", bot="low-stock", queue="inventory.changes")
    return samples if lag == 1 else None


def cli_json(project: Project, *args: str) -> Any:
    done = leo(*args, "--json", "-f", str(project.file))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
