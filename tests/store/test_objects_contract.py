"""The object store's contract (Store.apply_objects, commit_run with objects), once per backend.

Objects and their change queues must always agree: every version of every key has exactly one
change record in ``T.changes``, written in the same transaction as the object row.
"""

from __future__ import annotations

import json

import pytest

from leo_runtime import objects
from leo_runtime.errors import LeaseLost, ObjectInputError
from leo_runtime.jsonio import JSONInputError
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


# -- NDJSON pages: lines recognised by their raw hash, parsed only where they differ ------------------------
class Counted:
    """An `ObjectPage` that counts the lines the store asks to parse."""

    parsed = 0

    def __init__(self, page) -> None:
        self.page = page
        self.raw_hashes = page.raw_hashes

    def __len__(self) -> int:
        return len(self.page)

    def row(self, index: int):
        Counted.parsed += 1
        return self.page.row(index)


def lines_of(items: list) -> list[bytes]:
    return [item if isinstance(item, bytes) else json.dumps(item).encode() for item in items]


def apply_lines(store: Store, items: list, *, complete: bool = False, size: int = 100, key: str = "sku",
                source: str = "feed.ndjson") -> objects.IngestResult:
    """Apply NDJSON lines as pages of `size` (the change detector's path); returns the counts."""
    Counted.parsed = 0
    pages = (Counted(page) for page in objects.ndjson_pages(lines_of(items), source, key, size=size))
    batch = objects.batch_of_rows("inventory", (), complete=complete, source=source, pages=pages)
    store.apply_objects([batch])
    counts = batch.counts
    return objects.IngestResult(counts.created, counts.updated, counts.unchanged, counts.deleted)


def stock(keys, **changes) -> list[dict]:
    return [{"sku": f"K{n:04d}", "n": n, **changes.get(f"K{n:04d}", {})} for n in keys]


def test_unchanged_lines_are_not_parsed_and_only_changed_ones_are(store: Store) -> None:
    assert apply_lines(store, stock(range(1000)), complete=True) == objects.IngestResult(created=1000)
    assert apply_lines(store, stock(range(1000)), complete=True) == objects.IngestResult(unchanged=1000)
    assert Counted.parsed == 0  # every page held the stored texts, byte for byte
    changed = {f"K{n:04d}": {"n": -n - 1} for n in range(0, 1000, 97)}
    result = apply_lines(store, stock(range(1000), **changed), complete=True)
    assert result == objects.IngestResult(updated=len(changed), unchanged=1000 - len(changed))
    assert Counted.parsed == len(changed)
    assert_objects_agree_with_changes(store)


@pytest.mark.parametrize("kind", ["lines", "rows"])
def test_a_sorted_full_read_deletes_missing_keys_at_the_start_the_middle_and_the_end(store: Store, kind: str) -> None:
    apply_lines(store, stock(range(1000)))
    gone = set(range(5)) | set(range(500, 521)) | set(range(130, 420)) | set(range(990, 1000))  # 290 > a page
    kept = stock(n for n in range(1000) if n not in gone)
    result = apply_lines(store, kept, complete=True) if kind == "lines" else ingest(store, kept, snapshot=True)
    assert result == objects.IngestResult(deleted=len(gone), unchanged=1000 - len(gone))
    assert set(live_keys(store)) == {f"K{n:04d}" for n in range(1000) if n not in gone}
    assert_objects_agree_with_changes(store)


def live_keys(store: Store) -> list[str]:
    return [row.key for row in store.list_objects("inventory", limit=100_000)]


def test_keys_added_between_pages_and_inside_them_shift_nothing(store: Store) -> None:
    apply_lines(store, stock(range(0, 2000, 2)))  # even keys
    # New odd keys at a page boundary, a run of 60 inside a page (every later line shifts by a
    # slot: looked up by hash), and one before every stored key.
    added = {99, 101, 199, 201} | set(range(301, 421, 2)) | {1999}
    items = [{"sku": "A-first", "n": 0}, *stock(sorted(set(range(0, 2000, 2)) | added))]
    result = apply_lines(store, items, complete=True)
    assert result == objects.IngestResult(created=len(added) + 1, unchanged=1000)
    assert Counted.parsed <= len(added) + 1 + 2 * 16  # the new lines, and a few around each shift
    assert apply_lines(store, items, complete=True) == objects.IngestResult(unchanged=len(items))
    assert Counted.parsed == 0
    assert_objects_agree_with_changes(store)


def test_key_order_or_spacing_alone_is_no_change_and_the_new_text_is_recognised_next_time(store: Store) -> None:
    apply_lines(store, [{"sku": "A", "n": 1, "w": "NYC"}, {"sku": "B", "n": 2}])
    reordered = [b'{"w": "NYC", "n": 1,   "sku": "A"}', b'{"sku":"B","n":2}']
    assert apply_lines(store, reordered, complete=True) == objects.IngestResult(unchanged=2)
    assert Counted.parsed == 2 and len(records(store)) == 2  # parsed, compared by content: no change record
    assert apply_lines(store, reordered, complete=True) == objects.IngestResult(unchanged=2)
    assert Counted.parsed == 0  # the texts as they come now are the ones recognised
    assert json.loads(store.get_object("inventory", "A").data_json) == {"sku": "A", "n": 1, "w": "NYC"}


def test_a_page_boundary_inside_a_run_of_equal_keys(store: Store) -> None:
    apply_lines(store, stock(range(10)))
    before = snapshot(store)
    twice = [*stock(range(4)), {"sku": "K0003", "n": 33}, *stock(range(4, 10))]  # K0003 ends page 1, starts page 2
    with pytest.raises(ObjectInputError, match="key 'K0003' of 'inventory' appears more than once"):
        apply_lines(store, twice, complete=True, size=4)
    assert snapshot(store) == before
    # A partial read applies them in order: K0003 changes, then changes back (two records).
    back = [*stock(range(4)), {"sku": "K0003", "n": 33}, {"sku": "K0003", "n": 3}, *stock(range(4, 10))]
    assert apply_lines(store, back, size=4) == objects.IngestResult(updated=2, unchanged=10)
    assert json.loads(store.get_object("inventory", "K0003").data_json)["n"] == 3
    assert [r["op"] for r in records(store) if r["key"] == "K0003"] == ["created", "updated", "updated"]
    assert_objects_agree_with_changes(store)


def test_an_unsorted_read_after_a_sorted_start_deletes_exactly_what_it_misses(store: Store) -> None:
    import random

    apply_lines(store, stock(range(3000)))
    head = [n for n in range(1000) if n % 50]  # in order, with gaps (deletes) in it
    tail = [n for n in range(1000, 3000) if n % 70]
    random.Random(5).shuffle(tail)
    changed = {f"K{n:04d}": {"n": -1} for n in (1, 2999, 1500)}
    result = apply_lines(store, [{"sku": "A-new", "n": 0}, *stock(head + tail, **changed)], complete=True)
    gone = {n for n in range(3000) if n not in set(head) | set(tail)}
    assert (result.created, result.updated, result.deleted) == (1, 3, len(gone))
    assert result.unchanged == len(head) + len(tail) - 3
    assert set(live_keys(store)) == {f"K{n:04d}" for n in range(3000) if n not in gone} | {"A-new"}
    again = stock(head + tail[:10] + [tail[20]] + tail[10:])  # unsorted, a key twice
    with pytest.raises(ObjectInputError, match=f"key 'K{tail[20]:04d}' of 'inventory' appears more than once"):
        apply_lines(store, again, complete=True)
    assert_objects_agree_with_changes(store)


def test_a_partial_read_that_gives_a_key_again_applies_in_order(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from leo_runtime.store import sql_objects

    monkeypatch.setattr(sql_objects, "MEMORY_ROWS", 3)  # rows set aside reach the temporary table
    apply_lines(store, [{"sku": "A", "n": 0}, {"sku": "B", "n": 0}])
    items = [{"sku": "A", "n": 1}, *stock(range(8)), {"sku": "B", "n": 0}, {"sku": "A", "n": 0}]
    result = apply_lines(store, items, size=3)
    assert result == objects.IngestResult(created=8, updated=2, unchanged=1)
    assert [(r["key"], r["op"]) for r in records(store) if r["key"] == "A"] == [("A", "created"), ("A", "updated"),
                                                                                ("A", "updated")]
    assert json.loads(store.get_object("inventory", "A").data_json) == {"sku": "A", "n": 0}
    assert_objects_agree_with_changes(store)


def test_a_bad_line_among_unchanged_ones_writes_nothing(store: Store) -> None:
    apply_lines(store, stock(range(300)))
    before = snapshot(store)
    lines = lines_of(stock(range(300)))
    lines[150] = b'{"sku": "K0150", "n": }'
    with pytest.raises(JSONInputError, match=r"feed\.ndjson:151: not JSON"):
        apply_lines(store, lines, complete=True)
    lines[150] = b'{"n": 150}'
    with pytest.raises(ObjectInputError, match=r"feed\.ndjson:151: missing key field 'sku'"):
        apply_lines(store, lines, complete=True)
    assert snapshot(store) == before


def test_blank_lines_and_crlf_endings(store: Store) -> None:
    lines = [line + b"\r" for line in lines_of(stock(range(5)))]
    lines[2:2] = [b"", b"   \r"]
    assert apply_lines(store, lines, complete=True, size=3) == objects.IngestResult(created=5)
    assert store.get_object("inventory", "K0002").data_json == '{"sku": "K0002", "n": 2}'  # stored without the \r
    assert apply_lines(store, lines, complete=True, size=3) == objects.IngestResult(unchanged=5)
    assert Counted.parsed <= 4  # the blank lines, and the few lines they shift off their slots
    assert apply_lines(store, [line.rstrip(b"\r") for line in lines], complete=True) == objects.IngestResult(unchanged=5)


def test_the_same_lines_under_another_key_field_are_never_taken_as_unchanged(store: Store) -> None:
    items = [{"sku": "A", "id": "2"}, {"sku": "B", "id": "1"}]
    apply_lines(store, items)
    result = apply_lines(store, items, complete=True, key="id")
    assert result == objects.IngestResult(created=2, deleted=2)
    assert live_keys(store) == ["1", "2"]
    assert_objects_agree_with_changes(store)


def test_rows_and_lines_of_the_same_objects_are_the_same_objects(store: Store) -> None:
    ingest(store, stock(range(50)))  # rows: no raw hash stored
    assert apply_lines(store, stock(range(50)), complete=True) == objects.IngestResult(unchanged=50)
    assert Counted.parsed == 50
    assert apply_lines(store, stock(range(50)), complete=True) == objects.IngestResult(unchanged=50)
    assert Counted.parsed == 0
    assert ingest(store, stock(range(50)), snapshot=True) == objects.IngestResult(unchanged=50)
    assert len(records(store)) == 50
