"""`leo streams list|reset` and the streams in `leo status`, through the real CLI."""

from __future__ import annotations

import json

from leo_runtime.delivery.streams import create_stream
from leo_runtime.objects import ingest
from leo_runtime.partners import create_partner

from .conftest import OBJECTS_PIPELINE, Project, leo

PROJECT = OBJECTS_PIPELINE


def seeded(project: Project) -> str:
    """A store with one 2-partition stream whose partitions hold the 6 records written for it."""
    project.write(PROJECT)
    store = project.store()
    partner = create_partner(store, "acme")[0]
    stream = create_stream(store, partner.id, ["inventory"], 7 * 86400, object_type="inventory", query=None,
                           partitions=2, start_at="now")
    ingest(store, "inventory", "sku", [{"sku": f"S{i}", "quantity": i} for i in range(6)])
    for event in store.read("inventory.changes", 0):  # what its writer would do under `leo run`
        store.append(f"streams.{stream.id}.{event.seq % 2}", [event.payload])
    store.close()
    return stream.id


def test_list_and_status_show_partner_partitions_checkpoints_heads_and_lag(project: Project) -> None:
    stream_id = seeded(project)
    listed = leo("streams", "list", "--json", "-f", str(project.file))
    assert listed.returncode == 0, listed.stderr
    [stream] = json.loads(listed.stdout)
    assert (stream["id"], stream["partner"], stream["object_type"], stream["generation"], stream["lag"]) == (
        stream_id, "acme", "inventory", 1, 6)
    assert [(p["partition"], p["lag"]) for p in stream["partitions"]] == [(0, 3), (1, 3)]
    assert all(p["head"] > p["checkpoint"] for p in stream["partitions"])
    table = leo("streams", "list", "-f", str(project.file), env={"COLUMNS": "200"})
    assert stream_id in table.stdout and "acme" in table.stdout and "leased until" in table.stdout
    status = leo("status", "--json", "-f", str(project.file))
    report = json.loads(status.stdout)
    assert report["streams"] == [stream]
    writer = next(bot for bot in report["bots"] if bot["id"] == f"streams:{stream_id}")
    assert writer["system"] is True and writer["pipeline"] == "system:streams"
    assert stream_id in leo("status", "-f", str(project.file), env={"COLUMNS": "200"}).stdout


def test_reset_moves_the_checkpoints_and_grows_the_generation(project: Project) -> None:
    stream_id = seeded(project)
    store = project.store()
    heads = [store.queue_head(f"streams.{stream_id}.{p}") for p in (0, 1)]
    store.close()
    latest = leo("streams", "reset", stream_id, "--to", "latest", "--json", "-f", str(project.file))
    assert latest.returncode == 0, latest.stderr
    moved = json.loads(latest.stdout)
    assert moved["generation"] == 2 and all(p["checkpoint"] >= max(heads) for p in moved["partitions"])
    back = leo("streams", "reset", stream_id, "--to", "-PT1H", "--partitions", "1", "-f", str(project.file))
    assert back.returncode == 0, back.stderr
    assert f"stream '{stream_id}' reset to -PT1H" in back.stdout and "generation 3" in back.stdout
    [after] = json.loads(leo("streams", "list", "--json", "-f", str(project.file)).stdout)
    assert [p["lag"] for p in after["partitions"]] == [0, 3]  # partition 1 replays its records


def test_bad_usage_is_one_line_and_exit_2(project: Project) -> None:
    stream_id = seeded(project)
    for args, needle in [
        (["--to", "soon"], "--to: invalid time"),
        (["--to", "PT1H"], "starts with '-'"),
        (["--to", "2999-01-01T00:00:00Z"], "in the future"),
        (["--to", "earliest", "--partitions", "2"], "--partitions: 2 is not a partition"),
        (["--to", "earliest", "--partitions", "x,1"], "--partitions 'x,1'"),
    ]:
        done = leo("streams", "reset", stream_id, *args, "-f", str(project.file))
        assert done.returncode == 2, (args, done.stderr)
        assert needle in done.stderr and len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    unknown = leo("streams", "reset", stream_id[:-1], "--to", "earliest", "-f", str(project.file))
    assert unknown.returncode == 2 and f"did you mean '{stream_id}'" in unknown.stderr
    [still] = json.loads(leo("streams", "list", "--json", "-f", str(project.file)).stdout)
    assert still["generation"] == 1  # nothing was reset
