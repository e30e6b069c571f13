"""Partner streams at scale: what 1,000 streams cost one `leo run`, and how fast new streams back-fill.

Starts a real `leo run` (its store in a temporary folder) and prints, in one run:

1. 1,000 streams of one partner, then idle: the process's CPU (target < 2% of one core) and its
   RSS growth (target < 100 MB), with its threads and open descriptors; then the same once the
   streams are deleted (they go back to where they started). Read from /proc (Linux).
2. Back-fill: N new streams with ``start_at: earliest`` over ``--objects`` objects (N = 1, 10,
   100), one consumer reading stream 0 while the writer fills it. Printed: the consumer's rate
   (records it read / time from the first create to its last record) and the writer's fill rate
   (records written to all N streams / time until every stream follows the writer), beside raw
   SQLite doing the same reads and writes in the same run (one thread fanning the change records
   out with plain dict lookups, one reading stream 0 as it fills). Targets (issue 14): the
   consumer >= 50,000 records/s and >= 0.5 of raw. Stream 0, the one read, takes every object;
   with N streams each of the other N-1 takes its own slice (query ``{"sliceN": i}``, i = 1..N-1),
   so every change is decoded once and matched against N queries while the writer writes about
   twice ``--objects`` records whatever N; ``--full`` gives every stream every object instead (N
   times the records).

    python benchmarks/stream_costs.py [--streams 1000] [--idle-seconds 20] [--objects 200000] [--full]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import httpx
import orjson
from harness import ADMIN, JsonGetter, inventory_project, start_leo, stop

PIPELINES = inventory_project("{port: 0, limits: {streams: 100000}}")
IDLE_CPU_LIMIT = 0.02
RSS_LIMIT_MB = 100
BACKFILL_TARGET = 50_000


def usage(pid: int) -> dict[str, float]:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return {"threads": int(status["Threads"]), "fds": len(os.listdir(f"/proc/{pid}/fd")),
            "rss_mb": int(status["VmRSS"].split()[0]) / 1024,
            "cpu": (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")}


def wait_for(predicate: Any, what: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.02)


def objects(start: int, count: int) -> list[dict[str, Any]]:
    return [{"sku": f"SKU-{n:08d}", "quantity": n % 50, "warehouse": ("NYC", "SFO", "LAX")[n % 3],
             "name": f"part number {n}", "price": round(n * 0.37, 2), "slice10": n % 10, "slice100": n % 100}
            for n in range(start, start + count)]


def followers(db: Path) -> tuple[int, int]:
    """(streams following the writer, streams) of inventory, read beside `leo run`."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        done, total = conn.execute("SELECT COUNT(*) - COUNT(cursor), COUNT(*) FROM streams").fetchone()
        head = conn.execute("SELECT head FROM queues WHERE name = 'inventory.changes'").fetchone()[0]
        checkpoint = conn.execute("SELECT position FROM checkpoints WHERE bot_id = 'streams:inventory'").fetchone()
        return (done if checkpoint and checkpoint[0] >= head else 0), total
    finally:
        conn.close()


# -- 1. idle cost -----------------------------------------------------------------------------------------
def idle_cost(url: str, db: Path, pid: int, partner: dict[str, str], count: int, seconds: float) -> None:
    http = httpx.Client(base_url=url, timeout=60, headers=partner)
    admin = {"Authorization": f"Bearer {ADMIN}"}
    http.post("/v1/admin/objects/inventory", json=objects(0, 10), headers=admin)
    time.sleep(2)  # the sample flows through; then it is idle
    before = usage(pid)
    ids = [http.post("/v1/streams", json={"object_type": "inventory"}).json()["id"] for _ in range(count)]
    http.post("/v1/admin/objects/inventory", json=objects(10, 10), headers=admin)  # every stream gets these
    wait_for(lambda: followers(db) == (count, count), "the streams to follow the writer")
    time.sleep(2)
    idle = usage(pid)
    time.sleep(seconds)
    after = usage(pid)
    share = (after["cpu"] - idle["cpu"]) / seconds
    growth = after["rss_mb"] - before["rss_mb"]
    for stream_id in ids:
        http.delete(f"/v1/streams/{stream_id}")
    time.sleep(2)
    gone = usage(pid)
    http.close()
    print(f"1. {count:,} streams of one partner on one `leo run`:")
    print(f"   idle CPU {share:.2%} of one core over {seconds:g} s (limit {IDLE_CPU_LIMIT:.0%}) "
          f"-> {'PASS' if share < IDLE_CPU_LIMIT else 'FAIL'}")
    print(f"   RSS {before['rss_mb']:.0f} -> {after['rss_mb']:.0f} MB: +{growth:.0f} MB (limit {RSS_LIMIT_MB} MB) "
          f"-> {'PASS' if growth < RSS_LIMIT_MB else 'FAIL'}")
    print(f"   threads {before['threads']} -> {after['threads']}, open descriptors {before['fds']} -> {after['fds']}")
    print(f"   after deleting them: threads {gone['threads']}, descriptors {gone['fds']}, RSS {gone['rss_mb']:.0f} MB")


# -- 2. back-fill -------------------------------------------------------------------------------------------
def read_stream(url: str, token: str, stream_id: str, expected: int, done: list[float]) -> None:
    """Read partition 0 from its checkpoint until `expected` records came (long polls of 1,000)."""
    client = JsonGetter(url, token)
    after, count = client.get(f"/v1/streams/{stream_id}")["partitions"][0]["checkpoint"], 0
    while count < expected:
        page = client.get(f"/v1/streams/{stream_id}/partitions/0/records?limit=1000&wait=5&after={after}")
        count += len(page["records"])
        after = page["next_position"]
    done.append(time.perf_counter())
    client.close()


def leo_backfill(url: str, db: Path, token: str, streams: int, total: int, full: bool) -> dict[str, float]:
    """The consumer's rate, the time the creates took and the writer's fill time (from the first
    create and from the last) for `streams` new earliest streams."""
    http = httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {token}"})
    queries = [None if i == 0 or full else {f"slice{streams}": i} for i in range(streams)]
    expected = total
    started = time.perf_counter()
    ids = [http.post("/v1/streams", json={"object_type": "inventory", "start_at": "earliest", "query": query}).json()["id"]
           for query in queries]
    created = time.perf_counter()
    done: list[float] = []
    reader = threading.Thread(target=read_stream, args=(url, token, ids[0], expected, done))
    reader.start()
    wait_for(lambda: followers(db) == (streams, streams), "the back-fill")
    filled = time.perf_counter()
    reader.join()
    for stream_id in ids:
        http.delete(f"/v1/streams/{stream_id}")
    http.close()
    return {"consumer": expected / (done[0] - started), "creates": created - started, "filled": filled - started,
            "after_creates": filled - created}


def raw_backfill(tmp: Path, payloads: list[str], streams: int, full: bool) -> tuple[float, float, int]:
    """The same reads and writes with sqlite3 and orjson alone: one thread fans the change records
    out (read a page, decode, match, append, commit), one reads stream 0 as it fills."""
    path = tmp / f"raw-{streams}-{time.monotonic_ns()}.db"
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE events(seq INTEGER PRIMARY KEY, queue_id INTEGER, payload TEXT, ts INTEGER, "
                 "source_ts INTEGER, correlation TEXT)")
    conn.execute("CREATE INDEX events_by_queue ON events(queue_id, seq)")
    conn.execute("CREATE TABLE checkpoint(position INTEGER)")
    conn.execute("INSERT INTO checkpoint VALUES (0)")
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO events(seq, queue_id, payload, ts) VALUES (?, 0, ?, 0)", enumerate(payloads, 1))
    conn.execute("COMMIT")
    field = f"slice{streams}"
    expected = len(payloads)
    done: list[float] = []
    written = [0]

    def write() -> None:
        after, seq = 0, len(payloads)
        while True:
            rows = conn.execute("SELECT seq, payload FROM events WHERE queue_id = 0 AND seq > ? ORDER BY seq LIMIT 5000",
                                (after,)).fetchall()
            if not rows:
                return
            out = []
            for position, payload in rows:
                record = orjson.loads(payload)
                data = record["data"]
                partition = zlib.crc32(record["key"].encode()) % 1
                for stream in range(streams):
                    if stream == 0 or full or data.get(field) == stream:
                        seq += 1
                        out.append((seq, 1 + stream + partition, payload, position,
                                    f'{{"source":"inventory.changes","start":{position},"units":1}}'))
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO events(seq, queue_id, payload, ts, source_ts, correlation) "
                             "VALUES (?, ?, ?, 0, ?, ?)", out)
            conn.execute("UPDATE checkpoint SET position = ?", (rows[-1][0],))
            conn.execute("COMMIT")
            after = rows[-1][0]
            written[0] += len(out)

    def read() -> None:
        reader = sqlite3.connect(path, isolation_level=None)
        after, count = len(payloads), 0
        while count < expected:
            rows = reader.execute("SELECT seq, payload FROM events WHERE queue_id = 1 AND seq > ? ORDER BY seq "
                                  "LIMIT 1000", (after,)).fetchall()
            if rows:
                orjson.dumps({"records": [{**orjson.loads(p), "position": str(s)} for s, p in rows]})
                count += len(rows)
                after = rows[-1][0]
            else:
                time.sleep(0.001)
        done.append(time.perf_counter())
        reader.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=write), threading.Thread(target=read)]
    for thread in threads:
        thread.start()
    threads[0].join()
    filled = time.perf_counter()
    threads[1].join()
    conn.close()
    return expected / (done[0] - started), written[0] / (filled - started), written[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=1000, help="streams for the idle figure")
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument("--objects", type=int, default=200_000, help="objects the back-fills go over")
    parser.add_argument("--full", action="store_true", help="every back-fill stream takes every object")
    parser.add_argument("--backfills", default="1,10,100", help="stream counts of the back-fill runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        proc, url = start_leo(tmp, PIPELINES)
        db = tmp / "leo.db"
        try:
            http = httpx.Client(base_url=url, timeout=300)
            admin = {"Authorization": f"Bearer {ADMIN}"}
            token = http.post("/v1/admin/partners", json={"name": "bench"}, headers=admin).json()["token"]
            partner = {"Authorization": f"Bearer {token}"}
            if args.streams:
                idle_cost(url, db, proc.pid, partner, args.streams, args.idle_seconds)
            counts = [int(n) for n in args.backfills.split(",") if n.strip()]
            if counts:
                for start in range(20, args.objects, 10_000):
                    http.post("/v1/admin/objects/inventory", json=objects(start, min(10_000, args.objects - start)),
                              headers=admin)
                source = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
                payloads = [p for (p,) in source.execute(
                    "SELECT e.payload FROM events e JOIN queues q ON q.id = e.queue_id "
                    "WHERE q.name = 'inventory.changes' ORDER BY e.seq")]
                source.close()
                size = sum(map(len, payloads[:1000])) / min(len(payloads), 1000)
                shape = "every stream takes every object" if args.full else "stream 0 every object, the others a slice each"
                print(f"2. back-fill: new streams with start_at earliest over {len(payloads):,} change records of "
                      f"~{size:.0f} bytes ({shape})", flush=True)
                for streams in counts:
                    leo = leo_backfill(url, db, token, streams, len(payloads), args.full)
                    raw_consumer, raw_writer, written = raw_backfill(tmp, payloads, streams, args.full)
                    ratio = leo["consumer"] / raw_consumer
                    verdict = "PASS" if leo["consumer"] >= BACKFILL_TARGET and ratio >= 0.5 else "FAIL"
                    writer = written / leo["filled"]
                    print(f"   {streams:>3} stream(s): consumer {leo['consumer']:>8,.0f} records/s vs raw "
                          f"{raw_consumer:>8,.0f} ({ratio:.2f} of raw; target >= {BACKFILL_TARGET:,}/s and >= 0.5) "
                          f"-> {verdict}")
                    print(f"                 writer fills {written:,} records at {writer:>8,.0f}/s from the first "
                          f"create vs raw {raw_writer:>8,.0f}/s ({writer / raw_writer:.2f} of raw); the {streams} "
                          f"create(s) took {leo['creates']:.1f} s, the fill ended {leo['after_creates']:.1f} s after",
                          flush=True)
            http.close()
        finally:
            stop(proc)


if __name__ == "__main__":
    main()
