"""A partner creates and deletes 500 streams against a real `leo run`: its threads, descriptors and
memory do not grow with them, and return to where they started (streams cost no thread or
connection of their own; threads that end close what they opened)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx

from ..conftest import OBJECTS_PIPELINE, Project, leo, wait_until

PROJECT = OBJECTS_PIPELINE.replace("version: 1\n", "version: 1\nserver: {port: 0, limits: {streams: 1000}}\n")


def usage(pid: int) -> tuple[int, int, int]:
    """(threads, open descriptors, resident MB) of a process."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    value = {line.split(":")[0]: line.split()[1] for line in status if line.startswith(("Threads", "VmRSS"))}
    return int(value["Threads"]), len(os.listdir(f"/proc/{pid}/fd")), int(value["VmRSS"]) // 1024


def test_creating_and_deleting_500_streams_leaves_threads_descriptors_and_memory_as_they_were(
    project: Project, leo_run
) -> None:
    project.write(PROJECT)
    run = leo_run(project)
    run.wait_ready()
    token = json.loads(leo("partners", "create", "acme", "--json", "-f", str(project.file)).stdout)["token"]
    client = httpx.Client(base_url=run.http, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    admin_ingest = [{"sku": f"S{i}", "quantity": i} for i in range(50)]

    def flood(count: int) -> list[str]:
        made = [client.post("/v1/streams", json={"object_type": "inventory", "partitions": 4}) for _ in range(count)]
        assert all(answer.status_code == 201 for answer in made), made[-1].text
        return [answer.json()["id"] for answer in made]

    for stream_id in flood(5):  # warm up: the writer, the API's worker threads
        assert client.delete(f"/v1/streams/{stream_id}").status_code == 204
    start = usage(run.proc.pid)
    ids = flood(500)
    store = project.store()
    from leo_runtime.objects import ingest

    ingest(store, "inventory", "sku", admin_ingest)  # every stream gets these
    from leo_runtime.delivery.streams import partition_marks

    def written(stream_id: str) -> bool:  # every partition has records (of its own, or on its shared log)
        record = store.stream(stream_id)
        return record is not None and all(lag for _, _, lag in partition_marks(store, record))

    wait_until(lambda: all(written(stream_id) for stream_id in ids[-3:]), timeout=120, what="the streams to be written")
    full = usage(run.proc.pid)
    assert full[0] <= start[0] + 2, (start, full)  # no thread per stream
    for stream_id in ids:
        assert client.delete(f"/v1/streams/{stream_id}").status_code == 204
    # Descriptors go back to where they were (a handful of slack for the API's worker threads).
    wait_until(lambda: usage(run.proc.pid)[1] <= start[1] + 8, timeout=60, what=f"descriptors back near {start[1]}")
    end = usage(run.proc.pid)
    print(f"threads, descriptors, RSS MB: at start {start}, with 500 streams {full}, after deleting them {end}")
    assert end[0] <= start[0] + 2 and end[2] <= start[2] + 40, (start, full, end)
    store.close()
    client.close()
    assert run.stop() == 0
