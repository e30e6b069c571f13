"""put -> filter -> out over N events of ~300 bytes: leo-runtime next to plain sqlite3 + json.

The baseline does the same work by hand in the same run, on the same disk: append in
1,000-event transactions, read in pages of 1,000, json.loads each payload, test the same
predicate in plain Python, append the matches and update one checkpoint row per page, all in
WAL mode. leo-runtime does it through its store (the same path `leo queues put` takes) and a
real `Runtime` running a `filter` bot. Target: leo >= 50% of the baseline's events/s.

    python benchmarks/queue_throughput.py [--events 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from leo_runtime.config import parse_config
from leo_runtime.events import RawJSON
from leo_runtime.runtime import Runtime
from leo_runtime.store import open_store

PAGE = 1000
TARGET = 0.5

PIPELINE = """
version: 1
store: sqlite:///leo.db
pipelines:
  bench:
    bots:
      - id: low-stock
        use: filter
        in: inventory.in
        with: {query: {quantity: {lt: 5}}}
        out: inventory.low
"""


def make_payloads(count: int) -> list[str]:
    rng = random.Random(42)
    warehouses = ["NYC", "LAX", "ORD", "DFW"]
    payloads = []
    for index in range(count):
        record = {
            "sku": f"SKU-{index:08d}",
            "warehouse": rng.choice(warehouses),
            "quantity": rng.randint(0, 19),
            "status": rng.choice(["active", "backorder", "discontinued"]),
            "price": round(rng.uniform(1, 500), 2),
            "updated_at": "2026-11-26T19:10:33.123Z",
            "description": "x" * 150,
        }
        payloads.append(json.dumps(record, separators=(",", ":")))
    return payloads


def plain_sqlite(payloads: list[str], folder: Path) -> tuple[float, int]:
    """The baseline: what a careful engineer writes by hand with sqlite3 and json."""
    conn = sqlite3.connect(folder / "plain.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY, queue TEXT NOT NULL, payload TEXT NOT NULL, "
                 "timestamp INTEGER NOT NULL)")
    conn.execute("CREATE INDEX events_by_queue ON events(queue, seq)")
    conn.execute("CREATE TABLE checkpoints (bot TEXT PRIMARY KEY, position INTEGER NOT NULL)")
    conn.execute("INSERT INTO checkpoints VALUES ('low-stock', 0)")
    started = time.perf_counter()
    for start in range(0, len(payloads), PAGE):
        now = int(time.time() * 1000)
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO events (queue, payload, timestamp) VALUES ('inventory.in', ?, ?)",
            [(text, now) for text in payloads[start:start + PAGE]],
        )
        conn.execute("COMMIT")
    position = 0
    matched = 0
    while True:
        rows = conn.execute(
            "SELECT seq, payload FROM events WHERE queue = 'inventory.in' AND seq > ? ORDER BY seq LIMIT ?",
            (position, PAGE),
        ).fetchall()
        if not rows:
            break
        now = int(time.time() * 1000)
        out = [(text, now) for _, text in rows if json.loads(text)["quantity"] < 5]
        position = rows[-1][0]
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO events (queue, payload, timestamp) VALUES ('inventory.low', ?, ?)", out)
        conn.execute("UPDATE checkpoints SET position = ? WHERE bot = 'low-stock'", (position,))
        conn.execute("COMMIT")
        matched += len(out)
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed, matched


async def leo(payloads: list[str], folder: Path) -> tuple[float, float, int]:
    """leo-runtime: put through the store, then a real Runtime runs the filter bot to the head."""
    (folder / "pipelines.yaml").write_text(PIPELINE)
    config = parse_config(PIPELINE, folder / "pipelines.yaml")
    store = open_store(config.store_url, folder)
    started = time.perf_counter()
    for start in range(0, len(payloads), PAGE):
        store.append("inventory.in", [RawJSON(text) for text in payloads[start:start + PAGE]])
    put_done = time.perf_counter()
    head = store.queue_head("inventory.in")
    runtime = Runtime(config, store, serve_http=False)
    await runtime.start()
    while (store.get_checkpoint("low-stock", "inventory.in") or 0) < head:
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - started
    await runtime.stop()
    matched = store.queue_head("inventory.low") and len(store.read("inventory.low", 0, len(payloads)))
    store.close()
    return elapsed, put_done - started, matched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5, help="interleaved trials; the best of each side counts")
    args = parser.parse_args()
    payloads = make_payloads(args.events)
    size = sum(len(text) for text in payloads) / len(payloads)
    plain_runs: list[float] = []
    leo_runs: list[tuple[float, float]] = []
    for _ in range(args.repeat):
        # Interleaved, each in a fresh folder: both sides meet the same disk and machine noise.
        with tempfile.TemporaryDirectory() as tmp:
            plain_elapsed, plain_matched = plain_sqlite(payloads, Path(tmp))
        with tempfile.TemporaryDirectory() as tmp:
            leo_elapsed, leo_put, leo_matched = asyncio.run(leo(payloads, Path(tmp)))
        if plain_matched != leo_matched:
            raise SystemExit(f"mismatch: plain matched {plain_matched}, leo matched {leo_matched}")
        plain_runs.append(plain_elapsed)
        leo_runs.append((leo_elapsed, leo_put))
    plain_elapsed = min(plain_runs)
    leo_elapsed, leo_put = min(leo_runs)
    plain_rate = args.events / plain_elapsed
    leo_rate = args.events / leo_elapsed
    ratio = leo_rate / plain_rate
    print(f"events: {args.events:,} of ~{size:.0f} bytes; {leo_matched:,} match quantity < 5; best of {args.repeat}")
    print(f"plain sqlite3 + json : {plain_rate:>10,.0f} events/s  ({plain_elapsed:.2f}s; "
          f"runs {', '.join(f'{t:.2f}' for t in plain_runs)})")
    print(f"leo-runtime          : {leo_rate:>10,.0f} events/s  ({leo_elapsed:.2f}s = put {leo_put:.2f}s + "
          f"filter {leo_elapsed - leo_put:.2f}s; runs {', '.join(f'{t:.2f}' for t, _ in leo_runs)})")
    print(f"ratio                : {ratio:.2f} of plain (target >= {TARGET:.2f}) -> {'PASS' if ratio >= TARGET else 'FAIL'}")


if __name__ == "__main__":
    main()
