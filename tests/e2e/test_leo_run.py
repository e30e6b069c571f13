"""`leo run` as a real process: crashes, signals, reloads, and the CLI beside it."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import httpx
import pytest

from leo_runtime.events import RawJSON

from ..conftest import CUSTOM_BOTS, FILTER_PIPELINE, REPO, Project, leo, ndjson, payloads_of, wait_until

KILL_PIPELINE = """
version: 1
pipelines:
  crash:
    bots:
      - id: matcher
        use: filter
        in: items
        with: {query: {n: {lt: 15000}, kind: {in: [a, b]}}}
        out: matched
        batch: {records: 50}
      - id: stamper
        use: ./bots/custom.py:Stamp
        in: matched
        out: stamped
        batch: {records: 50}
"""


def _counts(store, queue: str) -> list[int]:
    return [event.payload["n"] for event in store.read(queue, 0, 10_000_000)]


def test_sigkill_mid_run_and_restart_loses_and_duplicates_nothing(project: Project, leo_run) -> None:
    project.write(CUSTOM_BOTS, "bots/custom.py")
    project.write(KILL_PIPELINE)
    store = project.store()
    items = [{"n": n, "kind": "abc"[n % 3]} for n in range(20_000)]
    for start in range(0, len(items), 1000):
        store.append("items", items[start:start + 1000])
    expected = [item["n"] for item in items if item["n"] < 15000 and item["kind"] in ("a", "b")]

    for _ in range(2):  # two crashes at different points
        run = leo_run(project, "--no-http")
        before = store.get_checkpoint("stamper", "matched") or 0
        wait_until(lambda before=before: (store.get_checkpoint("stamper", "matched") or 0) > before + 500, what="progress")
        run.kill()  # SIGKILL: no drain, no commit, no lease release
        assert len(_counts(store, "stamped")) < len(expected), "finished before the kill: make the pipeline slower"

    run = leo_run(project, "--no-http")
    wait_until(lambda: len(_counts(store, "stamped")) >= len(expected), timeout=120, what="the restart to finish")
    wait_until(lambda: store.get_checkpoint("stamper", "matched") == store.queue_head("matched"))
    assert run.stop() == 0
    assert _counts(store, "matched") == expected  # exactly once, in order
    assert _counts(store, "stamped") == expected
    assert all(payload["stamped"] for payload in payloads_of(store, "stamped"))


def test_sigterm_drains_commits_and_exits_zero(project: Project, leo_run) -> None:
    project.write(CUSTOM_BOTS, "bots/custom.py")
    project.write(KILL_PIPELINE)
    store = project.store()
    store.append("items", [{"n": n, "kind": "a"} for n in range(3000)])
    run = leo_run(project, "--no-http")
    wait_until(lambda: (store.get_checkpoint("stamper", "matched") or 0) > 100)
    assert run.stop(signal.SIGTERM) == 0
    log = run.log()
    assert "stopping: finishing the current runs" in log and "stopped; every run committed" in log
    # Whatever was committed is consistent: outputs match the checkpoint exactly.
    stamped = _counts(store, "stamped")
    checkpoint = store.get_checkpoint("stamper", "matched")
    assert len(stamped) == len([e for e in store.read("matched", 0, 100_000) if e.seq <= checkpoint])
    assert store.bot("stamper").lease_owner is None  # released for the next run


def test_sigint_also_drains_and_exits_zero(project: Project, leo_run) -> None:
    project.write("version: 1\npipelines:\n  p:\n    bots:\n      - {id: f, use: filter, in: a, out: b, with: {query: {}}}\n")
    run = leo_run(project, "--port", "0")
    run.wait_ready()
    assert run.stop(signal.SIGINT) == 0


def test_broken_edit_keeps_the_old_pipelines_running_and_healthy(project: Project, leo_run) -> None:
    project.write(FILTER_PIPELINE)
    store = project.store()
    run = leo_run(project, "--port", "0")
    run.wait_ready()
    base = run.http
    store.append("inventory.in", [{"quantity": 1}])
    wait_until(lambda: payloads_of(store, "inventory.low"))

    broken = project.file.read_text().replace("lt: 5", "less: 5")
    project.file.write_text(broken)
    line = next(i for i, text in enumerate(broken.splitlines(), 1) if "less:" in text)
    column = broken.splitlines()[line - 1].index("less") + 1
    wait_until(lambda: "changed but is invalid" in run.log(), what="the reload error in the log")
    assert f"pipelines.yaml:{line}:{column}: bot 'low-stock':" in run.log()
    assert "unknown operator 'less' (did you mean 'lt'?)" in run.log()
    health = httpx.get(f"{base}/healthz").json()
    assert health["status"] == "ok" and "less" in health["reload_error"]

    # Still processing with the old query, fed from another process (the CLI).
    result = leo("queues", "put", "inventory.in", "-", "-f", str(project.file), input=ndjson([{"quantity": 2}, {"quantity": 9}]))
    assert result.returncode == 0, result.stderr
    wait_until(lambda: len(payloads_of(store, "inventory.low")) == 2, what="the old pipeline processing")

    project.file.write_text(broken.replace("less: 5", "lt: 10"))
    wait_until(lambda: httpx.get(f"{base}/healthz").json()["reload_error"] is None, what="the fixed file applied")
    store.append("inventory.in", [{"quantity": 9}])
    wait_until(lambda: len(payloads_of(store, "inventory.low")) == 3, what="the new query")
    assert run.stop() == 0


def test_cli_works_beside_a_running_leo_run(project: Project, leo_run) -> None:
    project.write(
        """
        version: 1
        pipelines:
          p:
            bots:
              - {id: evens, use: filter, in: numbers, out: evens, with: {query: {even: true}}}
        """
    )
    run = leo_run(project, "--no-http")
    run.wait_ready()
    source = project.root / "numbers.ndjson"
    source.write_text(ndjson([{"n": n, "even": n % 2 == 0} for n in range(20_000)]))
    put = leo("queues", "put", "numbers", str(source), "--json", cwd=project.root)
    assert put.returncode == 0, put.stderr
    assert json.loads(put.stdout)["count"] == 20_000
    for _ in range(5):
        status = leo("status", "--json", cwd=project.root)
        assert status.returncode == 0, status.stderr
        assert "locked" not in status.stderr
    store = project.store()
    wait_until(lambda: store.get_checkpoint("evens", "numbers") == store.queue_head("numbers"), timeout=60)
    assert len(payloads_of(store, "evens")) == 10_000
    status = json.loads(leo("status", "--json", cwd=project.root).stdout)
    bot = next(b for b in status["bots"] if b["id"] == "evens")
    assert bot["state"] == "running" and bot["lag"] == 0 and bot["events_in"] == 20_000

    reset = leo("checkpoints", "reset", "evens", "--to", "earliest", cwd=project.root)
    assert reset.returncode == 0, reset.stderr
    wait_until(lambda: len(payloads_of(store, "evens")) == 20_000, timeout=60, what="reprocessing after the reset")
    assert run.stop() == 0


def test_init_then_run_processes_the_sample(tmp_path: Path, leo_run) -> None:
    created = leo("init", "shop", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    project = Project(tmp_path / "shop")
    run = leo_run(project, "--port", "0")
    run.wait_ready()
    store = project.store()
    samples = (project.root / "data" / "orders").glob("*.ndjson")
    orders = [json.loads(line) for path in samples for line in path.read_text().splitlines() if line.strip()]
    large = [o for o in orders if o["total"] >= 1000 and o["status"] in ("open", "backorder")]
    wait_until(lambda: len(payloads_of(store, "orders.prioritized")) == len(large), what="the sample to flow")
    tagged = payloads_of(store, "orders.prioritized")
    assert {o["priority"] for o in tagged} <= {"urgent", "normal"}
    assert [o["po_number"] for o in tagged] == [o["po_number"] for o in large]
    # A new order file is picked up by the watching reader.
    (project.root / "data" / "orders" / "late.ndjson").write_text(
        json.dumps({"po_number": "PO-LATE", "status": "open", "total": 9999}) + "\n"
    )
    wait_until(lambda: any(o["po_number"] == "PO-LATE" for o in payloads_of(store, "orders.prioritized")))
    assert run.stop() == 0


def test_the_bundled_pipelines_file_runs(tmp_path: Path, leo_run) -> None:
    project = Project(REPO)
    store_path = tmp_path / "bundled.db"
    run = leo_run(project, "--port", "0", "--store", f"sqlite:///{store_path}")
    run.wait_ready()
    from leo_runtime.store import open_store

    store = open_store(f"sqlite:///{store_path}")
    wait_until(lambda: payloads_of(store, "orders.prioritized"), what="the bundled example to produce output")
    assert run.stop() == 0


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_a_reader_of_raw_json_passes_text_untouched_end_to_end(project: Project, leo_run) -> None:
    project.write("version: 1\npipelines:\n  p:\n    bots:\n      - {id: f, use: filter, in: a, out: b, with: {query: {k: 1}}}\n")
    store = project.store()
    text = '{"k": 1,   "nested": {"z": 1, "a": [1, 2.50]}}'
    store.append("a", [RawJSON(text)])
    run = leo_run(project, "--no-http")
    wait_until(lambda: store.read("b", 0))
    assert store.read("b", 0)[0].payload_json == text
    assert run.stop() == 0



def test_a_stuck_bot_cannot_block_shutdown_forever(project: Project, leo_run) -> None:
    project.write(CUSTOM_BOTS, "bots/custom.py")
    project.write("version: 1\npipelines:\n  p:\n    bots:\n      - {id: stuck, use: ./bots/custom.py:Stuck, in: a, out: b}\n")
    store = project.store()
    store.append("a", [{"n": 1}])
    run = leo_run(project, "--no-http", "--drain-timeout", "0.5")
    wait_until(lambda: (store.bot("stuck") or None) is not None and store.bot("stuck").lease_owner)
    run.wait_ready()
    assert run.stop(signal.SIGTERM) == 1
    assert "did not finish within 0.5s" in run.log()
    assert store.read("b", 0) == [] and store.get_checkpoint("stuck", "a") == 0  # redone next time, not lost


def test_a_taken_port_is_one_clear_error(project: Project, leo_run) -> None:
    import socket

    project.write("version: 1\npipelines:\n  p:\n    bots:\n      - {id: f, use: filter, in: a, out: b, with: {query: {}}}\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = leo_run(project, "--port", str(port))
        assert run.proc.wait(30) == 1
    assert f"cannot serve HTTP on 127.0.0.1:{port}" in run.log() and "Traceback" not in run.log()
    assert project.store().bot("f") is None  # no bot started


def test_tail_follow_prints_new_events_as_they_arrive(project: Project) -> None:
    import subprocess

    from ..conftest import LEO

    project.write(FILTER_PIPELINE)
    store = project.store()
    store.append("inventory.in", [{"n": 0}])
    follow = subprocess.Popen([LEO, "queues", "tail", "inventory.in", "--follow", "--json", "-n", "1"],
                              cwd=project.root, stdout=subprocess.PIPE, text=True)
    try:
        assert json.loads(follow.stdout.readline())["payload"] == {"n": 0}
        store.append("inventory.in", [{"n": 1}, {"n": 2}])
        assert [json.loads(follow.stdout.readline())["payload"]["n"] for _ in range(2)] == [1, 2]
    finally:
        follow.send_signal(signal.SIGINT)
        assert follow.wait(10) == 0


def test_a_long_put_shows_a_progress_bar_on_a_terminal(project: Project) -> None:
    project.write(FILTER_PIPELINE)
    source = project.root / "many.ndjson"
    source.write_text(ndjson([{"n": n} for n in range(20_000)]))
    result = leo("queues", "put", "inventory.in", str(source), cwd=project.root, env={"TTY_COMPATIBLE": "1"})
    assert result.returncode == 0, result.stderr
    assert "20000/20000" in result.stderr
    assert "put 20000 event(s)" in result.stdout
