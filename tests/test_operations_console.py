"""What the console and /metrics read from the operations layer (real SQLite stores, no server)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from leo_runtime.cli import app
from leo_runtime.config import load_config
from leo_runtime.operations import (
    activity_totals,
    bot_activity,
    host_report,
    metrics_report,
    pipeline_report,
    plan_checkpoint_reset,
    pretty_json,
    queue_detail,
    status_report,
    webhook_health,
)
from leo_runtime.store import RunCommit, SQLiteStore
from leo_runtime.store.base_hosts import HostInfo
from leo_runtime.timeutil import now_ms

from .conftest import FILTER_PIPELINE, Project

MINUTE = 60_000


def busy_project(project: Project) -> SQLiteStore:
    """The filter project's store: 'inventory.in' holds 6 events interleaved with another queue's."""
    project.write(FILTER_PIPELINE)
    store = project.store()
    for n in range(6):
        store.append("inventory.in", [{"sku": f"A{n}", "quantity": n}])
        store.append("noise", [{"n": n}, {"n": n}])  # positions are global: other queues sit between
    return store


def test_a_reset_plan_counts_the_events_of_the_bots_queue_it_redoes_or_skips(project: Project) -> None:
    store = busy_project(project)
    config = load_config(project.file)
    events = store.read("inventory.in", 0)
    store.set_checkpoint("low-stock", "inventory.in", events[3].seq)  # three processed, three waiting
    back = plan_checkpoint_reset(store, config, "low-stock", "earliest")
    assert (back.before, back.target.position, back.redo, back.skip) == (events[3].seq, 0, 4, 0)
    ahead = plan_checkpoint_reset(store, config, "low-stock", "latest")
    assert (ahead.redo, ahead.skip) == (0, 2)
    same = plan_checkpoint_reset(store, config, "low-stock", str(events[3].seq))
    assert (same.redo, same.skip) == (0, 0)
    assert store.get_checkpoint("low-stock", "inventory.in") == events[3].seq  # a plan changes nothing
    never = plan_checkpoint_reset(store, config, "low-stock", "latest", "inventory.in")
    assert never.as_dict()["skip"] == 2
    store.close()


def test_checkpoints_reset_json_says_what_it_redid(project: Project) -> None:
    store = busy_project(project)
    store.set_checkpoint("low-stock", "inventory.in", store.last_position())
    store.close()
    done = CliRunner().invoke(app, ["checkpoints", "reset", "low-stock", "--to", "earliest", "--json", "-f",
                                    str(project.file)], env={"LEO_STORE": ""})
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["redo"] == 6
    text = CliRunner().invoke(app, ["checkpoints", "reset", "low-stock", "--to", "latest", "-f", str(project.file)],
                              env={"LEO_STORE": ""})
    assert "6 event(s) skipped" in text.stdout


def test_activity_buckets_take_each_samples_difference_from_the_one_before(project: Project) -> None:
    store = busy_project(project)
    store.ensure_bot("low-stock", "feed")
    assert store.acquire_lease("low-stock", "me", MINUTE)
    now = now_ms()
    start = now - now % MINUTE - 59 * MINUTE  # the first of 60 one-minute buckets ending now
    store.sample_bot_history(start - 5 * MINUTE)  # the baseline, before the chart
    for minute, (read, failures) in enumerate([(2, 0), (0, 1), (3, 2)]):
        checkpoint = store.get_checkpoint("low-stock", "inventory.in") or 0
        if read:
            events = store.read("inventory.in", checkpoint, read)
            store.init_checkpoint("low-stock", "inventory.in", checkpoint)
            store.commit_run(RunCommit(bot_id="low-stock", owner="me", in_queue="inventory.in", expected=checkpoint,
                                       position=events[-1].seq, events_in=read))
        for _ in range(failures):
            store.record_failure("low-stock", "boom")
        store.sample_bot_history(start + minute * 10 * MINUTE + 1)
    activity = bot_activity(store, "low-stock", 3600, 60, now)
    assert activity["start"] == start and activity["step"] == MINUTE
    assert (activity["reads"][0], activity["reads"][20]) == (2, 3)
    assert (activity["errors"][10], activity["errors"][20]) == (1, 2)
    assert sum(activity["reads"]) == 5 and sum(activity["writes"]) == 0
    totals = activity_totals(store, ["low-stock", "nobody"], now)
    assert totals["errors_last_hour"] == 3
    store.close()


def test_metrics_report_reads_states_lags_heads_and_hosts_from_the_store(project: Project) -> None:
    store = busy_project(project)
    store.init_checkpoint("low-stock", "inventory.in", 0)
    store.ensure_bot("low-stock", "feed")
    store.ensure_bot("gone", "old")
    store.register_runtime("host-a:1:x", str(project.file))
    store.beat_host(HostInfo("host-a:1:x", "host-a", 1, "all", None, 0, 0), MINUTE)
    assert store.acquire_lease("low-stock", "host-a:1:x", MINUTE)
    report = metrics_report(store, {"low-stock"})
    bots = {bot["bot"]: bot for bot in report["bots"]}
    assert bots["low-stock"]["state"] == "running" and bots["gone"]["state"] == "removed"
    [lag] = bots["low-stock"]["lags"]
    assert (lag["queue"], lag["lag"]) == ("inventory.in", 6) and lag["lag_seconds"] >= 0
    assert report["queues"]["noise"] == store.queue_head("noise")
    assert report["hosts"] == 1
    assert host_report(store)[0]["bots"] == ["low-stock"]
    store.close()


def test_the_graph_of_a_pipeline_and_the_queue_page_come_from_the_same_status(project: Project) -> None:
    store = busy_project(project)
    config = load_config(project.file)
    report = status_report(store, config, system=[])
    [pipeline] = pipeline_report(config, report["bots"])
    assert [bot["id"] for bot in pipeline["bots"]] == ["low-stock"]
    assert pipeline["edges"][0] == {"from": "inventory.in", "to": "low-stock", "lag": None, "lag_seconds": None}
    queue = queue_detail(store, config, "inventory.in", 2)
    assert [event["payload"] for event in queue["events"]] == [pretty_json({"sku": "A5", "quantity": 5}),
                                                               pretty_json({"sku": "A4", "quantity": 4})]
    assert queue["writers"] == [] and queue["depth"] == 6
    store.close()


def test_webhook_health_and_pretty_json() -> None:
    assert webhook_health({"status": "paused", "delivery": "ok"}) == "paused"
    assert webhook_health({"status": "active", "delivery": "ok"}) == "healthy"
    assert webhook_health({"status": "active", "delivery": "retrying"}) == "retrying"
    assert webhook_health({"status": "disabled", "delivery": "disabled"}) == "disabled"
    assert pretty_json({"a": [1, 2], "b": {"c": [{"d": 1}]}}) == (
        '{\n  "a": [1, 2],\n  "b": {\n    "c": [\n      {"d": 1}\n    ]\n  }\n}')
    assert pretty_json("<x>") == '"<x>"'
