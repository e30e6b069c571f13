"""`leo run` as a real process: crashes, signals, reloads, and the CLI beside it."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import httpx
import pytest

from leo_runtime.events import RawJSON

from ..conftest import CUSTOM_BOTS, FILTER_PIPELINE, REPO, STORES, Project, leo, ndjson, payloads_of, wait_until

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
        use: ./bots/custom.py:Gate
        in: matched
        out: stamped
        batch: {records: 50}
        with: {stamp: true, hold: [3000, 9000]}
"""


def _counts(store, queue: str) -> list[int]:
    return [event.payload["n"] for event in store.read(queue, 0, 10_000_000)]


@pytest.mark.parametrize("project", STORES, indirect=True)
def test_sigkill_mid_run_and_restart_loses_and_duplicates_nothing(project: Project, leo_run) -> None:
    project.write(CUSTOM_BOTS, "bots/custom.py")
    project.write(KILL_PIPELINE)
    store = project.store()
    items = [{"n": n, "kind": "abc"[n % 3]} for n in range(20_000)]
    for start in range(0, len(items), 1000):
        store.append("items", items[start:start + 1000])
    expected = [item["n"] for item in items if item["n"] < 15000 and item["kind"] in ("a", "b")]
    gates = project.root / "gates"

    for hold in (3000, 9000):  # two crashes at different points, each in the middle of a run
        run = leo_run(project, "--no-http")
        # The stamper holds inside its run at event n=hold, the page's earlier events already
        # handed back to the runtime but not committed: the kill lands mid-run for sure.
        wait_until(lambda hold=hold: (gates / f"held-{hold}").exists(), what=f"the stamper holding at {hold}")
        committed = _counts(store, "stamped")
        assert committed and committed[-1] < hold  # progress before, nothing of the held run
        run.kill()  # SIGKILL: no drain, no commit, no lease release
        (gates / f"release-{hold}").write_text("")

    run = leo_run(project, "--no-http")
    wait_until(lambda: len(_counts(store, "stamped")) >= len(expected), timeout=120, what="the restart to finish")
    wait_until(lambda: store.get_checkpoint("stamper", "matched") == store.queue_head("matched"))
    assert run.stop() == 0
    assert _counts(store, "matched") == expected  # exactly once, in order
    assert _counts(store, "stamped") == expected
    assert all(payload["stamped"] for payload in payloads_of(store, "stamped"))


@pytest.mark.parametrize("project", STORES, indirect=True)
def test_sigterm_drains_commits_and_exits_zero(project: Project, leo_run) -> None:
    project.write(CUSTOM_BOTS, "bots/custom.py")
    project.write(KILL_PIPELINE.replace("hold: [3000, 9000]", "hold: [1500]"))
    store = project.store()
    store.append("items", [{"n": n, "kind": "a"} for n in range(3000)])
    gates = project.root / "gates"
    run = leo_run(project, "--no-http")
    wait_until(lambda: (gates / "held-1500").exists(), what="the stamper holding inside its run")
    held_at = store.get_checkpoint("stamper", "matched")
    run.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: "stopping: finishing the current runs" in run.log(), what="the drain to begin")
    (gates / "release-1500").write_text("")  # the run in progress finishes during the drain
    assert run.proc.wait(30) == 0
    log = run.log()
    assert "stopped; every run committed" in log
    # The run that was in progress when the signal came was committed, not dropped.
    assert store.get_checkpoint("stamper", "matched") > held_at
    assert 1500 in _counts(store, "stamped")
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
    health = httpx.get(f"{base}/healthz")
    # Degraded, still 200: a load balancer keeps the host (the old pipelines run on); an operator is told.
    assert health.status_code == 200
    assert health.json()["status"] == "degraded" and health.json()["reload_failed"] is True
    assert "less" not in health.text  # /healthz needs no token: the error itself is in `leo status`
    status = leo("status", cwd=project.root)
    assert "the last reload failed" in status.stdout and "unknown operator 'less'" in status.stdout

    # Still processing with the old query, fed from another process (the CLI).
    result = leo("queues", "put", "inventory.in", "-", "-f", str(project.file), input=ndjson([{"quantity": 2}, {"quantity": 9}]))
    assert result.returncode == 0, result.stderr
    wait_until(lambda: len(payloads_of(store, "inventory.low")) == 2, what="the old pipeline processing")

    project.file.write_text(broken.replace("less: 5", "lt: 10"))
    wait_until(lambda: httpx.get(f"{base}/healthz").json()["reload_failed"] is False, what="the fixed file applied")
    assert httpx.get(f"{base}/healthz").json()["status"] == "ok"
    store.append("inventory.in", [{"quantity": 9}])
    wait_until(lambda: len(payloads_of(store, "inventory.low")) == 3, what="the new query")
    assert run.stop() == 0


@pytest.mark.parametrize("project", STORES, indirect=True)
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
    project.write("version: 1\npipelines:\n  p:\n    bots:\n"
                  "      - {id: stuck, use: ./bots/custom.py:Gate, in: a, out: b, with: {hold: [1]}}\n")
    store = project.store()
    store.append("a", [{"n": 1}])
    run = leo_run(project, "--no-http", "--drain-timeout", "0.5")
    wait_until(lambda: (project.root / "gates" / "held-1").exists(), what="the bot blocked in its run")
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


def _status(project: Project) -> dict:
    result = leo("status", "--json", cwd=project.root)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _bot(status: dict, bot_id: str) -> dict:
    return next(bot for bot in status["bots"] if bot["id"] == bot_id)


def test_bot_code_calling_sys_exit_or_raising_keyboardinterrupt_never_stops_leo_run(project: Project, leo_run) -> None:
    project.write(CUSTOM_BOTS, "bots/custom.py")
    project.write(
        """
        version: 1
        pipelines:
          exits:
            bots:
              - {id: exits, use: ./bots/custom.py:Exits, in: a, out: a.out}
              - {id: interrupts, use: ./bots/custom.py:Exits, in: c, out: c.out, with: {when: setup, what: interrupt}}
          healthy:
            bots:
              - {id: pass, use: filter, in: b, out: b.out, with: {query: {}}}
        """
    )
    store = project.store()
    store.append("a", [{"n": 1}, {"n": 2, "poison": True}])
    poison = store.read("a", 0)[1]
    run = leo_run(project, "--port", "0")
    run.wait_ready()
    wait_until(lambda: (store.bot("exits") and store.bot("exits").error_count >= 2), what="sys.exit() retried with backoff")
    wait_until(lambda: (store.bot("interrupts") and store.bot("interrupts").error_count >= 2), what="setup retried")
    store.append("b", [{"n": n} for n in range(3)])
    wait_until(lambda: len(payloads_of(store, "b.out")) == 3, what="the other pipeline to keep flowing")
    assert run.proc.poll() is None

    status = _status(project)
    exits = _bot(status, "exits")
    assert exits["state"] in ("backoff", "failing") and exits["error_count"] >= 2
    assert exits["last_error"] == f"failed on event a@{poison.seq}: SystemExit: 3"  # names the event
    assert _bot(status, "interrupts")["last_error"] == "setup failed: KeyboardInterrupt"
    assert _bot(status, "pass")["state"] == "running"
    health = httpx.get(f"{run.http}/healthz")
    assert health.json()["bots"]["exits"]["failures"] >= 2
    assert "SystemExit" not in health.text and "KeyboardInterrupt" not in health.text
    assert run.stop() == 0  # only the runtime's own signal stops it, and it drains as usual


def test_a_reload_bringing_a_bot_file_that_exits_at_import_is_reported_and_changes_nothing(
    project: Project, leo_run
) -> None:
    project.write(FILTER_PIPELINE)
    store = project.store()
    run = leo_run(project, "--port", "0")
    run.wait_ready()
    project.write("from leo_runtime import Bot\nraise SystemExit(4)\n", "bots/evil.py")
    project.file.write_text(project.file.read_text()
                            + "  evil:\n    bots:\n      - {id: evil, use: ./bots/evil.py:Evil, in: x, out: y}\n")
    wait_until(lambda: "changed but is invalid" in run.log(), what="the reload to be refused")
    assert run.proc.poll() is None
    store.append("inventory.in", [{"quantity": 1}])
    wait_until(lambda: payloads_of(store, "inventory.low"), what="the running pipeline to keep flowing")

    status = _status(project)
    (runtime,) = status["runtimes"]
    assert runtime["reload_failed"] is True
    assert "bot 'evil'" in runtime["reload_error"] and "(line 2) failed: SystemExit(4)" in runtime["reload_error"]
    text = leo("status", cwd=project.root).stdout
    assert "the last reload failed" in text and "SystemExit(4)" in text
    health = httpx.get(f"{run.http}/healthz")
    assert health.json()["reload_failed"] is True and "SystemExit" not in health.text
    assert run.stop() == 0


def test_a_stuck_bot_shows_everywhere_and_blocks_no_reload_nor_shutdown(project: Project, leo_run) -> None:
    project.write(CUSTOM_BOTS, "bots/custom.py")
    project.write(
        """
        version: 1
        pipelines:
          stuck:
            bots:
              - {id: stuck, use: ./bots/custom.py:Gate, in: a, out: a.out, batch: {seconds: 0.2}, with: {hold: [1]}}
          other:
            bots:
              - {id: other, use: filter, in: b, out: b.out, with: {query: {n: {lt: 10}}}}
        """
    )
    store = project.store()
    store.append("a", [{"n": 1}])
    run = leo_run(project, "--port", "0", "--drain-timeout", "2")
    run.wait_ready()
    wait_until(lambda: _bot(_status(project), "stuck")["state"] == "stuck", what="`leo status` to show it stuck")
    assert _bot(_status(project), "stuck")["stuck_since"]
    health = httpx.get(f"{run.http}/healthz").json()
    assert health["status"] == "degraded" and health["stuck"] == ["stuck"] and health["bots"]["stuck"]["state"] == "stuck"

    # A reload of the other pipeline applies at once.
    project.file.write_text(project.file.read_text().replace("lt: 10", "lt: 20"))
    wait_until(lambda: "reloaded: restarted other" in run.log(), what="the other pipeline's reload")
    store.append("b", [{"n": 15}])
    wait_until(lambda: payloads_of(store, "b.out") == [{"n": 15}], what="the new query")
    # A reload of its own pipeline gives the stuck run up (uncommitted) instead of waiting for it.
    project.file.write_text(project.file.read_text().replace("seconds: 0.2", "seconds: 0.3"))
    wait_until(lambda: "reloaded: restarted stuck" in run.log(), what="its own pipeline's reload")
    assert "bot 'stuck' did not finish its run" in run.log()
    # Shutdown waits for the (again) stuck run no longer than --drain-timeout.
    assert run.stop(timeout=30) == 1
    assert "did not finish within 2.0s" in run.log()
    (project.root / "gates" / "release-1").write_text("")
    assert store.read("a.out", 0) == [] and store.get_checkpoint("stuck", "a") == 0
    assert store.bot("stuck").stuck_since is None and store.bot("stuck").lease_owner is None


def test_dead_letters_are_counted_listed_and_sent_back(project: Project, leo_run) -> None:
    project.write(CUSTOM_BOTS, "bots/custom.py")
    project.write(
        """
        version: 1
        pipelines:
          p:
            bots:
              - id: explode
                use: ./bots/custom.py:Explode
                in: a
                out: a.out
                on_error: {dead_letter: a.dead, after: 2}
        """
    )
    store = project.store()
    store.append("a", [{"id": 1}, {"id": 2, "boom": True}, {"id": 3}])
    poison = store.read("a", 0)[1]
    run = leo_run(project, "--no-http")
    wait_until(lambda: len(payloads_of(store, "a.out")) == 2, what="the events around the poison one")
    assert [p["id"] for p in payloads_of(store, "a.out")] == [1, 3]
    explode = _bot(_status(project), "explode")
    assert (explode["dead_letters"], explode["dead_letters_waiting"], explode["error_count"]) == (1, 1, 0)
    assert "1/1" in leo("status", cwd=project.root, env={"COLUMNS": "250"}).stdout

    (letter,) = json.loads(leo("deadletters", "list", "--json", cwd=project.root).stdout)
    assert (letter["queue"], letter["bot"], letter["source_queue"], letter["source_position"]) == (
        "a.dead", "explode", "a", poison.seq)
    assert letter["failures"] == 2 and letter["error"] == f"failed on event a@{poison.seq}: RuntimeError: boom on 2"

    # Back where it came from: the bot fails on it again and sets it aside again.
    back = leo("deadletters", "redrive", "a.dead", "--json", cwd=project.root)
    assert back.returncode == 0, back.stderr
    assert json.loads(back.stdout)["redriven"][0]["queue"] == "a"
    wait_until(lambda: _bot(_status(project), "explode")["dead_letters"] == 2, what="the second dead letter")
    # To another queue, narrowed to one position.
    waiting = json.loads(leo("deadletters", "list", "a.dead", "--json", cwd=project.root).stdout)
    assert len(waiting) == 1
    moved = leo("deadletters", "redrive", "a.dead", "--to", "a.parked", "--position", str(waiting[0]["position"]),
                "--json", cwd=project.root)
    assert moved.returncode == 0, moved.stderr
    assert [e.payload_json for e in store.read("a.parked", 0)] == [poison.payload_json]
    assert json.loads(leo("deadletters", "list", "--json", cwd=project.root).stdout) == []
    everything = json.loads(leo("deadletters", "list", "--all", "--json", cwd=project.root).stdout)
    assert [entry["redriven_queue"] for entry in everything] == ["a", "a.parked"]
    # Nothing waits any more; a wrong queue or position is one clear line.
    again = leo("deadletters", "redrive", "a.dead", "--json", cwd=project.root)
    assert again.returncode == 0 and json.loads(again.stdout)["count"] == 0
    wrong = leo("deadletters", "redrive", "a.out", cwd=project.root)
    assert wrong.returncode == 2 and wrong.stderr.strip() == (
        "error: queue 'a.out' holds no dead-lettered events; dead-letter queues: a.dead")
    assert run.stop() == 0


def test_bots_removed_from_the_file_show_as_removed(project: Project, leo_run) -> None:
    project.write(FILTER_PIPELINE + "  extra:\n    bots:\n      - {id: copy, use: filter, in: inventory.low, out: c, "
                  "with: {query: {}}}\n")
    store = project.store()
    store.append("inventory.in", [{"quantity": 1}])
    run = leo_run(project, "--no-http")
    wait_until(lambda: payloads_of(store, "c"), what="both pipelines to run")
    project.file.write_text(FILTER_PIPELINE.lstrip())
    wait_until(lambda: "reloaded: restarted extra" in run.log())
    store.append("inventory.in", [{"quantity": 2}])  # lag for the removed bot: it never reads it
    wait_until(lambda: _bot(_status(project), "copy")["state"] == "removed", what="the removed state")
    copy = _bot(_status(project), "copy")
    assert copy["in_file"] is False and copy["lag"] == 1
    assert _bot(_status(project), "low-stock")["state"] == "running"
    text = leo("status", cwd=project.root, env={"COLUMNS": "250"}).stdout
    line = next(line for line in text.splitlines() if "copy" in line)
    assert "removed" in line
    assert run.stop() == 0
