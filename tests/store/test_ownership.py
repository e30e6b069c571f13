"""The store belongs to leo: other files are refused untouched, reading never writes, and
several processes can open a new store at once."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from leo_runtime.errors import StoreError
from leo_runtime.store import SQLiteStore, open_store
from leo_runtime.store.migrations import SQLITE_MIGRATIONS
from leo_runtime.store.ownership import APPLICATION_ID

NEWEST = max(version for version, _, _ in SQLITE_MIGRATIONS)


def snapshot(folder: Path) -> dict[str, str]:
    """Every file of `folder` with a hash of its bytes: what 'left untouched' is checked against."""
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.iterdir())}


def sqlite_file(path: Path, *statements: str, wal: bool = False) -> Path:
    conn = sqlite3.connect(path, isolation_level=None)
    if wal:
        conn.execute("PRAGMA journal_mode=WAL")
    for statement in statements:
        conn.execute(statement)
    conn.close()
    return path


def another_apps_tables(path: Path) -> Path:
    return sqlite_file(path, "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)",
                       "INSERT INTO customers (name) VALUES ('Ada')")


def another_apps_schema_migrations(path: Path) -> Path:
    # Rails-style: one TEXT column, no 'name': leo's own migration queries would break on it.
    return sqlite_file(path, "CREATE TABLE schema_migrations (version TEXT PRIMARY KEY)",
                       "INSERT INTO schema_migrations VALUES ('20240101000000')")


def another_apps_wal_database(path: Path) -> Path:
    return sqlite_file(path, "CREATE TABLE notes (body TEXT)", "INSERT INTO notes VALUES ('hi')", wal=True)


def another_apps_mark(path: Path) -> Path:
    return sqlite_file(path, "PRAGMA application_id = 1234", "CREATE TABLE t (x)")


def a_text_file(path: Path) -> Path:
    path.write_text("name,quantity\nwidget,4\n")
    return path


def a_short_text_file(path: Path) -> Path:
    path.write_bytes(b"hi\n")
    return path


FOREIGN: list[Callable[[Path], Path]] = [
    another_apps_tables, another_apps_schema_migrations, another_apps_wal_database, another_apps_mark,
    a_text_file, a_short_text_file,
]


@pytest.mark.parametrize("make", FOREIGN, ids=lambda make: make.__name__)
@pytest.mark.parametrize("read_only", [False, True], ids=["writing", "reading"])
def test_another_applications_file_is_refused_and_left_byte_for_byte(
    tmp_path: Path, make: Callable[[Path], Path], read_only: bool
) -> None:
    path = make(tmp_path / "app.db")
    before = snapshot(tmp_path)

    with pytest.raises(StoreError) as error:
        open_store(str(path), read_only=read_only)

    message = str(error.value)
    assert str(path) in message and "leaves it untouched" in message
    assert snapshot(tmp_path) == before  # the file itself, and no side files left behind


def test_a_directory_is_not_a_store(tmp_path: Path) -> None:
    (tmp_path / "leo.db").mkdir()
    with pytest.raises(StoreError, match="is a directory"):
        open_store("sqlite:///leo.db", tmp_path)


def test_a_new_store_is_marked_with_leos_application_id(tmp_path: Path) -> None:
    open_store("sqlite:///leo.db", tmp_path).close()
    header = (tmp_path / "leo.db").read_bytes()[:100]
    assert header[68:72] == b"LEO1" == APPLICATION_ID.to_bytes(4, "big")


def test_an_empty_file_becomes_a_store(tmp_path: Path) -> None:
    (tmp_path / "leo.db").touch()
    store = open_store("sqlite:///leo.db", tmp_path)
    store.append("q", [1])
    store.close()
    reader = open_store("sqlite:///leo.db", tmp_path, read_only=True)
    assert reader.queue_head("q") == 1
    reader.close()


def test_a_store_from_before_the_mark_is_still_leos_and_gets_marked_by_a_write(tmp_path: Path) -> None:
    store = open_store("sqlite:///leo.db", tmp_path)
    store.append("q", [1])
    store.close()
    sqlite_file(tmp_path / "leo.db", "PRAGMA application_id = 0")

    reader = open_store("sqlite:///leo.db", tmp_path, read_only=True)
    assert reader.queue_head("q") == 1
    reader.close()
    assert (tmp_path / "leo.db").read_bytes()[68:72] == b"\0\0\0\0"  # reading did not mark it

    open_store("sqlite:///leo.db", tmp_path).close()
    assert (tmp_path / "leo.db").read_bytes()[68:72] == b"LEO1"


# -- reading never writes -------------------------------------------------------------------------------
def test_reading_a_missing_store_names_the_path_and_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as error:
        open_store("sqlite:///typo.db", tmp_path, read_only=True)
    assert str(tmp_path / "typo.db") in str(error.value) and "does not exist" in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_reading_an_empty_file_says_it_is_not_a_store_yet(tmp_path: Path) -> None:
    (tmp_path / "leo.db").touch()
    with pytest.raises(StoreError, match="empty, not a leo store yet"):
        open_store("sqlite:///leo.db", tmp_path, read_only=True)
    assert snapshot(tmp_path) == {"leo.db": hashlib.sha256(b"").hexdigest()}


def test_reading_an_older_schema_asks_for_a_writing_command_instead_of_migrating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("leo_runtime.store.sql.SQLITE_MIGRATIONS", SQLITE_MIGRATIONS[:1])
    old = open_store("sqlite:///leo.db", tmp_path)
    old.append("q", [1])
    old.close()
    monkeypatch.undo()
    before = snapshot(tmp_path)

    with pytest.raises(StoreError) as error:
        open_store("sqlite:///leo.db", tmp_path, read_only=True)
    assert "schema version 1" in str(error.value) and "run `leo run` (or any writing command) to migrate" in str(
        error.value
    )
    assert snapshot(tmp_path) == before

    open_store("sqlite:///leo.db", tmp_path).close()  # a writer migrates it
    reader = open_store("sqlite:///leo.db", tmp_path, read_only=True)
    assert reader.schema_version() == NEWEST
    reader.close()


def test_a_read_only_store_refuses_writes_and_leaves_no_trace(tmp_path: Path) -> None:
    store = open_store("sqlite:///leo.db", tmp_path)
    store.append("q", [1, 2])
    store.close()
    before = snapshot(tmp_path)

    reader = open_store("sqlite:///leo.db", tmp_path, read_only=True)
    assert [event.payload for event in reader.read("q", 0)] == [1, 2]
    with pytest.raises(StoreError, match="read-only"):
        reader.append("q", [3])
    reader.close()
    assert snapshot(tmp_path) == before


def test_a_reader_beside_a_writer_sees_its_commits(tmp_path: Path) -> None:
    writer = open_store("sqlite:///leo.db", tmp_path)
    writer.append("q", [1])
    reader = open_store("sqlite:///leo.db", tmp_path, read_only=True)
    assert reader.queue_head("q") == 1
    writer.append("q", [2])
    assert [event.payload for event in reader.read("q", 0)] == [1, 2]
    reader.close()
    writer.close()


# -- several openers of a new store ----------------------------------------------------------------------
def test_opening_a_new_file_waits_for_another_opener_instead_of_failing(tmp_path: Path) -> None:
    path = tmp_path / "leo.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # what another process setting up the same new file holds
    release = threading.Event()
    threading.Thread(target=lambda: (release.wait(10), other.execute("COMMIT"), other.close()), daemon=True).start()
    opened: list[SQLiteStore] = []
    opener = threading.Thread(target=lambda: opened.append(SQLiteStore(path, busy_timeout=10)))
    opener.start()
    opener.join(0.3)
    assert opener.is_alive(), "gave up at once instead of waiting for the other opener"
    release.set()
    opener.join(15)
    assert opened and opened[0].schema_version() == NEWEST
    opened[0].close()


def test_concurrent_openers_of_a_new_file_all_succeed(tmp_path: Path) -> None:
    path = tmp_path / "leo.db"
    start = threading.Barrier(6)
    results: list[object] = []

    def open_it() -> None:
        start.wait()
        try:
            store = SQLiteStore(path)
            results.append(store.schema_version())
            store.close()
        except Exception as exc:  # the assertion below shows it
            results.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == [NEWEST] * 6
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0] == len(SQLITE_MIGRATIONS)
    conn.close()
