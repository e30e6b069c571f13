"""The example `leo init` scaffolds does the real job: sample inventory and order files in watched
folders become objects and change records, filtered downstream; `leo ingest` feeds the same path."""

from __future__ import annotations

import json
from pathlib import Path

from ..conftest import Project, leo, ndjson, payloads_of, wait_until
from ..objects_helpers import assert_objects_agree_with_changes, change_records, live_objects


def test_the_scaffold_detects_filters_and_keeps_objects(tmp_path: Path, leo_run) -> None:
    assert leo("init", "shop", cwd=tmp_path).returncode == 0
    project = Project(tmp_path / "shop")
    inventory_file = project.root / "data" / "inventory" / "inventory.json"
    items = json.loads(inventory_file.read_text())
    low = [item["sku"] for item in items if item["warehouse"] == "NYC" and item["quantity"] < 5]
    assert low, "the sample should show the low-stock filter at work"

    run = leo_run(project, "--port", "0")
    run.wait_ready()
    store = project.store()
    wait_until(lambda: len(live_objects(store)) == len(items), what="the inventory sample")
    wait_until(lambda: len(payloads_of(store, "inventory.low_stock")) == len(low), what="the low-stock filter")
    assert [record["key"] for record in payloads_of(store, "inventory.low_stock")] == low
    wait_until(lambda: payloads_of(store, "orders.prioritized"), what="the order sample")
    first = items[0]
    record = store.get_object("inventory", first["sku"])
    assert record is not None and json.loads(record.data_json) == first and record.version == 1

    # The ERP drops a new export: one NYC item runs low, one item is gone (snapshot: full).
    changed = next(item for item in items if item["warehouse"] == "NYC" and item["quantity"] >= 5)
    gone = items[-1]
    export = [{**item, "quantity": 1} if item is changed else item for item in items if item is not gone]
    temp = inventory_file.with_name(".inventory.json.tmp")  # written aside, renamed when complete
    temp.write_text(json.dumps(export))
    temp.rename(inventory_file)
    wait_until(lambda: store.get_object("inventory", gone["sku"]).deleted, what="the delete record")
    wait_until(lambda: payloads_of(store, "inventory.low_stock")[-1]["key"] == changed["sku"], what="the new low item")
    update = next(r for r in change_records(store) if r["op"] == "updated")
    assert update["key"] == changed["sku"] and update["changed_fields"] == ["quantity"] and update["version"] == 2

    # `leo ingest` beside the running runtime goes through the same detection.
    pushed = leo("ingest", "inventory", "-", "--json", cwd=project.root,
                 input=ndjson([{**changed, "quantity": 0}, {"sku": "SKU-NEW", "warehouse": "NYC", "quantity": 2}]))
    assert pushed.returncode == 0, pushed.stderr
    assert json.loads(pushed.stdout) == {"object_type": "inventory", "created": 1, "updated": 1, "unchanged": 0, "deleted": 0}
    wait_until(lambda: payloads_of(store, "inventory.low_stock")[-1]["key"] == "SKU-NEW", what="ingested changes filtered")
    assert run.stop() == 0
    assert_objects_agree_with_changes(store)
    assert_objects_agree_with_changes(store, "order")
