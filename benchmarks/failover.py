"""Failover: two `leo run --role bots` processes on one store (SQLite, or with `--store postgresql`
a throwaway PostgreSQL database, as two hosts share it) share 8 bots; one is killed
with -9 while events go in. Printed: the time from the kill until every bot it ran has committed
a run in the other process, beside the limit (`cluster.lease_ttl` + 2 s). On one machine a
process that is gone is seen at once (its pid), so the bots move at the next balance (1 s);
between machines they wait for their leases to expire (the TTL). `--other-host` runs each
process under a host name of its own (a UTS namespace: `unshare -u`, as root), so that the
survivor cannot tell the victim's pid is gone and its bots move by the leases' expiry, as between
two machines.

    python benchmarks/failover.py [--ttl 15] [--rounds 3] [--other-host] [--store sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import pg_database  # noqa: E402

from leo_runtime.store import open_store  # noqa: E402

BOTS = 8


def project(folder: Path, ttl: float) -> Path:
    bots = "\n".join(f"      - {{id: f{n}, use: filter, in: in, with: {{query: {{n: {{gte: 0}}}}}}, out: out.f{n}}}"
                     for n in range(BOTS))
    (folder / "pipelines.yaml").write_text(f"version: 1\ncluster: {{lease_ttl: {ttl}}}\npipelines:\n  copy:\n"
                                           f"    bots:\n{bots}\n")
    return folder / "pipelines.yaml"


def start(file: Path, name: str | None = None) -> subprocess.Popen:
    leo = str(Path(sys.executable).parent / "leo")
    command = [leo, "run", "-f", str(file), "--role", "bots", "--no-http", "--log-level", "warning"]
    if name is not None:  # a host name of its own: `exec` keeps the pid the one killed
        command = ["unshare", "-u", "sh", "-c", f'hostname {name} && exec "$@"', "sh", *command]
    return subprocess.Popen(command, cwd=file.parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ttl", type=float, default=15.0, help="cluster.lease_ttl, seconds")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--other-host", action="store_true", help="each process under a host name of its own")
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    if args.store == "postgresql":
        with pg_database() as database:
            os.environ["LEO_STORE"] = database  # the processes' store (pipelines.yaml names none)
            measure(args, database)
    else:
        os.environ.pop("LEO_STORE", None)
        measure(args, "sqlite:///leo.db")


def measure(args: argparse.Namespace, url: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        file = project(Path(tmp), args.ttl)
        store = open_store(url, Path(tmp))
        stop = threading.Event()

        def feed() -> None:
            n = 0
            while not stop.wait(0.01):
                store.append("in", [{"n": n + i} for i in range(10)])
                n += 10

        names = iter(f"host-{n}" if args.other_host else None for n in range(1000))
        processes = [start(file, next(names)), start(file, next(names))]
        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        times = []
        try:
            for _ in range(args.rounds):
                deadline = time.monotonic() + 60
                while True:  # both run bots
                    owners = {row.owner for row in store.lease_rows() if row.owner}
                    if len(owners) == 2 and len([r for r in store.lease_rows() if r.owner]) == BOTS:
                        break
                    if time.monotonic() > deadline:
                        raise SystemExit("the bots did not spread over the two processes")
                    time.sleep(0.05)
                victim = processes[0]
                moved = [row.bot_id for row in store.lease_rows() if row.owner and f":{victim.pid}:" in row.owner]
                killed_ms = time.time() * 1000
                os.kill(victim.pid, signal.SIGKILL)
                victim.wait()
                killed = time.perf_counter()
                while True:
                    runs = {info.bot_id: info for info in store.bots()}
                    if all((runs[bot].last_run_at or 0) > killed_ms and runs[bot].lease_owner
                           and f":{victim.pid}:" not in runs[bot].lease_owner for bot in moved):
                        break
                    if time.perf_counter() - killed > args.ttl + 30:
                        raise SystemExit("the bots of the killed process did not move")
                    time.sleep(0.01)
                times.append(time.perf_counter() - killed)
                processes = [processes[1], start(file, next(names))]
        finally:
            stop.set()
            for process in processes:
                process.terminate()
                process.wait(30)
            store.close()
    limit = args.ttl + 2
    worst = max(times)
    where = "under host names of their own (expiry)" if args.other_host else "on one machine"
    print(f"failover on {args.store}, kill -9 of one of two leo run processes {where} ({BOTS} bots, lease_ttl {args.ttl:g}s): "
          f"the last moved bot committed again after {', '.join(f'{t:.2f}' for t in times)} s "
          f"(limit lease_ttl + 2 = {limit:g} s) -> {'PASS' if worst <= limit else 'FAIL'}")


if __name__ == "__main__":
    main()
