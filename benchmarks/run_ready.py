"""How long `leo run` takes from launch until `/healthz` answers 200, on the bundled project.

Target (issue 14): < 0.8 s. Measured for a first launch (a new store: created and migrated) and
for a restart (the store exists), median of N launches each, beside the floor measured in the
same run: a bare FastAPI app with one route under uvicorn, launched and polled the same way.
Polled every 5 ms over loopback with the standard library's http.client.

    python benchmarks/run_ready.py [--runs 5]
"""

from __future__ import annotations

import argparse
import http.client
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from harness import ADMIN, bundled_project, cpu_seconds, leo_command, user_env

LIMIT = 0.8

BARE = textwrap.dedent("""
    import sys
    import uvicorn
    from fastapi import FastAPI
    app = FastAPI()
    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
""")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ready_after(argv: list[str], cwd: Path, port: int) -> tuple[float, float]:
    """Seconds from launching `argv` until GET /healthz on `port` answers 200, and the CPU
    seconds the process used by then (steadier than the wall time on a busy machine); the
    process is then stopped (SIGTERM) and waited for."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=user_env(LEO_ADMIN_TOKEN=ADMIN), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.read().decode()[-800:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    return time.perf_counter() - started, cpu_seconds(proc.pid)
            except OSError:
                pass
            finally:
                conn.close()
            if time.perf_counter() - started > 60:
                raise SystemExit(f"{' '.join(argv)}: no /healthz within 60 s")
            time.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    leo = leo_command()
    first: list[tuple[float, float]] = []
    again: list[tuple[float, float]] = []
    bare: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        template = bundled_project(Path(tmp) / "template")
        (Path(tmp) / "bare.py").write_text(BARE)
        # warm-up: bytecode written, files in the page cache
        port = free_port()
        ready_after([*leo, "run", "--port", str(port)], template, port)
        port = free_port()
        ready_after([sys.executable, str(Path(tmp) / "bare.py"), str(port)], Path(tmp), port)
        for run in range(runs):
            project = Path(tmp) / f"run{run}"
            shutil.copytree(template, project, ignore=shutil.ignore_patterns("leo.db*", "run.log"))
            port = free_port()
            first.append(ready_after([*leo, "run", "--port", str(port)], project, port))
            port = free_port()
            again.append(ready_after([*leo, "run", "--port", str(port)], project, port))
            port = free_port()
            bare.append(ready_after([sys.executable, str(Path(tmp) / "bare.py"), str(port)], Path(tmp), port))
    print(f"launch -> /healthz 200, median of {runs}, bundled project (leo init); wall, and CPU used by then:")
    for name, pairs, limit in (("leo run, new store", first, LIMIT), ("leo run, existing store", again, LIMIT),
                               ("bare FastAPI + uvicorn (the floor)", bare, None)):
        walls = [wall for wall, _ in pairs]
        median = statistics.median(walls)
        cpu = statistics.median(cpu for _, cpu in pairs)
        verdict = f"  limit {limit:.2f} s: {'ok' if median < limit else 'OVER'}" if limit else ""
        print(f"  {name:<36} {median:6.3f} s wall (min {min(walls):.3f})  {cpu:6.3f} s cpu{verdict}")


if __name__ == "__main__":
    main()
