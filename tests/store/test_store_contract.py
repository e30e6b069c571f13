"""The storage contract: every guarantee documented in leo_runtime/store/base.py, once per backend.

The `store` fixture (conftest.py) runs each test on every backend in BACKENDS, on a fresh
database; `backend.open()` gives a second `Store` on the same database (another connection, as
another process or host would have), and `clock` replaces the wall clock so no test sleeps.
"""

from __future__ import annotations

import re
import threading

import pytest

from leo_runtime import events as events_module
from leo_runtime.errors import CheckpointMoved, LeaseLost
from leo_runtime.events import Event, RawJSON, make_eid, position_of
from leo_runtime.store import BotInfo, PendingEvent, QueueInfo, RunCommit, Store

from .conftest import CLOCK_START, Backend, FakeClock

MINUTE = 60_000


def seqs(events: list[Event]) -> list[int]:
    return [event.seq for event in events]


def everything(store: Store, queue: str) -> list[Event]:
    return store.read(queue, 0, limit=1_000_000)


def snapshot(store: Store) -> tuple:
    """Everything a bot run can write, to check that a refused run wrote nothing."""
    return (
        store.last_position(),
        store.queue_heads(),
        store.queues(),
        store.checkpoints(),
        store.bots(),
        {info.name: [event.payload_json for event in everything(store, info.name)] for info in store.queues()},
    )


def running_bot(store: Store, bot_id: str = "b", owner: str = "o1", queue: str = "in", n: int = 3) -> tuple[int, int]:
    """A bot holding its lease, with a checkpoint at 0 on `queue` and `n` events waiting there."""
    store.ensure_bot(bot_id, "pipe")
    assert store.acquire_lease(bot_id, owner, 10 * MINUTE)
    store.init_checkpoint(bot_id, queue, 0)
    return store.append(queue, [{"n": i} for i in range(n)])


# -- append and read --------------------------------------------------------------------------------
def test_append_returns_first_and_last_position_and_reads_back_in_order(store: Store) -> None:
    first, last = store.append("q", [{"n": n} for n in range(5)])

    events = everything(store, "q")
    assert first >= 1  # 0 means "nothing processed yet", never an event
    assert [event.payload for event in events] == [{"n": n} for n in range(5)]
    assert seqs(events) == sorted(set(seqs(events)))
    assert (seqs(events)[0], seqs(events)[-1]) == (first, last)
    assert all(event.queue == "q" for event in events)


def test_positions_are_one_global_sequence_across_queues(store: Store) -> None:
    ranges = []
    for round_ in range(4):
        for queue in ("a", "b"):
            ranges.append((queue, store.append(queue, [{"q": queue, "round": round_, "i": i} for i in range(3)])))

    bounds = [bound for _, pair in ranges for bound in pair]
    assert bounds == sorted(bounds) and len(set(bounds)) == len(bounds)
    for queue in ("a", "b"):
        events = everything(store, queue)
        assert {event.payload["q"] for event in events} == {queue}
        assert [(e.payload["round"], e.payload["i"]) for e in events] == [(r, i) for r in range(4) for i in range(3)]
        mine = [pair for name, pair in ranges if name == queue]
        assert seqs(events)[0] == mine[0][0] and seqs(events)[-1] == mine[-1][1]
    assert set(seqs(everything(store, "a"))).isdisjoint(seqs(everything(store, "b")))
    assert store.last_position() == bounds[-1]


def test_append_events_spans_queues_in_one_ordered_batch(store: Store) -> None:
    first, last = store.append_events(
        [PendingEvent("a", '{"i":0}'), PendingEvent("b", '{"i":1}'), PendingEvent("a", '{"i":2}')]
    )

    a, b = everything(store, "a"), everything(store, "b")
    assert [e.payload["i"] for e in a] == [0, 2] and [e.payload["i"] for e in b] == [1]
    assert a[0].seq == first < b[0].seq < a[1].seq == last
    assert store.queue_heads() == {"a": last, "b": b[0].seq}


def test_read_after_is_exclusive_and_unknown_queue_is_empty(store: Store) -> None:
    store.append("q", [{"n": n} for n in range(4)])
    positions = seqs(everything(store, "q"))

    assert seqs(store.read("q", positions[1])) == positions[2:]
    assert store.read("q", positions[-1]) == []
    assert seqs(store.read("q", 0)) == positions
    assert store.read("nope", 0) == []


def test_read_limit_returns_the_oldest(store: Store) -> None:
    store.append("q", [{"n": n} for n in range(10)])
    positions = seqs(everything(store, "q"))

    assert seqs(store.read("q", 0, limit=3)) == positions[:3]
    assert seqs(store.read("q", positions[2], limit=3)) == positions[3:6]
    assert seqs(store.read("q", 0, limit=100)) == positions


def test_read_max_bytes_stops_once_the_payloads_reach_it(store: Store) -> None:
    texts = [f'"{n:08d}"' for n in range(5)]  # 10 bytes each
    store.append("q", [RawJSON(text) for text in texts])

    def count(max_bytes: int, limit: int = 1000) -> int:
        return len(store.read("q", 0, limit=limit, max_bytes=max_bytes))

    assert count(10) == 1  # reached exactly after the first
    assert count(11) == 2  # not reached after the first: one more
    assert count(20) == 2
    assert count(21) == 3
    assert count(50) == 5 and count(10_000) == 5
    assert count(10_000, limit=2) == 2  # limit still applies


def test_read_max_bytes_returns_at_least_one_event(store: Store) -> None:
    store.append("q", [{"text": "x" * 500}, {"text": "y"}])

    events = store.read("q", 0, max_bytes=1)
    assert [event.payload["text"] for event in events] == ["x" * 500]


def test_read_max_bytes_counts_utf8_bytes_not_characters(store: Store) -> None:
    text = '"' + "é" * 10 + '"'  # 12 characters, 22 bytes
    store.append("q", [RawJSON(text), RawJSON(text)])

    assert len(store.read("q", 0, max_bytes=20)) == 1
    assert len(store.read("q", 0, max_bytes=23)) == 2


def test_empty_append_returns_zero_pair_and_writes_nothing(store: Store) -> None:
    heard: list = []
    store.add_append_listener(heard.append)

    assert store.append("q", []) == (0, 0)
    assert store.append("q", iter(())) == (0, 0)
    assert store.append_events([]) == (0, 0)
    assert store.last_position() == 0
    assert store.queue_head("q") == 0
    assert heard == []


def test_raw_json_and_event_payloads_are_stored_byte_for_byte(store: Store) -> None:
    odd = '{"b":1,  "a":2}'
    unusual = '{ "z" : [1,2 , 3], "é":"\\u00e9", "n": 1.50 }'
    store.append("in", [RawJSON(odd), RawJSON(unusual)])
    forwarded = everything(store, "in")

    store.append("out", forwarded)  # a bot that forwards `yield event`
    store.append_events([PendingEvent("out", odd)])

    assert [event.payload_json for event in forwarded] == [odd, unusual]
    assert [event.payload_json for event in everything(store, "out")] == [odd, unusual, odd]
    assert everything(store, "out")[1].payload == {"z": [1, 2, 3], "é": "é", "n": 1.5}


def test_append_texts_stores_each_text_as_given_at_consecutive_positions(store: Store, clock: FakeClock) -> None:
    heard: list = []
    store.add_append_listener(heard.append)
    store.append("q", [{"n": 0}])
    texts = ['{"b":1,  "a":2}', '[1, 2.50]', '"é"', "null"]

    first, last = store.append_texts("q", iter(texts))

    events = everything(store, "q")[1:]
    assert (first, last) == (events[0].seq, events[-1].seq) and last - first == len(texts) - 1
    assert [event.payload_json for event in events] == texts
    assert {event.timestamp for event in events} == {CLOCK_START}
    assert [event.event_source_timestamp for event in events] == [CLOCK_START] * len(texts)
    assert [event.correlation_id for event in events] == [None] * len(texts)
    assert store.queue_head("q") == last and heard[-1] == {"q": last}
    assert store.append_texts("q", []) == (0, 0)
    assert store.queue_head("q") == last


def test_append_texts_is_all_or_nothing_when_its_iterator_fails(store: Store) -> None:
    store.append("q", [{"n": 0}])
    before = snapshot(store)

    def texts():
        for n in range(5000):
            yield f'{{"n":{n}}}'
        raise KeyboardInterrupt  # Ctrl-C in the middle of a long put

    with pytest.raises(KeyboardInterrupt):
        store.append_texts("q", texts())
    assert snapshot(store) == before
    assert store.append_texts("fresh", ["1"]) == (2, 2)  # positions were not used up


@pytest.mark.parametrize(
    ("payload", "text"),
    [
        ({"b": 1, "a": [1, 2], "s": "é", "none": None}, '{"b":1,"a":[1,2],"s":"é","none":null}'),
        ([1, "two", 3.5], '[1,"two",3.5]'),
        ("plain", '"plain"'),
        (42, "42"),
    ],
)
def test_other_payloads_are_stored_as_compact_json(store: Store, payload: object, text: str) -> None:
    store.append("q", [payload])

    (event,) = everything(store, "q")
    assert event.payload_json == text
    assert event.payload == payload


def test_event_source_timestamp_defaults_to_write_time_and_explicit_values_are_kept(
    store: Store, clock: FakeClock
) -> None:
    store.append("q", [{"n": 0}])
    store.append("q", [{"n": 1}], event_source_timestamp=CLOCK_START - MINUTE)
    store.append("q", [{"n": 2}], event_source_timestamp=0)
    store.append_events([PendingEvent("q", "{}"), PendingEvent("q", "{}", event_source_timestamp=CLOCK_START - 5)])

    events = everything(store, "q")
    assert [event.timestamp for event in events] == [CLOCK_START] * 5
    assert [event.event_source_timestamp for event in events] == [
        CLOCK_START, CLOCK_START - MINUTE, 0, CLOCK_START, CLOCK_START - 5
    ]


def test_correlation_json_is_kept(store: Store) -> None:
    correlation = '{"source":"in","start":7,"units":2}'
    store.append("q", [{"n": 0}], correlation_json=correlation)
    store.append("q", [{"n": 1}])
    store.append_events([PendingEvent("q", "{}", correlation_json=correlation)])

    events = everything(store, "q")
    assert [event.correlation_json for event in events] == [correlation, None, correlation]
    assert events[0].correlation_id == {"source": "in", "start": 7, "units": 2}
    assert events[1].correlation_id is None


def test_payload_is_decoded_lazily_and_once(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    store.append("q", [{"n": n} for n in range(3)])
    calls: list[str] = []
    real = events_module.decode_payload

    def counting(text: str) -> object:
        calls.append(text)
        return real(text)

    monkeypatch.setattr(events_module, "decode_payload", counting)
    events = everything(store, "q")
    assert calls == []  # reading (and forwarding) never decodes

    assert events[1].payload == {"n": 1}
    assert events[1].payload == {"n": 1}
    assert calls == ['{"n":1}']


def test_eid_names_write_time_and_position(store: Store, clock: FakeClock) -> None:
    store.append("q", [{"n": 0}, {"n": 1}])

    for event in everything(store, "q"):
        assert event.eid == make_eid(event.seq, event.timestamp)
        assert re.fullmatch(rf"z/2026/01/01/00/00/{CLOCK_START}-\d{{7}}", event.eid)
        assert position_of(event.eid) == event.seq
        assert position_of(str(event.seq)) == event.seq == position_of(event.seq)
        assert store.read("q", position_of(event.eid) - 1, limit=1)[0].seq == event.seq


# -- queue heads, listings, lag -----------------------------------------------------------------------
def test_queue_head_and_queue_heads(store: Store) -> None:
    assert store.queue_head("a") == 0
    assert store.queue_heads() == {}

    _, a_last = store.append("a", [1, 2])
    _, b_last = store.append("b", [3])

    assert store.queue_head("a") == a_last
    assert store.queue_head("b") == b_last
    assert store.queue_head("c") == 0
    assert store.queue_heads() == {"a": a_last, "b": b_last}


def test_queues_list_depth_head_first_and_times(store: Store, clock: FakeClock) -> None:
    assert store.queues() == []

    a_first, _ = store.append("a", [1, 2])
    clock.advance(MINUTE)
    _, b_last = store.append("b", [3])
    clock.advance(MINUTE)
    _, a_last = store.append("a", [4])

    assert store.queues() == [
        QueueInfo(name="a", head=a_last, depth=3, first=a_first, oldest_timestamp=CLOCK_START,
                  newest_timestamp=CLOCK_START + 2 * MINUTE),
        QueueInfo(name="b", head=b_last, depth=1, first=b_last, oldest_timestamp=CLOCK_START + MINUTE,
                  newest_timestamp=CLOCK_START + MINUTE),
    ]


def test_count_after_is_the_readers_lag(store: Store) -> None:
    store.append("a", list(range(5)))
    store.append("b", list(range(7)))
    positions = seqs(everything(store, "a"))

    assert store.count_after("a", 0) == 5
    assert store.count_after("a", positions[1]) == 3
    assert store.count_after("a", positions[-1]) == 0
    assert store.count_after("b", 0) == 7
    assert store.count_after("nope", 0) == 0


# -- times, positions, retention ----------------------------------------------------------------------
def test_write_times_never_decrease_even_if_the_clock_steps_back(
    backend: Backend, store: Store, clock: FakeClock
) -> None:
    other = backend.open()  # another process whose clock is behind
    store.append("q", [1])
    clock.now = CLOCK_START - 5_000
    store.append("q", [2])
    other.append_events([PendingEvent("r", "3")])
    clock.now = CLOCK_START - 10_000
    running_bot(store, n=0)
    store.commit_run(RunCommit(bot_id="b", owner="o1", outputs=[PendingEvent("q", "4")]))
    clock.now = CLOCK_START + 1_000
    store.append("q", [5])

    events = sorted(everything(store, "q") + everything(store, "r"), key=lambda event: event.seq)
    assert [event.payload for event in events] == [1, 2, 3, 4, 5]
    assert [event.timestamp for event in events] == [CLOCK_START] * 4 + [CLOCK_START + 1_000]
    assert events[1].event_source_timestamp == CLOCK_START  # the default is the (clamped) write time


def appended_at(store: Store, clock: FakeClock, *times_and_counts: tuple[int, int]) -> list[tuple[int, int]]:
    ranges = []
    for offset, count in times_and_counts:
        clock.now = CLOCK_START + offset
        ranges.append(store.append("q" if len(ranges) % 2 == 0 else "r", list(range(count))))
    return ranges


def test_position_at_is_just_before_the_first_event_at_or_after_a_time(store: Store, clock: FakeClock) -> None:
    (p1, p2), (p3, _), (p4, p5) = appended_at(store, clock, (1_000, 2), (2_000, 1), (3_000, 2))
    base = CLOCK_START

    assert store.position_at(base) == p1 - 1  # before all
    assert store.position_at(base + 1_000) == p1 - 1  # exactly the first write time
    assert store.position_at(base + 1_001) == p2  # between: the next write is p3
    assert store.position_at(base + 2_000) == p2  # exact boundary
    assert store.position_at(base + 2_500) == p3
    assert store.position_at(base + 3_000) == p3
    assert store.position_at(base + 3_001) == p5  # after all: the newest position
    assert store.position_at(base + 10 * MINUTE) == p5
    # Valid for every queue: positions are global.
    assert seqs(store.read("q", store.position_at(base + 2_500))) == [p4, p5]
    assert seqs(store.read("r", store.position_at(base + 1_500))) == [p3]
    assert store.read("r", store.position_at(base + 2_500)) == []


def test_empty_store_positions_are_zero(store: Store) -> None:
    assert store.first_position() == 0
    assert store.last_position() == 0
    assert store.position_at(0) == 0
    assert store.position_at(2**62) == 0


def test_first_and_last_position(store: Store) -> None:
    first, _ = store.append("a", [1, 2])
    _, last = store.append("b", [3])

    assert store.first_position() == first - 1  # what "earliest" means: read after it gets everything
    assert store.last_position() == last
    assert seqs(store.read("a", store.first_position()))[0] == first


def test_prune_deletes_the_oldest_events_written_before_a_time(store: Store, clock: FakeClock) -> None:
    (_a1, a2), (b1, _), (a3, _) = appended_at(store, clock, (0, 2), (MINUTE, 1), (2 * MINUTE, 1))
    # q: a1, a2 written at +0 and a3 at +2min; r: b1 at +1min.
    heads = store.queue_heads()

    assert store.prune(CLOCK_START + MINUTE) == 2  # "before": the event written exactly then stays

    assert seqs(everything(store, "q")) == [a3]
    assert seqs(everything(store, "r")) == [b1]
    assert {info.name: info.depth for info in store.queues()} == {"q": 1, "r": 1}
    assert {info.name: info.first for info in store.queues()} == {"q": a3, "r": b1}
    assert store.queues()[0].oldest_timestamp == CLOCK_START + 2 * MINUTE
    assert store.queue_heads() == heads  # the newest ever appended, pruned or not
    assert store.count_after("q", 0) == 1
    assert store.first_position() == a2 == b1 - 1
    assert store.position_at(CLOCK_START) == b1 - 1  # clamped to the retained events
    assert store.prune(CLOCK_START + MINUTE) == 0


def test_prune_deletes_at_most_limit_events(store: Store, clock: FakeClock) -> None:
    first, _ = store.append("q", list(range(10)))
    clock.advance(MINUTE)

    assert store.prune(clock.now, limit=4) == 4
    assert seqs(everything(store, "q"))[0] == first + 4
    assert store.queues()[0].depth == 6
    assert store.prune(clock.now, limit=100) == 6
    assert store.queues()[0].depth == 0


def test_positions_are_never_reused_after_pruning_everything(
    backend: Backend, store: Store, clock: FakeClock
) -> None:
    store.append("a", list(range(3)))
    _, last = store.append("b", list(range(3)))
    clock.advance(MINUTE)
    assert store.prune(clock.now) == 6

    assert store.last_position() == last
    assert store.first_position() == last
    assert store.position_at(CLOCK_START) == last
    first_after, _ = store.append("a", [4])
    assert first_after > last
    reopened = backend.open()
    assert reopened.append("c", [5])[0] > first_after


# -- checkpoints ------------------------------------------------------------------------------------
def test_checkpoints(store: Store, clock: FakeClock) -> None:
    assert store.get_checkpoint("b", "in") is None
    assert store.checkpoints() == []

    assert store.init_checkpoint("b", "in", 5) == 5
    assert store.init_checkpoint("b", "in", 9) == 5  # only creates once
    assert store.get_checkpoint("b", "in") == 5

    clock.advance(MINUTE)
    store.set_checkpoint("b", "in", 2)  # moves it, backwards too
    store.set_checkpoint("a", "x", 7)  # or creates it
    store.init_checkpoint("b", "other", 0)
    assert store.get_checkpoint("b", "in") == 2
    assert store.init_checkpoint("b", "in", 9) == 2

    listing = store.checkpoints()
    assert [(c.bot_id, c.queue, c.position) for c in listing] == [("a", "x", 7), ("b", "in", 2), ("b", "other", 0)]
    assert listing[1].updated_at == CLOCK_START + MINUTE
    assert [(c.queue, c.position) for c in store.checkpoints("b")] == [("in", 2), ("other", 0)]
    assert store.checkpoints("nobody") == []


# -- bots -----------------------------------------------------------------------------------------
def test_bot_records(store: Store) -> None:
    assert store.bot("b") is None
    assert store.bots() == []

    store.ensure_bot("b", "pipe")
    store.ensure_bot("a", None)
    store.set_paused("b", True)
    store.ensure_bot("b", "pipe2")  # notes the pipeline, keeps the rest

    info = store.bot("b")
    assert info == BotInfo(
        bot_id="b", pipeline="pipe2", paused=True, lease_owner=None, lease_expires_at=None, last_run_at=None,
        last_error=None, last_error_at=None, error_count=0, runs=0, events_in=0, events_out=0, state={},
    )
    assert [bot.bot_id for bot in store.bots()] == ["a", "b"]
    store.set_paused("b", False)
    assert store.bot("b").paused is False


def test_bot_controls_report_pause_operator_resets_and_lease_owner(store: Store) -> None:
    running_bot(store)
    store.ensure_bot("idle", None)
    assert store.bot_controls() == {"b": (False, 0, "o1"), "idle": (False, 0, None)}

    store.set_paused("b", True)
    assert store.bot_controls()["b"] == (True, 0, "o1")

    store.commit_run(RunCommit(bot_id="b", owner="o1", in_queue="in", expected=0, position=1))
    store.init_checkpoint("b", "in", 0)
    store.set_checkpoint("b", "new", 0)  # creating is not a reset; neither is a run moving it
    assert store.bot_controls()["b"] == (True, 0, "o1")

    store.set_checkpoint("b", "in", 0)
    store.set_checkpoint("b", "new", 0)
    store.set_paused("b", False)
    store.release_leases("o1", ["b"])
    assert store.bot_controls() == {"b": (False, 2, None), "idle": (False, 0, None)}


# -- leases ---------------------------------------------------------------------------------------
def test_lease_is_exclusive_until_it_expires(store: Store, clock: FakeClock) -> None:
    assert store.acquire_lease("b", "o1", 1_000)
    info = store.bot("b")
    assert (info.lease_owner, info.lease_expires_at) == ("o1", CLOCK_START + 1_000)

    clock.advance(999)
    assert not store.acquire_lease("b", "o2", 1_000)
    assert store.bot("b").lease_owner == "o1"
    assert store.acquire_lease("b", "o1", 1_000)  # already ours: renewed
    assert store.bot("b").lease_expires_at == CLOCK_START + 1_999

    clock.advance(999)
    assert not store.acquire_lease("b", "o2", 1_000)
    clock.advance(1)
    assert store.acquire_lease("b", "o2", 1_000)
    assert store.bot("b").lease_owner == "o2"
    assert not store.acquire_lease("b", "o1", 1_000)


def test_is_stale_lets_a_new_owner_take_over_a_live_lease(store: Store, clock: FakeClock) -> None:
    asked: list[str] = []

    def holder_is(name: str):
        def is_stale(holder: str) -> bool:
            asked.append(holder)
            return holder == name
        return is_stale

    assert store.acquire_lease("b", "o1", 10 * MINUTE)
    assert not store.acquire_lease("b", "o2", 10 * MINUTE, is_stale=holder_is("someone else"))
    assert store.bot("b").lease_owner == "o1"
    assert store.acquire_lease("b", "o2", 10 * MINUTE, is_stale=holder_is("o1"))
    assert store.bot("b").lease_owner == "o2"
    assert set(asked) == {"o1"}


def test_renew_leases_extends_held_leases_and_returns_lost_ones(store: Store, clock: FakeClock) -> None:
    assert store.acquire_lease("kept", "o1", 1_000)
    assert store.acquire_lease("taken", "o1", 1_000)
    clock.advance(1_000)
    assert store.acquire_lease("taken", "o2", 1_000)

    assert store.renew_leases("o1", ["kept", "taken", "never"], 5_000) == ["taken", "never"]
    assert store.bot("kept").lease_expires_at == clock.now + 5_000
    assert store.bot("taken").lease_owner == "o2"
    assert store.renew_leases("o1", [], 5_000) == []
    clock.advance(4_999)
    assert not store.acquire_lease("kept", "o2", 1_000)


def test_release_leases_frees_them_at_once(store: Store, clock: FakeClock) -> None:
    for bot_id in ("a", "b"):
        assert store.acquire_lease(bot_id, "o1", 10 * MINUTE)
    assert store.acquire_lease("c", "o2", 10 * MINUTE)

    store.release_leases("o1", ["a", "c"])  # "c" is not o1's: untouched

    assert store.acquire_lease("a", "o2", 10 * MINUTE)
    assert not store.acquire_lease("b", "o2", 10 * MINUTE)
    assert store.bot("c").lease_owner == "o2"
    assert store.renew_leases("o1", ["a", "b"], 10 * MINUTE) == ["a"]


# -- commit_run ---------------------------------------------------------------------------------------
def test_commit_run_writes_outputs_checkpoint_state_and_statistics_together(store: Store, clock: FakeClock) -> None:
    _, last_in = running_bot(store)
    clock.advance(MINUTE)
    outputs = [PendingEvent("out", '{"n":0}'), PendingEvent("alerts", '{"a":1}', CLOCK_START - 7),
               PendingEvent("out", '{"n":1}', correlation_json='{"source":"in","start":1,"units":2}')]

    first, last = store.commit_run(RunCommit(
        bot_id="b", owner="o1", in_queue="in", expected=0, position=last_in, outputs=outputs,
        state={"cursor": "x"}, events_in=3,
    ))

    out, alerts = everything(store, "out"), everything(store, "alerts")
    assert [e.payload_json for e in out] == ['{"n":0}', '{"n":1}'] and [e.payload for e in alerts] == [{"a": 1}]
    assert out[0].seq == first < alerts[0].seq < out[1].seq == last  # appended in order
    assert alerts[0].event_source_timestamp == CLOCK_START - 7
    assert out[1].correlation_json == outputs[2].correlation_json
    assert store.get_checkpoint("b", "in") == last_in
    info = store.bot("b")
    assert (info.state, info.runs, info.events_in, info.events_out, info.last_run_at) == (
        {"cursor": "x"}, 1, 3, 3, CLOCK_START + MINUTE
    )

    store.commit_run(RunCommit(bot_id="b", owner="o1", in_queue="in", expected=last_in, position=last_in, events_in=0))
    info = store.bot("b")
    assert (info.state, info.runs, info.events_in, info.events_out) == ({"cursor": "x"}, 2, 3, 3)  # state None: kept


def test_commit_run_of_a_source_bot_has_no_checkpoint(store: Store) -> None:
    store.ensure_bot("src", None)
    assert store.acquire_lease("src", "o1", 10 * MINUTE)

    first, last = store.commit_run(RunCommit(bot_id="src", owner="o1", outputs=[PendingEvent("q", "1")]))

    assert seqs(everything(store, "q")) == [first] and first == last
    assert store.checkpoints() == []
    assert store.commit_run(RunCommit(bot_id="src", owner="o1")) == (0, 0)
    assert store.bot("src").runs == 2


def test_commit_run_by_an_owner_without_the_lease_writes_nothing(store: Store, clock: FakeClock) -> None:
    _, last_in = running_bot(store)
    clock.advance(10 * MINUTE)
    assert store.acquire_lease("b", "o2", 10 * MINUTE)  # o1's lease expired and o2 took it
    store.ensure_bot("other", None)
    before = snapshot(store)
    run = RunCommit(bot_id="b", owner="o1", in_queue="in", expected=0, position=last_in,
                    outputs=[PendingEvent("out", "1"), PendingEvent("fresh", "2")], state={"s": 1}, events_in=3)

    with pytest.raises(LeaseLost, match="'b'"):
        store.commit_run(run)
    with pytest.raises(LeaseLost):
        store.commit_run(RunCommit(bot_id="other", owner="o1", outputs=[PendingEvent("out", "1")]))
    with pytest.raises(LeaseLost):
        store.commit_run(RunCommit(bot_id="unknown", owner="o1", outputs=[PendingEvent("out", "1")]))

    assert snapshot(store) == before
    assert store.get_checkpoint("b", "in") == 0
    assert store.queue_head("fresh") == 0


def test_commit_run_after_a_checkpoint_reset_writes_nothing(store: Store) -> None:
    _, last_in = running_bot(store)
    store.set_checkpoint("b", "in", 1)  # an operator reset while the run was in flight
    before = snapshot(store)

    with pytest.raises(CheckpointMoved, match="'b'"):
        store.commit_run(RunCommit(bot_id="b", owner="o1", in_queue="in", expected=0, position=last_in,
                                   outputs=[PendingEvent("out", "1")], state={"s": 1}, events_in=3))
    with pytest.raises(CheckpointMoved):  # no checkpoint at all on that queue
        store.commit_run(RunCommit(bot_id="b", owner="o1", in_queue="elsewhere", expected=0, position=1,
                                   outputs=[PendingEvent("out", "1")]))

    assert snapshot(store) == before
    assert store.get_checkpoint("b", "in") == 1
    store.commit_run(RunCommit(bot_id="b", owner="o1", in_queue="in", expected=1, position=last_in))
    assert store.get_checkpoint("b", "in") == last_in


def test_failures_count_until_a_run_commits(store: Store, clock: FakeClock) -> None:
    running_bot(store)

    assert store.record_failure("b", "boom 1") == 1
    clock.advance(MINUTE)
    assert store.record_failure("b", "boom 2") == 2
    info = store.bot("b")
    assert (info.error_count, info.last_error, info.last_error_at) == (2, "boom 2", CLOCK_START + MINUTE)
    assert store.record_failure("new-bot", "boom") == 1  # creates the record

    store.commit_run(RunCommit(bot_id="b", owner="o1", in_queue="in", expected=0, position=1, events_in=1))
    info = store.bot("b")
    assert (info.error_count, info.runs, info.events_in) == (0, 1, 1)


# -- append listeners ---------------------------------------------------------------------------------
def test_append_listeners_hear_the_new_heads_after_the_commit(backend: Backend, store: Store) -> None:
    other = backend.open()
    heard: list[tuple[dict[str, int], dict[str, int]]] = []
    # What another connection sees while the listener runs: the commit must be visible already.
    store.add_append_listener(lambda heads: heard.append((dict(heads), {q: other.queue_head(q) for q in heads})))

    _, last = store.append("a", [1, 2])
    assert heard == [({"a": last}, {"a": last})]

    heard.clear()
    store.append_events([PendingEvent("a", "3"), PendingEvent("b", "4"), PendingEvent("a", "5")])
    a_head, b_head = store.queue_head("a"), store.queue_head("b")
    assert heard == [({"a": a_head, "b": b_head}, {"a": a_head, "b": b_head})]

    heard.clear()
    running_bot(store, n=0)
    heard.clear()
    _, last = store.commit_run(RunCommit(bot_id="b", owner="o1", outputs=[PendingEvent("c", "6")]))
    assert heard == [({"c": last}, {"c": last})]


def test_append_listeners_are_not_called_when_nothing_is_committed(store: Store) -> None:
    running_bot(store, n=0)
    store.set_checkpoint("b", "in", 5)
    heard: list = []
    store.add_append_listener(heard.append)

    with pytest.raises(CheckpointMoved):
        store.commit_run(RunCommit(bot_id="b", owner="o1", in_queue="in", expected=0, position=1,
                                   outputs=[PendingEvent("out", "1")]))
    with pytest.raises(LeaseLost):
        store.commit_run(RunCommit(bot_id="b", owner="o2", outputs=[PendingEvent("out", "1")]))
    store.commit_run(RunCommit(bot_id="b", owner="o1", in_queue="in", expected=5, position=5))  # no outputs

    assert heard == []


# -- change detection ---------------------------------------------------------------------------------
def test_changed_since_notices_commits_from_any_connection(backend: Backend, store: Store) -> None:
    other = backend.open()
    _, token = store.changed_since(None)

    assert store.changed_since(token) == (False, token)

    other.append("q", [1])
    changed, token = store.changed_since(token)
    assert changed
    assert store.changed_since(token)[0] is False

    other.set_checkpoint("b", "q", 1)  # anything, not only appends
    changed, token = store.changed_since(token)
    assert changed

    store.append("q", [2])  # this object's own commits count too
    changed, token = store.changed_since(token)
    assert changed
    assert store.changed_since(token)[0] is False


# -- lifecycle and threads ----------------------------------------------------------------------------
def test_a_fresh_database_is_at_the_newest_schema_and_reopening_keeps_everything(
    backend: Backend, store: Store
) -> None:
    assert store.schema_version() == backend.newest_schema
    _, last = store.append("q", [1, 2])
    store.set_checkpoint("b", "q", last)
    store.close()

    reopened = backend.open()
    again = backend.open()
    assert reopened.schema_version() == again.schema_version() == backend.newest_schema
    assert [event.payload for event in everything(again, "q")] == [1, 2]
    assert again.get_checkpoint("b", "q") == last
    assert again.append("q", [3])[0] > last


def test_methods_are_thread_safe(store: Store) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def writer(name: str) -> None:
        try:
            barrier.wait(timeout=10)
            for batch in range(25):
                store.append("shared", [{"w": name, "n": batch * 4 + i} for i in range(4)])
                store.read("shared", 0, limit=10)
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    events = everything(store, "shared")
    assert len(events) == len(set(seqs(events))) == 400
    for name in ("w0", "w1", "w2", "w3"):
        assert [e.payload["n"] for e in events if e.payload["w"] == name] == list(range(100))
    assert store.queues()[0].depth == 400


def open_descriptors() -> int:
    import os

    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("says_done", [True, False], ids=["close_thread", "thread-ends"])
def test_threads_that_end_leave_no_connection_or_descriptor_behind(store: Store, says_done: bool) -> None:
    store.append("q", [1])
    store.read("q", 0)
    before = open_descriptors()

    def work() -> None:
        assert store.read("q", 0)[0].payload == 1
        store.append("q", [2])
        if says_done:
            store.close_thread()

    for _ in range(100):  # like a server's worker threads, which come and go
        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
    assert open_descriptors() - before <= 4  # a connection's worth at most, never one per thread
    assert len(everything(store, "q")) == 101
