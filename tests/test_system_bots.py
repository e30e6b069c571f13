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
from leo_runtime.operations import status_report
from leo_runtime.runtime import Runtime
from leo_runtime.store import Store, open_store
from leo_runtime.system import SystemPipeline, is_system_bot, system_spec

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
            report = status_report(store, config)
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
