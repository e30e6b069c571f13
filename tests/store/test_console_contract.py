"""The storage contract of the console (migration 7): bot history samples and sessions, once per backend."""

from __future__ import annotations

from leo_runtime.store import PendingEvent, RunCommit, Store

from .conftest import CLOCK_START, Backend, FakeClock
from .test_store_contract import MINUTE, running_bot

SECOND = 1000


def run_once(store: Store, events_in: int, outputs: int = 0) -> None:
    """Commit a run of bot 'b' that read `events_in` events of 'in' and wrote `outputs` to 'out'."""
    start = store.get_checkpoint("b", "in") or 0
    events = store.read("in", start, events_in)
    store.commit_run(RunCommit(bot_id="b", owner="o1", in_queue="in", expected=start, position=events[-1].seq,
                               events_in=events_in, outputs=[PendingEvent("out", '{"x":1}', None, None)] * outputs))


def test_a_sample_holds_each_bots_cumulative_counters_and_only_bots_that_changed_get_one(store: Store,
                                                                                        clock: FakeClock) -> None:
    running_bot(store, n=5)
    running_bot(store, bot_id="quiet", queue="other", n=1)
    assert store.sample_bot_history(CLOCK_START) == 2  # a first sample of every bot: the baseline
    run_once(store, 2, outputs=1)
    store.record_failure("b", "boom")
    assert store.sample_bot_history(CLOCK_START + 10 * SECOND) == 1  # 'quiet' did nothing: no row
    history = store.bot_history("b", 0)
    assert [(s.at, s.events_in, s.events_out, s.failures) for s in history] == [
        (CLOCK_START, 0, 0, 0), (CLOCK_START + 10 * SECOND, 2, 1, 1)]
    assert [s.at for s in store.bot_history("quiet", 0)] == [CLOCK_START]


def test_failures_keep_counting_after_a_successful_run_resets_the_error_count(store: Store, clock: FakeClock) -> None:
    running_bot(store, n=5)
    store.record_failure("b", "one")
    store.record_failure("b", "two")
    run_once(store, 1)  # error_count goes back to 0, the total does not
    store.record_failure("b", "three")
    store.sample_bot_history(CLOCK_START)
    info = store.bot("b")
    assert info is not None and info.error_count == 1
    assert store.bot_history("b", 0)[-1].failures == 3


def test_a_second_host_sampling_the_same_instant_keeps_the_first_sample(backend: Backend, clock: FakeClock) -> None:
    one, two = backend.open(), backend.open()
    running_bot(one, n=3)
    assert one.sample_bot_history(CLOCK_START) == 1
    run_once(one, 1)
    assert two.sample_bot_history(CLOCK_START) == 0  # the same instant: another host's sample stands
    assert [(s.at, s.events_in) for s in two.bot_history("b", 0)] == [(CLOCK_START, 0)]
    assert two.sample_bot_history(CLOCK_START + 10 * SECOND) == 1


def test_history_since_a_time_starts_with_the_sample_before_it(store: Store, clock: FakeClock) -> None:
    running_bot(store, n=10)
    for step in range(4):
        run_once(store, 1)
        store.sample_bot_history(CLOCK_START + step * MINUTE)
    history = store.bot_history("b", CLOCK_START + 2 * MINUTE)
    assert [s.at for s in history] == [CLOCK_START + MINUTE, CLOCK_START + 2 * MINUTE, CLOCK_START + 3 * MINUTE]
    assert store.bot_history("nobody", 0) == []


def test_pruning_thins_old_samples_to_one_a_minute_and_drops_the_oldest_but_keeps_a_baseline(
        store: Store, clock: FakeClock) -> None:
    running_bot(store, n=200)
    for step in range(12):  # two minutes of samples every 10 s
        run_once(store, 1)
        store.sample_bot_history(CLOCK_START + step * 10 * SECOND)
    totals_before = store.bot_history("b", 0)[-1]
    # Thin everything: each minute keeps its last sample, so a minute's total stays exact.
    dropped = store.prune_bot_history(0, CLOCK_START + 10 * MINUTE)
    kept = store.bot_history("b", 0)
    assert dropped == 10
    assert [s.at for s in kept] == [CLOCK_START + 50 * SECOND, CLOCK_START + 110 * SECOND]
    assert kept[-1] == totals_before
    # Drop everything older than the newest: the newest stays, as the baseline of what comes next.
    assert store.prune_bot_history(CLOCK_START + 10 * MINUTE, CLOCK_START + 10 * MINUTE) == 1
    assert store.bot_history("b", 0) == [totals_before]


def test_a_console_session_is_known_until_it_ends_or_expires(backend: Backend, clock: FakeClock) -> None:
    one, two = backend.open(), backend.open()  # two hosts of a cluster
    one.create_console_session(b"h" * 32, "csrf-1", CLOCK_START + MINUTE)
    assert two.console_session(b"h" * 32, CLOCK_START) == "csrf-1"
    assert two.console_session(b"x" * 32, CLOCK_START) is None
    assert two.console_session(b"h" * 32, CLOCK_START + MINUTE) is None  # expired
    one.create_console_session(b"k" * 32, "csrf-2", CLOCK_START + 2 * MINUTE)
    assert two.end_console_session(b"k" * 32) is True
    assert one.console_session(b"k" * 32, CLOCK_START) is None
    assert two.end_console_session(b"k" * 32) is False


def test_expired_sessions_are_dropped_when_a_new_one_starts(store: Store, clock: FakeClock) -> None:
    store.create_console_session(b"old" * 11, "a", CLOCK_START + SECOND)
    clock.advance(2 * SECOND)
    store.create_console_session(b"new" * 11, "b", CLOCK_START + MINUTE)
    assert store.end_console_session(b"old" * 11) is False  # already gone
