"""The store contract for partner streams (runs once per backend): creation at "now", checkpoints
that only move forward within a generation, resets that bump it, and leases."""

from __future__ import annotations

import hashlib

import pytest

from leo_runtime.errors import CheckpointMoved, Conflict, NotFound
from leo_runtime.store import PendingEvent, RunCommit, Store
from leo_runtime.store.base_streams import FanOut, StreamTarget

from .conftest import FakeClock


def partner(store: Store, name: str = "acme") -> int:
    return store.create_partner(name, hashlib.sha256(name.encode()).digest(), None).id


def test_a_stream_starts_now_with_every_partition_at_that_position(store: Store, clock: FakeClock) -> None:
    owner = partner(store)
    store.append("inventory.changes", [1, 2, 3])
    created = store.create_stream("st_1", owner, "inventory", '{"a":1}', 3, None)
    assert (created.id, created.partner_id, created.object_type, created.query_json, created.generation,
            created.start_position, created.created_at) == ("st_1", owner, "inventory", '{"a":1}', 1, 3, clock.now)
    assert [(p.partition, p.checkpoint, p.lease_id) for p in created.partitions] == [(0, 3, None), (1, 3, None), (2, 3, None)]
    assert store.stream("st_1") == created
    at = store.create_stream("st_2", owner, "order", None, 1, 1)
    assert at.start_position == 1 and at.partitions[0].checkpoint == 1
    assert [s.id for s in store.streams()] == ["st_1", "st_2"]
    assert [s.id for s in store.streams(owner)] == ["st_1", "st_2"] and store.streams(owner + 1) == []
    with pytest.raises(Conflict):
        store.create_stream("st_1", owner, "inventory", None, 1, None)
    assert store.stream("nope") is None


def test_live_ids_leave_out_revoked_partners_and_deleted_streams(store: Store) -> None:
    acme, globex = partner(store), partner(store, "globex")
    store.create_stream("st_a", acme, "inventory", None, 1, None)
    store.create_stream("st_b", globex, "inventory", None, 1, None)
    store.create_stream("st_c", acme, "inventory", None, 1, None)
    assert store.live_stream_ids() == ("st_a", "st_b", "st_c")
    store.revoke_partner("globex")
    assert store.delete_stream("st_a") is True and store.delete_stream("st_a") is False
    assert store.live_stream_ids() == ("st_c",)
    assert store.stream("st_a") is None


def test_a_checkpoint_moves_forward_only_within_its_generation(store: Store) -> None:
    owner = partner(store)
    store.append("q", list(range(10)))
    store.create_stream("st_1", owner, "inventory", None, 2, 0)
    assert store.commit_stream_checkpoint("st_1", 1, 5, 1, None).checkpoint == 5
    assert store.commit_stream_checkpoint("st_1", 1, 5, 1, None).checkpoint == 5  # again: harmless
    with pytest.raises(Conflict, match="behind the checkpoint"):
        store.commit_stream_checkpoint("st_1", 1, 4, 1, None)
    with pytest.raises(Conflict, match="generation 2 is stale"):
        store.commit_stream_checkpoint("st_1", 1, 6, 2, None)
    reset = store.reset_stream("st_1", {1: 2})
    assert reset.generation == 2 and [p.checkpoint for p in reset.partitions] == [0, 2]
    with pytest.raises(Conflict, match="generation 1 is stale"):
        store.commit_stream_checkpoint("st_1", 1, 6, 1, None)
    assert store.commit_stream_checkpoint("st_1", 1, 3, 2, None).checkpoint == 3
    with pytest.raises(NotFound):
        store.commit_stream_checkpoint("st_1", 2, 3, 2, None)
    with pytest.raises(NotFound):
        store.reset_stream("st_1", {5: 1})
    assert store.stream("st_1").generation == 2  # the refused reset wrote nothing
    with pytest.raises(NotFound):
        store.reset_stream("nope", {0: 1})


def test_leases_are_exclusive_until_they_expire_or_are_released(store: Store, clock: FakeClock) -> None:
    owner = partner(store)
    store.create_stream("st_1", owner, "inventory", None, 1, 0)
    held = store.lease_stream_partition("st_1", 0, "L1", 10_000)
    assert (held.lease_id, held.lease_expires_at) == ("L1", clock.now + 10_000)
    with pytest.raises(Conflict, match="leased by another consumer"):
        store.lease_stream_partition("st_1", 0, "L2", 10_000)
    with pytest.raises(Conflict, match="send the Lease-Id"):
        store.commit_stream_checkpoint("st_1", 0, 1, 1, None)
    with pytest.raises(Conflict, match="not the live lease"):
        store.commit_stream_checkpoint("st_1", 0, 1, 1, "L2")
    assert store.commit_stream_checkpoint("st_1", 0, 1, 1, "L1").checkpoint == 1
    clock.advance(5_000)
    renewed = store.lease_stream_partition("st_1", 0, "ignored", 10_000, renew="L1")
    assert (renewed.lease_id, renewed.lease_expires_at) == ("L1", clock.now + 10_000)
    clock.advance(10_000)  # expired: anyone may take it, and its old holder is refused
    assert store.lease_stream_partition("st_1", 0, "L2", 10_000).lease_id == "L2"
    with pytest.raises(Conflict, match="no longer live"):
        store.lease_stream_partition("st_1", 0, "x", 10_000, renew="L1")
    with pytest.raises(Conflict, match="not the live lease"):
        store.commit_stream_checkpoint("st_1", 0, 2, 1, "L1")
    assert store.release_stream_partition("st_1", 0, "L1") is False
    assert store.release_stream_partition("st_1", 0, "L2") is True
    with pytest.raises(Conflict, match="no longer live"):
        store.commit_stream_checkpoint("st_1", 0, 2, 1, "L2")
    assert store.commit_stream_checkpoint("st_1", 0, 2, 1, None).checkpoint == 2
    with pytest.raises(NotFound):
        store.lease_stream_partition("st_1", 1, "L3", 1000)


def test_stream_records_are_positions_and_texts_bounded_by_count_and_size(store: Store) -> None:
    first, _ = store.append("streams.st_1.0", [{"n": i, "pad": "x" * 100} for i in range(10)])
    store.append("other", [1])
    rows = store.stream_records("streams.st_1.0", first, 3, 1_000_000)
    assert [seq for seq, _ in rows] == [first + 1, first + 2, first + 3]
    assert [text.decode() for _, text in rows] == [event.payload_json for event in store.read("streams.st_1.0", first, 3)]
    size = len(rows[0][1])
    assert len(store.stream_records("streams.st_1.0", 0, 100, 2 * size + 1)) == 3  # the one that reaches the bound is in
    assert len(store.stream_records("streams.st_1.0", 0, 100, 1)) == 1  # at least one
    assert store.stream_records("nothing.here", 0, 10, 100) == []


def test_the_stream_quota_holds_under_concurrent_creates_from_several_stores(backend) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from leo_runtime.errors import QuotaExceeded

    stores = [backend.open() for _ in range(4)]  # as several processes (or hosts) would
    owner = partner(stores[0])

    def create(index: int) -> str:
        try:
            return stores[index % 4].create_stream(f"st_{index}", owner, "inventory", None, 1, None, max_streams=7).id
        except QuotaExceeded as exc:
            assert (exc.limit, exc.maximum) == ("streams", 7)
            return "refused"

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(create, range(64)))
    assert results.count("refused") == 57 and len(stores[0].streams(owner)) == 7
    other = partner(stores[0], "globex")
    assert stores[1].create_stream("st_g", other, "inventory", None, 1, None, max_streams=7).id == "st_g"
    assert stores[0].delete_stream(next(result for result in results if result != "refused"))  # frees a place
    assert stores[2].create_stream("st_again", owner, "inventory", None, 1, None, max_streams=7).id == "st_again"


def test_streams_page_by_creation_then_id(store: Store, clock: FakeClock) -> None:
    owner, other = partner(store), partner(store, "globex")
    for index in range(7):
        store.create_stream(f"st_{index}", owner if index != 3 else other, "inventory", None, 1, None)
        if index % 2:
            clock.advance(1)  # two streams share each creation time
    mine = [s.id for s in store.streams(owner)]
    assert mine == ["st_0", "st_1", "st_2", "st_4", "st_5", "st_6"]
    pages, after = [], None
    while True:
        page = store.streams(owner, after=after, limit=2)
        if not page:
            break
        pages.append([s.id for s in page])
        after = (page[-1].created_at, page[-1].id)
    assert pages == [["st_0", "st_1"], ["st_2", "st_4"], ["st_5", "st_6"]]
    assert [len(s.partitions) for s in store.streams(after=None, limit=3)] == [1, 1, 1]


def test_the_streams_version_and_targets_follow_creates_deletes_and_revocations(store: Store) -> None:
    acme, globex = partner(store), partner(store, "globex")
    store.create_partner("nyc", b"n" * 32, '{"warehouse": "NYC"}')
    nyc = store.partner("nyc").id  # type: ignore[union-attr]
    store.append("inventory.changes", [1, 2])
    version = store.streams_version()
    store.create_stream("st_b", acme, "inventory", '{"a":1}', 3, None)
    store.create_stream("st_a", nyc, "inventory", None, 1, 1)
    store.create_stream("st_g", globex, "order", None, 2, None)
    assert store.streams_version() != version
    assert store.stream_object_types() == ("inventory", "order")
    assert store.stream_targets("inventory") == [
        StreamTarget("st_a", 1, None, '{"warehouse": "NYC"}', 1),  # the cursor starts at the stream's start
        StreamTarget("st_b", 3, '{"a":1}', None, 2),
    ]
    version = store.streams_version()
    store.revoke_partner("globex")
    assert store.streams_version() != version and store.stream_object_types() == ("inventory",)
    version = store.streams_version()
    assert store.delete_stream("st_a") and store.streams_version() != version
    version = store.streams_version()
    assert not store.delete_stream("st_a") and store.streams_version() == version
    assert [t.id for t in store.stream_targets("inventory")] == ["st_b"] and store.stream_targets("order") == []


def test_a_fan_out_commits_records_and_cursors_with_the_writer_checkpoint(store: Store) -> None:
    acme = partner(store)
    first, last = store.append("inventory.changes", [{"key": "A"}, {"key": "B"}, {"key": "C"}])
    store.create_stream("st_live", acme, "inventory", None, 2, None)
    store.create_stream("st_back", acme, "inventory", None, 1, 0)
    store.create_stream("st_gone", acme, "inventory", None, 1, 0)
    writer = "streams:inventory"
    assert store.acquire_lease(writer, "me", 60_000)
    store.init_checkpoint(writer, "inventory.changes", last)
    texts = [event.payload_json for event in store.read("inventory.changes", 0)]
    store.delete_stream("st_gone")  # deleted while the writer's run was in flight
    fan = FanOut(
        {"st_back": [PendingEvent("streams.st_back.0", text) for text in texts],
         "st_gone": [PendingEvent("streams.st_gone.0", texts[0])]},
        [("st_back", 0, None), ("st_gone", 0, 2)],
    )
    store.commit_run(RunCommit(bot_id=writer, owner="me", in_queue="inventory.changes", expected=last, position=last,
                               ops=[fan]))
    assert [e.payload_json for e in store.read("streams.st_back.0", 0)] == texts
    assert store.read("streams.st_gone.0", 0) == [] and store.queue_head("streams.st_gone.0") == 0
    assert {t.id: t.cursor for t in store.stream_targets("inventory")} == {"st_back": None, "st_live": last}
    # A cursor that is not where the writer thought: nothing of the run is written.
    stale = FanOut({"st_live": [PendingEvent("streams.st_live.1", texts[0])]}, [("st_live", first, None)])
    with pytest.raises(CheckpointMoved):
        store.commit_run(RunCommit(bot_id=writer, owner="me", in_queue="inventory.changes", expected=last,
                                   position=last, ops=[stale]))
    assert store.read("streams.st_live.1", 0) == [] and store.stream_targets("inventory")[1].cursor == last


def test_a_stream_starting_now_shares_a_log_only_when_its_writer_has_written_every_change(store: Store) -> None:
    from leo_runtime.store.base_streams import ShareWith, shared_log

    share = ShareWith("streams:inventory", "inventory.changes")
    acme = partner(store)
    nyc = store.create_partner("nyc", b"n" * 32, '{"warehouse":"NYC"}').id
    store.append("inventory.changes", [1, 2, 3])
    # No writer yet and no stream to serve: the writer is set to start at the stream's start.
    first = store.create_stream("st_1", acme, "inventory", None, 2, None, share=share)
    assert (first.log, first.joined_at) == (shared_log("inventory", None, None, 2), first.start_position)
    assert store.get_checkpoint("streams:inventory", "inventory.changes") == first.start_position == 3
    assert store.stream_targets("inventory")[0].cursor is None  # it follows the writer at once
    scoped = store.create_stream("st_2", nyc, "inventory", None, 2, None, share=share)
    assert scoped.log == shared_log("inventory", None, '{"warehouse":"NYC"}', 2) != first.log
    # A change the writer has not written yet: a new stream gets queues of its own and a cursor.
    store.append("inventory.changes", [4])
    behind = store.create_stream("st_3", acme, "inventory", None, 2, None, share=share)
    assert behind.log is None and behind.joined_at is None
    assert {t.id: t.cursor for t in store.stream_targets("inventory")}["st_3"] == behind.start_position
    # Written (the writer's checkpoint at the head): shared again. A start in the past never is.
    store.set_checkpoint("streams:inventory", "inventory.changes", store.queue_head("inventory.changes"))
    assert store.create_stream("st_4", acme, "inventory", None, 2, None, share=share).log == first.log
    assert store.create_stream("st_5", acme, "inventory", None, 2, 0, share=share).log is None
    assert [s.log for s in store.streams()] == [first.log, scoped.log, None, first.log, None]
