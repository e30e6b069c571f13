"""`leo streams list|reset` and the streams in `leo status`, through the real CLI."""

from __future__ import annotations

import json

from leo_runtime.delivery.streams import create_stream, partition_source
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
        store.append(partition_source(stream, event.seq % 2)[0], [event.payload])
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
    # Positions as the API shows them: opaque, each of its own partition.
    assert all(p["head"] != p["checkpoint"] for p in stream["partitions"])
    assert stream["partitions"][0]["head"][:8] != stream["partitions"][1]["head"][:8]
    table = leo("streams", "list", "-f", str(project.file), env={"COLUMNS": "200"})
    assert stream_id in table.stdout and "acme" in table.stdout and "leased until" in table.stdout
    status = leo("status", "--json", "-f", str(project.file))
    report = json.loads(status.stdout)
    assert report["streams"] == [stream]
    # Its writer never ran: the stream follows it from its start (on a shared log), nothing to catch up.
    assert (stream["writer"], stream["writer_cursor"]) == ("streams:inventory", None)
    writer = next(bot for bot in report["bots"] if bot["id"] == "streams:inventory")
    assert writer["system"] is True and writer["pipeline"] == "system:streams"
    assert stream_id in leo("status", "-f", str(project.file), env={"COLUMNS": "200"}).stdout


def test_reset_moves_the_checkpoints_and_grows_the_generation(project: Project) -> None:
    stream_id = seeded(project)
    [before] = json.loads(leo("streams", "list", "--json", "-f", str(project.file)).stdout)
    latest = leo("streams", "reset", stream_id, "--to", "latest", "--json", "-f", str(project.file))
    assert latest.returncode == 0, latest.stderr
    moved = json.loads(latest.stdout)
    [listed] = json.loads(leo("streams", "list", "--json", "-f", str(project.file)).stdout)
    assert moved["generation"] == 2 and [p["lag"] for p in listed["partitions"]] == [0, 0]
    assert [p["checkpoint"] for p in moved["partitions"]] == [p["checkpoint"] for p in listed["partitions"]]
    # A position as `streams list` shows it (opaque, as the API's) moves that partition back there.
    back_to = before["partitions"][0]["checkpoint"]
    exact = leo("streams", "reset", stream_id, "--to", back_to, "--json", "-f", str(project.file))
    assert exact.returncode == 0, exact.stderr
    assert [(p["partition"], p["checkpoint"]) for p in json.loads(exact.stdout)["partitions"]] == [(0, back_to)]
    [again] = json.loads(leo("streams", "list", "--json", "-f", str(project.file)).stdout)
    assert [p["lag"] for p in again["partitions"]] == [3, 0] and again["generation"] == 3
    back = leo("streams", "reset", stream_id, "--to", "-PT1H", "--partitions", "1", "-f", str(project.file))
    assert back.returncode == 0, back.stderr
    assert f"stream '{stream_id}' reset to -PT1H" in back.stdout and "generation 4" in back.stdout
    [after] = json.loads(leo("streams", "list", "--json", "-f", str(project.file)).stdout)
    assert [p["lag"] for p in after["partitions"]] == [3, 3]  # partition 1 replays its records (0 was moved back)


def test_bad_usage_is_one_line_and_exit_2(project: Project) -> None:
    stream_id = seeded(project)
    for args, needle in [
        (["--to", "soon"], "--to: 'soon' is not a WHEN"),
        (["--to", "2026-11-26T19:00:00"], "--to: invalid time '2026-11-26T19:00:00': it has no UTC offset"),
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
