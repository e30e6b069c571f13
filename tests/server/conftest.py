"""The real API on a loopback port: uvicorn in a thread of the test process, a real SQLite store."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from leo_runtime.config import PipelinesFile
from leo_runtime.objects import delete, ingest
from leo_runtime.partners import create_partner
from leo_runtime.server.app import ApiContext, create_app
from leo_runtime.store import SQLiteStore

from ..conftest import wait_until

ADMIN_TOKEN = "admin-secret-for-tests"


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 (a free port) until the block ends; yield its base URL."""
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only then (else every answer waits ~40 ms on delayed ACKs).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="test-http", daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), what="uvicorn to start")
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


class FakeClock:
    """A monotonic clock in nanoseconds that only moves when the test moves it (thread-safe)."""

    def __init__(self) -> None:
        self.now = 1_000_000_000_000
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += round(seconds * 1_000_000_000)


@dataclass
class Api:
    """A served app: its URL, store and app (for swapping in a clock), and partner helpers."""

    url: str
    app: FastAPI
    store: SQLiteStore

    def client(self, token: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)

    def admin(self) -> httpx.Client:
        return self.client(ADMIN_TOKEN)

    def partner(self, name: str, scope: dict[str, Any] | None = None) -> str:
        """Create a partner straight in the store; return its token."""
        return create_partner(self.store, name, scope)[1]

    def use_clock(self, clock: Callable[[], int]) -> None:
        self.app.state.get_object_limits.clock = clock


SETTINGS = {
    "version": 1,
    "object_types": {"inventory": {"key": "sku"}, "order": {"key": "po_number"}},
    "server": {"get_object_rate": 10},
}


@pytest.fixture
def make_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Api]]:
    """Start an API: ``make_api(admin=True, **settings overrides)``."""
    stack: list[Any] = []
    store = SQLiteStore(tmp_path / "leo.db")

    def start(admin: bool = True, **overrides: Any) -> Api:
        if admin:
            monkeypatch.setenv("LEO_ADMIN_TOKEN", ADMIN_TOKEN)
        else:
            monkeypatch.delenv("LEO_ADMIN_TOKEN", raising=False)
        settings = PipelinesFile.model_validate({**SETTINGS, **overrides})
        app = create_app(store, ApiContext(settings=settings))
        served = serving(app)
        url = served.__enter__()
        stack.append(served)
        return Api(url, app, store)

    yield start
    for served in reversed(stack):
        served.__exit__(None, None, None)
    store.close()


@pytest.fixture
def api(make_api: Callable[..., Api]) -> Api:
    """The API with the admin token set and the test settings."""
    return make_api()



def put_object(store: SQLiteStore, object_type: str, key: str, data: Any, *, deleted: bool = False) -> None:
    """Push one object through change detection (and delete it when asked), as ingest does."""
    key_field = SETTINGS["object_types"].get(object_type, {"key": "sku"})["key"]
    assert data[key_field] == key
    ingest(store, object_type, key_field, [data])
    if deleted:
        assert delete(store, object_type, key)
