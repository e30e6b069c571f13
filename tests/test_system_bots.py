"""System bots: bots the runtime derives from the store (partner webhooks and streams use this).

A test pipeline derives one `filter` bot per subscription event in the queue ``test.subs``
(``{"id": .., "query": .., "stop": bool}``): the runtime starts, restarts and stops them as the
store changes, from another writer included, and `leo status` shows them as system bots.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Any

from leo_runtime.bots.filter import Filter
from leo_runtime.config import BotSpec, Config, load_config
from leo_runtime.delivery.system import SystemPipeline, is_system_bot, system_spec
from leo_runtime.operations import status_report
from leo_runtime.runtime import Runtime
from leo_runtime.store import Store, open_store

from .conftest import FILTER_PIPELINE, Project, async_wait_until, payloads_of


class Subscriptions(SystemPipeline):
    name = "system:test-subs"

    def fingerprint(self, store: Store) -> Hashable:
        return store.queue_head("test.subs")

    def specs(self, store: Store, config: Config) -> list[BotSpec]:
        wanted: dict[str, Any] = {}
        for event in store.read("test.subs", 0, 10_000):
            sub = event.payload
            if sub.get("stop"):
                wanted.pop(sub["id"], None)
            else:
                wanted[sub["id"]] = sub
        return [
            system_spec(self.name, f"sub:{sub_id}", Filter, {"query": sub["query"]}, in_queue="inventory.in",
                        out_queue=f"sub.{sub_id}", initial_position=sub.get("from", 0))
            for sub_id, sub in wanted.items()
        ]


def test_store_derived_bots_start_change_and_stop_with_the_store(project: Project) -> None:
    project.write(FILTER_PIPELINE)
    seeded = project.store()
    seeded.append("inventory.in", [{"sku": f"S{i}", "quantity": i} for i in range(10)])
    subs = Subscriptions()

    async def main() -> None:
        config = load_config(project.file)
        store = open_store(config.store_url, config.base_dir)
        runtime = Runtime(config, store, serve_http=False, system=[subs])
        await runtime.start()
        other = project.store()  # another writer, as the CLI in another process would be
        try:
            store.append("test.subs", [{"id": "a", "query": {"quantity": {"lt": 3}}}])
            runtime.system_changed()  # in-process: reconciled at once
            await async_wait_until(lambda: len(payloads_of(store, "sub.a")) == 3, what="sub a filtered")
            assert "sub:a" in runtime.runners and is_system_bot(runtime.runners["sub:a"].spec)
            # A change made elsewhere, without a kick: noticed by the store watch.
            other.append("test.subs", [{"id": "b", "query": {"quantity": {"gte": 8}}}])
            await async_wait_until(lambda: len(payloads_of(store, "sub.b")) == 2, what="sub b from another writer")
            # New settings restart the bot; its checkpoint stays where it was.
            other.append("test.subs", [{"id": "a", "query": {"quantity": {"lt": 5}}}])
            other.append("inventory.in", [{"sku": "S10", "quantity": 1}])
            await async_wait_until(lambda: [p["sku"] for p in payloads_of(store, "sub.a")][-1:] == ["S10"])
            assert [p["sku"] for p in payloads_of(store, "sub.a")] == ["S0", "S1", "S2", "S10"]
            other.append("test.subs", [{"id": "b", "stop": True}])
            await async_wait_until(lambda: "sub:b" not in runtime.runners, what="sub b stopped")
            report = status_report(store, config, system=[subs])
            shown = {bot["id"]: bot for bot in report["bots"]}
            assert shown["low-stock"]["system"] is False
        finally:
            await runtime.stop()
            other.close()
            store.close()

    asyncio.run(main())


def test_a_system_bot_starts_at_its_initial_position(project: Project) -> None:
    project.write(FILTER_PIPELINE)
    store = project.store()
    _, last = store.append("inventory.in", [{"sku": f"S{i}", "quantity": 1} for i in range(5)])
    store.append("test.subs", [{"id": "late", "query": {}, "from": last - 2}])

    async def main() -> None:
        config = load_config(project.file)
        the_store = open_store(config.store_url, config.base_dir)
        runtime = Runtime(config, the_store, serve_http=False, system=[Subscriptions()])
        await runtime.start()
        try:
            await async_wait_until(lambda: len(payloads_of(the_store, "sub.late")) == 2)
        finally:
            await runtime.stop()
            the_store.close()

    asyncio.run(main())
    assert [p["sku"] for p in payloads_of(store, "sub.late")] == ["S3", "S4"]


def test_a_provider_that_breaks_stops_nothing_else(project: Project) -> None:
    project.write(FILTER_PIPELINE)

    class Broken(SystemPipeline):
        name = "system:broken"

        def fingerprint(self, store: Store) -> Hashable:
            return store.queue_head("inventory.in")

        def specs(self, store: Store, config: Config) -> list[BotSpec]:
            raise RuntimeError("boom")

    async def main() -> None:
        config = load_config(project.file)
        store = open_store(config.store_url, config.base_dir)
        runtime = Runtime(config, store, serve_http=False, system=[Broken()])
        await runtime.start()
        try:
            store.append("inventory.in", [{"sku": "A", "quantity": 1}])
            runtime.system_changed()
            await async_wait_until(lambda: len(payloads_of(store, "inventory.low")) == 1)
        finally:
            await runtime.stop()
            store.close()

    asyncio.run(main())


def test_the_reconcile_reads_the_streams_in_one_read_transaction(project: Project) -> None:
    """Seen: a stream deleted between two SELECTs of the reconcile gave a writer of a stream with
    0 partitions (a pydantic error), which skipped the whole reconcile. The writers are now one per
    object type, sized by its streams: both are read as of one moment."""
    import sqlite3

    from leo_runtime.delivery.stream_fanout import writer_limits
    from leo_runtime.delivery.stream_writers import StreamWriters
    from leo_runtime.delivery.streams import create_stream, writer_id
    from leo_runtime.delivery.system import derive
    from leo_runtime.partners import create_partner

    project.write("version: 1\nobject_types:\n  inventory: {key: sku}\n")
    config = load_config(project.file)
    store = open_store(config.store_url, config.base_dir)
    partner = create_partner(store, "acme")[0]
    first, second, third = (create_stream(store, partner.id, ["inventory"], 86400, object_type="inventory", query=None,
                                          partitions=2, start_at="now") for _ in range(3))
    other = sqlite3.connect(project.db, isolation_level=None)  # another process, deleting streams meanwhile
    deleted: list[str] = []

    def delete_between_the_selects(sql: str) -> None:
        if "AND s.object_type =" in sql and not deleted:  # after the types were read, before their streams
            for gone in (first, second):
                other.execute("DELETE FROM stream_partitions WHERE stream_id = ?", (gone.id,))
                other.execute("DELETE FROM streams WHERE id = ?", (gone.id,))
            deleted.append(sql)

    store._conn().set_trace_callback(delete_between_the_selects)  # the race, made to happen every time
    try:
        _, specs = derive(StreamWriters(), store, config)
        assert deleted, "the delete did not happen between the reads"
        # As of the transaction's first read: three streams of inventory, one writer sized for them.
        [spec] = specs or []
        assert spec.id == writer_id("inventory") and spec.limits == writer_limits(3)
        _, specs = derive(StreamWriters(), store, config)  # the next reconcile: one stream left
        assert [(s.id, s.limits) for s in specs or []] == [(writer_id("inventory"), writer_limits(1))]
        assert [record.id for record in store.streams()] == [third.id]
    finally:
        store._conn().set_trace_callback(None)
        other.close()
        store.close()
