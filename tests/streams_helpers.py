"""The whole runtime in the test process: bots (stream writers included), wakeups and the HTTP
API on a loopback port, run by a real `Runtime` on its own event loop in a thread."""

from __future__ import annotations

import asyncio
import json
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from leo_runtime.cli.compose import system_pipelines
from leo_runtime.config import load_config
from leo_runtime.delivery.streams import partition_source
from leo_runtime.delivery.subscriptions import compile_subscription
from leo_runtime.objects import ingest
from leo_runtime.partners import create_partner
from leo_runtime.runtime import Runtime
from leo_runtime.store import Store, open_store

from .conftest import Project, wait_until

ADMIN_TOKEN = "streams-admin-token"
STREAMS_PROJECT = """
version: 1
server: {port: 0}
retention: P7D
object_types:
  inventory: {key: sku}
  order: {key: po_number}
pipelines:
  feed:
    bots:
      - id: low-stock
        use: filter
        in: inventory.changes
        with: {query: {quantity: {lt: 5}}}
        out: inventory.low_stock
"""


class RunningRuntime:
    """A started `Runtime`: its HTTP base URL, its store (writes through it wake waiters at once,
    as the API's own writes do) and helpers for partners and objects."""

    def __init__(self, runtime: Runtime, url: str) -> None:
        self.runtime = runtime
        self.url = url
        self.store: Store = runtime.store

    def partner(self, name: str, scope: dict[str, Any] | None = None) -> str:
        return create_partner(self.store, name, scope)[1]

    def client(self, token: str, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=90, **kwargs)

    def ingest(self, object_type: str, objects: list[dict[str, Any]]) -> None:
        key = {"inventory": "sku", "order": "po_number"}[object_type]
        ingest(self.store, object_type, key, objects)

    def writer_caught_up(self, stream_id: str, object_type: str = "inventory") -> bool:
        """Whether every change so far was fanned out to the stream: the writer of its type has
        read them all and the stream follows it (it caught up)."""
        head = self.store.queue_head(f"{object_type}.changes")
        checkpoint = self.store.get_checkpoint(f"streams:{object_type}", f"{object_type}.changes")
        cursor = {t.id: t.cursor for t in self.store.stream_targets(object_type)}.get(stream_id, -1)
        return checkpoint is not None and checkpoint >= head and (cursor is None or (cursor >= head))

    def waiting(self) -> int:
        """Reads waiting on stream partitions (bots wait on other queues, and come and go)."""
        waiters = self.runtime.wakeups._queue_waiters  # what Wakeups.waiting() sums, narrowed to streams
        return sum(len(futures) for queue, futures in list(waiters.items()) if queue.startswith("streams."))


@contextmanager
def running_runtime(project: Project, monkeypatch: Any, text: str = STREAMS_PROJECT) -> Iterator[RunningRuntime]:
    """Run the project's runtime (HTTP included) until the block ends."""
    monkeypatch.setenv("LEO_ADMIN_TOKEN", ADMIN_TOKEN)
    project.write(text)
    config = load_config(project.file)
    store = open_store(config.store_url, config.base_dir)
    runtime = Runtime(config, store, serve_http=True, drain_timeout=10, system=system_pipelines())
    started = threading.Event()
    failure: list[BaseException] = []
    loop = asyncio.new_event_loop()

    async def main() -> None:
        try:
            await runtime.start()
        except BaseException as exc:
            failure.append(exc)
            started.set()
            return
        started.set()
        await runtime._stop_requested.wait()
        await runtime.stop()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), name="test-runtime", daemon=True)
    thread.start()
    started.wait(30)
    if failure:
        raise failure[0]
    try:
        yield RunningRuntime(runtime, runtime.http_address or "")
    finally:
        loop.call_soon_threadsafe(runtime.request_stop)
        thread.join(30)
        loop.close()
        store.close()


def wait_for_writer(rt: RunningRuntime, stream_id: str, object_type: str = "inventory") -> None:
    wait_until(lambda: rt.writer_caught_up(stream_id, object_type), what=f"the writer of {stream_id}")


def caught_up(store: Store, object_type: str = "inventory") -> bool:
    head = store.queue_head(f"{object_type}.changes")
    checkpoint = store.get_checkpoint(f"streams:{object_type}", f"{object_type}.changes")
    return (checkpoint or 0) >= head and all(t.cursor is None or t.cursor >= head for t in store.stream_targets(object_type))


def check_stream(store: Store, stream_id: str, object_type: str = "inventory") -> int:
    """Each partition holds exactly the matching changes after the stream's start, in order, once."""
    record = store.stream(stream_id)
    assert record is not None
    scope = next(p.scope_json for p in store.partners() if p.id == record.partner_id)
    subscription = compile_subscription(stream_id, object_type, json.loads(record.query_json or "null"), scope)
    count = len(record.partitions)
    expected: dict[int, list[str]] = {p: [] for p in range(count)}
    for event in store.read(f"{object_type}.changes", record.start_position, 10_000_000):
        if subscription.matches(event.payload["data"]):
            expected[zlib.crc32(event.payload["key"].encode()) % count].append(event.payload_json)
    for partition in range(count):
        queue, floor = partition_source(record, partition)  # its own queue, or a shared log after its start
        got = [event.payload_json for event in store.read(queue, floor, 10_000_000)]
        assert got == expected[partition], f"{stream_id} partition {partition}: {len(got)} != {len(expected[partition])}"
    return sum(len(texts) for texts in expected.values())
