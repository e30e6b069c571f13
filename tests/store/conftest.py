"""Storage fixtures: the contract suite runs once per backend listed in BACKENDS.

SQLite runs on a file in the test's folder, PostgreSQL on a fresh schema of a throwaway database
of the real server (see tests/pg.py). A backend factory is a context manager that takes a fresh temporary folder and yields a
`Backend`: a way to open `Store` objects on ONE fresh database (several may be open at once, like
several processes or hosts would), where the backend reads the wall clock (so tests can step it
instead of sleeping), and the newest schema version it knows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from leo_runtime.store import SQLiteStore, Store
from leo_runtime.store.migrations import SQLITE_MIGRATIONS

Clock = Callable[[], int]


@dataclass
class Backend:
    """One fresh database of one backend, and what the contract tests need to know about it."""

    name: str
    connect: Callable[[], Store]
    install_clock: Callable[[pytest.MonkeyPatch, Clock], None]
    newest_schema: int
    opened: list[Store] = field(default_factory=list)

    def open(self) -> Store:
        """Another `Store` on the same database (closed when the test ends)."""
        store = self.connect()
        self.opened.append(store)
        return store

    def close_all(self) -> None:
        for store in reversed(self.opened):
            with suppress(Exception):
                store.close()
        self.opened.clear()


def install_clock(monkeypatch: pytest.MonkeyPatch, clock: Clock) -> None:
    """Every store module reads the wall clock through its own ``now_ms``."""
    for module in ("sql", "sql_webhooks", "sql_streams", "sql_console"):
        monkeypatch.setattr(f"leo_runtime.store.{module}.now_ms", clock)


@contextmanager
def sqlite_backend(tmp_path: Path) -> Iterator[Backend]:
    """A real SQLite file in the test's temporary folder."""
    path = tmp_path / "leo.db"

    yield Backend(
        name="sqlite",
        connect=lambda: SQLiteStore(path),
        install_clock=install_clock,
        newest_schema=max(version for version, _, _ in SQLITE_MIGRATIONS),
    )


@contextmanager
def postgres_backend(tmp_path: Path) -> Iterator[Backend]:
    """A fresh schema of this test process's throwaway database on the real PostgreSQL server."""
    from leo_runtime.store.postgres import PostgresStore

    from ..pg import fresh_store_url

    url = fresh_store_url()
    yield Backend(
        name="postgresql",
        connect=lambda: PostgresStore(url),
        install_clock=install_clock,
        newest_schema=max(version for version, _, _ in SQLITE_MIGRATIONS),
    )


BACKENDS: dict[str, Callable[[Path], AbstractContextManager[Backend]]] = {
    "sqlite": sqlite_backend,
    "postgresql": postgres_backend,
}


@pytest.fixture(params=list(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    with BACKENDS[request.param](tmp_path) as backend:
        try:
            yield backend
        finally:
            backend.close_all()


@pytest.fixture
def store(backend: Backend) -> Store:
    """A store on a fresh, migrated database of the backend under test."""
    return backend.open()


class FakeClock:
    """A wall clock the test sets by hand (epoch milliseconds)."""

    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> int:
        self.now += ms
        return self.now


# 2026-01-01T00:00:00Z: a realistic time, far from the real one so a forgotten patch shows up.
CLOCK_START = 1_767_225_600_000


@pytest.fixture
def clock(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """Replace the backend's wall clock; tests step it instead of sleeping."""
    fake = FakeClock(CLOCK_START)
    backend.install_clock(monkeypatch, fake)
    return fake
