"""`leo queues put`, then `leo run`'s filter drain, measured from outside: whole CLI processes next
to plain sqlite3 + json doing the same work in the same run.

N events of ~295 bytes (default 200,000; half match ``quantity < 5``). Each trial, in fresh
folders on the same disk:

- plain: append the payloads in 1,000-event transactions (the put's baseline), then read them
  in pages of 1,000, json.loads each, test the predicate in plain Python, append the matches and
  update one checkpoint row per page (the drain's baseline), all in WAL mode;
- leo: ``leo queues put inventory.in input.ndjson`` timed as a whole process, from launch to
  exit (start-up, strict check of every line, one transaction); then ``leo run --no-http`` on
  the filter bot, its checkpoint watched from this process (a read-only connection every 5 ms).
  The drain is timed from the first page committed to the last (events read after the first
  page / that time: "from the first event read to the last written"); the figure from the
  launch of ``leo run`` is printed beside it (start-up is `leo run`'s own target).

Also printed, for information: events per CPU second of each side (the put process's CPU; `leo
run`'s over the drain's span, all its threads; this process's for plain), which a busy machine
moves far less than wall-clock rates.

Targets, against the baseline of the same trial: put >= 0.6 of plain appends, drain >= 0.7 of
plain read+filter+append+checkpoint. Trials alternate the sides; a ratio is the median of the
trials' ratios (best against best shown beside it).

    python benchmarks/queue_throughput.py [--events 200000] [--repeat 3]

``LEO_BENCH_COMMAND`` replaces the ``leo`` command (``py-spy record -o run.svg -- leo``, say).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import cpu_seconds, leo_command, stop, user_env

PAGE = 1000
PUT_TARGET = 0.6
DRAIN_TARGET = 0.7

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
            "quantity": rng.randint(0, 9),
            "status": rng.choice(["active", "backorder", "discontinued"]),
            "price": round(rng.uniform(1, 500), 2),
            "updated_at": "2026-11-26T19:10:33.123Z",
            "description": "x" * 150,
        }
        payloads.append(json.dumps(record, separators=(",", ":")))
    return payloads


def plain_sqlite(payloads: list[str], folder: Path) -> tuple[float, float, int, float, float]:
    """The baseline: what a careful engineer writes by hand with sqlite3 and json.
    Returns (append seconds, read+filter+append+checkpoint seconds, matches, and the CPU
    seconds of both)."""
    conn = sqlite3.connect(folder / "plain.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY, queue TEXT NOT NULL, payload TEXT NOT NULL, "
                 "timestamp INTEGER NOT NULL)")
    conn.execute("CREATE INDEX events_by_queue ON events(queue, seq)")
    conn.execute("CREATE TABLE checkpoints (bot TEXT PRIMARY KEY, position INTEGER NOT NULL)")
    conn.execute("INSERT INTO checkpoints VALUES ('low-stock', 0)")
    started, cpu_started = time.perf_counter(), time.process_time()
    for start in range(0, len(payloads), PAGE):
        now = int(time.time() * 1000)
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO events (queue, payload, timestamp) VALUES ('inventory.in', ?, ?)",
            [(text, now) for text in payloads[start:start + PAGE]],
        )
        conn.execute("COMMIT")
    appended, cpu_appended = time.perf_counter(), time.process_time()
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
    drained, cpu_drained = time.perf_counter(), time.process_time()
    conn.close()
    return appended - started, drained - appended, matched, cpu_appended - cpu_started, cpu_drained - cpu_appended


async def leo(source: Path, folder: Path, pipeline: str = PIPELINE) -> tuple[float, float, int]:
    """leo-runtime in this process: `leo queues put`'s path over the NDJSON file, then a real
    Runtime runs the filter bot to the head. Returns (whole pipeline seconds, put seconds,
    matches). (benchmarks/pg_pipeline.py passes the same pipeline with a PostgreSQL store; this
    benchmark's own figures are whole processes: `leo_processes`.)"""
    from leo_runtime.config import parse_config
    from leo_runtime.runtime import Runtime
    from leo_runtime.staging import publish, stage_lines
    from leo_runtime.store import open_store

    (folder / "pipelines.yaml").write_text(pipeline)
    config = parse_config(pipeline, folder / "pipelines.yaml")
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


def leo_processes(source: Path, folder: Path, count: int) -> dict[str, float]:
    """`leo queues put` as a process, then `leo run` draining the filter: put seconds, drain
    seconds from the first page committed, events in that span, seconds from launch, and the
    CPU seconds of the put process and of `leo run` over the drain's span."""
    (folder / "pipelines.yaml").write_text(PIPELINE)
    env = user_env()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([*leo_command(), "queues", "put", "inventory.in", str(source), "--create", "--json"], cwd=folder, env=env,
                   check=True, stdout=subprocess.DEVNULL)
    put = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    put_cpu = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    with (folder / "run.log").open("wb") as log:
        launched = time.perf_counter()
        proc = subprocess.Popen([*leo_command(), "run", "--no-http"], cwd=folder, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        first_at, first, done_at, drain_cpu = _watch_checkpoint(folder / "leo.db", count, proc)
    finally:
        stop(proc)
    return {"put": put, "drain": done_at - first_at, "drained": count - first, "from launch": done_at - launched,
            "put cpu": put_cpu, "drain cpu": drain_cpu}


def _watch_checkpoint(db: Path, head: int, proc: subprocess.Popen) -> tuple[float, int, float, float]:
    """(when the checkpoint first moved, where it was then, when it reached `head`, the CPU
    seconds `proc` used in between)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None)
    first_at, first, cpu_at_first = 0.0, 0, 0.0
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"leo run exited early:\n{(db.parent / 'run.log').read_text()}")
            row = conn.execute("SELECT position FROM checkpoints WHERE bot_id = 'low-stock'").fetchone()
            now = time.perf_counter()
            position = row[0] if row else 0
            if position and not first:
                first_at, first, cpu_at_first = now, position, cpu_seconds(proc.pid)
            if position >= head:
                return first_at, first, now, cpu_seconds(proc.pid) - cpu_at_first
            time.sleep(0.005)
    finally:
        conn.close()
    raise SystemExit("the filter did not drain in 300 s")


def matched_in(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM events JOIN queues ON queues.id = events.queue_id "
                            "WHERE queues.name = 'inventory.low'").fetchone()[0]
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3, help="interleaved trials")
    args = parser.parse_args()
    payloads = make_payloads(args.events)
    size = sum(len(text) for text in payloads) / len(payloads)
    trials: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as data:
        source = Path(data) / "input.ndjson"
        source.write_text("".join(text + "\n" for text in payloads))
        for _ in range(args.repeat):
            # Interleaved, each in a fresh folder: both sides meet the same disk and machine noise.
            with tempfile.TemporaryDirectory() as tmp:
                plain_append, plain_drain, plain_matched, append_cpu, drain_cpu = plain_sqlite(payloads, Path(tmp))
            with tempfile.TemporaryDirectory() as tmp:
                leo_run = leo_processes(source, Path(tmp), args.events)
                leo_matched = matched_in(Path(tmp) / "leo.db")
            if plain_matched != leo_matched:
                raise SystemExit(f"mismatch: plain matched {plain_matched}, leo matched {leo_matched}")
            trials.append({
                "plain put": args.events / plain_append, "leo put": args.events / leo_run["put"],
                "plain drain": args.events / plain_drain, "leo drain": leo_run["drained"] / leo_run["drain"],
                "leo from launch": args.events / leo_run["from launch"],
                "plain put cpu": args.events / append_cpu, "leo put cpu": args.events / leo_run["put cpu"],
                "plain drain cpu": args.events / drain_cpu,
                "leo drain cpu": leo_run["drained"] / max(leo_run["drain cpu"], 1e-3),
            })

    def line(label: str, key: str, unit: str, note: str = "") -> str:
        figures = [trial[key] for trial in trials]
        runs = ", ".join(f"{figure:,.0f}" for figure in figures)
        return f"{label:<34}: {max(figures):>9,.0f} {unit}/s best  (runs {runs}){note}"

    def verdict(label: str, key: str, target: float) -> str:
        # Each trial's two sides ran back to back under the same machine load: the median of
        # their ratios is the verdict (best against best is shown too).
        paired = statistics.median(trial[f"leo {key}"] / trial[f"plain {key}"] for trial in trials)
        bests = max(trial[f"leo {key}"] for trial in trials) / max(trial[f"plain {key}"] for trial in trials)
        return (f"{label:<34}: {paired:.2f} of plain, median of paired trials (best vs best {bests:.2f}; "
                f"target >= {target:.2f}) -> {'PASS' if paired >= target else 'FAIL'}")

    def cpu_line(key: str) -> str:
        # Events per CPU second of each side: what the code costs, whatever else the machine runs.
        paired = statistics.median(trial[f"leo {key} cpu"] / trial[f"plain {key} cpu"] for trial in trials)
        leo_rate = statistics.median(trial[f"leo {key} cpu"] for trial in trials)
        plain_rate = statistics.median(trial[f"plain {key} cpu"] for trial in trials)
        return (f"{key:<6} per CPU second (info)     : leo {leo_rate:,.0f}, plain {plain_rate:,.0f} events/CPU-s: "
                f"{paired:.2f} of plain (median of paired trials)")

    print(f"events: {args.events:,} of ~{size:.0f} bytes; {leo_matched:,} match quantity < 5; {args.repeat} trials")
    print(line("put    plain sqlite3 appends", "plain put", "events"))
    print(line("put    leo queues put (process)", "leo put", "events", "; launch to exit"))
    print(verdict("put    ratio", "put", PUT_TARGET))
    print(cpu_line("put"))
    print(line("drain  plain read+filter+append+ckpt", "plain drain", "events"))
    print(line("drain  leo run filter", "leo drain", "events", "; first page committed to last"))
    print(line("drain  leo run, from launch", "leo from launch", "events", "; start-up included (info)"))
    print(verdict("drain  ratio", "drain", DRAIN_TARGET))
    print(cpu_line("drain"))


if __name__ == "__main__":
    main()
