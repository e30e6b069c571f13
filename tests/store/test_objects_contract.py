"""The object store's contract (Store.apply_objects, commit_run with objects), once per backend.

Objects and their change queues must always agree: every version of every key has exactly one
change record in ``T.changes``, written in the same transaction as the object row.
"""

from __future__ import annotations

import json

import pytest

from leo_runtime import objects
from leo_runtime.errors import LeaseLost, ObjectInputError
from leo_runtime.store import ObjectBatch, RunCommit, Store

from ..objects_helpers import assert_objects_agree_with_changes, change_records
from .conftest import CLOCK_START, FakeClock
from .test_store_contract import snapshot


def records(store: Store, object_type: str = "inventory") -> list[dict]:
    return change_records(store, object_type)


def ingest(store: Store, items: list, **kwargs) -> objects.IngestResult:
    return objects.ingest(store, "inventory", "sku", items, **kwargs)


def test_new_changed_and_identical_objects(store: Store, clock: FakeClock) -> None:
    first = ingest(store, [{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 2}])
    assert first == objects.IngestResult(created=2)
    clock.advance(1000)
    again = ingest(store, [{"quantity": 1, "sku": "A"}, {"sku": "B", "quantity": 3, "warehouse": "NYC"}])
    assert again == objects.IngestResult(updated=1, unchanged=1)

    created, _, updated = records(store)
    assert created == {
        "object_type": "inventory", "key": "A", "op": "created", "version": 1,
        "changed_at": "2026-01-01T00:00:00.000Z", "changed_fields": ["quantity", "sku"],
        "data": {"sku": "A", "quantity": 1},
    }
    assert updated["op"] == "updated" and updated["version"] == 2
    assert updated["changed_fields"] == ["quantity", "warehouse"]
    assert updated["changed_at"] == "2026-01-01T00:00:01.000Z"
    row = store.get_object("inventory", "B")
    assert (row.version, row.changed_at, row.deleted) == (2, CLOCK_START + 1000, False)
    assert_objects_agree_with_changes(store)


def test_identical_content_is_no_change_whatever_its_key_order_or_spacing(store: Store) -> None:
    text = '{"sku": "A",   "n": {"b": 1, "a": [1, 2.5]}}'
    ingest(store, [objects.SourceObject(json.loads(text), "f:1", text)])
    same = '{"n":{"a":[1,2.5],"b":1},"sku":"A"}'
    assert ingest(store, [objects.SourceObject(json.loads(same), "f:1", same)]) == objects.IngestResult(unchanged=1)
    assert store.get_object("inventory", "A").data_json == text  # stored as it came, never re-encoded
    assert len(records(store)) == 1


def test_a_type_change_is_a_change(store: Store) -> None:
    ingest(store, [{"sku": "A", "flag": 1, "price": 1.0}])
    result = ingest(store, [{"sku": "A", "flag": True, "price": 1.0}])
    assert result == objects.IngestResult(updated=1)
    assert records(store)[-1]["changed_fields"] == ["flag"]
    assert ingest(store, [{"sku": "A", "flag": True, "price": 1}]) == objects.IngestResult(updated=1)


def test_delete_keeps_the_last_state_and_a_new_push_recreates(store: Store) -> None:
    ingest(store, [{"sku": "A", "quantity": 4}])
    assert objects.delete(store, "inventory", "A") is True
    assert objects.delete(store, "inventory", "A") is False  # already deleted: nothing written
    assert objects.delete(store, "inventory", "nope") is False
    row = store.get_object("inventory", "A")
    assert row.deleted and row.version == 2 and json.loads(row.data_json) == {"sku": "A", "quantity": 4}
    deleted = records(store)[-1]
    assert deleted["op"] == "deleted" and deleted["data"] == {"sku": "A", "quantity": 4}
    # The same content again is a change now: the object comes back.
    assert ingest(store, [{"sku": "A", "quantity": 4}]) == objects.IngestResult(created=1)
    assert [r["op"] for r in records(store)] == ["created", "deleted", "created"]
    assert [r["version"] for r in records(store)] == [1, 2, 3]
    assert_objects_agree_with_changes(store)


def test_a_snapshot_deletes_the_keys_it_does_not_hold_across_many_pages(store: Store) -> None:
    count = 5_000  # several pages of rows and of deletes
    assert ingest(store, [{"sku": f"K{n:05d}", "n": n} for n in range(count)]) == objects.IngestResult(created=count)
    kept = [{"sku": f"K{n:05d}", "n": n + (n % 100 == 0)} for n in range(count) if n % 3]
    result = ingest(store, kept, snapshot=True)
    assert result.deleted == len(range(0, count, 3))
    assert result.updated == sum(1 for n in range(count) if n % 3 and n % 100 == 0)
    assert result.unchanged == len(kept) - result.updated
    assert len(store.list_objects("inventory", limit=count)) == len(kept)
    assert_objects_agree_with_changes(store)
    # The same snapshot again changes nothing; a partial push never deletes.
    assert ingest(store, kept, snapshot=True) == objects.IngestResult(unchanged=len(kept))
    assert ingest(store, kept[:10]) == objects.IngestResult(unchanged=10)


def test_a_snapshot_of_another_type_leaves_this_one_alone(store: Store) -> None:
    ingest(store, [{"sku": "A"}])
    objects.ingest(store, "order", "po", [{"po": "P1"}], snapshot=True)
    assert not store.get_object("inventory", "A").deleted


def test_a_key_given_twice_in_a_snapshot_is_an_error_and_writes_nothing(store: Store) -> None:
    ingest(store, [{"sku": "A"}])
    before = snapshot(store)
    items = [{"sku": f"K{n}"} for n in range(3000)] + [{"sku": "K5", "again": True}]
    with pytest.raises(ObjectInputError, match="key 'K5' of 'inventory' appears more than once"):
        ingest(store, items, snapshot=True, source="feed.ndjson")
    with pytest.raises(ObjectInputError, match=r"^feed: key 'B'"):
        ingest(store, [{"sku": "B"}, {"sku": "B"}], snapshot=True, source="feed")
    assert snapshot(store) == before


def test_a_key_given_twice_in_a_push_applies_in_order(store: Store) -> None:
    result = ingest(store, [{"sku": "A", "n": 1}, {"sku": "A", "n": 2}, {"sku": "A", "n": 2}])
    assert result == objects.IngestResult(created=1, updated=1, unchanged=1)
    assert json.loads(store.get_object("inventory", "A").data_json) == {"sku": "A", "n": 2}
    assert_objects_agree_with_changes(store)


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"name": "x"}, "ingest: item 3: missing key field 'sku'"),
        ({"sku": ""}, "ingest: item 3: key field 'sku' is an empty string"),
        ({"sku": None}, "key field 'sku' must be a non-empty string or an integer, not null"),
        ({"sku": True}, "key field 'sku' must be a non-empty string or an integer, not a boolean"),
        ({"sku": 1.5}, "not a number"),
        ({"sku": ["A"]}, "not an array"),
        ([1, 2], "ingest: item 3: expected a JSON object, got an array"),
        ("SKU-1", "expected a JSON object, got a string"),
        ({"sku": "Z", "when": object()}, "ingest: item 3: not JSON: Type is not JSON serializable: object"),
    ],
)
def test_an_invalid_object_anywhere_writes_nothing(store: Store, item, message: str) -> None:
    ingest(store, [{"sku": "A", "n": 1}])
    before = snapshot(store)
    with pytest.raises(ObjectInputError) as caught:
        ingest(store, [{"sku": "A", "n": 2}, {"sku": "B"}, item])
    assert message in str(caught.value)
    assert snapshot(store) == before


def test_integer_keys_become_decimal_text(store: Store) -> None:
    ingest(store, [{"sku": 42}, {"sku": -7}])
    assert store.get_object("inventory", "42") is not None and store.get_object("inventory", "-7") is not None


def test_an_error_raised_by_the_rows_rolls_everything_back(store: Store) -> None:
    before = snapshot(store)

    def rows():
        for n in range(4500):  # past two pages, already written inside the transaction
            yield {"sku": f"K{n}"}
        raise ObjectInputError("broken at the end", "feed:4501")

    with pytest.raises(ObjectInputError, match="feed:4501"):
        ingest(store, rows())
    assert snapshot(store) == before


def test_objects_commit_with_the_run_or_not_at_all(store: Store) -> None:
    store.ensure_bot("detector", "p")
    assert store.acquire_lease("detector", "o1", 60_000)
    batch = objects.batch("inventory", "sku", [{"sku": "A"}, {"sku": "B"}], source="feed")
    first, last = store.commit_run(RunCommit(bot_id="detector", owner="o1", state={"cursor": 2}, objects=[batch]))
    assert (first, last) == (store.queue_head("inventory.changes") - 1, store.queue_head("inventory.changes"))
    assert batch.counts.created == 2
    assert store.bot("detector").state == {"cursor": 2} and store.bot("detector").events_out == 2

    assert store.acquire_lease("detector", "o2", 60_000, is_stale=lambda owner: True)
    before = snapshot(store)
    lost = objects.batch("inventory", "sku", [{"sku": "C"}], source="feed")
    with pytest.raises(LeaseLost):
        store.commit_run(RunCommit(bot_id="detector", owner="o1", state={"cursor": 3}, objects=[lost]))
    assert snapshot(store) == before and store.get_object("inventory", "C") is None


def test_list_objects_pages_in_key_order(store: Store) -> None:
    ingest(store, [{"sku": key} for key in ["b", "a", "é", "c"]])
    objects.delete(store, "inventory", "c")
    assert [row.key for row in store.list_objects("inventory")] == ["a", "b", "é"]
    assert [row.key for row in store.list_objects("inventory", deleted=True)] == ["a", "b", "c", "é"]
    assert [row.key for row in store.list_objects("inventory", after="a", limit=1)] == ["b"]


def test_change_records_wake_readers_of_the_change_queue(store: Store) -> None:
    heard: list = []
    store.add_append_listener(heard.append)
    ingest(store, [{"sku": "A"}])
    ingest(store, [{"sku": "A"}])  # no change: nobody is woken
    assert heard == [{"inventory.changes": store.queue_head("inventory.changes")}]


def test_an_empty_batch_writes_nothing(store: Store) -> None:
    assert store.apply_objects([ObjectBatch("inventory", objects.change_record)]) == (0, 0)
    assert store.queues() == []


def test_an_empty_snapshot_is_refused_and_writes_nothing(store: Store) -> None:
    ingest(store, [{"sku": "A"}, {"sku": "B"}])
    before = snapshot(store)
    with pytest.raises(ObjectInputError, match="feed: holds no objects: a full read without any would delete every"):
        ingest(store, [], snapshot=True, source="feed")
    assert snapshot(store) == before


def test_sources_in_any_key_order_are_compared_exactly(store: Store) -> None:
    import random

    keys = [f"K{n:05d}" for n in range(6000)]
    ingest(store, [{"sku": key, "n": 0} for key in keys])
    # Sorted stretches (range scans), a shuffled middle (key lookups), sorted again (ranges retried).
    middle = keys[2000:4000]
    random.Random(3).shuffle(middle)
    order = keys[:2000] + middle + keys[4000:]
    changed = set(order[::97])
    result = ingest(store, [{"sku": key, "n": int(key in changed)} for key in order if key != "K00007"], snapshot=True)
    assert (result.updated, result.deleted, result.created) == (len(changed - {"K00007"}), 1, 0)
    assert result.unchanged == len(keys) - 1 - result.updated
    assert_objects_agree_with_changes(store)
