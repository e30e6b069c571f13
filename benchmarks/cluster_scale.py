"""Two hosts against one, on PostgreSQL, for a pipeline whose bots spend their time in Python.

`--bots` custom bots (default 4) each read the same input queue and, for every event, do
`--work` rounds of pure-Python arithmetic (CPU, holding the GIL) before passing it on; the store
is not the bottleneck. With the hosts up and the bots spread over them (`leo run --role bots`,
one throwaway PostgreSQL database), `--events` events go in at once; the figure is events per
second until every bot has passed every event on. One host runs the bots in one process (one
core's worth of Python); two hosts share them. Printed: both rates and their ratio beside the
limit (issue 13: two hosts >= 1.5x one host). Each layout runs `--repeat` times; the median counts.
On a machine with fewer than two free cores the ratio cannot reach 2: say so when quoting it.

    python benchmarks/cluster_scale.py [--bots 4] [--events 2000] [--work 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import leo_command, pg_database, user_env

from leo_runtime.store import open_store

LIMIT = 1.5

BOT = '''
from leo_runtime import Bot

WORK = {work}

class Busy(Bot):
    """Pure-Python work per event (CPU under the GIL), then the event passed on."""

    def process(self, events, ctx):
        out = []
        for event in events:
            total = 0
            for n in range(WORK):
                total = (total + n * n) % 1000003
            out.append({{**event.payload, "sum": total}})
        return out
'''


def write_project(folder: Path, bots: int, work: int) -> Path:
    (folder / "busy.py").write_text(BOT.format(work=work))
    lines = "\n".join(f"      - {{id: busy{n}, use: ./busy.py:Busy, in: in, out: out.busy{n}, batch: {{records: 20}}}}"
                      for n in range(bots))
    file = folder / "pipelines.yaml"
    file.write_text(f"version: 1\ncluster: {{lease_ttl: 5}}\npipelines:\n  busy:\n    bots:\n{lines}\n")
    return file


def wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.02)


def trial(database: str, hosts: int, args: argparse.Namespace) -> float:
    """Events per second through every bot with `hosts` processes running the bots."""
    with tempfile.TemporaryDirectory(prefix="leo-bench-") as tmp:
        folder = Path(tmp)
        schema = f"scale_{hosts}_{time.monotonic_ns()}"
        url = f"{database}?schema={schema}"
        file = write_project(folder, args.bots, args.work)
        env = user_env(LEO_STORE=url)
        store = open_store(url, folder)
        procs = [subprocess.Popen([*leo_command(), "run", "-f", str(file), "--role", "bots", "--no-http",
                                   "--log-level", "warning"], cwd=folder, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(hosts)]
        try:
            def spread() -> bool:
                held = [row for row in store.lease_rows() if row.owner]
                return len(held) == args.bots and len({row.owner for row in held}) == hosts
            wait(spread, 60, f"the bots spread over {hosts} host(s)")
            started = time.perf_counter()
            for first in range(0, args.events, 500):
                store.append("in", [{"n": n} for n in range(first, min(first + 500, args.events))])
            wait(lambda: all(store.count_after(f"out.busy{n}", 0) >= args.events for n in range(args.bots)),
                 600, "every bot through every event")
            return args.events / (time.perf_counter() - started)
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(30)
            store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bots", type=int, default=4)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--work", type=int, default=20000, help="arithmetic rounds per event per bot")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rates: dict[int, list[float]] = {1: [], 2: []}
    with pg_database() as database:
        for _ in range(args.repeat):  # the layouts alternate, so that a busy spell hits both
            for hosts in (1, 2):
                rates[hosts].append(trial(database, hosts, args))
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    cores = len(os.sched_getaffinity(0))
    print(f"{args.bots} CPU-bound bots on PostgreSQL ({args.events} events, {args.work} rounds each, {cores} cores): "
          f"one host {one:,.0f} events/s, two hosts {two:,.0f} events/s (medians of {args.repeat})")
    print(f"two hosts / one host = {two / one:.2f}x (limit >= {LIMIT}x) -> {'PASS' if two / one >= LIMIT else 'FAIL'}")


if __name__ == "__main__":
    main()
