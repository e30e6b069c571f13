"""`copy_store` (what `leo store copy` runs) between real stores: SQLite files and fresh
PostgreSQL schemas of the real server."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from leo_runtime.errors import StoreError
from leo_runtime.store import SQLiteStore, open_store
from leo_runtime.store.base_hosts import HostInfo
from leo_runtime.store.copy import SKIPPED, copied_tables, copy_store, tables
from leo_runtime.store.postgres import PostgresStore

from ..pg import fresh_store_url


def filled(path: Path) -> SQLiteStore:
    """A SQLite store with events in two queues, a checkpoint, a bot holding a lease and partners."""
    store = SQLiteStore(path)
    store.append("orders", [{"n": n} for n in range(5)])
    store.append("other", [{"m": 1}])
    store.set_checkpoint("reader", "orders", 3)
    store.ensure_bot("reader", "p")
    assert store.acquire_lease("reader", "old-host", 60_000)
    store.create_partner("acme", hashlib.sha256(b"tok-acme").digest(), None)
    store.create_partner("beta", hashlib.sha256(b"tok-beta").digest(), '{"region": "eu"}')
    store.beat_host(HostInfo("old-host", "old", 1, "all", None, 0, 0), 15_000)  # a `leo run` of the source
    return store


def test_every_table_is_copied_or_skipped_with_a_reason(tmp_path: Path) -> None:
    """A table a future migration adds is copied (or must be named in SKIPPED on purpose)."""
    source = filled(tmp_path / "a.db")
    target = PostgresStore(fresh_store_url())
    try:
        result = copy_store(source, target)
        every = set(tables(source._conn()))
        assert set(SKIPPED) <= every, "SKIPPED names a table that no longer exists"
        assert set(result.rows) | set(SKIPPED) == every
        assert set(result.rows) == set(copied_tables(target._conn()))
        assert set(tables(target._conn())) == every
        assert all(reason for reason in SKIPPED.values())
        assert target.live_hosts(15_000) == [] and source.live_hosts(15_000)  # the source's hosts stay behind
    finally:
        source.close()
        target.close()


def test_sqlite_to_postgresql_keeps_positions_partners_and_continues_above(tmp_path: Path) -> None:
    source = filled(tmp_path / "a.db")
    target = PostgresStore(fresh_store_url())
    try:
        result = copy_store(source, target)
        assert result.copied and result.rows["events"] == 6 and result.rows["partners"] == 2
        assert [e.payload for e in target.read("orders", 0, 100)] == [{"n": n} for n in range(5)]
        assert [e.seq for e in target.read("orders", 0, 100)] == [e.seq for e in source.read("orders", 0, 100)]
        assert target.get_checkpoint("reader", "orders") == 3
        assert target.partner_by_token_hash(hashlib.sha256(b"tok-beta").digest()).name == "beta"
        # The lease named the source's host: on the target nobody holds it, another host takes it at once.
        assert target.acquire_lease("reader", "new-host", 60_000)
        # New rows never collide with copied ones: positions, queue ids and identity keys continue above.
        last = source.last_position()
        target.append("orders", [{"n": 5}])
        target.append("fresh-queue", [{"x": 1}])
        assert target.read("orders", 0, 100)[-1].seq == last + 1
        assert target.read("fresh-queue", 0, 100)[0].seq == last + 2
        made = target.create_partner("gamma", hashlib.sha256(b"tok-gamma").digest(), None)
        assert made.id > max(p.id for p in source.partners())
    finally:
        source.close()
        target.close()


def test_a_second_copy_changes_nothing_and_a_different_target_is_refused(tmp_path: Path) -> None:
    source = filled(tmp_path / "a.db")
    url = fresh_store_url()
    target = PostgresStore(url)
    try:
        assert copy_store(source, target).copied
        again = copy_store(source, target)
        assert not again.copied and again.rows["events"] == 6
        target.append("orders", [{"n": "new"}])  # the target moved on (a `leo run` there)
        with pytest.raises(StoreError, match="already holds other data") as refused:
            copy_store(source, target)
        assert "table events" in str(refused.value)
        assert [e.payload for e in target.read("orders", 0, 100)][-1] == {"n": "new"}  # untouched
    finally:
        source.close()
        target.close()


def test_a_target_partly_like_the_source_and_partly_new_is_refused_naming_the_table(tmp_path: Path) -> None:
    source = filled(tmp_path / "a.db")
    target = SQLiteStore(tmp_path / "b.db")
    try:
        copy_store(source, target)
        target._conn().execute("DELETE FROM partners")  # that table as a new store has it, the others copied
        with pytest.raises(StoreError, match=r"table partners: 0 row\(s\), the source has 2"):
            copy_store(source, target)
    finally:
        source.close()
        target.close()


@pytest.mark.parametrize("direction", ["pg-to-sqlite", "sqlite-to-sqlite"])
def test_any_pair_of_stores_round_trips(tmp_path: Path, direction: str) -> None:
    first = filled(tmp_path / "a.db")
    middle = PostgresStore(fresh_store_url()) if direction == "pg-to-sqlite" else SQLiteStore(tmp_path / "b.db")
    last = SQLiteStore(tmp_path / "c.db")
    try:
        copy_store(first, middle)
        copy_store(middle, last)
        assert copy_store(first, last).copied is False  # the same data: nothing to do
        assert [e.payload for e in last.read("orders", 0, 100)] == [e.payload for e in first.read("orders", 0, 100)]
    finally:
        for store in (first, middle, last):
            store.close()


def test_a_source_at_another_schema_version_is_refused(tmp_path: Path) -> None:
    source = filled(tmp_path / "a.db")
    source._conn().execute("DELETE FROM schema_migrations WHERE version = (SELECT MAX(version) FROM schema_migrations)")
    old = source.schema_version()
    source.close()
    with pytest.raises(StoreError, match=f"schema version {old}"):
        open_store(str(tmp_path / "a.db"), read_only=True)


def test_the_same_store_is_refused(tmp_path: Path) -> None:
    source = filled(tmp_path / "a.db")
    other = SQLiteStore(tmp_path / "a.db")
    try:
        with pytest.raises(StoreError, match="same store"):
            copy_store(source, other)
    finally:
        source.close()
        other.close()


def test_a_table_a_future_migration_adds_is_copied_without_being_named(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from leo_runtime.store import migrations, sql

    newest = max(version for version, _, _ in migrations.SQLITE_MIGRATIONS)
    future = [*migrations.SQLITE_MIGRATIONS, (newest + 1, "a table from the future", """
        CREATE TABLE gadgets (id INTEGER PRIMARY KEY, name TEXT NOT NULL, blob BLOB);
        INSERT INTO gadgets (id, name, blob) VALUES (1, 'seed', NULL)
    """)]
    monkeypatch.setattr(sql, "SQLITE_MIGRATIONS", future)
    source = filled(tmp_path / "a.db")
    source._conn().execute("INSERT INTO gadgets (id, name, blob) VALUES (7, 'made', X'00ff')")
    target = PostgresStore(fresh_store_url())
    try:
        result = copy_store(source, target)
        assert result.rows["gadgets"] == 2 and result.schema_version == newest + 1
        assert target._conn().execute("SELECT id, name, blob FROM gadgets ORDER BY id").fetchall() == [
            (1, "seed", None), (7, "made", b"\x00\xff")]
        assert not copy_store(source, target).copied
        # Its identity column continues above the copied keys too.
        assert target._conn().execute("INSERT INTO gadgets (name) VALUES ('next') RETURNING id").fetchone()[0] == 8
    finally:
        source.close()
        target.close()


def test_a_row_the_target_cannot_hold_names_its_table_and_writes_nothing(tmp_path: Path) -> None:
    source = filled(tmp_path / "a.db")
    # SQLite keeps a NUL character in a text; PostgreSQL's text cannot hold one.
    source._conn().execute("UPDATE partners SET scope = CAST(X'7B2261223A2200227D' AS TEXT) WHERE name = 'beta'")
    target = PostgresStore(fresh_store_url())
    try:
        with pytest.raises(StoreError, match="table partners could not be copied") as refused:
            copy_store(source, target)
        assert "nothing was written" in str(refused.value)
        assert target.last_position() == 0 and target.partners() == []
    finally:
        source.close()
        target.close()
