"""/healthz and Get Object under a flood of idle and slow connections, next to the same calls on
a quiet server, and the open files of `leo run` beside its limit.

Starts a real `leo run` (default edge settings: max_connections 2000, header_timeout 10 s) and
measures, in the same run: the latency of /healthz and of Get Object (one partner, a new
connection each call; past its rate of 10/s the answer is a 429, which counts as answered) while
nothing else happens (the baseline), then while a flood keeps `--flood` connections open (half
idle, half sending headers that never end; each one the server closes is replaced at once).
Prints p50/p99 of both phases, how many calls got no answer during the flood (target: 0), and
the most files `leo run` held beside its soft limit (target: under it, so the store and the
watcher never run out).

    python benchmarks/edge_flood.py [--flood 5000] [--calls 200]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import resource
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ADMIN = "benchmark-admin-token"
PIPELINES = """
version: 1
server: {port: 0}
object_types:
  inventory: {key: sku}
pipelines:
  feed:
    bots:
      - {id: low-stock, use: filter, in: inventory.changes, with: {query: {quantity: {lt: 5}}}, out: inventory.low}
"""


def leo_bin() -> str:
    return str(Path(sys.executable).with_name("leo"))


def start(folder: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    (folder / "pipelines.yaml").write_text(PIPELINES)
    log = folder / "run.log"
    proc = subprocess.Popen([leo_bin(), "run"], cwd=folder, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            env={**os.environ, "LEO_ADMIN_TOKEN": ADMIN})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if "HTTP API on http://" in text:
            return proc, text.split("HTTP API on ")[1].split()[0], log
        if proc.poll() is not None:
            raise SystemExit(f"leo run exited:\n{text}")
        time.sleep(0.1)
    raise SystemExit("leo run did not start")


def call(url: str, path: str, token: str | None = None) -> float | None:
    """Seconds for one GET on a new connection to its answer (a 429 past the partner's rate is an
    answer too); None when no answer came (refused, reset, timed out)."""
    host, port = url.removeprefix("http://").split(":")
    began = time.perf_counter()
    try:
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        connection.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        answer = connection.getresponse()
        answer.read()
        connection.close()
        return time.perf_counter() - began if answer.status in (200, 429) else None
    except OSError:
        return None


def measure(url: str, token: str, calls: int) -> dict[str, list[float | None]]:
    return {
        "healthz": [call(url, "/healthz") for _ in range(calls)],
        "get object": [call(url, "/v1/objects/inventory/SKU-1", token) for _ in range(calls)],
    }


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def soft_limit(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    return 0


def flood(url: str, count: int, stop: threading.Event, peak: list[int], pid: int) -> None:
    host, port = url.removeprefix("http://").split(":")
    open_now: set[socket.socket] = set()
    with selectors.DefaultSelector() as watching:
        while not stop.is_set():
            for key, _ in watching.select(0.01) if open_now else []:
                watching.unregister(key.fileobj)
                open_now.discard(key.fileobj)  # type: ignore[arg-type]
                key.fileobj.close()  # type: ignore[union-attr]
            while len(open_now) < count and not stop.is_set():
                try:
                    sock = socket.create_connection((host, int(port)), timeout=10)
                    if len(open_now) % 2:
                        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                except OSError:
                    break
                open_now.add(sock)
                watching.register(sock, selectors.EVENT_READ)
            with contextlib.suppress(OSError):
                peak[0] = max(peak[0], open_files(pid))
    for sock in open_now:
        sock.close()


def quantiles(seconds: list[float | None]) -> str:
    done = sorted(s * 1000 for s in seconds if s is not None)
    if not done:
        return "no call answered"
    p99 = done[min(len(done) - 1, int(len(done) * 0.99))]
    return f"p50 {statistics.median(done):6.2f} ms  p99 {p99:7.2f} ms  failed {len(seconds) - len(done)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flood", type=int, default=5000, help="connections the flood keeps open")
    parser.add_argument("--calls", type=int, default=200, help="calls of each kind per phase")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the flood's own sockets
    folder = Path(tempfile.mkdtemp(prefix="leo-edge-bench-"))
    proc, url, log = start(folder)
    try:
        made = subprocess.run([leo_bin(), "partners", "create", "bench", "--json"], cwd=folder, capture_output=True,
                              text=True, check=True)
        token = json.loads(made.stdout)["token"]
        subprocess.run([leo_bin(), "ingest", "inventory", "-"], cwd=folder, input='{"sku": "SKU-1", "quantity": 1}\n',
                       capture_output=True, text=True, check=True)
        quiet = measure(url, token, args.calls)
        stop = threading.Event()
        peak = [0]
        flooding = threading.Thread(target=flood, args=(url, args.flood, stop, peak, proc.pid), daemon=True)
        flooding.start()
        deadline = time.monotonic() + 30  # until the flood holds the cap
        while time.monotonic() < deadline and peak[0] < 2000:
            time.sleep(0.1)
        loud = measure(url, token, args.calls)
        stop.set()
        flooding.join(30)
        limit = soft_limit(proc.pid)
        print(f"leo run: max_connections 2000, flood of {args.flood} connections (half idle, half slow headers)")
        for what in ("healthz", "get object"):
            print(f"{what:10}  quiet:  {quantiles(quiet[what])}")
            print(f"{what:10}  flood:  {quantiles(loud[what])}")
        failed = sum(s is None for s in loud["healthz"] + loud["get object"])
        print(f"calls failed during the flood: {failed} (target 0)")
        print(f"open files of leo run at most: {peak[0]} of its soft limit {limit} (target: under it)")
        trouble = [line for line in log.read_text(errors="replace").splitlines()
                   if "Too many open files" in line or "out of system resource" in line]
        print(f"log lines about running out of files: {len(trouble)} (target 0)")
    finally:
        proc.terminate()
        proc.wait(30)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
