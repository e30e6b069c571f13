"""`leo run` killed with SIGKILL while the change detector takes in a large folder: afterwards the
objects and their change queue agree (every object version has exactly one change record)."""

from __future__ import annotations

import json
from pathlib import Path

from ..conftest import Project, wait_until
from ..objects_helpers import assert_objects_agree_with_changes, change_records

FILES = 16
PER_FILE = 2_000

PIPELINE = """
version: 1
object_types:
  inventory: {key: sku}
pipelines:
  feed:
    bots:
      - id: detector
        use: change_detector
        with:
          object_type: inventory
          source: {kind: json_dir, path: data}
          snapshot: partial
        batch: {bytes: 1}      # one file per run: many commits to be killed between and during
"""


def write_files(folder: Path, version: int) -> None:
    for number in range(FILES):
        lines = []
        for n in range(PER_FILE):
            key = number * PER_FILE + n
            quantity = key % 50 + (version if key % 100 == 0 else 0)  # version 2 changes 1% of the keys
            lines.append(json.dumps({"sku": f"SKU-{key:07d}", "quantity": quantity, "warehouse": "NYC"}))
        (folder / f"part-{number:03d}.ndjson").write_text("\n".join(lines) + "\n")


def head(store) -> int:
    return store.queue_head("inventory.changes")


def count(store) -> int:
    return store.count_after("inventory.changes", 0)


def test_sigkill_during_a_large_detection_leaves_objects_and_changes_agreeing(project: Project, leo_run) -> None:
    folder = project.root / "data"
    folder.mkdir()
    project.write(PIPELINE)
    store = project.store()
    total = FILES * PER_FILE

    for version, expected_records in ((1, total), (2, total + total // 100)):
        write_files(folder, version)
        start = head(store)
        run = leo_run(project, "--no-http")
        wait_until(lambda start=start: head(store) > start, timeout=60, what="the first files applied")
        run.kill()  # SIGKILL: no drain, no commit
        assert count(store) < expected_records, "finished before the kill: make the input larger"
        assert_objects_agree_with_changes(store)

        run = leo_run(project, "--no-http")
        wait_until(lambda expected=expected_records: count(store) >= expected, timeout=180, what="the restart to finish")
        wait_until(lambda: len(store.bot("detector").state.get("files", {})) == FILES, what="every file noted")
        assert run.stop() == 0
        records = change_records(store)
        assert len(records) == expected_records  # nothing applied twice, nothing lost
        assert_objects_agree_with_changes(store)
    assert sum(1 for record in records if record["op"] == "updated") == total // 100
