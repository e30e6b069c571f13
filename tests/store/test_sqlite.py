"""What only the SQLite backend promises: WAL, several real processes on one file, URLs, migrations."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from leo_runtime.errors import StoreError
from leo_runtime.store import PendingEvent, RunCommit, SQLiteStore, open_store, resolve_store_path
from leo_runtime.store.migrations import SQLITE_MIGRATIONS

REPO = Path(__file__).resolve().parents[2]
NEWEST = max(version for version, _, _ in SQLITE_MIGRATIONS)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "leo.db"


@pytest.fixture
def sqlite_store(db_path: Path) -> Iterator[SQLiteStore]:
    store = SQLiteStore(db_path)
    yield store
    store.close()


def raw(path: Path) -> sqlite3.Connection:
    """A plain connection, to look at the file without going through the store."""
    return sqlite3.connect(path, isolation_level=None)


def test_the_file_is_in_wal_mode(sqlite_store: SQLiteStore, db_path: Path) -> None:
    conn = raw(db_path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_one_append_gets_consecutive_positions(sqlite_store: SQLiteStore) -> None:
    sqlite_store.append("a", [1])
    first, last = sqlite_store.append("q", list(range(5)))

    assert (first, last) == (2, 6)
    assert [event.seq for event in sqlite_store.read("q", 0)] == [2, 3, 4, 5, 6]


# -- several processes on one file --------------------------------------------------------------------
WRITER = """
import json, sys
from leo_runtime.store import SQLiteStore

store = SQLiteStore(sys.argv[1])
name, events, batch = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
print("ready", flush=True)
sys.stdin.readline()  # go: both writers start together
ranges = [store.append("shared", [{"w": name, "n": start + i} for i in range(batch)])
          for start in range(0, events, batch)]
store.close()
print(json.dumps(ranges), flush=True)
"""


def start_writer(path: Path, name: str, events: int, batch: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), name, str(events), str(batch)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env,
    )
    if process.stdout.readline().strip() != "ready":
        process.kill()
        _, stderr = process.communicate()
        pytest.fail(f"writer {name} did not start:\n{stderr}")
    return process


def test_two_processes_append_concurrently_while_this_one_reads(sqlite_store: SQLiteStore, db_path: Path) -> None:
    per_writer, batch = 5_000, 100
    writers = {name: start_writer(db_path, name, per_writer, batch) for name in ("w1", "w2")}
    _, token = sqlite_store.changed_since(None)
    for process in writers.values():
        process.stdin.write("go\n")
        process.stdin.flush()

    # Read like a bot does, resuming after the last position seen: if a writer's event could become
    # visible after a larger position was already read, it would be skipped here for good.
    seen: list[int] = []
    deadline = time.monotonic() + 60
    while len(seen) < 2 * per_writer:
        events = sqlite_store.read("shared", seen[-1] if seen else 0, limit=700)
        seen.extend(event.seq for event in events)
        if not events:
            crashed = [name for name, process in writers.items() if process.poll() not in (None, 0)]
            assert not crashed, f"writer(s) {crashed} failed: {writers[crashed[0]].communicate()[1]}"
            if all(process.poll() == 0 for process in writers.values()) and not sqlite_store.read("shared", seen[-1]):
                break  # both done and nothing more to read: the count check below reports it
            assert time.monotonic() < deadline, f"only {len(seen)} events seen after 60 s"
            time.sleep(0.001)  # poll interval while the writers catch up

    results = {}
    for name, process in writers.items():
        stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr
        assert "locked" not in stderr
        results[name] = [tuple(pair) for pair in json.loads(stdout)]

    everything = sqlite_store.read("shared", 0, limit=100_000)
    assert [event.seq for event in everything] == seen  # nothing missed, nothing seen twice
    assert len(set(seen)) == len(seen) == 2 * per_writer
    assert sqlite_store.last_position() == 2 * per_writer
    assert sqlite_store.queues()[0].depth == 2 * per_writer
    for name, ranges in results.items():
        mine = [event for event in everything if event.payload["w"] == name]
        assert [event.payload["n"] for event in mine] == list(range(per_writer))  # in its own order
        # Each batch is one transaction: its positions are consecutive and match what append returned.
        assert [(mine[i].seq, mine[i + batch - 1].seq) for i in range(0, per_writer, batch)] == ranges
        assert all(last - first == batch - 1 for first, last in ranges)
    assert sqlite_store.changed_since(token)[0]


# -- caches and rollbacks -------------------------------------------------------------------------------
def test_a_rolled_back_new_queue_leaves_no_stale_queue_id(sqlite_store: SQLiteStore) -> None:
    store = sqlite_store
    store.ensure_bot("b", None)
    assert store.acquire_lease("b", "o1", 60_000)
    bad = PendingEvent("broken", None)  # type: ignore[arg-type]  # fails the insert after "ghost" was created

    with pytest.raises(StoreError, match="rolled back"):
        store.commit_run(RunCommit(bot_id="b", owner="o1", outputs=[PendingEvent("ghost", "1"), bad]))
    with pytest.raises(StoreError):
        store.append_events([PendingEvent("ghost2", "1"), bad])
    assert store.queues() == []
    assert store.bot("b").runs == 0

    # The ids the rolled-back transactions handed out are free again: new queues may take them.
    store.append("other", [{"q": "other"}])
    store.append("other2", [{"q": "other2"}])
    store.append("ghost", [{"q": "ghost"}])
    store.append_events([PendingEvent("ghost2", '{"q":"ghost2"}')])

    for name in ("other", "other2", "ghost", "ghost2"):
        assert [event.payload for event in store.read(name, 0)] == [{"q": name}]
        assert store.queue_head(name) == store.read(name, 0)[0].seq
    assert sorted((info.name, info.depth) for info in store.queues()) == [
        ("ghost", 1), ("ghost2", 1), ("other", 1), ("other2", 1)
    ]
    reopened = SQLiteStore(store.path)  # no cache at all: what is really in the file
    try:
        for name in ("other", "other2", "ghost", "ghost2"):
            assert [event.payload for event in reopened.read(name, 0)] == [{"q": name}]
    finally:
        reopened.close()


def test_a_closed_store_refuses_work(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    store.close()

    with pytest.raises(StoreError, match="closed"):
        store.append("q", [1])


# -- URLs -----------------------------------------------------------------------------------------------
def test_relative_url_is_relative_to_base_dir(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()

    store = open_store("sqlite:///data/leo.db", base_dir=tmp_path)
    try:
        assert store.path == tmp_path / "data" / "leo.db"
        assert store.path.exists()
    finally:
        store.close()


def test_relative_url_without_base_dir_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    assert resolve_store_path("sqlite:///leo.db") == (tmp_path / "leo.db", {})
    assert resolve_store_path("leo.db") == (tmp_path / "leo.db", {})


def test_absolute_url_and_bare_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    absolute = tmp_path / "abs.db"
    monkeypatch.setenv("HOME", str(tmp_path))

    assert resolve_store_path(f"sqlite:///{absolute}", base_dir=elsewhere)[0] == absolute  # sqlite:////abs.db
    assert resolve_store_path(str(absolute), base_dir=elsewhere)[0] == absolute
    assert resolve_store_path("sub/leo.db", base_dir=elsewhere)[0] == elsewhere / "sub" / "leo.db"
    assert resolve_store_path("~/leo.db", base_dir=elsewhere)[0] == tmp_path / "leo.db"
    store = open_store(str(absolute), base_dir=elsewhere)
    try:
        store.append("q", [1])
        again = open_store(store.url, base_dir=elsewhere)  # a store's url names its file
        assert [event.payload for event in again.read("q", 0)] == [1]
        again.close()
    finally:
        store.close()
    assert absolute.exists()


def test_url_options(tmp_path: Path) -> None:
    url = "sqlite:///leo.db?busy_timeout=5&synchronous=full"

    assert resolve_store_path(url, base_dir=tmp_path) == (tmp_path / "leo.db", {"busy_timeout": "5", "synchronous": "full"})
    store = open_store(url, base_dir=tmp_path)
    try:
        assert store.append("q", [1]) == (1, 1)
    finally:
        store.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://leo:secret@db.invalid/leo", "postgresql://leo:\\*\\*\\*@db.invalid/leo: cannot connect"),
        ("postgres://127.0.0.1:1/leo?schema=a-b", "schema must be a plain name"),
        ("mysql:///leo.db", "unsupported scheme 'mysql'"),
        ("sqlite://host/leo.db", "sqlite:////absolute"),
        ("sqlite:///leo.db?cache=shared", "unknown option 'cache'"),
        ("sqlite:///leo.db?readonly", "unknown option 'readonly'"),
        ("sqlite:///leo.db?busy_timeout=soon", "busy_timeout must be a number"),
        ("sqlite:///leo.db?busy_timeout=", "busy_timeout must be a number"),
        ("sqlite:///leo.db?synchronous=sometimes", "synchronous must be"),
        ("sqlite:///", "names no file"),
        ("  ", "empty"),
    ],
)
def test_bad_urls_are_store_errors_that_say_what_is_wrong(tmp_path: Path, url: str, message: str) -> None:
    with pytest.raises(StoreError, match=message.replace("?", r"\?")):
        open_store(url, base_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing created


def test_a_missing_directory_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "missing"

    with pytest.raises(StoreError, match=str(missing)) as error:
        open_store("sqlite:///missing/leo.db", base_dir=tmp_path)
    assert "does not exist" in str(error.value)
    assert not missing.exists()


def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "leo.db"
    path.write_bytes(b"this is not a database, just some text long enough to have a header" * 10)

    with pytest.raises(StoreError, match=r"leo\.db"):
        open_store(str(path))


# -- migrations -----------------------------------------------------------------------------------------
def migrations_table(path: Path) -> list[tuple[int, str]]:
    conn = raw(path)
    try:
        return conn.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
    finally:
        conn.close()


def test_a_fresh_file_gets_every_migration_once(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    assert store.schema_version() == NEWEST
    store.append("q", [1])
    store.close()
    applied = [(version, name) for version, name, _ in SQLITE_MIGRATIONS]
    assert migrations_table(db_path) == applied

    for _ in range(2):
        again = SQLiteStore(db_path)
        assert again.schema_version() == NEWEST
        assert [event.payload for event in again.read("q", 0)] == [1]
        again.close()
    assert migrations_table(db_path) == applied


def test_a_new_migration_upgrades_an_existing_file(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SQLiteStore(db_path)
    store.append("q", [1])
    store.close()
    monkeypatch.setattr(
        "leo_runtime.store.sql.SQLITE_MIGRATIONS",
        [*SQLITE_MIGRATIONS, (NEWEST + 1, "extra", "CREATE TABLE extra (x INTEGER); CREATE INDEX extra_x ON extra(x)")],
    )

    upgraded = SQLiteStore(db_path)
    try:
        assert upgraded.schema_version() == NEWEST + 1
        assert [event.payload for event in upgraded.read("q", 0)] == [1]
    finally:
        upgraded.close()
    assert migrations_table(db_path)[-1] == (NEWEST + 1, "extra")


def test_a_failing_migration_leaves_the_file_as_it_was(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    SQLiteStore(db_path).close()
    monkeypatch.setattr(
        "leo_runtime.store.sql.SQLITE_MIGRATIONS",
        [*SQLITE_MIGRATIONS, (NEWEST + 1, "broken", "CREATE TABLE half (x INTEGER); CREATE TABLE broken (")],
    )

    with pytest.raises(StoreError, match=r"leo\.db"):
        SQLiteStore(db_path)

    conn = raw(db_path)
    try:
        assert conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'half'").fetchone()[0] == 0
    finally:
        conn.close()
    assert migrations_table(db_path)[-1][0] == NEWEST


def test_a_schema_newer_than_this_version_is_refused(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    store.append("q", [1])
    store.close()
    conn = raw(db_path)
    conn.execute("INSERT INTO schema_migrations(version, name, applied_at) VALUES (?, 'from the future', 0)", (NEWEST + 1,))
    conn.close()

    with pytest.raises(StoreError, match="upgrade leo-runtime") as error:
        open_store(str(db_path))
    assert f"schema version {NEWEST + 1}" in str(error.value)
    assert migrations_table(db_path)[-1] == (NEWEST + 1, "from the future")  # left untouched


def test_streams_of_an_older_store_go_on_from_their_own_writers_checkpoints(tmp_path: Path, monkeypatch) -> None:
    """Migration 9: a stream had a writer of its own (``streams:<id>``); its fan-out cursor starts
    where that writer's checkpoint was, and the old writers' rows go."""
    from leo_runtime.store import SQLiteStore
    from leo_runtime.store.migrations import SQLITE_MIGRATIONS

    with monkeypatch.context() as patched:
        patched.setattr("leo_runtime.store.sql.SQLITE_MIGRATIONS", SQLITE_MIGRATIONS[:8])
        old = SQLiteStore(tmp_path / "leo.db")
        partner = old.create_partner("acme", b"a" * 32, None).id
        old.append("inventory.changes", list(range(10)))
        for stream_id, start in (("st_0123456789abcdef0123", 3), ("st_ffffffffffffffffffff", 4)):  # as version 8 did
            old._conn().execute("INSERT INTO streams(id, partner_id, object_type, partitions, start_position, created_at) "
                                "VALUES (?, ?, 'inventory', 1, ?, 0)", (stream_id, partner, start))
        old.init_checkpoint("streams:st_0123456789abcdef0123", "inventory.changes", 8)
        old.ensure_bot("streams:st_0123456789abcdef0123", "system:streams")
        old.ensure_bot("streams:st_00000000000000000000", "system:streams")  # a deleted stream's writer
        old.ensure_bot("streams:inventory", "system:streams")
        assert old.schema_version() == 8
        old.close()
    store = SQLiteStore(tmp_path / "leo.db")
    assert {t.id: t.cursor for t in store.stream_targets("inventory")} == {
        "st_0123456789abcdef0123": 8, "st_ffffffffffffffffffff": 4}
    assert [bot.bot_id for bot in store.bots()] == ["streams:inventory"] and store.checkpoints() == []
    store.close()


def test_the_position_at_a_time_reads_the_ends_of_the_key_not_the_table(sqlite_store: SQLiteStore) -> None:
    """`position_at` (every start_at, reset --to and retention floor) costs a few index probes
    however many events there are: MIN and MAX in one SELECT would scan the whole table (a new
    stream's create took 0.1 s per million events). Counted in SQLite VM steps, not timed."""
    sqlite_store.append_texts("q", ("{}" for _ in range(50_000)))
    conn = sqlite_store._conn()
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    conn.set_progress_handler(count, 100)
    try:
        assert sqlite_store.position_at(0) == 0
        assert sqlite_store.position_at(10**15) == 50_000
    finally:
        conn.set_progress_handler(None, 100)
    assert steps[0] < 100, f"{steps[0] * 100} VM steps"
