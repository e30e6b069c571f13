"""The storage contract of dead letters, stuck runs and runtimes (migration 3), once per backend."""

from __future__ import annotations

import threading

import pytest

from leo_runtime.errors import CheckpointMoved
from leo_runtime.store import RunCommit, Store
from leo_runtime.store.base import DeadLetter

from .conftest import CLOCK_START, Backend, FakeClock
from .test_store_contract import MINUTE, running_bot, snapshot


def poisoned_run(store: Store, *, error: str = "boom") -> tuple[RunCommit, list]:
    """A bot on 'in' with 3 events whose run processed the first and gives up on the second."""
    running_bot(store, n=3)
    events = store.read("in", 0)
    run = RunCommit(
        bot_id="b", owner="o1", in_queue="in", expected=0, position=events[1].seq, events_in=2,
        outputs=[],
        dead_letters=[DeadLetter("in.dead", events[1], error, 3)],
    )
    return run, events


def test_a_dead_letter_moves_with_the_checkpoint_in_one_transaction(store: Store, clock: FakeClock) -> None:
    run, events = poisoned_run(store)
    store.commit_run(run)
    assert store.get_checkpoint("b", "in") == events[1].seq
    (moved,) = store.read("in.dead", 0)
    assert moved.payload_json == events[1].payload_json
    assert moved.event_source_timestamp == events[1].event_source_timestamp
    assert moved.correlation_id == {"source": "in", "start": events[1].seq, "units": 1}
    (letter,) = store.dead_letters("in.dead")
    assert (letter.position, letter.queue, letter.bot_id, letter.source_queue, letter.source_position) == (
        moved.seq, "in.dead", "b", "in", events[1].seq)
    assert (letter.error, letter.failures, letter.dead_at, letter.redriven_at) == ("boom", 3, CLOCK_START, None)
    assert store.dead_letter_counts() == {"b": (1, 1)}
    assert store.bot("b").events_out == 0  # a dead letter is not an output


def test_a_refused_run_moves_no_dead_letter(store: Store) -> None:
    run, _ = poisoned_run(store)
    store.set_checkpoint("b", "in", 1)  # an operator's reset while the run was in flight
    before = snapshot(store), store.dead_letters(include_redriven=True)
    with pytest.raises(CheckpointMoved):
        store.commit_run(run)
    assert (snapshot(store), store.dead_letters(include_redriven=True)) == before


def test_redrive_sends_back_appends_and_marks_in_one_transaction(backend: Backend, store: Store, clock: FakeClock) -> None:
    run, events = poisoned_run(store)
    store.commit_run(run)
    (letter,) = store.dead_letters()
    heard: list[dict[str, int]] = []
    store.add_append_listener(heard.append)
    clock.advance(MINUTE)
    (sent,) = store.redrive_dead_letters("in.dead")
    (back,) = store.read("in", events[-1].seq)  # appended after everything the queue held
    assert back.payload_json == events[1].payload_json
    assert back.correlation_id == {"source": "in.dead", "start": letter.position, "units": 1}
    assert (sent.redriven_at, sent.redriven_queue, sent.redriven_position) == (CLOCK_START + MINUTE, "in", back.seq)
    assert heard == [{"in": back.seq}]
    assert store.dead_letters() == [] and store.dead_letters(include_redriven=True) == [sent]
    assert store.dead_letter_counts() == {"b": (1, 0)}
    assert backend.open().dead_letters(include_redriven=True) == [sent]  # committed, visible to others
    assert store.redrive_dead_letters("in.dead") == []  # nothing waits any more: nothing appended
    assert store.queue_head("in") == back.seq


def test_redrive_to_another_queue_by_bot_and_positions(store: Store) -> None:
    run, events = poisoned_run(store)
    store.commit_run(run)
    store.ensure_bot("c", "pipe")
    assert store.acquire_lease("c", "o1", 10 * MINUTE)
    store.init_checkpoint("c", "in", 0)
    store.commit_run(RunCommit(bot_id="c", owner="o1", in_queue="in", expected=0, position=events[2].seq,
                               dead_letters=[DeadLetter("in.dead", events[2], "bad", 1)]))
    first, second = store.dead_letters("in.dead")
    assert store.redrive_dead_letters("in.dead", bot_id="nobody") == []
    assert store.redrive_dead_letters("in.dead", positions=[]) == []
    (only,) = store.redrive_dead_letters("in.dead", to="parked", bot_id="c")
    assert only.position == second.position and only.redriven_queue == "parked"
    assert [e.payload_json for e in store.read("parked", 0)] == [events[2].payload_json]
    (rest,) = store.redrive_dead_letters("in.dead", positions=[first.position, 999_999])
    assert rest.position == first.position and rest.redriven_queue == "in"


def test_pruning_drops_the_records_of_pruned_dead_letters(store: Store, clock: FakeClock) -> None:
    run, _ = poisoned_run(store)
    store.commit_run(run)
    clock.advance(MINUTE)
    store.prune(CLOCK_START + 1)
    assert store.dead_letters(include_redriven=True) == [] and store.dead_letter_counts() == {}
    assert store.redrive_dead_letters("in.dead") == []


def test_two_redrives_at_once_send_each_letter_back_once(backend: Backend, store: Store) -> None:
    running_bot(store, n=50)
    events = store.read("in", 0, 100)
    store.commit_run(RunCommit(bot_id="b", owner="o1", in_queue="in", expected=0, position=events[-1].seq,
                               dead_letters=[DeadLetter("in.dead", event, "x", 1) for event in events]))
    others = [backend.open() for _ in range(4)]
    sent: list[int] = []
    lock = threading.Lock()

    def redrive(other: Store) -> None:
        letters = other.redrive_dead_letters("in.dead", to="again")
        with lock:
            sent.extend(letter.position for letter in letters)

    threads = [threading.Thread(target=redrive, args=(other,)) for other in others]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(sent) == 50 and len(set(sent)) == 50
    assert len(store.read("again", 0, 1000)) == 50


def test_a_stuck_mark_needs_the_lease_and_goes_with_a_commit_a_failure_or_a_release(store: Store) -> None:
    running_bot(store)
    store.mark_stuck("b", "someone-else", CLOCK_START)
    assert store.bot("b").stuck_since is None
    store.mark_stuck("b", "o1", 1234)
    assert store.bot("b").stuck_since == 1234
    store.commit_run(RunCommit(bot_id="b", owner="o1", in_queue="in", expected=0, position=1))
    assert store.bot("b").stuck_since is None
    store.mark_stuck("b", "o1", 1234)
    store.record_failure("b", "boom")
    assert store.bot("b").stuck_since is None
    store.mark_stuck("b", "o1", 1234)
    store.release_leases("o1", ["b"])
    assert store.bot("b").stuck_since is None and store.bots()[0].stuck_since is None


def test_runtimes_register_beat_note_reload_errors_and_go(store: Store, clock: FakeClock) -> None:
    store.register_runtime("h:1:a", "/p/pipelines.yaml")
    clock.advance(MINUTE)
    store.note_runtime("h:1:a", reloads=1, reload_error="pipelines.yaml:3:4: bad")
    (info,) = store.runtimes()
    assert (info.owner, info.file, info.started_at, info.seen_at) == ("h:1:a", "/p/pipelines.yaml", CLOCK_START,
                                                                     CLOCK_START + MINUTE)
    assert (info.reloads, info.reload_error, info.reload_error_at) == (1, "pipelines.yaml:3:4: bad", CLOCK_START + MINUTE)
    clock.advance(MINUTE)
    store.note_runtime("h:1:a", reloads=1, reload_error="pipelines.yaml:3:4: bad")  # the same error: its time stays
    assert store.runtimes()[0].reload_error_at == CLOCK_START + MINUTE
    store.note_runtime("h:1:a", reloads=2, reload_error=None)
    assert store.runtimes()[0].reload_error is None and store.runtimes()[0].reload_error_at is None
    clock.advance(2 * 86_400_000)
    store.register_runtime("h:2:b", None)  # forgets runtimes not seen for a day
    assert [info.owner for info in store.runtimes()] == ["h:2:b"]
    store.unregister_runtime("h:2:b")
    assert store.runtimes() == []


def test_an_unknown_queue_has_nothing_to_redrive(store: Store) -> None:
    assert store.redrive_dead_letters("nope") == [] and store.dead_letters("nope") == []


def test_a_store_without_migration_3_still_reads(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader that does not migrate (read-only commands) on a store made by an older version."""
    from leo_runtime.operations import status_report
    from leo_runtime.store import SQLiteStore
    from leo_runtime.store.migrations import SQLITE_MIGRATIONS

    monkeypatch.setattr("leo_runtime.store.sql.SQLITE_MIGRATIONS", SQLITE_MIGRATIONS[:2])
    old = SQLiteStore(tmp_path / "old.db")
    old.ensure_bot("b", "p")
    assert old.schema_version() == 2
    assert old.bots()[0].stuck_since is None and old.bot("b").stuck_since is None
    assert old.dead_letters() == [] and old.dead_letter_counts() == {} and old.runtimes() == []
    assert status_report(old, None, system=[])["bots"][0]["state"] == "stopped"
    old.close()
