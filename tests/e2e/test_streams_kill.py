"""A real `leo run` killed with SIGKILL while a partner consumes a stream: nothing committed is
lost, nothing accepted is lost, and the client's consume carries on once it is back."""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

import pytest

from leo_runtime.client import LeoClient
from leo_runtime.objects import ingest

from ..conftest import OBJECTS_PIPELINE, STORES, Project, leo, wait_until

PROJECT = OBJECTS_PIPELINE.replace("version: 1\n", "version: 1\nserver: {port: PORT}\n")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("project", STORES, indirect=True)
def test_sigkill_during_consumption_loses_nothing_committed(project: Project, leo_run) -> None:
    port = free_port()
    project.write(PROJECT.replace("PORT", str(port)))
    run = leo_run(project)
    run.wait_ready()
    made = leo("partners", "create", "acme", "--json", "-f", str(project.file))
    token = json.loads(made.stdout)["token"]
    client = LeoClient(run.http, token)
    stream = client.create_stream("inventory", partitions=4)
    store = project.store()  # another process's writes, as an ERP feed beside leo run
    wanted: set[tuple[str, int]] = set()

    def push(start: int, count: int, version: int) -> None:
        ingest(store, "inventory", "sku", [{"sku": f"S{i}", "quantity": i + version} for i in range(start, start + count)])
        wanted.update((f"S{i}", version) for i in range(start, start + count))  # version: the key's n-th write

    push(0, 1500, 1)
    seen: list[tuple[str, int]] = []
    lock = threading.Lock()

    def handle(records: list[dict[str, Any]]) -> None:
        time.sleep(0.002 * len(records))  # a partner's work: slow enough to be killed in the middle
        with lock:
            seen.extend((r["key"], r["version"]) for r in records)
            if wanted and wanted <= set(seen):
                client.stop()

    consumer = threading.Thread(target=client.consume, args=(stream["id"], handle),
                                kwargs={"workers": 2, "limit": 50, "wait": 5, "lease_seconds": 30})
    consumer.start()
    wait_until(lambda: len(seen) >= 300, timeout=60, what="consumption under way")
    committed = {p["partition"]: p["checkpoint"] for p in client.get_stream(stream["id"])["partitions"]}
    run.kill()  # SIGKILL, mid-consumption
    push(1500, 500, 1)  # accepted while leo run is down
    assert len(seen) < len(wanted)

    again = leo_run(project)
    again.wait_ready()
    after = {p["partition"]: p["checkpoint"] for p in client.get_stream(stream["id"])["partitions"]}
    for partition, checkpoint in committed.items():  # every commit acknowledged before the kill held
        assert int(after[partition][8:], 16) >= int(checkpoint[8:], 16)
    push(0, 200, 2)  # and changes after the restart
    consumer.join(120)
    assert not consumer.is_alive(), f"consumed {len(set(seen))} of {len(wanted)}"
    assert set(seen) == wanted
    assert all(p["lag"] == 0 for p in client.get_stream(stream["id"])["partitions"])
    client.close()
    store.close()
    assert again.stop() == 0



def test_sigkill_during_a_back_fill_loses_and_doubles_nothing(project: Project, leo_run) -> None:
    from ..streams_helpers import caught_up, check_stream

    project.write(PROJECT.replace("PORT", "0"))
    store = project.store()
    ingest(store, "inventory", "sku", [{"sku": f"S{i:05d}", "quantity": i % 9} for i in range(30_000)])
    run = leo_run(project)
    run.wait_ready()
    token = json.loads(leo("partners", "create", "acme", "--json", "-f", str(project.file)).stdout)["token"]
    client = LeoClient(run.http, token)
    live = client.create_stream("inventory", partitions=2)["id"]
    back = client.create_stream("inventory", partitions=4, start_at="earliest", query={"quantity": {"lt": 5}})["id"]
    wait_until(lambda: any(store.queue_head(f"streams.{back}.{p}") for p in range(4)), timeout=60,
               what="the back-fill under way")
    ingest(store, "inventory", "sku", [{"sku": f"S{i:05d}", "quantity": 1} for i in range(100)])  # live changes
    run.kill()  # SIGKILL, most likely mid back-fill
    ingest(store, "inventory", "sku", [{"sku": f"S{i:05d}", "quantity": 2} for i in range(50)])  # while it is down
    again = leo_run(project)
    again.wait_ready()
    wait_until(lambda: caught_up(store), timeout=120, what="the streams to catch up after the restart")
    assert check_stream(store, back) > 16_000 and check_stream(store, live) > 100  # exactly the matching changes
    client.close()
    store.close()
    assert again.stop() == 0
