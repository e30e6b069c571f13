"""The partner client (`leo_runtime.client`) against the real runtime on loopback: streams,
consume with parallel workers and failing handlers, Ctrl-C, 429s, and webhook signatures checked
against the `standardwebhooks` reference signer."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from leo_runtime.client import AsyncLeoClient, LeoAPIError, LeoClient, WebhookVerificationError, verify_webhook

from .conftest import REPO, Project, wait_until
from .streams_helpers import RunningRuntime, running_runtime, wait_for_writer


@pytest.fixture
def rt(project: Project, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningRuntime]:
    with running_runtime(project, monkeypatch) as running:
        yield running


def test_the_client_imports_nothing_else_of_leo_runtime(tmp_path: Path) -> None:
    vendored = tmp_path / "vendor" / "leo_client.py"
    vendored.parent.mkdir()
    vendored.write_text((REPO / "leo_runtime" / "client.py").read_text())
    script = (
        "import sys\n"
        "sys.modules['leo_runtime'] = None  # any import of leo_runtime now fails\n"
        "sys.modules['orjson'] = None  # optional: the standard json module stands in\n"
        f"sys.path.insert(0, {str(vendored.parent)!r})\n"
        "import leo_client\n"
        "print(sorted(leo_client.__all__))\n"
        "assert leo_client._json_loads(b'[1]') == [1]\n"
        "print(sorted(m for m, module in sys.modules.items() if m.startswith('leo_runtime') and module is not None))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "['AsyncLeoClient', 'LeoAPIError', 'LeoClient', 'WebhookVerificationError', 'verify_webhook']", "[]"]


def test_streams_calls_read_commit_and_reset(rt: RunningRuntime) -> None:
    with LeoClient(rt.url, rt.partner("acme")) as client:
        stream = client.create_stream("inventory", partitions=2, query={"quantity": {"gte": 0}})
        assert [s["id"] for s in client.list_streams()] == [stream["id"]]
        rt.ingest("inventory", [{"sku": f"S{i}", "quantity": i} for i in range(10)])
        wait_for_writer(rt, stream["id"])
        page = client.read(stream["id"], 0, limit=1000)
        assert page["records"] and page["generation"] == 1
        client.commit(stream["id"], 0, page["next_position"], page["generation"])
        assert client.get_stream(stream["id"])["partitions"][0]["lag"] == 0
        reset = client.reset_stream(stream["id"], "-PT1H", partitions=[0])
        assert reset["generation"] == 2
        with pytest.raises(LeoAPIError) as refused:
            client.commit(stream["id"], 0, page["next_position"], 1)
        assert refused.value.status == 409 and "stale" in refused.value.detail
        assert client.read(stream["id"], 0)["records"] == page["records"]
        held = client.lease(stream["id"], 1, 30)
        assert client.lease(stream["id"], 1, 30, renew=held["lease_id"])["lease_id"] == held["lease_id"]
        client.release(stream["id"], 1, held["lease_id"])
        client.delete_stream(stream["id"])
        with pytest.raises(LeoAPIError) as missing:
            client.get_stream(stream["id"])
        assert missing.value.status == 404


def test_get_object_waits_out_429s(rt: RunningRuntime) -> None:
    rt.ingest("inventory", [{"sku": "A/1", "quantity": 2}])
    statuses: list[int] = []

    class Counting(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            response = super().handle_request(request)
            statuses.append(response.status_code)
            return response

    with LeoClient(rt.url, rt.partner("acme"), transport=Counting()) as client:
        answers = [client.get_object("inventory", "A/1") for _ in range(14)]  # past the 10 calls/s burst
        assert all(answer["data"] == {"sku": "A/1", "quantity": 2} for answer in answers)
        assert 429 in statuses and statuses.count(200) == 14
        assert client.get_object("inventory", "missing") is None


def test_consume_with_two_workers_processes_everything_and_replays_a_failed_batch(rt: RunningRuntime) -> None:
    token = rt.partner("acme")
    client = LeoClient(rt.url, token)
    stream = client.create_stream("inventory", partitions=4)
    wanted = {(f"S{i}", version) for i in range(50) for version in (1, 2)}
    rt.ingest("inventory", [{"sku": f"S{i}", "quantity": i} for i in range(50)])
    rt.ingest("inventory", [{"sku": f"S{i}", "quantity": i + 100} for i in range(50)])
    seen: list[tuple[str, int]] = []
    failed: list[list[tuple[str, int]]] = []
    lock = threading.Lock()

    def handle(records: list[dict[str, Any]]) -> None:
        batch = [(r["key"], r["version"]) for r in records]
        with lock:
            if not failed:
                failed.append(batch)
                raise RuntimeError("the partner's database is down (once)")
            seen.extend(batch)
            if wanted <= set(seen):
                client.stop()

    consumer = threading.Thread(target=client.consume, args=(stream["id"], handle), kwargs={"workers": 2, "limit": 15})
    consumer.start()
    consumer.join(120)
    assert not consumer.is_alive()
    assert set(seen) == wanted
    assert set(failed[0]) <= set(seen)  # the failed batch came back and was processed
    versions: dict[str, list[int]] = {}
    for key, version in seen:
        versions.setdefault(key, []).append(version)
    assert all(v == sorted(v) for v in versions.values())  # per key, in order (a replay repeats a suffix)
    partitions = client.get_stream(stream["id"])["partitions"]
    assert all(part["lag"] == 0 and part["leased_until"] is None for part in partitions), [str(p) for p in partitions]
    client.close()


def test_stop_ends_an_idle_consume_at_once_and_gives_the_leases_back(rt: RunningRuntime) -> None:
    client = LeoClient(rt.url, rt.partner("acme"))
    stream = client.create_stream("inventory", partitions=2)
    consumer = threading.Thread(target=client.consume, args=(stream["id"], lambda records: None),
                                kwargs={"workers": 2, "wait": 20})
    consumer.start()
    wait_until(lambda: rt.waiting() == 2, what="both workers to wait")
    client.stop()
    consumer.join(60)
    assert not consumer.is_alive()  # it did not wait out the long polls
    assert all(part["leased_until"] is None for part in client.get_stream(stream["id"])["partitions"])
    client.close()


def test_a_consume_cancelled_again_and_again_still_gives_every_lease_back(rt: RunningRuntime) -> None:
    token = rt.partner("acme")

    async def main() -> list[dict[str, Any]]:
        async with AsyncLeoClient(rt.url, token) as client:
            stream = await client.create_stream("inventory", partitions=4)

            async def leased() -> int:
                return sum(part["leased_until"] is not None for part in (await client.get_stream(stream["id"]))["partitions"])

            task = asyncio.create_task(client.consume(stream["id"], lambda records: None, workers=1, wait=0.2))
            for _ in range(600):
                if await leased() == 4:
                    break
                await asyncio.sleep(0.01)
            task.cancel()
            for _ in range(30):  # a Ctrl-C pressed again and again while the leases are given back
                await asyncio.sleep(0.002)
                task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return (await client.get_stream(stream["id"]))["partitions"]

    partitions = asyncio.run(main())
    assert [part["leased_until"] for part in partitions] == [None] * 4


def test_a_stop_while_consume_reads_the_stream_is_not_lost(rt: RunningRuntime) -> None:
    token = rt.partner("acme")

    async def main() -> list[dict[str, Any]]:
        async with AsyncLeoClient(rt.url, token) as client:
            stream = await client.create_stream("inventory", partitions=2)
            get_stream = client.get_stream

            async def stopped_meanwhile(stream_id: str) -> dict[str, Any]:
                client.stop()  # from another thread, say, before any worker exists
                return await get_stream(stream_id)

            client.get_stream = stopped_meanwhile  # type: ignore[method-assign]
            await asyncio.wait_for(client.consume(stream["id"], lambda records: None, workers=2), 30)
            return (await get_stream(stream["id"]))["partitions"]

    assert [part["leased_until"] for part in asyncio.run(main())] == [None, None]


def test_the_async_client_consumes_with_an_async_handler(rt: RunningRuntime) -> None:
    token = rt.partner("acme")
    rt.ingest("inventory", [{"sku": "A", "quantity": 1}])

    async def main() -> list[str]:
        async with AsyncLeoClient(rt.url, token) as client:
            stream = await client.create_stream("inventory", start_at="earliest", partitions=3)
            got: list[str] = []

            async def handle(records: list[dict[str, Any]]) -> None:
                got.extend(r["key"] for r in records)
                if len(got) >= 2:
                    client.stop()

            task = asyncio.create_task(client.consume(stream["id"], handle, workers=3))
            await asyncio.sleep(0)
            await asyncio.to_thread(rt.ingest, "inventory", [{"sku": "B", "quantity": 2}])
            await asyncio.wait_for(task, 60)
            assert (await client.get_object("inventory", "A"))["version"] == 1
            return got

    assert sorted(asyncio.run(main())) == ["A", "B"]


CTRL_C_CONSUMER = """
import sys, time, pathlib
from leo_runtime.client import LeoClient
url, token, stream_id, flag = sys.argv[1:]
client = LeoClient(url, token)
def handle(records):
    print("handling", len(records), flush=True)
    while not pathlib.Path(flag).exists():
        time.sleep(0.01)
client.consume(stream_id, handle)
print("stopped cleanly", flush=True)
"""


def test_ctrl_c_finishes_and_commits_the_batch_in_hand_then_returns(rt: RunningRuntime, tmp_path: Path) -> None:
    token = rt.partner("acme")
    client = LeoClient(rt.url, token)
    stream = client.create_stream("inventory")
    rt.ingest("inventory", [{"sku": f"S{i}", "quantity": i} for i in range(5)])
    wait_for_writer(rt, stream["id"])
    flag = tmp_path / "go"
    proc = subprocess.Popen([sys.executable, "-c", CTRL_C_CONSUMER, rt.url, token, stream["id"], str(flag)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("handling 5")
        proc.send_signal(signal.SIGINT)  # Ctrl-C while the handler works
        time.sleep(0.2)  # let the signal land while the handler is still busy (not a timing assertion)
        flag.touch()
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    assert "stopped cleanly" in output and "Traceback" not in output
    assert client.get_stream(stream["id"])["partitions"][0]["lag"] == 0  # the batch in hand was committed
    client.close()


# -- webhooks ---------------------------------------------------------------------------------------------
SECRET = "whsec_" + base64.b64encode(b"a secret of 24 bytes.....").decode()


def signed(body: str, msg_id: str = "msg_1", when: datetime | None = None, secret: str = SECRET) -> dict[str, str]:
    moment = when or datetime.now(tz=UTC)
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(moment.timestamp())),
            "webhook-signature": Webhook(secret).sign(msg_id, moment, body)}


def test_verify_webhook_accepts_what_the_reference_signer_signs_and_nothing_else() -> None:
    body = json.dumps({"type": "batch.ready", "data": {"url": "http://x/v1/batches/b1", "records": 3}})
    headers = signed(body)
    assert verify_webhook(SECRET, headers, body.encode())["data"]["records"] == 3
    assert verify_webhook(SECRET, {k.upper(): v for k, v in headers.items()}, body)["type"] == "batch.ready"
    assert Webhook(SECRET).verify(body, headers) == verify_webhook(SECRET, list(headers.items()), body)
    several = {**headers, "webhook-signature": "v1,AAAA v2,xyz " + headers["webhook-signature"]}
    assert verify_webhook(SECRET, several, body)
    other_secret = "whsec_" + base64.b64encode(b"another secret").decode()
    for bad_headers, bad_body, reason in [
        (headers, body.replace("3", "4"), "no webhook-signature matches"),
        (signed(body, secret=other_secret), body, "no webhook-signature matches"),
        ({**headers, "webhook-id": "msg_2"}, body, "no webhook-signature matches"),
        (signed(body, when=datetime.fromtimestamp(time.time() - 3600, tz=UTC)), body, "away from now"),
        (signed(body, when=datetime.fromtimestamp(time.time() + 3600, tz=UTC)), body, "away from now"),
        ({k: v for k, v in headers.items() if k != "webhook-id"}, body, "missing"),
        ({**headers, "webhook-timestamp": "soon"}, body, "not a number"),
        ({**headers, "webhook-signature": "v1,not base64!"}, body, "no webhook-signature matches"),
    ]:
        with pytest.raises(WebhookVerificationError, match=reason):
            verify_webhook(SECRET, bad_headers, bad_body)
        with pytest.raises(Exception):  # noqa: B017  (the reference refuses the same notifications)
            Webhook(SECRET).verify(bad_body, bad_headers)
    with pytest.raises(WebhookVerificationError, match="not a whsec_ secret"):
        verify_webhook("whsec_***", headers, body)


class StandIn(BaseHTTPRequestHandler):
    """A minimal stand-in for the webhook endpoints (issue 7 builds the real ones): enough to
    drive the client's calls over real HTTP."""

    records = [{"object_type": "inventory", "key": f"S{i}", "op": "snapshot", "version": 1, "data": {"sku": f"S{i}"}}
               for i in range(2500)]
    refused_once: set[str] = set()
    seen: list[tuple[str, str, str]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.seen.append(("POST", self.path, self.headers.get("Authorization", "")))
        if self.path == "/v1/webhooks":
            created = {**json.loads(body), "id": "wh_1", "secret": SECRET, "status": "active"}
            self._answer(201, json.dumps(created).encode(), {"Content-Type": "application/json"})
        elif self.path == "/v1/webhooks/wh_1/true-up":
            self._answer(202)
        else:
            self._answer(404, b'{"detail": "no such webhook"}', {"Content-Type": "application/problem+json"})

    def do_GET(self) -> None:
        self.seen.append(("GET", self.path, self.headers.get("Authorization", "")))
        if self.path not in self.refused_once:  # the first call is rate limited
            self.refused_once.add(self.path)
            self._answer(429, b'{"detail": "slow down"}', {"Retry-After": "1", "Content-Type": "application/problem+json"})
            return
        lines = b"".join(json.dumps(r).encode() + b"\n" for r in self.records)
        count = len(self.records) + (1 if self.path.endswith("short") else 0)
        self._answer(200, gzip.compress(lines), {"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip",
                                                 "Leo-Record-Count": str(count)})


@pytest.fixture
def stand_in() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    StandIn.refused_once = set()
    StandIn.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_webhook_calls_against_a_stand_in_receiver(stand_in: str) -> None:
    with LeoClient(stand_in, "leo_token") as client:
        hook = client.create_webhook("inventory", "https://partner.example/leo", "PT5M", query={"quantity": {"lt": 5}})
        assert (hook["id"], hook["secret"], hook["interval"], hook["mode"]) == ("wh_1", SECRET, "PT5M", "changes")
        client.true_up("wh_1")
        records = client.fetch_batch(f"{stand_in}/v1/batches/b1")
        assert next(records)["key"] == "S0"  # streamed: the first record before the rest is read
        assert sum(1 for _ in records) == 2499
        with pytest.raises(LeoAPIError, match="cut short: 2500 of 2501"):
            list(client.fetch_batch(f"{stand_in}/v1/batches/short"))
        with pytest.raises(ValueError, match="refusing to send the token"):
            list(client.fetch_batch("https://evil.example/v1/batches/b1"))
        with pytest.raises(LeoAPIError) as missing:
            client.true_up("wh_2")
        assert missing.value.status == 404
    assert all(auth == "Bearer leo_token" for _, _, auth in StandIn.seen)
    assert [path for method, path, _ in StandIn.seen if method == "GET"].count("/v1/batches/b1") == 2  # 429, then 200

    async def fetch() -> int:
        async with AsyncLeoClient(stand_in, "leo_token") as client:
            await client.true_up("wh_1")
            return len([record async for record in client.fetch_batch(f"{stand_in}/v1/batches/b2")])

    assert asyncio.run(fetch()) == 2500
