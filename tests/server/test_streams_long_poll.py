"""Long polls on stream partitions: woken by the runtime's in-process notification, freed the
moment their client hangs up, and cheap by the hundred (real runtime, real sockets)."""

from __future__ import annotations

import socket
import threading
import zlib
from collections.abc import Iterator
from typing import Any

import pytest

from leo_runtime.delivery.streams import partition_source

from ..conftest import Project, wait_until
from ..streams_helpers import RunningRuntime, running_runtime


@pytest.fixture
def rt(project: Project, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningRuntime]:
    with running_runtime(project, monkeypatch) as running:
        yield running


def new_stream(rt: RunningRuntime, partitions: int = 1) -> tuple[Any, str]:
    token = rt.partner("acme")
    client = rt.client(token)
    stream = client.post("/v1/streams", json={"object_type": "inventory", "partitions": partitions}).json()
    wait_until(lambda: "streams:inventory" in rt.runtime.runners, what="the writer")
    return client, stream["id"]


def waiting_read(rt: RunningRuntime, client: Any, stream_id: str) -> tuple[threading.Thread, list[Any]]:
    """A read of partition 0 that waits up to 30 s, in a thread, once it waits: (the thread, its answer)."""
    idle = rt.waiting()
    answer: list[Any] = []
    reader = threading.Thread(target=lambda: answer.append(
        client.get(f"/v1/streams/{stream_id}/partitions/0/records", params={"wait": 30})))
    reader.start()
    wait_until(lambda: rt.waiting() == idle + 1, what="the read to wait")
    return reader, answer


def test_a_waiting_read_answers_with_the_record_that_arrives(rt: RunningRuntime) -> None:
    client, stream_id = new_stream(rt)
    idle = rt.waiting()
    reader, answer = waiting_read(rt, client, stream_id)
    rt.ingest("inventory", [{"sku": "S1", "quantity": 3}])
    reader.join(60)
    # It answered with the record, long before its 30 s were up (the thread ended; no time asserted).
    assert not reader.is_alive() and answer[0].status_code == 200
    assert [r["key"] for r in answer[0].json()["records"]] == ["S1"]
    assert rt.waiting() == idle


def test_a_read_with_nothing_to_return_answers_empty_after_its_wait(rt: RunningRuntime) -> None:
    client, stream_id = new_stream(rt)
    answer = client.get(f"/v1/streams/{stream_id}/partitions/0/records", params={"wait": 0.3})
    page = answer.json()
    assert answer.status_code == 200 and page["records"] == []
    assert page["next_position"] == client.get(f"/v1/streams/{stream_id}").json()["partitions"][0]["checkpoint"]
    # wait=0 (the default) answers at once
    assert client.get(f"/v1/streams/{stream_id}/partitions/0/records").json()["records"] == []


def raw_long_poll(rt: RunningRuntime, path: str, token: str) -> socket.socket:
    host, port = rt.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
    return sock


def test_a_client_that_disconnects_mid_wait_frees_its_waiter_at_once(rt: RunningRuntime) -> None:
    token = rt.partner("acme")
    client = rt.client(token)
    stream_id = client.post("/v1/streams", json={"object_type": "inventory"}).json()["id"]
    wait_until(lambda: "streams:inventory" in rt.runtime.runners)
    idle = rt.waiting()
    sock = raw_long_poll(rt, f"/v1/streams/{stream_id}/partitions/0/records?wait=60", token)
    wait_until(lambda: rt.waiting() == idle + 1, what="the read to wait")
    sock.close()
    wait_until(lambda: rt.waiting() == idle, what="the waiter to be freed")  # not 60 s later


def test_hundreds_of_idle_long_polls_wait_and_the_right_ones_wake(rt: RunningRuntime) -> None:
    token = rt.partner("acme")
    client = rt.client(token)
    stream_id = client.post("/v1/streams", json={"object_type": "inventory", "partitions": 4}).json()["id"]
    wait_until(lambda: "streams:inventory" in rt.runtime.runners)
    idle = rt.waiting()
    count = 300
    socks = [raw_long_poll(rt, f"/v1/streams/{stream_id}/partitions/{i % 4}/records?wait=60", token) for i in range(count)]
    try:
        wait_until(lambda: rt.waiting() == idle + count, what=f"{count} waiting reads")
        partition = zlib.crc32(b"WAKE") % 4
        rt.ingest("inventory", [{"sku": "WAKE", "quantity": 1}])
        for index, sock in enumerate(socks):
            if index % 4 != partition:
                continue
            sock.settimeout(30)
            data = b""
            while b'"WAKE"' not in data:
                chunk = sock.recv(65536)
                assert chunk, "closed without an answer"
                data += chunk
            assert data.startswith(b"HTTP/1.1 200")
        wait_until(lambda: rt.waiting() == idle + count - count // 4, what="the others to keep waiting")
    finally:
        for sock in socks:
            sock.close()
    wait_until(lambda: rt.waiting() == idle, what="every waiter freed")


def test_a_wait_on_a_stream_deleted_meanwhile_answers_404(rt: RunningRuntime) -> None:
    client, stream_id = new_stream(rt)
    queue, _ = partition_source(rt.store.stream(stream_id), 0)  # type: ignore[arg-type]
    reader, answer = waiting_read(rt, client, stream_id)
    assert client.delete(f"/v1/streams/{stream_id}").status_code == 204
    # the partition queue gets no more records: the read answers when its wait ends or a write wakes it
    rt.store.append(queue, [{"object_type": "inventory", "key": "X", "op": "created"}])
    reader.join(60)
    assert answer[0].status_code == 404


def test_streams_on_one_shared_log_each_read_and_wait_for_their_own_records(rt: RunningRuntime) -> None:
    client, first = new_stream(rt)
    rt.ingest("inventory", [{"sku": "S0", "quantity": 1}])
    wait_until(lambda: rt.writer_caught_up(first), what="the writer")
    early = client.post("/v1/streams", json={"object_type": "inventory"}).json()["id"]
    rt.ingest("inventory", [{"sku": "S1", "quantity": 1}])
    wait_until(lambda: rt.writer_caught_up(early), what="the writer")
    late = client.post("/v1/streams", json={"object_type": "inventory"}).json()["id"]
    log = rt.store.stream(early).log  # type: ignore[union-attr]
    assert log is not None and rt.store.stream(late).log == log  # type: ignore[union-attr]
    # Reset to the earliest record kept: the shared log holds S1 from before `late` started; it is not late's.
    assert client.post(f"/v1/streams/{late}/reset", json={"to": "earliest"}).status_code == 200
    assert client.get(f"/v1/streams/{late}").json()["partitions"][0]["lag"] == 0
    reader, answer = waiting_read(rt, client, late)
    rt.ingest("inventory", [{"sku": "S2", "quantity": 1}])
    reader.join(60)
    assert not reader.is_alive() and [r["key"] for r in answer[0].json()["records"]] == ["S2"]
    records = client.get(f"/v1/streams/{early}/partitions/0/records").json()["records"]
    assert [r["key"] for r in records] == ["S1", "S2"]
