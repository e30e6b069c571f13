"""What only the PostgreSQL store has: concurrent writers on several connections (gapless
positions), URLs with schemas and passwords, migrations racing from several processes.

The contract every backend keeps is in the *_contract.py files (run on PostgreSQL too).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid

import psycopg
import pytest

from leo_runtime.errors import StoreError
from leo_runtime.events import encode_payload
from leo_runtime.store import PendingEvent, RunCommit, open_store
from leo_runtime.store.migrations import SQLITE_MIGRATIONS
from leo_runtime.store.postgres import PostgresStore, parse_url

from ..conftest import REPO, leo, wait_until
from ..pg import database_url, fresh_store_url

NEWEST = max(version for version, _, _ in SQLITE_MIGRATIONS)


@pytest.fixture
def url() -> str:
    return fresh_store_url()


def test_eight_writers_on_three_connections_never_make_a_reader_skip_an_event(url: str) -> None:
    """Writers on three stores (three pools, as three hosts would have) append concurrently while
    readers page through the queue committing their checkpoints as they go: every reader sees
    every event exactly once, in position order. (In PostgreSQL a transaction holding a smaller
    position could commit after one holding a larger position; a reader that had already moved
    its checkpoint past the larger one would skip it for good. Position taking is serialised so
    that never happens.)"""
    stores = [PostgresStore(url) for _ in range(3)]
    writers, rounds = 8, 40
    written: list[int] = []
    written_lock = threading.Lock()
    errors: list[BaseException] = []
    done = threading.Event()

    def write(number: int) -> None:
        store = stores[number % 3]
        try:
            for round_ in range(rounds):
                size = 1 + (number * 7 + round_) % 5
                if round_ % 2:
                    first, last = store.append("q", [{"w": number, "r": round_, "i": i} for i in range(size)])
                else:  # a run's commit: outputs and other writes in one transaction
                    first, last = store.append_events(
                        [PendingEvent("q", encode_payload({"w": number, "r": round_, "i": i})) for i in range(size)]
                        + [PendingEvent(f"side.{number}", "{}")]
                    )
                    last -= 1
                with written_lock:
                    written.extend(range(first, last + 1))
            store.close_thread()
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)

    seen: dict[str, list[int]] = {}

    def read(name: str, store: PostgresStore) -> None:
        got = seen.setdefault(name, [])
        owner = f"owner-{name}"
        try:
            assert store.acquire_lease(name, owner, 600_000)
            checkpoint = store.init_checkpoint(name, "q", 0)
            while True:
                finished = done.is_set()  # read once more after the writers are done
                page = store.read("q", checkpoint, 7)
                if page:
                    got.extend(event.seq for event in page)
                    store.commit_run(RunCommit(name, owner, "q", checkpoint, page[-1].seq, events_in=len(page)))
                    checkpoint = page[-1].seq
                elif finished:
                    return
        except BaseException as exc:
            errors.append(exc)
        finally:
            store.close_thread()

    readers = [threading.Thread(target=read, args=(f"reader{n}", stores[n])) for n in range(3)]
    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in readers + threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    done.set()
    for thread in readers:
        thread.join(120)
    try:
        assert not errors, errors
        expected = sorted(written)
        assert len(expected) == len(set(expected)) == sum(1 + (n * 7 + r) % 5 for n in range(writers) for r in range(rounds))
        for name, got in seen.items():
            assert got == expected, f"{name} skipped {sorted(set(expected) - set(got))[:10]}"
            assert stores[0].get_checkpoint(name, "q") == expected[-1]
    finally:
        for store in stores:
            store.close()


def test_the_password_is_never_shown(url: str, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    base, _, query = url.partition("?")
    with_password = base.replace("postgresql://postgres@", "postgresql://postgres:${LEO_TEST_PG_SECRET}@") + "?" + query
    monkeypatch.setenv("LEO_TEST_PG_SECRET", "s3cr3t-w0rd")
    store = open_store(with_password)  # the server trusts this machine: any password works
    try:
        assert "s3cr3t" not in store.url and "***" in store.url
        store.append("q", [1])
    finally:
        store.close()
    expanded = with_password.replace("${LEO_TEST_PG_SECRET}", "s3cr3t-w0rd")
    _, shown, _ = parse_url(expanded)
    assert "s3cr3t" not in shown
    (tmp_path / "pipelines.yaml").write_text("version: 1\nstore: ${LEO_TEST_PG_STORE}\npipelines: {}\n")
    result = leo("status", "--json", cwd=tmp_path, env={"LEO_TEST_PG_STORE": expanded})
    assert result.returncode == 0, result.stderr
    assert "s3cr3t" not in result.stdout + result.stderr
    assert json.loads(result.stdout)["store"].startswith("postgresql://postgres:***@")
    # A server that refuses: the error names the URL, masked.
    with pytest.raises(StoreError) as error:
        open_store("postgresql://postgres:s3cr3t-w0rd@127.0.0.1:1/leo")
    assert "s3cr3t" not in str(error.value) and "cannot connect" in str(error.value)


def test_a_missing_environment_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEO_TEST_PG_NOT_SET", raising=False)
    with pytest.raises(StoreError, match="environment variable LEO_TEST_PG_NOT_SET is not set"):
        open_store("postgresql://postgres:${LEO_TEST_PG_NOT_SET}@127.0.0.1:5432/postgres")


def test_schemas_keep_stores_apart_and_postgres_urls_work_too() -> None:
    first, second = fresh_store_url(), fresh_store_url().replace("postgresql://", "postgres://")
    one, two = open_store(first), open_store(second)
    try:
        one.append("q", [1, 2])
        assert two.queue_heads() == {} and one.queue_head("q") == 2
        assert one.schema_version() == two.schema_version() == NEWEST
    finally:
        one.close()
        two.close()


def test_reading_commands_create_nothing(url: str) -> None:
    with pytest.raises(StoreError, match="holds no leo store yet"):
        open_store(url, read_only=True)
    store = open_store(url)
    store.close()
    reader = open_store(url, read_only=True)
    try:
        assert reader.schema_version() == NEWEST
        with pytest.raises(StoreError, match="read-only"):
            reader.append("q", [1])
    finally:
        reader.close()


def test_a_schema_holding_other_tables_is_refused() -> None:
    import psycopg

    schema = f"other_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url(), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.customers (id int)")
    with pytest.raises(StoreError, match="not leo's"):
        open_store(f"{database_url()}?schema={schema}")


def test_processes_opening_a_new_database_at_once_migrate_it_once(url: str) -> None:
    code = "import sys; from leo_runtime.store import open_store; s = open_store(sys.argv[1]); s.append('q', [1]); s.close()"
    procs = [subprocess.Popen([sys.executable, "-c", code, url], cwd=REPO, stderr=subprocess.PIPE) for _ in range(4)]
    for proc in procs:
        assert proc.wait(60) == 0, proc.stderr.read().decode() if proc.stderr else ""
    store = open_store(url)
    try:
        migrations = store._conn().execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
        assert [version for (version,) in migrations] == list(range(1, NEWEST + 1))
        assert [event.seq for event in store.read("q", 0)] == [1, 2, 3, 4]
    finally:
        store.close()


def test_commits_are_noticed_again_after_the_server_dropped_every_connection() -> None:
    """A host whose store connections drop keeps going: the connection that listens for other
    processes' commits (NOTIFY) is opened again, so bots and long polls wake as before."""
    from ..conftest import wait_until
    from ..pg import ADMIN_URL, _admin, drop_database

    name = f"leo_test_drop_{uuid.uuid4().hex[:8]}"
    with _admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{ADMIN_URL.rpartition('/')[0]}/{name}"
    watcher, writer = PostgresStore(url), PostgresStore(url)
    stopping = threading.Event()

    def noticed(token: object) -> bool:
        try:
            return watcher.wait_changed(token, 0.1, stopping)[0]
        except StoreError:  # the drop itself is reported once; the next call listens again
            return False

    def append(value: int) -> None:
        try:
            writer.append("q", [value])
        except StoreError:  # the writer's connection was dropped too: the next call takes a new one
            writer.append("q", [value])

    try:
        _, token = watcher.changed_since(None)
        append(1)
        wait_until(lambda: noticed(token), timeout=10, what="the first commit's notice")
        _, token = watcher.changed_since(None)
        with _admin() as admin:
            dropped = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                    "WHERE datname = %s AND pid <> pg_backend_pid()", (name,)).fetchone()[0]
        assert dropped >= 2  # the watcher's listening connection and the writer's
        wait_until(lambda: noticed(token), timeout=10, what="listening again after the drop")
        _, token = watcher.changed_since(None)
        assert not noticed(token)  # settled: nothing new
        append(2)
        wait_until(lambda: noticed(token), timeout=10, what="a commit after the drop")
    finally:
        watcher.close()
        writer.close()
        drop_database(name)


def test_a_dead_peer_is_noticed_by_default_and_a_url_may_say_otherwise() -> None:
    """Keepalives and tcp_user_timeout by default (a statement on a connection whose peer vanished
    would wait hours for TCP otherwise); what the URL sets wins."""
    from urllib.parse import parse_qs, urlsplit

    conninfo, _, _ = parse_url("postgresql://u@db:5432/leo?schema=s")
    given = {key: values[0] for key, values in parse_qs(urlsplit(conninfo).query).items()}
    assert given["keepalives"] == "1" and int(given["tcp_user_timeout"]) > 0 and int(given["connect_timeout"]) > 0
    assert "schema" not in given
    conninfo, _, _ = parse_url("postgresql://u@db:5432/leo?tcp_user_timeout=5000&keepalives=0")
    given = {key: values for key, values in parse_qs(urlsplit(conninfo).query).items()}
    assert given["tcp_user_timeout"] == ["5000"] and given["keepalives"] == ["0"]


def test_close_does_not_wait_for_a_statement_another_thread_is_in(url: str) -> None:
    """Closing the store (a `leo run` stopping) closes the connections other threads hold rather
    than rolling them back: one may be waiting on a server that does not answer."""
    store = open_store(url)
    started = threading.Event()
    outcome: list[BaseException | None] = []

    def stuck() -> None:
        conn = store._conn()
        started.set()
        try:
            conn.execute("SELECT pg_sleep(60)")
            outcome.append(None)
        except BaseException as exc:  # what the closed connection raised
            outcome.append(exc)

    thread = threading.Thread(target=stuck, daemon=True)
    thread.start()
    assert started.wait(10)
    wait_until(lambda: _sleeping(url), timeout=10, what="the other thread's statement running")
    closer = threading.Thread(target=store.close, daemon=True)
    closer.start()
    closer.join(20)
    assert not closer.is_alive(), "close() waited for the other thread's statement"
    thread.join(20)
    assert outcome and outcome[0] is not None  # the statement ended with the connection


def _sleeping(url: str) -> bool:
    conninfo, _, _ = parse_url(url)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        return bool(conn.execute("SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)' "
                                 "AND state = 'active'").fetchone()[0])


def test_threads_that_live_on_share_a_small_pool(url: str) -> None:
    """A connection is lent for one store call, not held for the life of the thread that made it:
    40 living threads (an API's worker threads, say) take turns on a pool of 4, and the server
    sees no more than that many connections from the store."""
    before = _connections(url)  # other tests' stores in this process, still open or closing
    store = open_store(url + "&pool_size=4&pool_timeout=3")
    go, done = threading.Barrier(41), threading.Barrier(41)
    failures: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            store.append("q", [{"n": n}])
            go.wait(30)  # every thread alive, each having used the store
            store.read("q", 0, 1)
        except BaseException as exc:  # what the pool raised
            failures.append(exc)
        finally:
            done.wait(30)

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(40)]
    try:
        for thread in threads:
            thread.start()
        go.wait(30)
        done.wait(60)
        assert not failures, failures[:3]
        assert store.count_after("q", 0) == 40
        opened = _connections(url) - before
        assert opened <= 4 + 1, opened  # the pool and its listener, if any
    finally:
        store.close()


def _connections(url: str) -> int:
    """Connections to the test's database, this check's own not counted."""
    conninfo, _, _ = parse_url(url)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                            (conn.info.dbname,)).fetchone()[0]


def test_a_write_left_open_by_a_vanished_host_does_not_hold_the_writers_lock_for_ever(url: str) -> None:
    """The server ends a transaction that sits idle (its host gone without a word), and the
    writers' lock with it: every connection of the store is set up so."""
    store = open_store(url)
    try:
        with store._write() as conn:
            setting = conn.execute("SHOW idle_in_transaction_session_timeout").fetchone()[0]
        assert setting not in ("0", "0ms")
    finally:
        store.close()
