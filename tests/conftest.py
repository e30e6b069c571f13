"""Shared test helpers: real files, real processes, waiting on conditions (never fixed sleeps)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from leo_runtime.store import SQLiteStore, open_store

# pytest-xdist's workers inherit COLUMNS=80; rich would fix the CLI's console width to it at import,
# and tests that ask for a wide table (CliRunner's env={"COLUMNS": ...}) would get a cut one.
os.environ.pop("COLUMNS", None)
os.environ.pop("LINES", None)

REPO = Path(__file__).resolve().parents[1]
LEO = str(Path(sys.executable).with_name("leo"))


# The custom bots tests use, written into a project as ./bots/custom.py.
CUSTOM_BOTS = (Path(__file__).parent / "sample_bots.py").read_text()

# The pipeline most tests run: one filter bot from inventory.in to inventory.low.
FILTER_PIPELINE = """
version: 1
pipelines:
  feed:
    bots:
      - id: low-stock
        use: filter
        in: inventory.in
        with: {query: {quantity: {lt: 5}}}
        out: inventory.low
"""

# A project whose inventory objects' change records feed a filter: what the API tests serve.
OBJECTS_PIPELINE = """
version: 1
object_types:
  inventory: {key: sku}
pipelines:
  feed:
    bots:
      - id: low-stock
        use: filter
        in: inventory.changes
        with: {query: {quantity: {lt: 5}}}
        out: inventory.low_stock
"""


def _attempts(predicate: Callable[[], Any], timeout: float, what: str) -> Iterator[Any]:
    """Yield None while `predicate` is falsy; stop with its value; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            yield value
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        yield None


def _stacks_of(pid: int) -> str:
    """Every thread's stack of a process that hangs (py-spy, where installed), for the failure's text."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        return "(py-spy is not installed: no stacks)"
    try:
        return subprocess.run([spy, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return f"(py-spy dump failed: {exc})"


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.02, what: str = "") -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    for value in _attempts(predicate, timeout, what):
        if value:
            return value
        time.sleep(interval)
    return None


async def async_wait_until(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    """`wait_until` for coroutines: the event loop keeps running between checks."""
    for value in _attempts(predicate, timeout, what):
        if value:
            return value
        await asyncio.sleep(0.01)
    return None


@pytest.fixture
def isolated_imports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Undo what custom bots do to the interpreter: sys.path entries, modules loaded from
    tmp_path and names added to the bot table."""
    from leo_runtime import bot as bot_module

    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(bot_module, "_REGISTERED", dict(bot_module._REGISTERED))
    yield
    roots = (str(tmp_path), str(tmp_path.resolve()))
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if isinstance(file, str) and file.startswith(roots):
            del sys.modules[name]


def run_with(project: Project, body: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run the project's `Runtime` in this process (no HTTP) while `body(runtime)` runs."""
    # Imported here, not at the top: the CLI's console must not be built before COLUMNS is gone.
    from leo_runtime.cli.compose import system_pipelines
    from leo_runtime.config import load_config
    from leo_runtime.runtime import Runtime

    async def main() -> Any:
        config = load_config(project.file)
        store = open_store(config.store_url, config.base_dir)
        runtime = Runtime(config, store, serve_http=False, system=system_pipelines())
        await runtime.start()
        try:
            return await body(runtime)
        finally:
            await runtime.stop()
            store.close()

    return asyncio.run(main())


class Project:
    """A folder with a pipelines.yaml and its store: SQLite's leo.db in the folder, or (with
    `store_url`, which `leo` commands get through LEO_STORE) a fresh PostgreSQL schema."""

    def __init__(self, root: Path, store_url: str | None = None) -> None:
        self.root = root
        self.file = root / "pipelines.yaml"
        self.store_url = store_url

    def write(self, text: str, name: str = "pipelines.yaml") -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
        return path

    @property
    def db(self) -> Path:
        return self.root / "leo.db"

    def store(self) -> SQLiteStore:
        return open_store(self.store_url or "sqlite:///leo.db", self.root)  # type: ignore[return-value]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sqlite_file: the test looks at the project's SQLite file itself (skipped when LEO_TEST_STORE=postgresql)"
    )


STORES = ["sqlite", "postgresql"]
"""For ``@pytest.mark.parametrize("project", STORES, indirect=True)``: an end-to-end test on both stores."""


@pytest.fixture
def project(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    """A project in the test's folder. Its store is SQLite unless the test is parametrised with
    "postgresql" (see STORES) or the suite runs with LEO_TEST_STORE=postgresql: then the project
    (and every `leo` it starts, through LEO_STORE) uses a fresh schema of a throwaway database."""
    kind = getattr(request, "param", None) or os.environ.get("LEO_TEST_STORE") or "sqlite"
    if kind == "sqlite":
        return Project(tmp_path)
    if not hasattr(request, "param") and request.node.get_closest_marker("sqlite_file"):
        pytest.skip("looks at the project's SQLite file itself (LEO_TEST_STORE=postgresql)")
    if kind != "postgresql":
        raise ValueError(f"LEO_TEST_STORE={kind!r}: use sqlite or postgresql")
    from .pg import fresh_store_url

    url = fresh_store_url()
    monkeypatch.setenv("LEO_STORE", url)
    return Project(tmp_path, url)


def payloads_of(store: Any, queue: str) -> list[Any]:
    return [event.payload for event in store.read(queue, 0, 10_000_000)]


class LeoRun:
    """`leo run` as a real process, its log in a file."""

    def __init__(self, project: Project, *args: str, log_dir: Path, env: dict[str, str] | None = None,
                 preexec_fn: Callable[[], Any] | None = None) -> None:
        self.project = project
        self.log_path = log_dir / f"leo-run-{time.monotonic_ns()}.log"  # never inside the project
        self._log = self.log_path.open("wb")
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        full_env.pop("LEO_STORE", None)
        if project.store_url and not (env and "LEO_STORE" in env):  # the project's PostgreSQL store
            full_env["LEO_STORE"] = project.store_url
        self.proc = subprocess.Popen(
            [LEO, "run", "-f", str(project.file), *args],
            cwd=project.root,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=full_env,
            preexec_fn=preexec_fn,  # e.g. a lower open-file limit
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 30) -> None:
        wait_until(lambda: "running " in self.log() or self.proc.poll() is not None, timeout, what="leo run start")
        if self.proc.poll() is not None:
            raise AssertionError(f"leo run exited early ({self.proc.returncode}):\n{self.log()}")

    @property
    def http(self) -> str:
        match = re.search(r"HTTP API on (http://\S+)", self.log())
        assert match, self.log()
        return match.group(1)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:  # leo run may drain for 30 s
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            stacks = _stacks_of(self.proc.pid)
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"leo run did not stop within {timeout}s of signal {sig}; its log ends:\n"
                                 f"{self.log()[-4000:]}\n{stacks}") from None
        finally:
            self._log.close()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self._log.close()


@pytest.fixture
def leo_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., LeoRun]]:
    started: list[LeoRun] = []
    log_dir = tmp_path_factory.mktemp("leo-run-logs")

    def start(project: Project, *args: str, env: dict[str, str] | None = None,
              preexec_fn: Callable[[], Any] | None = None) -> LeoRun:
        run = LeoRun(project, *args, log_dir=log_dir, env=env, preexec_fn=preexec_fn)
        started.append(run)
        return run

    yield start
    for run in started:
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait(10)


def leo(*args: str, cwd: Path | None = None, input: str | None = None, env: dict[str, str] | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the real `leo` command."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([LEO, *args], cwd=cwd, input=input, capture_output=True, text=True, env=full_env,
                          timeout=timeout)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything a server sends on `sock` until it closes the connection (a reset ends it too);
    the socket's timeout fails the test if the server never does."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def ndjson(values: list[Any]) -> str:
    return "".join(json.dumps(value) + "\n" for value in values)
