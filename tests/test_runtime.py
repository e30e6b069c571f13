"""The runtime in process: real SQLite files, real bots, real wakeups (no fixed sleeps)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from leo_runtime import runner as runner_module
from leo_runtime.config import load_config
from leo_runtime.events import RawJSON
from leo_runtime.runtime import Runtime
from leo_runtime.store import open_store
from leo_runtime.timeutil import format_time, now_ms

from .conftest import CUSTOM_BOTS, FILTER_PIPELINE, Project, async_wait_until, payloads_of, run_with, wait_until


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner_module, "BACKOFF_BASE_SECONDS", 0.02)
    monkeypatch.setattr(runner_module, "BACKOFF_MAX_SECONDS", 0.2)
    monkeypatch.setattr("leo_runtime.states.STUCK_MIN_MARGIN_SECONDS", 0.3)




def checkpoint(runtime: Runtime, bot: str, queue: str) -> int:
    return runtime.store.get_checkpoint(bot, queue) or 0


def errors_of(store: Any, bot: str) -> int:
    info = store.bot(bot)
    return info.error_count if info else 0


def test_processor_forwards_matches_and_checkpoint_reaches_head(project: Project) -> None:
    project.write(FILTER_PIPELINE)
    store = project.store()
    store.append("inventory.in", [{"sku": f"S{i}", "quantity": i % 10} for i in range(100)])
    head = store.queue_head("inventory.in")

    async def body(runtime: Runtime) -> None:
        await async_wait_until(lambda: checkpoint(runtime, "low-stock", "inventory.in") == head)

    run_with(project, body)
    out = payloads_of(store, "inventory.low")
    assert [p["sku"] for p in out] == [f"S{i}" for i in range(100) if i % 10 < 5]
    info = store.bot("low-stock")
    assert info is not None and info.events_in == 100 and info.events_out == 50 and info.error_count == 0


def test_forwarded_payload_text_is_untouched_and_envelope_is_carried(project: Project) -> None:
    project.write(FILTER_PIPELINE)
    store = project.store()
    odd = '{"quantity":  1, "z": [1,2], "a": "é"}'
    store.append("inventory.in", [RawJSON(odd)], event_source_timestamp=1234)
    source = store.read("inventory.in", 0)[0]

    async def body(runtime: Runtime) -> None:
        await async_wait_until(lambda: store.queue_head("inventory.low"))

    run_with(project, body)
    out = store.read("inventory.low", 0)[0]
    assert out.payload_json == odd
    assert out.event_source_timestamp == 1234
    assert out.correlation_id == {"source": "inventory.in", "start": source.seq, "units": 1}


def test_new_bot_starts_at_the_beginning_latest_or_a_time(project: Project) -> None:
    store = project.store()
    store.append("q", [{"n": 1}])
    first = store.read("q", 0)[0].timestamp
    wait_until(lambda: now_ms() > first, what="the clock to move past the first event")
    store.append("q", [{"n": 2}])
    project.write(
        """
        version: 1
        pipelines:
          p:
            bots:
              - {id: from-start, use: filter, in: q, out: a, with: {query: {}}}
              - {id: from-latest, use: filter, in: q, out: b, with: {query: {}}, start: latest}
              - {id: from-second, use: filter, in: q, out: c, with: {query: {}}, start: "SECOND"}
              - {id: from-ago, use: filter, in: q, out: d, with: {query: {}}, start: -PT1H}
        """.replace("SECOND", format_time(store.read("q", 1)[0].timestamp))
    )

    async def body(runtime: Runtime) -> None:
        await async_wait_until(lambda: all(runtime.store.get_checkpoint(b, "q") is not None
                                           for b in ("from-start", "from-latest", "from-second", "from-ago")))
        await async_wait_until(lambda: len(payloads_of(store, "a")) == 2)
        store.append("q", [{"n": 3}])
        await async_wait_until(lambda: len(payloads_of(store, "a")) == 3 and payloads_of(store, "b"))
        await async_wait_until(lambda: len(payloads_of(store, "c")) == 2 and len(payloads_of(store, "d")) == 3)

    run_with(project, body)
    assert [p["n"] for p in payloads_of(store, "b")] == [3]
    assert [p["n"] for p in payloads_of(store, "c")] == [2, 3]  # from the first event at or after its time




def test_custom_bots_outputs_other_queues_state_and_sources(project: Project) -> None:
    project.write(CUSTOM_BOTS, "bots/custom.py")
    project.write(
        """
        version: 1
        pipelines:
          p:
            bots:
              - {id: counter, use: ./bots/custom.py:Counter, out: counts, schedule: 1h}
              - {id: enrich, use: ./bots/custom.py:Enrich, in: in, out: enriched, with: {tag: blue}}
              - {id: collect, use: ./bots/custom.py:Collect, in: enriched, with: {path: delivered.ndjson}}
        """
    )
    store = project.store()
    store.append("in", [{"id": 1}, {"id": 2, "skip": True}, {"id": 3, "audit": True, "raw": True}])

    async def body(runtime: Runtime) -> None:
        await async_wait_until(lambda: checkpoint(runtime, "enrich", "in") == store.queue_head("in"))
        await async_wait_until(lambda: len(payloads_of(store, "counts")) == 3)
        await async_wait_until(lambda: checkpoint(runtime, "collect", "enriched") == store.queue_head("enriched"))

    run_with(project, body)
    assert payloads_of(store, "enriched") == [{"id": 1, "tag": "blue"}, {"id": 3, "audit": True, "raw": True, "tag": "blue"},
                                              {"raw": True}]
    assert payloads_of(store, "audit") == [{"audited": 3}]
    assert payloads_of(store, "counts") == [{"count": 1}, {"count": 2}, {"count": 3}]
    assert store.bot("enrich").state == {"seen": 2}  # type: ignore[union-attr]
    assert store.bot("counter").state == {"count": 3}  # type: ignore[union-attr]
    # The sink got every event of its queue once, with the stable idempotency key of each.
    delivered = [json.loads(line) for line in (project.root / "delivered.ndjson").read_text().splitlines()]
    assert delivered == [[f"enriched:{event.seq}", event.payload] for event in store.read("enriched", 0)]


def test_failing_bot_backs_off_reports_and_others_keep_running(project: Project, tmp_path: Any) -> None:
    project.write(CUSTOM_BOTS, "bots/custom.py")
    project.write(
        """
        version: 1
        pipelines:
          broken:
            bots:
              - {id: explode, use: ./bots/custom.py:Explode, in: a, out: a.out}
          healthy:
            bots:
              - {id: pass, use: filter, in: b, out: b.out, with: {query: {}}}
        """
    )
    store = project.store()
    store.append("a", [{"id": 1}, {"id": 2, "boom": True}, {"id": 3}])

    async def body(runtime: Runtime) -> None:
        await async_wait_until(lambda: errors_of(store, "explode") >= 3, what="repeated failures")
        store.append("b", [{"id": i} for i in range(5)])
        await async_wait_until(lambda: len(payloads_of(store, "b.out")) == 5, what="the healthy bot")
        assert runtime.runners["explode"].failures >= 3  # its state flips between backoff and running
        assert "boom on 2" in (runtime.runners["explode"].last_error or "")

    run_with(project, body)
    info = store.bot("explode")
    assert info is not None and "RuntimeError: boom on 2" in (info.last_error or "")
    # Nothing of the failed page was committed: no partial output, checkpoint before the page.
    assert payloads_of(store, "a.out") == []
    assert store.get_checkpoint("explode", "a") == 0


def test_sink_that_yields_is_an_error(project: Project) -> None:
    project.write(CUSTOM_BOTS, "bots/custom.py")
    project.write(
        """
        version: 1
        pipelines:
          p:
            bots:
              - {id: bad, use: ./bots/custom.py:BadSink, in: q}
        """
    )
    store = project.store()
    store.append("q", [{"id": 1}])

    async def body(runtime: Runtime) -> None:
        await async_wait_until(lambda: errors_of(store, "bad") >= 1)

    run_with(project, body)
    assert "sink" in (store.bot("bad").last_error or "")  # type: ignore[union-attr]


def test_runs_are_bounded_by_records(project: Project) -> None:
    project.write(FILTER_PIPELINE.replace("out: inventory.low", "out: inventory.low\n        batch: {records: 10}"))
    store = project.store()
    store.append("inventory.in", [{"quantity": 1} for _ in range(95)])

    async def body(runtime: Runtime) -> None:
        await async_wait_until(lambda: checkpoint(runtime, "low-stock", "inventory.in") == store.queue_head("inventory.in"))

    run_with(project, body)
    assert store.bot("low-stock").runs == 10  # type: ignore[union-attr]
    assert len(payloads_of(store, "inventory.low")) == 95


def test_reset_to_earliest_makes_a_running_bot_reprocess(project: Project) -> None:
    project.write(FILTER_PIPELINE)
    store = project.store()
    store.append("inventory.in", [{"quantity": 1, "n": i} for i in range(10)])
    operator = project.store()  # another connection, as the CLI would have

    async def body(runtime: Runtime) -> None:
        await async_wait_until(lambda: len(payloads_of(store, "inventory.low")) == 10)
        runner = runtime.runners["low-stock"]
        await async_wait_until(lambda: runner.state == "idle")
        operator.set_checkpoint("low-stock", "inventory.in", operator.first_position())
        await async_wait_until(lambda: len(payloads_of(store, "inventory.low")) == 20, what="reprocessing")

    run_with(project, body)
    assert [p["n"] for p in payloads_of(store, "inventory.low")] == list(range(10)) * 2


def test_pause_and_resume(project: Project) -> None:
    project.write(FILTER_PIPELINE + "      - {id: sibling, use: filter, in: inventory.in, out: sibling.out, with: {query: {}}}\n")
    store = project.store()
    operator = project.store()

    def waiting_again(bot: str, runtime: Runtime) -> bool:
        return any(not future.done() for future in runtime.wakeups._key_waiters.get(bot, ()))

    async def body(runtime: Runtime) -> None:
        operator.ensure_bot("low-stock", "feed")
        operator.set_paused("low-stock", True)
        await async_wait_until(lambda: runtime.runners["low-stock"].state == "paused")
        store.append("inventory.in", [{"quantity": 1}])
        # The sibling reading the same queue woke and committed: the paused bot had its chance too.
        await async_wait_until(lambda: payloads_of(store, "sibling.out"), what="the unpaused sibling")
        runtime.wakeups.kick("low-stock")  # even woken on purpose, a paused bot does not run
        await async_wait_until(lambda: waiting_again("low-stock", runtime), what="the paused bot waiting again")
        assert runtime.runners["low-stock"].state == "paused"
        assert payloads_of(store, "inventory.low") == []
        assert store.get_checkpoint("low-stock", "inventory.in") in (None, 0)
        operator.set_paused("low-stock", False)
        await async_wait_until(lambda: payloads_of(store, "inventory.low"))

    run_with(project, body)


def test_a_pause_that_has_returned_holds_for_the_next_event(project: Project) -> None:
    """The runtime notices other processes' controls only every poll interval, but an event that
    arrives right after `leo bots pause` returned must not run: each run reads the pause first."""
    project.write(FILTER_PIPELINE)
    store = project.store()
    operator = project.store()

    async def body(runtime: Runtime) -> None:
        await async_wait_until(lambda: runtime.runners["low-stock"].state == "idle")
        await runtime.wakeups.stop()  # the other-process check never comes in time
        operator.set_paused("low-stock", True)
        runtime.store.append("inventory.in", [{"quantity": 1}])  # wakes the bot at once (the admin API's way)
        await async_wait_until(lambda: runtime.runners["low-stock"].state == "paused", what="the pause, found by the run")
        assert payloads_of(store, "inventory.low") == []
        operator.set_paused("low-stock", False)
        # What the other-process check does when it comes round: it brings the resume.
        runtime.wakeups._apply_marks(operator.queue_heads(), operator.bot_controls())
        await async_wait_until(lambda: payloads_of(store, "inventory.low"), what="the event, after the resume")

    run_with(project, body)


def test_second_runtime_stands_by_until_the_first_stops(project: Project) -> None:
    project.write(FILTER_PIPELINE)
    store = project.store()

    async def main() -> None:
        config = load_config(project.file)
        first = Runtime(config, open_store(config.store_url, config.base_dir), serve_http=False)
        second = Runtime(config, open_store(config.store_url, config.base_dir), serve_http=False)
        await first.start()
        await async_wait_until(lambda: first.runners["low-stock"].state == "idle")
        await second.start()
        await async_wait_until(lambda: second.runners["low-stock"].state == "standby")
        store.append("inventory.in", [{"quantity": 1}])
        await async_wait_until(lambda: len(payloads_of(store, "inventory.low")) == 1)
        await first.stop()
        store.append("inventory.in", [{"quantity": 2}])
        await async_wait_until(lambda: len(payloads_of(store, "inventory.low")) == 2, what="the standby taking over")
        assert second.runners["low-stock"].has_lease
        await second.stop()

    asyncio.run(main())
    assert [p["quantity"] for p in payloads_of(store, "inventory.low")] == [1, 2]


def test_reload_restarts_only_changed_pipelines_and_survives_a_broken_edit(project: Project) -> None:
    project.write(FILTER_PIPELINE)
    store = project.store()

    async def body(runtime: Runtime) -> None:
        original = runtime.runners["low-stock"]
        extra = "  extra:\n    bots:\n      - {id: copy, use: filter, in: inventory.low, out: copied, with: {query: {}}}\n"
        project.file.write_text(project.file.read_text() + extra)
        assert await runtime.reload()
        assert runtime.runners["low-stock"] is original
        assert "copy" in runtime.runners
        store.append("inventory.in", [{"quantity": 1}])
        await async_wait_until(lambda: payloads_of(store, "copied"))
        good = project.file.read_text()
        project.file.write_text(good.replace("out: copied", "ot: copied"))
        assert not await runtime.reload()
        line = good.splitlines().index(next(x for x in good.splitlines() if "out: copied" in x)) + 1
        column = good.splitlines()[line - 1].index("out: copied") + 1
        assert f"pipelines.yaml:{line}:{column}: bot 'copy': unknown field 'ot'" in (runtime.reload_error or "")
        store.append("inventory.in", [{"quantity": 2}])
        await async_wait_until(lambda: len(payloads_of(store, "copied")) == 2, what="old pipelines still running")

    run_with(project, body)


def test_file_edit_triggers_reload_through_the_watcher(project: Project) -> None:
    project.write(FILTER_PIPELINE)

    async def body(runtime: Runtime) -> None:
        project.file.write_text(project.file.read_text().replace("lt: 5", "lt: 7"))
        await async_wait_until(lambda: runtime.reloads == 1, what="a reload after the edit")
        assert runtime.config.bots[0].settings.query.spec == {"quantity": {"lt": 7}}  # type: ignore[attr-defined]

    run_with(project, body)


def test_file_reader_source_reads_appended_lines_once(project: Project) -> None:
    (project.root / "data").mkdir()
    data = project.root / "data" / "a.ndjson"
    data.write_text('{"n": 1}\n{"n": 2}\nnot json\n{"n": 3')
    project.write(
        """
        version: 1
        pipelines:
          p:
            bots:
              - {id: reader, use: file_reader, with: {path: data}, out: lines}
        """
    )
    store = project.store()

    async def body(runtime: Runtime) -> None:
        await async_wait_until(lambda: len(payloads_of(store, "lines")) == 2)
        with data.open("a") as handle:
            handle.write('}\n{"n": 4}\n')
        await async_wait_until(lambda: len(payloads_of(store, "lines")) == 4, what="appended lines")

    run_with(project, body)
    assert payloads_of(store, "lines") == [{"n": 1}, {"n": 2}, {"n": 3}, {"n": 4}]
    state = store.bot("reader").state  # type: ignore[union-attr]
    assert state["files"]["a.ndjson"]["skipped"] == 1

    # A restart reads nothing twice: the offsets were committed with the events.
    async def again(runtime: Runtime) -> None:
        await async_wait_until(lambda: runtime.runners["reader"].state == "idle")

    run_with(project, again)
    assert len(payloads_of(store, "lines")) == 4


def test_healthz_is_served_with_bot_states(project: Project) -> None:
    import httpx

    project.write(FILTER_PIPELINE.replace("version: 1", "version: 1\nserver: {port: 0}"))

    async def main() -> dict[str, Any]:
        config = load_config(project.file)
        store = open_store(config.store_url, config.base_dir)
        runtime = Runtime(config, store)
        await runtime.start()
        try:
            async with httpx.AsyncClient() as client:
                answer = await client.get(f"{runtime.http_address}/healthz")
                missing = await client.get(f"{runtime.http_address}/nope")
            assert missing.status_code == 404
            assert missing.headers["content-type"] == "application/problem+json"
            assert missing.json()["status"] == 404
            return answer.json()
        finally:
            await runtime.stop()

    health = asyncio.run(main())
    assert health["status"] == "ok" and health["version"]
    assert health["pipelines"] == ["feed"]
    assert health["bots"] == {"low-stock": {"state": health["bots"]["low-stock"]["state"], "failures": 0}}
    assert health["bots"]["low-stock"]["state"] in {"starting", "idle", "running"}
    assert health["states"] == {health["bots"]["low-stock"]["state"]: 1}
    assert health["failing"] == [] and health["stuck"] == [] and health["reload_failed"] is False


def test_kicks_do_not_make_a_scheduled_source_run_early(project: Project) -> None:
    project.write(CUSTOM_BOTS, "bots/custom.py")
    project.write(
        """
        version: 1
        pipelines:
          p:
            bots:
              - {id: hourly, use: ./bots/custom.py:Tick, out: counts, schedule: 1h}
              - {id: yearly, use: ./bots/custom.py:Tick, out: yearly, schedule: "0 0 1 1 *"}
        """
    )
    store = project.store()

    def waiting_again(bot: str, runtime: Runtime) -> bool:
        return any(not future.done() for future in runtime.wakeups._key_waiters.get(bot, ()))

    async def body(runtime: Runtime) -> None:
        await async_wait_until(lambda: len(payloads_of(store, "counts")) == 1)
        for _ in range(3):  # an operator's resume, a lease change, ... each wakes the runner
            runtime.wakeups.kick("hourly")
            runtime.wakeups.kick("yearly")
            await async_wait_until(lambda: waiting_again("hourly", runtime) and waiting_again("yearly", runtime))
        assert runtime.runners["yearly"].state == "idle"

    run_with(project, body)
    assert len(payloads_of(store, "counts")) == 1
    assert payloads_of(store, "yearly") == []  # a cron source waits for its first tick



def test_a_run_is_cut_by_its_time_bound_and_nothing_is_lost_or_repeated(project: Project) -> None:
    project.write(CUSTOM_BOTS, "bots/custom.py")
    project.write(
        """
        version: 1
        pipelines:
          p:
            bots:
              - {id: slow, use: ./bots/custom.py:Gate, in: a, out: b, batch: {records: 1000, seconds: 0.01},
                 with: {hold: [100]}}
        """
    )
    store = project.store()
    store.append("a", [{"n": n} for n in range(300)])
    gates = project.root / "gates"

    async def body(runtime: Runtime) -> None:
        # The bot holds at n=100 until released; once it shows as stuck, its 0.01 s are over for sure.
        await async_wait_until(lambda: (gates / "held-100").exists(), what="the bot holding at 100")
        await async_wait_until(lambda: runtime.runners["slow"].stuck, what="the run overrunning its bound")
        (gates / "release-100").write_text("")
        await async_wait_until(lambda: checkpoint(runtime, "slow", "a") == store.queue_head("a"))

    run_with(project, body)
    assert [p["n"] for p in payloads_of(store, "b")] == list(range(300))
    info = store.bot("slow")
    # One page of 300 (records: 1000) needed more than one run: the time bound cut the first.
    assert info is not None and info.runs > 1 and info.events_in == 300


def test_healthz_reports_a_failing_bot_as_degraded(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    monkeypatch.setattr(runner_module, "FAILING_AFTER", 2)
    monkeypatch.setattr("leo_runtime.runtime.FAILING_AFTER", 2)
    project.write(CUSTOM_BOTS, "bots/custom.py")
    project.write("version: 1\nserver: {port: 0}\npipelines:\n  p:\n    bots:\n"
                  "      - {id: explode, use: ./bots/custom.py:Explode, in: a, out: b}\n")
    store = project.store()
    store.append("a", [{"id": 1, "boom": True}])

    async def main() -> dict[str, Any]:
        config = load_config(project.file)
        runtime = Runtime(config, open_store(config.store_url, config.base_dir))
        await runtime.start()
        try:
            await async_wait_until(lambda: errors_of(store, "explode") >= 2)
            async with httpx.AsyncClient() as client:
                return (await client.get(f"{runtime.http_address}/healthz")).json()
        finally:
            await runtime.stop()

    health = asyncio.run(main())
    assert health["status"] == "degraded" and health["failing"] == ["explode"]
    assert health["bots"]["explode"]["state"] in ("backoff", "failing", "running")
    assert health["bots"]["explode"]["failures"] >= 2
    assert "boom" not in json.dumps(health)  # /healthz needs no token: no error text in it


# -- bot code can never stop the runtime ------------------------------------------------------------

EXITS_PIPELINE = """
version: 1
pipelines:
  broken:
    bots:
      - {{id: exits, use: ./bots/custom.py:Exits, in: a, out: a.out, with: {{when: {when}, what: {what}}}}}
  healthy:
    bots:
      - {{id: pass, use: filter, in: b, out: b.out, with: {{query: {{}}}}}}
"""

RAISED = {"exit": "SystemExit: 3", "interrupt": "KeyboardInterrupt", "generator_exit": "GeneratorExit",
          "cancel": "CancelledError"}


@pytest.mark.parametrize("what", list(RAISED))
@pytest.mark.parametrize("when", ["init", "setup", "process"])
def test_bot_code_raising_anything_is_that_bots_error_and_the_others_keep_running(
    project: Project, when: str, what: str
) -> None:
    project.write(CUSTOM_BOTS, "bots/custom.py")
    project.write(EXITS_PIPELINE.format(when=when, what=what))
    store = project.store()
    store.append("a", [{"n": 1}, {"n": 2, "poison": True}, {"n": 3}])

    async def body(runtime: Runtime) -> None:
        await async_wait_until(lambda: errors_of(store, "exits") >= 3, what="repeated failures, each with backoff")
        store.append("b", [{"n": n} for n in range(5)])
        await async_wait_until(lambda: len(payloads_of(store, "b.out")) == 5, what="the other pipeline")
        assert runtime.runners["exits"].failures >= 3

    run_with(project, body)  # asyncio.run would end with SystemExit or CancelledError if one got through
    expected = {
        "init": f"cannot start: {RAISED[what]}",
        "setup": f"setup failed: {RAISED[what]}",
        "process": f"failed on event a@2: {RAISED[what]}",
    }[when]
    assert store.bot("exits").last_error == expected  # type: ignore[union-attr]
    assert payloads_of(store, "a.out") == [] and store.get_checkpoint("exits", "a") in (None, 0)


def test_a_bot_exiting_in_close_or_in_a_source_does_not_stop_the_runtime(project: Project) -> None:
    project.write(CUSTOM_BOTS, "bots/custom.py")
    project.write(
        """
        version: 1
        pipelines:
          p:
            bots:
              - {id: closes, use: ./bots/custom.py:Exits, in: a, out: a.out, with: {when: close, what: exit}}
              - {id: source, use: ./bots/custom.py:ExitingSource, out: s, schedule: 1h}
        """
    )
    store = project.store()
    store.append("a", [{"n": 1}])

    async def body(runtime: Runtime) -> None:
        await async_wait_until(lambda: payloads_of(store, "a.out") and errors_of(store, "source") >= 1)

    run_with(project, body)  # stop() calls close(), which calls sys.exit(3)
    assert store.bot("source").last_error == "produce() failed: SystemExit: 5"  # type: ignore[union-attr]
    assert store.bot("closes").lease_owner is None  # released as usual after the failed close


def test_a_bot_cannot_write_around_its_commit_through_ctx_store(project: Project) -> None:
    project.write(CUSTOM_BOTS, "bots/custom.py")
    project.write("version: 1\npipelines:\n  p:\n    bots:\n      - {id: writer, use: ./bots/custom.py:Writer, in: a, out: b}\n")
    store = project.store()
    store.append("a", [{"n": 1}])

    async def body(runtime: Runtime) -> None:
        await async_wait_until(lambda: errors_of(store, "writer") >= 1)

    run_with(project, body)
    assert "AttributeError" in store.bot("writer").last_error  # type: ignore[union-attr]
    assert store.queue_head("sneaky") == 0


def test_backoff_never_exceeds_its_cap_whatever_the_jitter() -> None:
    import random

    from leo_runtime.states import BACKOFF_MAX_SECONDS, backoff_delay

    rng = random.Random(7)
    for failures in [*range(1, 12), 60, 10_000]:
        delays = [backoff_delay(failures, rng=rng) for _ in range(2000)]
        ideal = min(BACKOFF_MAX_SECONDS, 2.0 ** min(failures - 1, 62))
        assert max(delays) <= min(ideal, BACKOFF_MAX_SECONDS)
        assert min(delays) >= 0.8 * ideal
    assert max(backoff_delay(7, rng=random.Random(seed)) for seed in range(500)) <= BACKOFF_MAX_SECONDS


# -- dead letters ---------------------------------------------------------------------------------


def test_an_event_that_keeps_failing_moves_to_the_dead_letter_queue_with_the_checkpoint(project: Project) -> None:
    project.write(CUSTOM_BOTS, "bots/custom.py")
    project.write(
        """
        version: 1
        pipelines:
          p:
            bots:
              - {id: explode, use: ./bots/custom.py:Explode, in: a, out: a.out, on_error: {dead_letter: a.dead, after: 3}}
        """
    )
    store = project.store()
    store.append("a", [{"id": 1}, {"id": 2, "boom": True}, {"id": 3}])
    poison = store.read("a", 0)[1]

    async def body(runtime: Runtime) -> None:
        await async_wait_until(lambda: checkpoint(runtime, "explode", "a") == store.queue_head("a"), what="the page done")

    run_with(project, body)
    assert [p["id"] for p in payloads_of(store, "a.out")] == [1, 3]  # before and after the poison event
    dead = store.read("a.dead", 0)
    assert [e.payload_json for e in dead] == [poison.payload_json]  # untouched text
    assert dead[0].correlation_id == {"source": "a", "start": poison.seq, "units": 1}
    letters = store.dead_letters("a.dead")
    assert len(letters) == 1
    letter = letters[0]
    assert (letter.bot_id, letter.source_queue, letter.source_position, letter.failures) == ("explode", "a", poison.seq, 3)
    assert letter.error == f"failed on event a@{poison.seq}: RuntimeError: boom on 2"
    info = store.bot("explode")
    assert info is not None and info.error_count == 0 and info.events_in == 3
    assert store.dead_letter_counts() == {"explode": (1, 1)}


def test_dead_letters_leave_earlier_events_of_the_page_to_be_processed_once(project: Project) -> None:
    project.write(CUSTOM_BOTS, "bots/custom.py")
    project.write(
        """
        version: 1
        pipelines:
          p:
            bots:
              - {id: explode, use: ./bots/custom.py:Explode, in: a, out: a.out, on_error: {dead_letter: dead, after: 1}}
        """
    )
    store = project.store()
    store.append("a", [{"id": n, "boom": n in (5, 6, 9)} for n in range(1, 11)])

    async def body(runtime: Runtime) -> None:
        await async_wait_until(lambda: checkpoint(runtime, "explode", "a") == store.queue_head("a"))

    run_with(project, body)
    assert [p["id"] for p in payloads_of(store, "a.out")] == [1, 2, 3, 4, 7, 8, 10]
    assert [p["id"] for p in payloads_of(store, "dead")] == [5, 6, 9]


# -- stuck runs --------------------------------------------------------------------------------------

STUCK_PIPELINES = """
version: 1
pipelines:
  stuck:
    bots:
      - {id: stuck, use: ./bots/custom.py:Gate, in: a, out: a.out, batch: {seconds: 0.05}, with: {hold: [1]}}
  other:
    bots:
      - {id: other, use: filter, in: b, out: b.out, with: {query: {}}}
"""


def test_a_stuck_run_is_visible_and_never_blocks_reloads(project: Project) -> None:
    project.write(CUSTOM_BOTS, "bots/custom.py")
    project.write(STUCK_PIPELINES)
    store = project.store()
    store.append("a", [{"n": 1}])

    async def body(runtime: Runtime) -> None:
        await async_wait_until(lambda: runtime.runners["stuck"].state == "stuck", what="the stuck state")
        # In the store too (written off the loop, just after): any process sees it.
        await async_wait_until(lambda: store.bot("stuck").stuck_since is not None, what="the store's stuck mark")
        health = runtime.health()
        assert health["status"] == "degraded" and health["stuck"] == ["stuck"]
        # A reload of another pipeline goes through at once.
        project.file.write_text(project.file.read_text().replace("query: {}", "query: {n: {gte: 0}}"))
        assert await runtime.reload()
        store.append("b", [{"n": 1}])
        await async_wait_until(lambda: payloads_of(store, "b.out"), what="the other pipeline after its reload")
        # A reload of its own pipeline abandons the stuck run (uncommitted) instead of waiting for it.
        stuck_runner = runtime.runners["stuck"]
        project.file.write_text(project.file.read_text().replace("seconds: 0.05", "seconds: 0.06"))
        assert await asyncio.wait_for(runtime.reload(), 10)
        assert stuck_runner.state == "abandoned" and runtime.runners["stuck"] is not stuck_runner
        assert runtime.health()["abandoned_runs"] == 1
        (project.root / "gates" / "release-1").write_text("")  # the restarted bot redoes the event
        await async_wait_until(lambda: payloads_of(store, "a.out"), what="the restarted bot")

    run_with(project, body)
    assert payloads_of(store, "a.out") == [{"n": 1}]  # once: the abandoned run never committed
    assert store.bot("stuck").stuck_since is None  # type: ignore[union-attr]


def test_shutdown_waits_for_a_stuck_run_no_longer_than_the_drain_timeout(project: Project) -> None:
    project.write(CUSTOM_BOTS, "bots/custom.py")
    project.write(STUCK_PIPELINES)
    store = project.store()
    store.append("a", [{"n": 1}])

    async def main() -> bool:
        config = load_config(project.file)
        runtime = Runtime(config, open_store(config.store_url, config.base_dir), serve_http=False, drain_timeout=0.2)
        await runtime.start()
        await async_wait_until(lambda: (project.root / "gates" / "held-1").exists())
        return await asyncio.wait_for(runtime.stop(), 10)

    assert asyncio.run(main()) is False
    assert store.get_checkpoint("stuck", "a") == 0 and store.bot("stuck").lease_owner is None  # type: ignore[union-attr]
    (project.root / "gates" / "release-1").write_text("")


# -- reloads that meet hostile bot code -----------------------------------------------------------------


def test_a_reload_whose_bot_file_exits_at_import_is_refused_and_recorded(project: Project) -> None:
    project.write(FILTER_PIPELINE)
    project.write("import sys\nsys.exit(4)\n", "bots/evil.py")
    store = project.store()

    async def body(runtime: Runtime) -> None:
        project.file.write_text(project.file.read_text()
                                + "  evil:\n    bots:\n      - {id: evil, use: ./bots/evil.py:Evil, in: x, out: y}\n")
        assert not await runtime.reload()
        assert "loading" in (runtime.reload_error or "") and "SystemExit(4)" in (runtime.reload_error or "")
        record = next(info for info in store.runtimes() if info.owner == runtime.owner)
        assert record.reload_error == runtime.reload_error
        store.append("inventory.in", [{"quantity": 1}])
        await async_wait_until(lambda: payloads_of(store, "inventory.low"), what="the running pipeline")
        assert runtime.health()["reload_failed"] is True
        assert runtime.health()["status"] == "degraded"  # still 200 at /healthz, told to the operator

    run_with(project, body)
    assert store.runtimes() == []  # a stopped runtime unregisters


def test_a_reload_whose_bot_module_hangs_at_import_gives_up_and_later_reloads_work(project: Project) -> None:
    project.write(FILTER_PIPELINE)
    gate = project.root / "gates"
    project.write(f"from pathlib import Path\nimport time\nwhile not Path({str(gate / 'release-import')!r}).exists():\n"
                  "    time.sleep(0.01)\n", "bots/hangs.py")

    async def main() -> None:
        config = load_config(project.file)
        store = open_store(config.store_url, config.base_dir)
        runtime = Runtime(config, store, serve_http=False, load_timeout=0.5)
        await runtime.start()
        try:
            good = project.file.read_text()
            project.file.write_text(good + "  hangs:\n    bots:\n      - {id: h, use: ./bots/hangs.py:H, in: x, out: y}\n")
            assert not await asyncio.wait_for(runtime.reload(), 10)
            assert "took more than 0.5s" in (runtime.reload_error or "")
            project.file.write_text(good.replace("lt: 5", "lt: 6"))
            assert await asyncio.wait_for(runtime.reload(), 10)  # the hung import blocks nothing else
        finally:
            gate.mkdir(exist_ok=True)
            (gate / "release-import").write_text("")
            await runtime.stop()
            store.close()

    asyncio.run(main())


# -- the event loop never waits on the store -------------------------------------------------------------


def test_no_store_call_runs_on_the_event_loop(project: Project) -> None:
    import threading

    from leo_runtime.store import SQLiteStore
    from leo_runtime.store.base import Store

    on_loop: list[str] = []
    loop_thread: list[threading.Thread] = []

    class WatchedStore(SQLiteStore):
        pass

    def watched(name: str) -> Any:
        method = getattr(SQLiteStore, name)

        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            if loop_thread and threading.current_thread() is loop_thread[0]:
                on_loop.append(name)
            return method(self, *args, **kwargs)

        return call

    for name in Store.__abstractmethods__ - {"add_append_listener"}:  # that one only registers a callback
        setattr(WatchedStore, name, watched(name))

    project.write(CUSTOM_BOTS, "bots/custom.py")
    project.write(
        """
        version: 1
        pipelines:
          p:
            bots:
              - {id: explode, use: ./bots/custom.py:Explode, in: a, out: a.out}
              - {id: stuck, use: ./bots/custom.py:Gate, in: c, out: c.out, batch: {seconds: 0.05}, with: {hold: [1]}}
              - {id: pass, use: filter, in: b, out: b.out, with: {query: {}}}
        """
    )
    operator = project.store()
    operator.append("a", [{"id": 1, "boom": True}])
    operator.append("c", [{"n": 1}])

    store = WatchedStore(project.db)

    async def main() -> None:
        loop_thread.append(threading.current_thread())
        config = load_config(project.file)
        runtime = Runtime(config, store, serve_http=False, drain_timeout=0.3)
        await runtime.start()
        await async_wait_until(lambda: errors_of(operator, "explode") >= 2)
        await async_wait_until(lambda: runtime.runners["stuck"].stuck)
        operator.append("b", [{"n": 1}])  # another process: noticed by polling
        operator.set_paused("pass", True)
        await async_wait_until(lambda: runtime.runners["pass"].state == "paused")
        project.file.write_text(project.file.read_text().replace("query: {}", "query: {n: 1}"))
        assert await runtime.reload()
        await runtime.stop()
        loop_thread.clear()

    asyncio.run(main())
    store.close()
    (project.root / "gates" / "release-1").write_text("")
    assert on_loop == []


def _clipped(text: str) -> str:
    return f"{text[:2000]}... ({len(text) - 2000} more characters)"


@pytest.mark.parametrize(
    ("bot", "error"),
    [
        ("Stubborn", "failed on event a@1: bot 'b' yielded something that is not JSON: "
                     "Object of type object is not JSON serializable"),
        ("ReturnsText", "failed on the page starting at a@1, before taking an event: process() returned a str; "
                        "yield the outputs (or return a list of them, or None)"),
        ("Loud", _clipped("failed on the page starting at a@1, before taking an event: RuntimeError: " + "x" * 1_000_000)),
        ("Unprintable", "failed on the page starting at a@1, before taking an event: _Unprintable: "
                        "<its message could not be shown: SystemExit>"),
    ],
)
def test_a_bot_misusing_generators_or_return_values_is_an_error_not_a_mess(project: Project, bot: str, error: str) -> None:
    project.write(CUSTOM_BOTS, "bots/custom.py")
    project.write(f"version: 1\npipelines:\n  p:\n    bots:\n      - {{id: b, use: ./bots/custom.py:{bot}, in: a, out: o}}\n")
    store = project.store()
    store.append("a", [{"n": 1}])

    async def body(runtime: Runtime) -> None:
        await async_wait_until(lambda: errors_of(store, "b") >= 2)

    run_with(project, body)
    assert store.bot("b").last_error == error  # type: ignore[union-attr]
    assert payloads_of(store, "o") == []


def test_stopping_during_a_reload_that_hangs_in_bot_imports_stops_at_once(project: Project) -> None:
    project.write(FILTER_PIPELINE)
    gate = project.root / "gates"
    gate.mkdir()
    project.write(f"from pathlib import Path\nimport time\nPath({str(gate / 'importing')!r}).write_text('')\n"
                  f"while not Path({str(gate / 'release-import')!r}).exists():\n    time.sleep(0.01)\n", "bots/hangs.py")

    async def main() -> None:
        config = load_config(project.file)
        store = open_store(config.store_url, config.base_dir)
        runtime = Runtime(config, store, serve_http=False)
        await runtime.start()
        try:
            project.file.write_text(project.file.read_text()
                                    + "  hangs:\n    bots:\n      - {id: h, use: ./bots/hangs.py:H, in: x, out: y}\n")
            await async_wait_until(lambda: (gate / "importing").exists(), what="the reload importing the bot file")
            assert await asyncio.wait_for(runtime.stop(), 10)  # not after the 60 s load timeout
            assert runtime.runners == {} and runtime.reloads == 0
        finally:
            (gate / "release-import").write_text("")
            store.close()

    asyncio.run(main())


def test_an_edit_saved_while_leo_run_starts_is_applied(project: Project) -> None:
    """Seen: an edit landing between the load and the watch's first reading became the watch's
    baseline, and the runtime ran the old file for good. The watch compares with the bytes the
    running config was read from."""
    from leo_runtime.watching import content_digest

    project.write(FILTER_PIPELINE)
    config = load_config(project.file)
    assert config.text is not None and content_digest(config.text.encode()) == content_digest(project.file.read_bytes())
    project.file.write_text(FILTER_PIPELINE.replace("lt: 5", "lt: 50"))  # saved after the load, before the watch
    store = open_store(config.store_url, config.base_dir)

    async def main() -> None:
        runtime = Runtime(config, store, serve_http=False)
        await runtime.start()
        try:
            await async_wait_until(lambda: runtime.reloads == 1, what="the edit applied")
            assert runtime.config.bots[0].config.with_ == {"query": {"quantity": {"lt": 50}}}
        finally:
            await runtime.stop()
            store.close()

    asyncio.run(main())


# -- a store that stops answering never stops a bot, nor runs it twice -------------------------------


def test_a_store_that_fails_while_a_bot_takes_its_lease_only_delays_the_bot(
    project: Project, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Registering the bot, taking its lease and reading its state happen outside a run: a store
    error there (a server that went away) used to end the bot's loop for good ("stopped
    unexpectedly"), so a host that got its store back never ran that bot again."""
    import logging

    from leo_runtime.errors import StoreError
    from leo_runtime.store.sql import SQLStore

    failing = {"ensure_bot": 2, "acquire_lease": 2, "bot": 2}
    for name in failing:
        original = getattr(SQLStore, name)

        def flaky(self: Any, *args: Any, _name: str = name, _original: Any = original, **kwargs: Any) -> Any:
            if failing[_name] and args and args[0] == "low-stock":
                failing[_name] -= 1
                raise StoreError(f"store {self.url}: the server went away ({_name})")
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(SQLStore, name, flaky)
    project.write(FILTER_PIPELINE)
    store = project.store()
    store.append("inventory.in", [{"sku": f"S{i}", "quantity": i} for i in range(10)])

    async def body(runtime: Runtime) -> None:
        await async_wait_until(lambda: checkpoint(runtime, "low-stock", "inventory.in") == 10,
                               what="the bot running once the store answers")

    with caplog.at_level(logging.INFO):
        run_with(project, body)
    assert failing == {"ensure_bot": 0, "acquire_lease": 0, "bot": 0}
    assert [p["sku"] for p in payloads_of(store, "inventory.low")] == [f"S{i}" for i in range(5)]
    assert not [r for r in caplog.records if "stopped unexpectedly" in r.getMessage()]
    assert [r for r in caplog.records if "the store did not answer" in r.getMessage()]


def test_a_run_whose_lease_ran_out_while_it_waited_for_the_store_never_calls_the_bot(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that waited for its store (a server away for longer than the lease) reads its page
    when the store is back, by which time another host may hold the lease and run the bot: the
    bot's code must not run here. The commit's fence alone would keep the data right, but a bot
    that calls out (a webhook) would call twice."""
    from leo_runtime.leases import LeaseKeeper
    from leo_runtime.runs import BotWork
    from leo_runtime.store.sql import SQLStore

    lapsed = {"now": False, "reads": 0}
    driven_without_lease: list[bool] = []
    read, holds, acquire, drive = SQLStore.read, LeaseKeeper.holds, LeaseKeeper.acquire, BotWork._drive

    def slow_read(self: Any, queue: str, *args: Any, **kwargs: Any) -> Any:
        events = read(self, queue, *args, **kwargs)
        if queue == "inventory.in" and events and not lapsed["reads"]:
            lapsed["reads"] += 1
            lapsed["now"] = True  # the lease ran out while this read waited
        return events

    async def acquire_again(self: Any, bot_id: str, on_lost: Any) -> bool:
        lapsed["now"] = False
        return await acquire(self, bot_id, on_lost)

    def driving(self: Any, *args: Any, **kwargs: Any) -> Any:
        driven_without_lease.append(not self.holds())
        return drive(self, *args, **kwargs)

    monkeypatch.setattr(SQLStore, "read", slow_read)
    monkeypatch.setattr(LeaseKeeper, "holds", lambda self, bot_id: holds(self, bot_id) and not lapsed["now"])
    monkeypatch.setattr(LeaseKeeper, "acquire", acquire_again)
    monkeypatch.setattr(BotWork, "_drive", driving)
    project.write(FILTER_PIPELINE)
    store = project.store()
    store.append("inventory.in", [{"sku": f"S{i}", "quantity": i} for i in range(10)])

    async def body(runtime: Runtime) -> None:
        await async_wait_until(lambda: checkpoint(runtime, "low-stock", "inventory.in") == 10,
                               what="the bot running once it holds its lease again")

    run_with(project, body)
    assert lapsed["reads"] == 1 and driven_without_lease and not any(driven_without_lease)
    assert [p["sku"] for p in payloads_of(store, "inventory.low")] == [f"S{i}" for i in range(5)]


def test_a_system_bot_reconciled_while_the_runtime_stops_is_never_started(project: Project) -> None:
    """Seen once under load: `leo run` did not stop within 60 s of SIGTERM while partners created
    and deleted streams. The system bots' reconcile runs beside the drain; one that came back
    from the store after the drain had listed the runners to stop started a runner nobody
    stopped."""
    import threading

    from leo_runtime.bots.filter import Filter
    from leo_runtime.cli.compose import system_pipelines
    from leo_runtime.delivery.system import system_spec

    project.write(FILTER_PIPELINE)
    entered, go = threading.Event(), threading.Event()
    late = system_spec("system:late", "late-bot", Filter, {"query": {}}, in_queue="late.in", out_queue="late.out")

    def changed_late() -> dict[str, Any]:
        entered.set()
        go.wait(10)  # the store answers only once the drain has begun
        return {"system:late": ("mark", [late])}

    async def main() -> list[str]:
        config = load_config(project.file)
        store = open_store(config.store_url, config.base_dir)
        runtime = Runtime(config, store, serve_http=False, system=system_pipelines())
        await runtime.start()
        await async_wait_until(lambda: "low-stock" in runtime.runners, what="the filter's runner")
        runner = runtime.runners["low-stock"]
        stop_runner = runner.stop

        async def slow_stop(*args: Any, **kwargs: Any) -> bool:  # the drain of a run that takes a moment
            go.set()
            await async_wait_until(lambda: not runtime._system_lock.locked() or "late-bot" in runtime.runners,
                                   what="the reconcile to finish")
            return await stop_runner(*args, **kwargs)

        runtime._system_changed = changed_late  # type: ignore[method-assign]
        runner.stop = slow_stop  # type: ignore[method-assign]
        try:
            runtime.system_changed()
            await async_wait_until(entered.is_set, what="the reconcile asking the store")
            assert await asyncio.wait_for(runtime.stop(), 20)
            await asyncio.sleep(0)
            return sorted(task.get_name() for task in asyncio.all_tasks() if task.get_name().startswith("bot:"))
        finally:
            go.set()
            store.close()

    assert asyncio.run(main()) == []


def test_a_host_that_has_not_looked_at_the_cluster_yet_limits_get_object_with_the_shared_buckets(
    project: Project,
) -> None:
    """The API answers before the host joins the cluster: a host restarted beside others must not
    take Get Object calls from buckets of its own, full, until its first look (seen: one call
    past the rate summed over three hosts, as one of them came back)."""
    project.write(FILTER_PIPELINE)

    async def main() -> list[bool]:
        config = load_config(project.file)
        store = open_store(config.store_url, config.base_dir)
        runtime = Runtime(config, store, serve_http=False)
        try:
            before = runtime._api_shared()
            await runtime.leases.join()  # alone on the store: no other host serves the API
            return [before, runtime._api_shared()]
        finally:
            await runtime.leases.leave()
            store.close()

    assert asyncio.run(main()) == [True, False]
