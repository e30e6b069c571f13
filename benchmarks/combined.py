"""Mixed load on one `leo run`: ingest while partners read streams, get webhooks and call Get Object.

The set-up of issue 12: 20 partners, each with one stream read by a long-polling consumer (pages
of up to 1,000, each committed) and one webhook at 1 s whose notifications go to a real local
receiver (its own process, answering 204 at once); 5 of the partners call Get Object 9 times a
second. While all of that runs, `--objects` objects (60,000) go in through the admin ingest API
(`POST /v1/admin/objects/inventory`, `--batch` objects a request, one after the other).

Printed, with the targets of issue 14 (issue 12 asked for 0.5, 50 ms and 10 s):

- combined ingest rate / the same ingest into a `leo run` with nothing else to do, measured in
  the same run (target >= 0.8);
- Get Object latency during the ingest, p50 and p99 (target p99 < 20 ms), timed by callers in a
  process of their own (so that the consumers' page parsing in this one is not counted);
- how long after the last ingest answered every stream's consumer had read every change
  (target < 2 s);
- CPU per process (leo run, its bot workers, this client process, the receiver), as a share of
  one core.

`--workers N` runs `leo run --workers N` (the API in one process, the bots in N worker processes
on the same store, spread by their leases) for both the alone and the combined run: the layout
that lets `leo run` use more than one core.

`--profile` also runs py-spy (when installed) on `leo run` during the combined ingest and
prints its top functions (`LEO_PYSPY_KEEP=FILE` keeps the whole profile).

    python benchmarks/combined.py [--objects 60000] [--batch 1000] [--partners 20] [--callers 5] [--workers 1] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from harness import ADMIN, RECEIVER, cpu_seconds, inventory_project, start_leo, stop

PIPELINES = inventory_project("{port: 0, allow_private_callbacks: true}")
RATIO_TARGET = 0.8
P99_TARGET_MS = 20
CATCH_UP_TARGET_S = 2


def objects(start: int, count: int) -> list[dict[str, Any]]:
    return [{"sku": f"SKU-{n:08d}", "quantity": n % 50, "warehouse": ("NYC", "SFO", "LAX")[n % 3],
             "name": f"part number {n}", "price": round(n * 0.37, 2)} for n in range(start, start + count)]


async def ingest(session: aiohttp.ClientSession, url: str, start: int, total: int, batch: int) -> float:
    """POST the objects in batches, one after the other; return the seconds it took."""
    headers = {"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"}
    bodies = [orjson.dumps(objects(first, min(batch, start + total - first))) for first in range(start, start + total, batch)]
    started = time.perf_counter()
    for body in bodies:
        async with session.post(f"{url}/v1/admin/objects/inventory", data=body, headers=headers) as answer:
            if answer.status != 200:
                raise SystemExit(f"ingest: {answer.status} {(await answer.text())[:300]}")
            await answer.read()
    return time.perf_counter() - started


async def consume(session: aiohttp.ClientSession, url: str, token: str, stream_id: str, seen: list[int],
                  index: int, stop: asyncio.Event) -> None:
    """Long-poll the stream's one partition from its checkpoint; commit each page."""
    headers = {"Authorization": f"Bearer {token}"}
    base = f"{url}/v1/streams/{stream_id}/partitions/0"
    while not stop.is_set():
        async with session.get(f"{base}/records", params={"limit": "1000", "wait": "5"}, headers=headers) as answer:
            page = orjson.loads(await answer.read())
        if page["records"]:
            seen[index] += len(page["records"])
            async with session.put(f"{base}/checkpoint", headers=headers,
                                   json={"position": page["next_position"], "generation": page["generation"]}) as done:
                await done.read()


async def get_objects(session: aiohttp.ClientSession, url: str, token: str, keys: list[str],
                      latencies: list[tuple[float, float]], stop: asyncio.Event) -> None:
    """Get Object 9 times a second (under the 10/s rate): (monotonic start, milliseconds) of each."""
    headers = {"Authorization": f"Bearer {token}"}
    tick = 1 / 9
    due = time.perf_counter()
    while not stop.is_set():
        started, at = time.perf_counter(), time.monotonic()
        async with session.get(f"{url}/v1/objects/inventory/{random.choice(keys)}", headers=headers) as answer:
            await answer.read()
            if answer.status not in (200, 429):
                raise SystemExit(f"Get Object: {answer.status}")
        latencies.append((at, (time.perf_counter() - started) * 1000))
        due += tick
        await asyncio.sleep(max(0.0, due - time.perf_counter()))


def callers_process(url: str, tokens: list[str], keys: list[str], pipe: Any) -> None:
    """The Get Object callers, in a process of their own: the consumers' page parsing in the
    main process must not count as Get Object latency. Runs until `pipe` says stop, then sends
    back every (monotonic start, ms) pair."""
    async def run() -> list[tuple[float, float]]:
        latencies: list[tuple[float, float]] = []
        stop_event = asyncio.Event()
        async with aiohttp.ClientSession() as session:
            tasks = [asyncio.create_task(get_objects(session, url, token, keys, latencies, stop_event)) for token in tokens]
            pipe.send("started")
            await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
            stop_event.set()
            await asyncio.gather(*tasks)
        return latencies

    pipe.send(asyncio.run(run()))


def py_spy(pid: int, seconds: float, out: Path) -> subprocess.Popen | None:
    spy = shutil.which("py-spy", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if spy is None:
        return None
    extra = os.environ.get("LEO_PYSPY_ARGS", "").split()
    return subprocess.Popen([spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--format", "raw",
                             "--output", str(out), "--nonblocking", *extra], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def leo_processes(pid: int) -> dict[str, int]:
    """`leo run` and its bot workers (its children), by name."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(child) for child in (task / "children").read_text().split()]
    return {"leo run" if not children else "leo run (API)": pid,
            **{f"bot worker {n}": child for n, child in enumerate(sorted(children), 1)}}


async def alone(tmp: Path, total: int, batch: int, workers: int) -> float:
    proc, url = start_leo(tmp, PIPELINES, *leo_args(workers))
    try:
        async with aiohttp.ClientSession() as session:
            await ingest(session, url, 1_000_000, 1000, batch)  # warm up
            return total / await ingest(session, url, 0, total, batch)
    finally:
        stop(proc)


def leo_args(workers: int) -> list[str]:
    return ["--workers", str(workers)] if workers else []


async def combined(tmp: Path, args: argparse.Namespace, receiver_port: int) -> dict[str, Any]:
    proc, url = start_leo(tmp, PIPELINES, *leo_args(args.workers))
    try:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
            admin = {"Authorization": f"Bearer {ADMIN}"}
            await ingest(session, url, 1_000_000, 1000, args.batch)  # what Get Object reads
            known = [f"SKU-{n:08d}" for n in range(1_000_000, 1_001_000)]
            tokens, streams = [], []
            for n in range(args.partners):
                async with session.post(f"{url}/v1/admin/partners", json={"name": f"partner-{n}"}, headers=admin) as made:
                    token = (await made.json())["token"]
                headers = {"Authorization": f"Bearer {token}"}
                async with session.post(f"{url}/v1/streams", json={"object_type": "inventory"}, headers=headers) as made:
                    streams.append((await made.json())["id"])
                async with session.post(f"{url}/v1/webhooks", headers=headers, json={
                        "object_type": "inventory", "callback_url": f"http://127.0.0.1:{receiver_port}/hook/{n}",
                        "interval": 1}) as made:
                    if made.status != 201:
                        raise SystemExit(f"webhook: {made.status} {await made.text()}")
                tokens.append(token)
            with closing(sqlite3.connect(f"file:{tmp / 'leo.db'}?mode=ro", uri=True)) as conn:
                logs = [log for (log,) in conn.execute("SELECT log FROM streams")]
            shared = sum(1 for log in logs if log is not None)
            stop_event = asyncio.Event()
            seen = [0] * args.partners
            tasks = [asyncio.create_task(consume(session, url, tokens[n], streams[n], seen, n, stop_event))
                     for n in range(args.partners)]
            pipe, child_end = multiprocessing.Pipe()
            callers = multiprocessing.get_context("spawn").Process(
                target=callers_process, args=(url, tokens[:args.callers], known, child_end), daemon=True)
            callers.start()
            await asyncio.get_running_loop().run_in_executor(None, pipe.recv)  # "started"
            await asyncio.sleep(2)  # everything runs before the ingest starts
            spy = py_spy(proc.pid, 30, tmp / "profile.txt") if args.profile else None
            processes = {**leo_processes(proc.pid), "Get Object callers": callers.pid}
            cpu = {**{name: cpu_seconds(pid) for name, pid in processes.items()}, "clients": time.process_time()}
            started, window_start = time.perf_counter(), time.monotonic()
            elapsed = await ingest(session, url, 0, args.objects, args.batch)
            ingested, window_end = time.perf_counter(), time.monotonic()
            while min(seen) < args.objects:
                if time.perf_counter() - ingested > 300:
                    raise SystemExit(f"the streams did not catch up: {seen}")
                await asyncio.sleep(0.01)
            caught_up = time.perf_counter() - ingested
            wall = time.perf_counter() - started
            cpu = {**{name: (cpu_seconds(pid) - cpu[name]) / wall for name, pid in processes.items()},
                   "clients": (time.process_time() - cpu["clients"]) / wall}
            stop_event.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            pipe.send("stop")
            latencies = await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
            callers.join(30)
            ingest_latencies = [ms for at, ms in latencies if window_start <= at <= window_end]
            if spy is not None:
                spy.wait(60)
        return {"rate": args.objects / elapsed, "latencies": ingest_latencies, "caught_up": caught_up, "cpu": cpu,
                "wall": wall, "shared": f"{shared} of {len(logs)} streams on {len(set(logs) - {None})} shared log(s)"}
    finally:
        stop(proc)


def top_of_profile(path: Path, count: int = 15) -> list[str]:
    """The functions with the most samples in a py-spy raw (collapsed stacks) file."""
    totals: dict[str, int] = {}
    for line in path.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if stack and samples.isdigit():
            frame = stack.split(";")[-1]
            totals[frame] = totals.get(frame, 0) + int(samples)
    grand = sum(totals.values()) or 1
    return [f"{samples / grand:6.1%}  {frame}" for frame, samples in sorted(totals.items(), key=lambda i: -i[1])[:count]]


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as alone_dir, tempfile.TemporaryDirectory() as combined_dir:
        alone_rate = await alone(Path(alone_dir), args.objects, args.batch, args.workers)
        receiver = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True)
        try:
            port = int(receiver.stdout.readline())  # type: ignore[union-attr]
            receiver_cpu = cpu_seconds(receiver.pid)
            result = await combined(Path(combined_dir), args, port)
            result["cpu"]["receiver"] = (cpu_seconds(receiver.pid) - receiver_cpu) / result["wall"]
        finally:
            receiver.terminate()
            receiver.wait(10)
        profile = top_of_profile(Path(combined_dir) / "profile.txt") if args.profile and (
            Path(combined_dir) / "profile.txt").exists() else []
        if args.profile and os.environ.get("LEO_PYSPY_KEEP"):
            shutil.copy(Path(combined_dir) / "profile.txt", os.environ["LEO_PYSPY_KEEP"])
    ratio = result["rate"] / alone_rate
    cuts = statistics.quantiles(result["latencies"], n=100, method="inclusive") if len(result["latencies"]) > 1 else [0] * 99
    p50, p99 = cuts[49], cuts[98]
    print(f"mixed load: {args.partners} partners (a stream with a long-polling consumer and a webhook at 1 s each), "
          f"{args.callers} calling Get Object 9/s; {args.objects:,} objects ingested in batches of {args.batch:,}; "
          + (f"leo run --workers {args.workers} (the API in one process, the bots in {args.workers})" if args.workers
             else "leo run in one process"))
    print(f"streams: {result['shared']}")
    print(f"ingest alone:    {alone_rate:>9,.0f} objects/s")
    print(f"ingest combined: {result['rate']:>9,.0f} objects/s -> {ratio:.2f} of alone (target >= {RATIO_TARGET}) "
          f"-> {'PASS' if ratio >= RATIO_TARGET else 'FAIL'}")
    print(f"Get Object during the ingest: p50 {p50:.1f} ms, p99 {p99:.1f} ms over {len(result['latencies'])} calls "
          f"(target p99 < {P99_TARGET_MS} ms) -> {'PASS' if p99 < P99_TARGET_MS else 'FAIL'}")
    print(f"every stream caught up {result['caught_up']:.1f} s after the last ingest (target < {CATCH_UP_TARGET_S} s) "
          f"-> {'PASS' if result['caught_up'] < CATCH_UP_TARGET_S else 'FAIL'}")
    print("CPU, share of one core over the combined run: " + ", ".join(
        f"{name} {share:.0%}" for name, share in result["cpu"].items()))
    if profile:
        print("py-spy, leo run during the combined ingest (self time by function):")
        print("\n".join("   " + line for line in profile))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=60_000)
    parser.add_argument("--batch", type=int, default=1000, help="objects per ingest request")
    parser.add_argument("--partners", type=int, default=20)
    parser.add_argument("--callers", type=int, default=5,
                        help="partners calling Get Object 9 times a second (at most --partners)")
    parser.add_argument("--workers", type=int, default=0, help="leo run --workers N: bots in N processes beside the API")
    parser.add_argument("--profile", action="store_true", help="profile leo run with py-spy during the combined ingest")
    args = parser.parse_args()
    args.callers = min(args.callers, args.partners)  # the callers are among the partners
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
