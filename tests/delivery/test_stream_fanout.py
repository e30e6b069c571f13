"""One writer per object type fans every change out to all its streams: streams cost no bot or
thread of their own, start where they asked (now, earliest, a time) whenever they are created,
back-fill beside the live ones, and get every matching change once, in order, per partition."""

from __future__ import annotations

import json
import threading
import time
import zlib
from collections.abc import Iterator
from typing import Any

import pytest

from leo_runtime.delivery import stream_fanout
from leo_runtime.delivery.streams import create_stream
from leo_runtime.partners import revoke_partner
from leo_runtime.timeutil import now_ms

from ..conftest import Project, wait_until
from ..streams_helpers import STREAMS_PROJECT, RunningRuntime, caught_up, check_stream, running_runtime

PROJECT = STREAMS_PROJECT.replace("server: {port: 0}", "server: {port: 0, limits: {streams: 200}}")
DAY = 86400.0


@pytest.fixture
def rt(project: Project, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningRuntime]:
    with running_runtime(project, monkeypatch, PROJECT) as running:
        yield running


def writer_threads() -> list[str]:
    return [thread.name for thread in threading.enumerate() if thread.name.startswith("leo-bot-streams:")]


def stream_runners(rt: RunningRuntime) -> list[str]:
    return sorted(bot for bot, runner in rt.runtime.runners.items() if runner.spec.pipeline == "system:streams")


def new_stream(rt: RunningRuntime, partner_id: int, *, query: dict | None = None, partitions: int = 1,
               start_at: str = "now", object_type: str = "inventory") -> str:
    record = create_stream(rt.store, partner_id, ["inventory", "order"], 7 * DAY, object_type=object_type, query=query,
                           partitions=partitions, start_at=start_at)
    rt.runtime.system_changed()  # what the API does after a create
    return record.id


def objects(start: int, count: int, version: int = 0) -> list[dict[str, Any]]:
    return [{"sku": f"S{i:05d}", "quantity": (i + version) % 100, "warehouse": "NYC" if i % 3 else "SFO"}
            for i in range(start, start + count)]


def test_streams_share_one_writer_per_object_type_and_cost_no_thread_each(rt: RunningRuntime) -> None:
    acme = rt.store.create_partner("acme", b"x" * 32, None)
    first = new_stream(rt, acme.id)
    wait_until(lambda: stream_runners(rt) == ["streams:inventory"], what="the inventory writer")
    ids = [first] + [new_stream(rt, acme.id, query={"quantity": {"lt": i}}) for i in range(1, 60)]
    ids.append(new_stream(rt, acme.id, object_type="order"))
    rt.ingest("inventory", objects(0, 200))
    rt.ingest("order", [{"po_number": "PO-1"}])
    wait_until(lambda: caught_up(rt.store) and caught_up(rt.store, "order"), what="the writers")
    assert stream_runners(rt) == ["streams:inventory", "streams:order"]
    assert sorted(writer_threads()) == ["leo-bot-streams:inventory", "leo-bot-streams:order"]
    assert sum(check_stream(rt.store, stream_id) for stream_id in ids[:-1]) > 200
    assert check_stream(rt.store, ids[-1], "order") == 1


def small_slices(monkeypatch: pytest.MonkeyPatch, page: int, page_bytes: int = 16_000_000) -> None:
    """Catch up a page at a time: back-fills take many runs, between live pages and new streams
    (a page read may also stop at its byte bound)."""
    monkeypatch.setattr(stream_fanout, "CATCH_UP_PAGE", page)
    monkeypatch.setattr(stream_fanout, "CATCH_UP_BYTES", page_bytes)
    monkeypatch.setattr(stream_fanout, "CATCH_UP_SECONDS", 0.0)


def test_streams_started_anywhere_while_the_writer_runs_get_each_change_once_in_order(
    rt: RunningRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_slices(monkeypatch, 37)
    acme = rt.store.create_partner("acme", b"a" * 32, None)
    nyc = rt.store.create_partner("nyc", b"n" * 32, '{"warehouse": "NYC"}')
    rt.ingest("inventory", objects(0, 600))
    live = new_stream(rt, acme.id, partitions=3)
    rt.ingest("inventory", objects(0, 300, version=1))
    moment = now_ms()
    time.sleep(0.002)  # the next change is written strictly after `moment`
    rt.ingest("inventory", objects(300, 300, version=1))
    streams = [
        live,
        new_stream(rt, acme.id, start_at="earliest", partitions=4, query={"quantity": {"lt": 50}}),
        new_stream(rt, nyc.id, start_at="earliest", partitions=64),
        new_stream(rt, acme.id, start_at=time_text(moment), partitions=2),
        new_stream(rt, acme.id, start_at="earliest", query={"quantity": {"gt": 1000}}),  # matches nothing
    ]
    for round_ in range(2, 6):  # live changes while they catch up, and more streams joining late
        rt.ingest("inventory", objects(100 * round_, 250, version=round_))
        streams.append(new_stream(rt, acme.id, start_at="earliest" if round_ % 2 else "now"))
    wait_until(lambda: caught_up(rt.store), timeout=120, what="every stream to catch up")
    counts = [check_stream(rt.store, stream_id) for stream_id in streams]
    assert counts[4] == 0 and all(counts[:4]) and counts[2] > counts[1]
    assert all(target.cursor is None for target in rt.store.stream_targets("inventory"))
    writer = rt.store.bot("streams:inventory")
    assert writer is not None and writer.error_count == 0


def test_a_stream_deleted_or_revoked_mid_back_fill_stops_getting_records_and_nothing_else_breaks(
    rt: RunningRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_slices(monkeypatch, 20, page_bytes=2500)  # about 12 records a read: fewer than a page, yet not the end
    acme = rt.store.create_partner("acme", b"a" * 32, None)
    globex = rt.store.create_partner("globex", b"g" * 32, None)
    rt.ingest("inventory", objects(0, 2000))
    kept = new_stream(rt, acme.id, start_at="earliest")
    doomed = new_stream(rt, acme.id, start_at="earliest", partitions=2)
    revoked = new_stream(rt, globex.id, start_at="earliest")
    wait_until(lambda: rt.store.queue_head(f"streams.{doomed}.0") > 0, what="the back-fill to start")
    assert rt.store.delete_stream(doomed)
    revoke_partner(rt.store, "globex")
    rt.runtime.system_changed()
    gone = {queue: rt.store.queue_head(queue) for queue in (f"streams.{doomed}.0", f"streams.{doomed}.1",
                                                            f"streams.{revoked}.0")}
    rt.ingest("inventory", objects(0, 100, version=1))
    wait_until(lambda: caught_up(rt.store), timeout=120, what="the kept stream")
    assert check_stream(rt.store, kept) == 2100
    # At most the run in flight when they went wrote more for them; nothing after it.
    later = {queue: rt.store.queue_head(queue) for queue in gone}
    rt.ingest("inventory", objects(0, 50, version=2))
    wait_until(lambda: caught_up(rt.store), what="the writer")
    assert {queue: rt.store.queue_head(queue) for queue in gone} == later
    assert [t.id for t in rt.store.stream_targets("inventory")] == [kept]
    writer = rt.store.bot("streams:inventory")
    assert writer is not None and writer.error_count == 0


def time_text(ms: int) -> str:
    from leo_runtime.timeutil import format_time

    return format_time(ms) or ""


@pytest.mark.parametrize("key", ["SKU-1", 'a "quoted" key', "caf\u00e9 \u2615", "back\\slash", "tab\tand\nline", "\U0001f600"])
def test_a_change_is_read_once_whatever_its_key_and_its_numbers_stay_exact(key: str) -> None:
    from leo_runtime.events import Event

    data = {"sku": key, "big": 123456789012345678901234567890, "price": 0.1}
    leo_text = json.dumps({"object_type": "inventory", "key": key, "op": "created", "version": 1, "data": data},
                          ensure_ascii=False, separators=(",", ":"))
    other_text = json.dumps({"op": "created", "data": data, "key": key})  # not as leo writes them: decoded whole
    for text in (leo_text, other_text):
        change = stream_fanout._decode(Event(7, "inventory.changes", text, 5, 6))
        assert change is not None and change.crc == zlib.crc32(key.encode("utf-8", "surrogatepass"))
        assert change.data() == data and type(change.data()["big"]) is int and change.text == text
    for not_a_change in ('{"sku":"A"}', "[1]", '{"key":1,"data":{}}', '"text"'):
        assert stream_fanout._decode(Event(7, "inventory.changes", not_a_change, 5, 6)) is None


def test_streams_indexed_by_an_equality_get_exactly_what_their_queries_match(rt: RunningRuntime) -> None:
    acme = rt.store.create_partner("acme", b"a" * 32, None)
    sfo = rt.store.create_partner("sfo", b"s" * 32, '{"warehouse": "SFO"}')
    queries = [{"warehouse": "NYC"}, {"quantity": 3}, {"quantity": {"eq": 3.0}}, {"flag": 1}, {"flag": True},
               {"a.b": "x"}, {"quantity": 3, "warehouse": "SFO"}, {"quantity": {"in": [3, 4]}}, {"name": "café"}]
    flags: list[Any] = [True, 1, 1.0, "1", 0, False, None, [1]]
    nested: list[Any] = [{"b": "x"}, {"b": ["x"]}, ["b"], "x", {"b": "y"}, None]

    def objects_(version: int) -> list[dict[str, Any]]:
        return [{"sku": f"S{i:03d}", "quantity": (3, 3.0, 4, "3", None)[(i + version) % 5],
                 "warehouse": ("NYC", "SFO", "LAX")[i % 3], "flag": flags[(i + version) % len(flags)],
                 "a": nested[(i + version) % len(nested)], "name": "café" if i % 4 else "cafe"} for i in range(240)]

    rt.ingest("inventory", objects_(0))
    streams = [new_stream(rt, acme.id, query=query, start_at="earliest") for query in queries]  # they catch up
    streams.append(new_stream(rt, sfo.id, query={"quantity": 4}, start_at="earliest"))  # scope and query equalities
    rt.ingest("inventory", objects_(1))  # and go on live
    wait_until(lambda: caught_up(rt.store), timeout=60, what="the streams")
    counts = [check_stream(rt.store, stream_id) for stream_id in streams]
    assert all(counts), counts


def test_a_stream_created_over_the_api_is_served_at_once_not_at_the_next_store_check(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The API's create runs in a worker thread; it wakes the runtime's loop itself (an asyncio
    # event set from another thread would wait for the next check of the store).
    monkeypatch.setattr("leo_runtime.runtime.SYSTEM_RECHECK_SECONDS", 3600.0)
    with running_runtime(project, monkeypatch, PROJECT) as rt:
        client = rt.client(rt.partner("acme"))
        stream = client.post("/v1/streams", json={"object_type": "inventory"}).json()
        wait_until(lambda: stream_runners(rt) == ["streams:inventory"], timeout=20, what="the writer, at once")
        rt.ingest("inventory", objects(0, 3))
        wait_until(lambda: caught_up(rt.store), timeout=20, what="the stream")
        assert check_stream(rt.store, stream["id"]) == 3
        client.close()


def test_streams_that_want_the_same_records_share_one_copy_and_each_sees_its_own_from_its_start(
    rt: RunningRuntime,
) -> None:
    from leo_runtime.delivery import streams as service

    acme = rt.store.create_partner("acme", b"a" * 32, None)
    globex = rt.store.create_partner("globex", b"g" * 32, None)
    nyc = rt.store.create_partner("nyc", b"n" * 32, '{"warehouse": "NYC"}')
    first = new_stream(rt, acme.id)  # the type's first stream: its writer starts where it starts
    rt.ingest("inventory", objects(0, 50))
    wait_until(lambda: caught_up(rt.store), what="the writer")
    a, b = new_stream(rt, acme.id), new_stream(rt, globex.id)  # another partner, the same records
    others = [new_stream(rt, nyc.id), new_stream(rt, acme.id, partitions=2),
              new_stream(rt, acme.id, query={"quantity": {"lt": 10}})]
    record = {stream_id: rt.store.stream(stream_id) for stream_id in [first, a, b, *others]}
    log = record[a].log  # type: ignore[union-attr]
    assert log is not None and record[b].log == log == record[first].log  # type: ignore[union-attr]
    assert len({log, *(record[s].log for s in others)}) == 4  # type: ignore[union-attr]  # scope, partitions, query
    rt.ingest("inventory", objects(0, 300, version=1))
    wait_until(lambda: caught_up(rt.store), what="the writer")
    late = new_stream(rt, globex.id)  # on the same log, which holds 300 records from before it started
    assert rt.store.stream(late).log == log  # type: ignore[union-attr]
    rt.ingest("inventory", objects(300, 40, version=2))
    wait_until(lambda: caught_up(rt.store), what="the writer")
    counts = {stream_id: check_stream(rt.store, stream_id) for stream_id in [first, a, b, late, *others]}
    assert counts[a] == counts[b] == counts[first] - 50 == 340 and counts[late] == 40
    # ONE copy on the log for first, a, b and late, none of their own
    assert len(rt.store.read(f"{log}.0", 0, 10_000)) == counts[first] == 390
    assert all(rt.store.queue_head(f"streams.{stream_id}.0") == 0 for stream_id in (first, a, b, late))
    # Reset back past its start: the late stream still sees only its own records, and its lag says so
    rewound, _ = service.reset(rt.store, rt.store.stream(late), "earliest", None, DAY)  # type: ignore[arg-type]
    page = service.read_page(rt.store, rewound, 0, rewound.partitions[0].checkpoint, 1000)
    assert len(page.records) == 40 and service.partition_marks(rt.store, rewound)[0][2] == 40
    # A stream deleted: the others on its log go on
    assert rt.store.delete_stream(a)
    rt.runtime.system_changed()
    rt.ingest("inventory", objects(400, 5))
    wait_until(lambda: caught_up(rt.store), what="the writer")
    assert check_stream(rt.store, b) == 345 and check_stream(rt.store, late) == 45


def test_a_stream_created_while_its_writer_lags_gets_queues_of_its_own_and_only_what_follows_its_start(
    rt: RunningRuntime,
) -> None:
    acme = rt.store.create_partner("acme", b"a" * 32, None)
    new_stream(rt, acme.id)
    rt.ingest("inventory", objects(0, 20))
    wait_until(lambda: caught_up(rt.store), what="the writer")
    rt.store.set_paused("streams:inventory", True)  # the writer falls behind the changes
    rt.ingest("inventory", objects(0, 30, version=1))
    lagging = new_stream(rt, acme.id)  # a shared log would hand it the 30 changes from before its start
    rt.ingest("inventory", objects(100, 10))
    rt.store.set_paused("streams:inventory", False)
    rt.runtime.system_changed()
    wait_until(lambda: caught_up(rt.store), what="the writer")
    assert check_stream(rt.store, lagging) == 10
    assert rt.store.stream(lagging).log is None  # type: ignore[union-attr]


def test_a_writer_whose_streams_are_all_gone_starts_the_next_one_at_its_start(rt: RunningRuntime) -> None:
    acme = rt.store.create_partner("acme", b"a" * 32, None)
    gone = new_stream(rt, acme.id)
    rt.ingest("inventory", objects(0, 20))
    wait_until(lambda: caught_up(rt.store), what="the writer")
    assert rt.store.delete_stream(gone)
    rt.runtime.system_changed()
    wait_until(lambda: "streams:inventory" not in rt.runtime.runners, what="the writer to stop")
    rt.ingest("inventory", objects(0, 30, version=1))  # nobody's: the stopped writer never reads them
    fresh = new_stream(rt, acme.id)
    rt.ingest("inventory", objects(100, 10))
    wait_until(lambda: caught_up(rt.store), what="the writer")
    assert check_stream(rt.store, fresh) == 10
    assert rt.store.stream(fresh).log is not None  # type: ignore[union-attr]
