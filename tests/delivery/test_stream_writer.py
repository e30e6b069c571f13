"""The stream_writer bot on its own, and opaque positions."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest

from leo_runtime.bot import BotContext
from leo_runtime.bots.stream_writer import StreamWriter
from leo_runtime.cli.compose import system_pipelines
from leo_runtime.delivery.positions import decode_position, encode_position
from leo_runtime.delivery.streams import format_duration, partition_of
from leo_runtime.errors import BotError, InputError
from leo_runtime.events import Event, dumps

from ..conftest import Project


def run_writer(settings: dict, payloads: list, out: str = "feed") -> list[tuple[str, dict]]:
    ctx = BotContext(bot_id="w", pipeline="p", base_dir=Path("."), out_queue=out)
    bot = StreamWriter(StreamWriter.Settings.model_validate(settings), ctx)
    bot.setup(ctx)
    events = [Event(i + 1, "inventory.changes", dumps(p), None, 0) for i, p in enumerate(payloads)]
    return [(output.queue, output.payload.text) for output in bot.process(iter(events), ctx)]


def change(key: str, data: dict, op: str = "updated") -> dict:
    return {"object_type": "inventory", "key": key, "op": op, "version": 1, "data": data}


def test_matching_records_go_untouched_to_the_partition_of_their_key() -> None:
    records = [change(f"K{i}", {"quantity": i, "warehouse": "NYC" if i % 2 else "SFO"}) for i in range(40)]
    written = run_writer({"partitions": 4, "query": {"quantity": {"lt": 30}}, "scope": {"warehouse": "NYC"}}, records)
    expected = [r for r in records if r["data"]["quantity"] < 30 and r["data"]["warehouse"] == "NYC"]
    assert [text for _, text in written] == [dumps(r) for r in expected]  # stored text, in order
    assert [queue for queue, _ in written] == [f"feed.{zlib.crc32(r['key'].encode()) % 4}" for r in expected]
    assert all(partition_of(r["key"], 4) == zlib.crc32(r["key"].encode()) % 4 for r in records)


def test_plain_payloads_need_a_key_field() -> None:
    assert run_writer({"partitions": 2, "key": "sku"}, [{"sku": "A"}]) == [(f"feed.{zlib.crc32(b'A') % 2}", '{"sku":"A"}')]
    with pytest.raises(BotError, match=r"inventory\.changes@1 is not a change record"):
        run_writer({}, [{"sku": "A"}])


def test_settings_are_checked() -> None:
    for bad in ({"partitions": 0}, {"partitions": 65}, {"query": {"q": {"less": 1}}}, {"other": 1}):
        with pytest.raises(ValueError):
            StreamWriter.Settings.model_validate(bad)


def test_positions_round_trip_and_refuse_other_partitions_and_streams() -> None:
    text = encode_position("st_a", 2, 12345)
    assert decode_position(text, "st_a", 2, 4, "after") == 12345
    with pytest.raises(InputError, match=r"after: .* is a position of partition 2 of this stream, not of partition 1"):
        decode_position(text, "st_a", 1, 4, "after")
    with pytest.raises(InputError, match="is a position of another stream"):
        decode_position(text, "st_b", 2, 4, "after")
    for bad in ("", "12345", "ZZZZZZZZZZ", text.upper(), text + "\n", None, 5, "0" * 40):
        with pytest.raises(InputError, match="not a stream position"):
            decode_position(bad, "st_a", 2, 4, "position")


def test_retention_shows_as_an_iso_duration() -> None:
    assert [format_duration(s) for s in (604800, 3600, 95400 + 1800, 0.5, 0, 90)] == [
        "P7D", "PT1H", "P1DT3H", "PT0.5S", "PT0S", "PT1M30S"]


YAML_WRITER = """
version: 1
object_types:
  order: {key: po_number}
pipelines:
  partitioned:
    bots:
      - id: orders-by-key
        use: stream_writer
        in: order.changes
        out: order.partitioned
        with: {partitions: 3, query: {status: open}}
"""


def test_from_pipelines_yaml_it_partitions_a_change_queue(project: Project) -> None:
    import asyncio

    from leo_runtime.config import load_config
    from leo_runtime.objects import ingest
    from leo_runtime.runtime import Runtime
    from leo_runtime.store import open_store

    from ..conftest import async_wait_until, payloads_of

    project.write(YAML_WRITER)
    config = load_config(project.file)
    store = open_store(config.store_url, config.base_dir)
    orders = [{"po_number": f"PO-{i}", "status": "open" if i % 3 else "closed"} for i in range(30)]

    async def main() -> None:
        runtime = Runtime(config, store, serve_http=False, system=system_pipelines())
        await runtime.start()
        try:
            ingest(store, "order", "po_number", orders)
            await async_wait_until(lambda: store.get_checkpoint("orders-by-key", "order.changes") == store.queue_head(
                "order.changes"), what="the writer")
        finally:
            await runtime.stop()

    asyncio.run(main())
    spread = {p: [r["key"] for r in payloads_of(store, f"order.partitioned.{p}")] for p in range(3)}
    store.close()
    wanted = sorted(o["po_number"] for o in orders if o["status"] == "open")
    assert sorted(key for keys in spread.values() for key in keys) == wanted
    assert all(partition_of(key, 3) == p for p, keys in spread.items() for key in keys)
