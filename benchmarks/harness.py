"""What several benchmarks share: a real `leo run`, a webhook receiver, a lean JSON client, /proc figures.

The benchmarks are scripts (``python benchmarks/x.py``): their folder is on ``sys.path``, so they
``from harness import ...``.
"""

from __future__ import annotations

import http.client
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

ADMIN = "benchmark-admin-token"
"""The admin token every benchmark's `leo run` gets (env LEO_ADMIN_TOKEN)."""


def inventory_project(server: str) -> str:
    """A pipelines.yaml with the object type inventory, a filter on its changes and `server`
    (a YAML flow mapping such as ``{port: 0}``)."""
    return textwrap.dedent(f"""
        version: 1
        server: {server}
        object_types:
          inventory: {{key: sku}}
        pipelines:
          feed:
            bots:
              - id: low-stock
                use: filter
                in: inventory.changes
                with: {{query: {{quantity: {{lt: 5}}}}}}
                out: inventory.low
    """).lstrip()

RECEIVER = textwrap.dedent("""
    import asyncio, sys
    from aiohttp import web
    DELAY = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
    async def handle(request):
        await request.read()
        if DELAY:
            await asyncio.sleep(DELAY)
        return web.Response(status=204)
    async def main():
        app = web.Application()
        app.router.add_post("/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
        await site.start()
        print(site._server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Event().wait()
    asyncio.run(main())
""")
"""A webhook receiver (aiohttp) answering 204 after ``argv[1]`` seconds (default 0); it prints its port."""


def start_leo(tmp: Path, pipelines: str, *args: str, store: str | None = None) -> tuple[subprocess.Popen, str]:
    """`leo run` on `pipelines` (written to ``tmp/pipelines.yaml``), its store in `tmp` (or the
    store URL `store`, a PostgreSQL database several processes share); returns the process and
    its HTTP base URL. ``LEO_BENCH_COMMAND`` replaces the ``leo`` command (to wrap it in a
    profiler, say)."""
    (tmp / "pipelines.yaml").write_text(pipelines)
    env = {**os.environ, "LEO_ADMIN_TOKEN": ADMIN}
    env.pop("LEO_STORE", None)
    if store is not None:
        env["LEO_STORE"] = store
    return _launch(tmp, list(args), env)


PG_ADMIN = os.environ.get("LEO_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
"""The PostgreSQL server benchmarks make their throwaway databases on (trust auth)."""


@contextmanager
def pg_database(admin: str = PG_ADMIN) -> Iterator[str]:
    """A throwaway PostgreSQL database on the server of `admin` for the block; yields its URL."""
    import uuid

    import psycopg

    name = f"leo_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin.rpartition('/')[0]}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _launch(folder: Path, args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """`leo run ARGS` in `folder` (its output in ``folder/run.log``) once its HTTP API is up."""
    log_path = folder / "run.log"
    proc = subprocess.Popen([*leo_command(), "run", *args], cwd=folder, stdout=log_path.open("wb"),
                            stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 60
    while "HTTP API on http://" not in log_path.read_text():
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit("leo run did not start:\n" + log_path.read_text())
        time.sleep(0.05)
    return proc, "http://" + log_path.read_text().split("HTTP API on http://", 1)[1].split()[0]


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM (leo run drains and exits), SIGKILL after 30 s."""
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class JsonGetter:
    """GETs over one keep-alive connection with the standard library's http.client, each answer
    decoded: a lean client, so that the server is what is measured."""

    def __init__(self, url: str, token: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=120)
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str) -> Any:
        self.conn.request("GET", path, headers=self.headers)
        answer = self.conn.getresponse()
        body = answer.read()
        if answer.status != 200:
            raise SystemExit(f"GET {path}: {answer.status} {body[:300]!r}")
        return orjson.loads(body)

    def close(self) -> None:
        self.conn.close()


def leo_command() -> list[str]:
    """The `leo` of this interpreter's environment (``LEO_BENCH_COMMAND`` replaces it)."""
    leo = shutil.which("leo", path=str(Path(sys.executable).parent)) or "leo"
    return os.environ.get("LEO_BENCH_COMMAND", leo).split()


def user_env(**extra: str) -> dict[str, str]:
    """The environment an operator's shell gives `leo`: compiled bytecode is written and reused
    (a development shell's PYTHONDONTWRITEBYTECODE would make every start compile the sources)."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONDONTWRITEBYTECODE", "LEO_STORE")}
    return {**env, **extra}


def bundled_project(tmp: Path) -> Path:
    """The project `leo init` creates (the bundled example), in ``tmp/project``."""
    project = tmp / "project"
    subprocess.run([*leo_command(), "init", str(project)], check=True, stdout=subprocess.DEVNULL, env=user_env())
    return project


def timed_process(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Run `argv` to its end: (wall seconds, user + system CPU seconds of the process)."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        said = proc.stderr.read().decode()[-500:] if proc.stderr else ""
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}: {said}")
    if proc.stderr:
        proc.stderr.close()
    return wall, usage.ru_utime + usage.ru_stime


def start_leo_project(project: Path, *args: str) -> tuple[subprocess.Popen, str]:
    """`leo run --port 0` in an existing project folder; returns the process and its HTTP base URL."""
    return _launch(project, ["--port", "0", *args], user_env(LEO_ADMIN_TOKEN=ADMIN))
