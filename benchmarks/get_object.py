"""Get Object latency under the rate limit, next to a bare uvicorn route, and the rate limit's exactness.

Starts a real `leo run` (one pipeline, 1,000 objects ingested through the admin API, 20
partners) and, in the same run, a bare uvicorn ASGI route that answers a same-sized JSON body.
Both are driven over loopback by the same client, in alternating one-second slices: 20 partners at once, each on its own
keep-alive connection, each calling at `--share` of `server.get_object_rate` (so no call should
ever be refused). Prints p50/p99 for both (target: Get Object p99 under 10 ms).

Then every partner hammers as fast as it can. A partner's accepted calls between its first send
and its last answer may not pass burst + rate * that span: the count of calls past it must be 0.

    python benchmarks/get_object.py [--seconds 10] [--hammer-seconds 5] [--partners 20]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

TARGET_P99_MS = 10.0
RATE = 10.0
ADMIN = "benchmark-admin-token"
PIPELINES = """
version: 1
server: {get_object_rate: %s}
object_types:
  inventory: {key: sku}
pipelines:
  feed:
    bots:
      - id: low-stock
        use: filter
        in: inventory.changes
        with: {query: {quantity: {lt: 5}}}
        out: inventory.low_stock
"""
BARE_SERVER = textwrap.dedent("""
    import socket, sys, uvicorn
    BODY = sys.argv[1].encode()
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]})
        await send({"type": "http.response.body", "body": BODY})
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)).run(sockets=[sock])
""")


class Caller:
    """One partner on one keep-alive connection: paced calls (or as fast as it can when hammering).

    The client is asyncio on raw streams (one thread, no GIL hand-offs between 20 client threads),
    so what is measured is the server and the loopback, not the client.
    """

    def __init__(self, port: int, path: str, token: str | None, interval: float | None, until: float) -> None:
        self.port, self.interval, self.until = port, interval, until
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        self.request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\n".encode()
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.first_send = self.last_answer = 0.0

    async def run(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        next_call = time.monotonic() + (random.uniform(0, self.interval) if self.interval else 0)
        self.first_send = next_call
        while True:
            if self.interval:
                pause = next_call - time.monotonic()
                if pause > 0:
                    await asyncio.sleep(pause)
                next_call += self.interval
            start = time.monotonic()
            if start >= self.until:
                break
            writer.write(self.request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0]) if b"ontent-length" in head else 0
            await reader.readexactly(length)
            self.last_answer = time.monotonic()
            self.latencies.append(self.last_answer - start)
            status = int(head[9:12])
            self.statuses[status] = self.statuses.get(status, 0) + 1
        writer.close()


def drive(port: int, paths: list[str], tokens: list[str | None], interval: float | None, seconds: float) -> list[Caller]:
    until = time.monotonic() + seconds
    callers = [Caller(port, path, token, interval, until) for path, token in zip(paths, tokens, strict=True)]

    async def all_at_once() -> None:
        await asyncio.gather(*(caller.run() for caller in callers))

    asyncio.run(all_at_once())
    return callers


def percentiles(callers: list[Caller]) -> tuple[int, float, float]:
    samples = sorted(latency for caller in callers for latency in caller.latencies)
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return len(samples), cuts[49] * 1000, cuts[98] * 1000


def admin_call(port: int, method: str, path: str, body: object) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request(method, path, body=json.dumps(body),
                 headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"})
    answer = conn.getresponse()
    data = json.loads(answer.read())
    if answer.status >= 300:
        raise SystemExit(f"{method} {path}: {answer.status} {data}")
    return data


def start_leo(tmp: Path) -> tuple[subprocess.Popen, int]:
    leo = shutil.which("leo", path=str(Path(sys.executable).parent)) or "leo"
    (tmp / "pipelines.yaml").write_text(PIPELINES % RATE)
    log_path = tmp / "run.log"
    log = log_path.open("wb")
    env = {**os.environ, "LEO_ADMIN_TOKEN": ADMIN}
    env.pop("LEO_STORE", None)
    proc = subprocess.Popen([leo, "run", "--port", "0"], cwd=tmp, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 60
    while "HTTP API on http://" not in log_path.read_text():
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit("leo run did not start:\n" + log_path.read_text())
        time.sleep(0.05)
    address = log_path.read_text().split("HTTP API on http://", 1)[1].split()[0]
    return proc, int(address.rsplit(":", 1)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each latency run")
    parser.add_argument("--hammer-seconds", type=float, default=5.0)
    parser.add_argument("--partners", type=int, default=20)
    parser.add_argument("--share", type=float, default=0.9, help="each partner's pace as a share of the rate")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        leo_proc, leo_port = start_leo(tmp)
        objects = [{"sku": f"SKU-{n}", "quantity": n % 20, "warehouse": "NYC", "name": f"part {n}"} for n in range(1000)]
        admin_call(leo_port, "POST", "/v1/admin/objects/inventory", objects)
        tokens = [admin_call(leo_port, "POST", "/v1/admin/partners", {"name": f"p{n}"})["token"] for n in range(args.partners)]
        sample = json.dumps({"object_type": "inventory", "key": "SKU-7", "version": 1,
                             "changed_at": "2026-11-26T19:10:33.123Z", "data": objects[7]})
        bare = subprocess.Popen([sys.executable, "-c", BARE_SERVER, sample], stdout=subprocess.PIPE, text=True)
        try:
            bare_port = int(bare.stdout.readline())
            paths = [f"/v1/objects/inventory/SKU-{random.randrange(1000)}" for _ in tokens]
            interval = 1 / (RATE * args.share)
            drive(leo_port, paths, tokens, interval, 1.0)  # warm up both
            drive(bare_port, paths, [None] * len(tokens), interval, 1.0)
            time.sleep(1.0)  # let every bucket fill again
            # Alternate 1 s slices, so both see the same machine (it is shared and its load moves).
            leo_run, bare_run = [], []
            for _ in range(round(args.seconds)):
                leo_run += drive(leo_port, paths, tokens, interval, 1.0)
                bare_run += drive(bare_port, paths, [None] * len(tokens), interval, 1.0)
            time.sleep(1.0)
            hammer = drive(leo_port, paths, tokens, None, args.hammer_seconds)
        finally:
            bare.terminate()
            leo_proc.terminate()
            bare.wait(30)
            leo_proc.wait(30)

    n_leo, p50_leo, p99_leo = percentiles(leo_run)
    n_bare, p50_bare, p99_bare = percentiles(bare_run)
    refused = sum(caller.statuses.get(429, 0) for caller in leo_run)
    other = {status for caller in leo_run for status in caller.statuses} - {200}
    print(f"{args.partners} partners at once, each at {RATE * args.share:g}/s (server.get_object_rate {RATE:g}), "
          f"{args.seconds:g} s over loopback:")
    print(f"  Get Object (leo run)  n={n_leo:5d}  p50 {p50_leo:6.2f} ms  p99 {p99_leo:6.2f} ms  429s: {refused}"
          + (f"  other statuses: {sorted(other)}" if other else ""))
    print(f"  bare uvicorn route    n={n_bare:5d}  p50 {p50_bare:6.2f} ms  p99 {p99_bare:6.2f} ms")
    print(f"  Get Object p99 / bare p99: {p99_leo / p99_bare:.1f}x;  p99 / target {TARGET_P99_MS:g} ms: "
          f"{p99_leo / TARGET_P99_MS:.2f} -> {'PASS' if p99_leo < TARGET_P99_MS and refused == 0 else 'FAIL'}")

    burst = RATE  # burst = rate
    past = accepted = calls = allowed_total = 0
    for caller in hammer:
        ok = caller.statuses.get(200, 0)
        allowed = int(burst + RATE * (caller.last_answer - caller.first_send))
        accepted += ok
        calls += sum(caller.statuses.values())
        allowed_total += allowed
        past += max(0, ok - allowed)
    print(f"{args.partners} partners hammering as fast as they can for {args.hammer_seconds:g} s: {calls} calls, "
          f"{accepted} accepted, at most {allowed_total} allowed (burst + rate * span, per partner)")
    print(f"  accepted calls past the rate: {past} -> {'PASS' if past == 0 else 'FAIL'}")


if __name__ == "__main__":
    main()
