"""Checks shared by the object tests: objects and their change queues must always agree."""

from __future__ import annotations

import json
from typing import Any

from leo_runtime.store import Store


def change_records(store: Store, object_type: str = "inventory") -> list[dict[str, Any]]:
    """Every change record of a type, oldest first."""
    return [event.payload for event in store.read(f"{object_type}.changes", 0, 10_000_000)]


def live_objects(store: Store, object_type: str = "inventory") -> dict[str, Any]:
    """{key: data} of the live objects of a type."""
    return {row.key: json.loads(row.data_json) for row in store.list_objects(object_type, limit=10_000_000)}


def assert_objects_agree_with_changes(store: Store, object_type: str = "inventory") -> None:
    """Every object version has exactly one change record, and the row points at the newest."""
    events = store.read(f"{object_type}.changes", 0, 10_000_000)
    by_key: dict[str, list] = {}
    for event in events:
        by_key.setdefault(event.payload["key"], []).append(event)
    rows = store.list_objects(object_type, deleted=True, limit=10_000_000)
    assert {row.key for row in rows} == set(by_key)
    for row in rows:
        history = by_key[row.key]
        assert [event.payload["version"] for event in history] == list(range(1, row.version + 1)), row.key
        assert history[-1].seq == row.seq
        assert (history[-1].payload["op"] == "deleted") == row.deleted
        assert history[-1].payload["data"] == json.loads(row.data_json)
