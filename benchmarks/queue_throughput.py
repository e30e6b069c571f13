"""put -> filter -> out over N events of ~300 bytes: leo-runtime next to plain sqlite3 + json.

The baseline does the same work by hand in the same run, on the same disk: append in
1,000-event transactions, read in pages of 1,000, json.loads each payload, test the same
predicate in plain Python, append the matches and update one checkpoint row per page, all in
WAL mode. leo-runtime puts an NDJSON file of the same lines exactly as `leo queues put` does
(every line checked strictly with orjson, then all published in one transaction; only the
process start is left out) and runs the filter with a real `Runtime`.

Targets, each against the baseline measured in the same run: put >= 50% of the plain appends'
events/s, and put -> filter -> out >= 50% of the plain pipeline's. The trials alternate the two
sides; a ratio is the median of the trials' ratios (on a shared machine the load changes between
trials, not within a back-to-back pair), with best against best shown beside it.

    python benchmarks/queue_throughput.py [--events 200000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from leo_runtime.config import parse_config
from leo_runtime.runtime import Runtime
from leo_runtime.staging import publish, stage_lines
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


def plain_sqlite(payloads: list[str], folder: Path) -> tuple[float, float, int]:
    """The baseline: what a careful engineer writes by hand with sqlite3 and json.
    Returns (whole pipeline seconds, append seconds, matches)."""
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
    appended = time.perf_counter()
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
    return elapsed, appended - started, matched


async def leo(source: Path, folder: Path) -> tuple[float, float, int]:
    """leo-runtime: `leo queues put`'s path over the NDJSON file, then a real Runtime runs the
    filter bot to the head. Returns (whole pipeline seconds, put seconds, matches)."""
    (folder / "pipelines.yaml").write_text(PIPELINE)
    config = parse_config(PIPELINE, folder / "pipelines.yaml")
    store = open_store(config.store_url, folder)
    started = time.perf_counter()
    with source.open("rb") as handle, stage_lines(handle, str(source)) as staged:
        publish(store, "inventory.in", staged)
    put_done = time.perf_counter()
    head = store.queue_head("inventory.in")
    runtime = Runtime(config, store, serve_http=False)
    await runtime.start()
    while (store.get_checkpoint("low-stock", "inventory.in") or 0) < head:
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - started
    await runtime.stop()
    matched = store.queue_head("inventory.low") and len(store.read("inventory.low", 0, head))
    store.close()
    return elapsed, put_done - started, matched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5, help="interleaved trials")
    args = parser.parse_args()
    payloads = make_payloads(args.events)
    size = sum(len(text) for text in payloads) / len(payloads)
    plain_runs: list[tuple[float, float]] = []
    leo_runs: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory() as data:
        source = Path(data) / "input.ndjson"
        source.write_text("".join(text + "\n" for text in payloads))
        for _ in range(args.repeat):
            # Interleaved, each in a fresh folder: both sides meet the same disk and machine noise.
            with tempfile.TemporaryDirectory() as tmp:
                plain_elapsed, plain_append, plain_matched = plain_sqlite(payloads, Path(tmp))
            with tempfile.TemporaryDirectory() as tmp:
                leo_elapsed, leo_put, leo_matched = asyncio.run(leo(source, Path(tmp)))
            if plain_matched != leo_matched:
                raise SystemExit(f"mismatch: plain matched {plain_matched}, leo matched {leo_matched}")
            plain_runs.append((plain_elapsed, plain_append))
            leo_runs.append((leo_elapsed, leo_put))
    best = {name: (min(run[0] for run in runs), min(run[1] for run in runs))
            for name, runs in (("plain", plain_runs), ("leo", leo_runs))}

    def line(label: str, runs: list[tuple[float, float]], index: int, note: str = "") -> str:
        seconds = min(run[index] for run in runs)
        trials = ", ".join(f"{run[index]:.2f}" for run in runs)
        return f"{label:<28}: {args.events / seconds:>10,.0f} events/s  (best {seconds:.2f}s; runs {trials}){note}"

    def verdict(label: str, index: int) -> str:
        # Each trial's two sides ran back to back: their ratio meets the same machine load, so
        # the median of those ratios is the verdict (best against best is shown too).
        paired = statistics.median(plain[index] / leo[index] for plain, leo in zip(plain_runs, leo_runs, strict=True))
        bests = best["plain"][index] / best["leo"][index]
        return (f"{label:<28}: {paired:.2f} of plain, median of paired trials (best vs best {bests:.2f}; "
                f"target >= {TARGET:.2f}) -> {'PASS' if paired >= TARGET else 'FAIL'}")

    print(f"events: {args.events:,} of ~{size:.0f} bytes; {leo_matched:,} match quantity < 5; {args.repeat} trials")
    print(line("put   plain sqlite3 appends", plain_runs, 1))
    print(line("put   leo queues put", leo_runs, 1, "; strict orjson check, one transaction"))
    print(verdict("put   ratio", 1))
    print(line("pipe  plain sqlite3 + json", plain_runs, 0))
    print(line("pipe  leo put -> filter", leo_runs, 0))
    print(verdict("pipe  ratio", 0))


if __name__ == "__main__":
    main()
