"""What the SQLite object store promises beside other writers: a long read is compared without
SQLite's write lock and written in short transactions, each whole (objects with their change
records), the run's state with the last one."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from leo_runtime import objects
from leo_runtime.errors import LeaseLost
from leo_runtime.store import ObjectBatch, RunCommit, SQLiteStore, sql_objects

from ..objects_helpers import assert_objects_agree_with_changes, change_records


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "leo.db")
    yield opened
    opened.close()


def append_from_another_thread(store: SQLiteStore, payload: dict) -> bool:
    """Append one event from another thread; True when it committed within 10 seconds."""
    done = threading.Event()

    def work() -> None:
        store.append("other.queue", [payload])
        done.set()

    threading.Thread(target=work, daemon=True).start()
    return done.wait(10)


def test_comparing_a_long_read_holds_no_write_lock(store: SQLiteStore, tmp_path: Path) -> None:
    objects.ingest(store, "inventory", "sku", [{"sku": f"K{n:05d}", "n": n} for n in range(5000)])
    impatient = SQLiteStore(tmp_path / "leo.db", busy_timeout=0.05)  # another process, barely waiting
    wrote: list[bool] = []

    def rows() -> Iterator[dict]:
        for n in range(5000):
            if n == 4500:  # pages already compared: writers beside the read go on meanwhile
                wrote.append(append_from_another_thread(store, {"from": "this process"}))
                impatient.append("other.queue", [{"from": "another process"}])
                wrote.append(True)
            yield {"sku": f"K{n:05d}", "n": n + (n % 1000 == 0)}

    result = objects.ingest(store, "inventory", "sku", rows(), snapshot=True)
    impatient.close()
    assert wrote == [True, True]
    assert result == objects.IngestResult(updated=5, unchanged=4995)
    assert [event.payload["from"] for event in store.read("other.queue", 0, 10)] == ["this process", "another process"]
    assert_objects_agree_with_changes(store)


def test_a_long_write_lets_waiting_writers_in_between_its_transactions(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql_objects, "WRITE_ROWS", 500)
    monkeypatch.setattr(sql_objects, "WRITE_SECONDS", 0.0)  # a transaction per 500 rows
    monkeypatch.setattr(sql_objects, "WRITE_PAUSE_SECONDS", 1.0)  # long enough for any scheduler
    finished: list[bool] = []
    waiting: list[threading.Event] = []

    def describe(change):
        if change.key == "K00100":  # inside the first write transaction: this writer must wait
            done = threading.Event()
            waiting.append(done)
            threading.Thread(target=lambda: (store.append("other.queue", [{"n": 1}]), done.set()), daemon=True).start()
        if change.key == "K01800":  # a later transaction: the waiting writer got in between
            finished.append(waiting[0].wait(10))
        return objects.change_record(change)

    batch = ObjectBatch("inventory", describe, rows=objects.object_rows(
        [{"sku": f"K{n:05d}"} for n in range(2000)], "sku", "feed"))
    store.apply_objects([batch])
    assert finished == [True]
    assert batch.counts.created == 2000
    other = store.read("other.queue", 0, 10)[0].seq
    positions = [event.seq for event in store.read("inventory.changes", 0, 10_000)]
    assert positions[0] < other < positions[-1]  # it committed between two of the read's transactions
    assert_objects_agree_with_changes(store)


def test_a_failure_in_a_later_write_transaction_keeps_the_earlier_ones_whole(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql_objects, "WRITE_ROWS", 500)
    monkeypatch.setattr(sql_objects, "WRITE_SECONDS", 0.0)
    monkeypatch.setattr(sql_objects, "WRITE_PAUSE_SECONDS", 0.0)
    store.ensure_bot("detector", "p")
    assert store.acquire_lease("detector", "o1", 60_000)

    def describe(change):
        if change.key == "K01700":
            raise OSError("disk full")  # stands for a crash between two write transactions
        return objects.change_record(change)

    rows = objects.object_rows([{"sku": f"K{n:05d}"} for n in range(2000)], "sku", "feed")
    batch = ObjectBatch("inventory", describe, rows=rows, complete=True, source="feed")
    with pytest.raises(OSError, match="disk full"):
        store.commit_run(RunCommit(bot_id="detector", owner="o1", state={"files": 1}, objects=[batch]))
    written = len(change_records(store))
    assert 0 < written < 2000 and written % 500 == 0  # whole transactions, objects with their records
    assert_objects_agree_with_changes(store)
    assert store.bot("detector").state == {}  # the run's state commits with its last transaction only
    assert store.bot("detector").events_out == written
    # Done again, the run finds what was written unchanged and writes the rest.
    again = objects.batch("inventory", "sku", [{"sku": f"K{n:05d}"} for n in range(2000)], complete=True)
    store.commit_run(RunCommit(bot_id="detector", owner="o1", state={"files": 1}, objects=[again]))
    assert (again.counts.created, again.counts.unchanged) == (2000 - written, written)
    assert store.bot("detector").state == {"files": 1} and store.bot("detector").events_out == 2000
    assert_objects_agree_with_changes(store)


def test_a_lease_lost_between_write_transactions_stops_the_rest(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql_objects, "WRITE_ROWS", 500)
    monkeypatch.setattr(sql_objects, "WRITE_SECONDS", 0.0)
    monkeypatch.setattr(sql_objects, "WRITE_PAUSE_SECONDS", 0.0)
    store.ensure_bot("detector", "p")
    assert store.acquire_lease("detector", "o1", 60_000)

    def describe(change):
        if change.key == "K00700":  # another runtime takes the bot over meanwhile
            taker = threading.Thread(
                target=lambda: store.acquire_lease("detector", "o2", 60_000, is_stale=lambda owner: True), daemon=True
            )
            taker.start()
        return objects.change_record(change)

    rows = objects.object_rows([{"sku": f"K{n:05d}"} for n in range(2000)], "sku", "feed")
    batch = ObjectBatch("inventory", describe, rows=rows, complete=True, source="feed")
    with pytest.raises(LeaseLost):
        store.commit_run(RunCommit(bot_id="detector", owner="o1", state={"files": 1}, objects=[batch]))
    assert len(change_records(store)) < 2000
    assert store.bot("detector").state == {}
    assert_objects_agree_with_changes(store)
