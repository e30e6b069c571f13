"""Partner streams over HTTP, against the real runtime (stream writers, wakeups, uvicorn on
loopback): partitions, reads, commits, resets, leases, retention, and every refusal."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from leo_runtime.objects import delete
from leo_runtime.server import streams as streams_routes
from leo_runtime.timeutil import format_time, now_ms

from ..conftest import Project, wait_until
from ..streams_helpers import RunningRuntime, running_runtime, wait_for_writer


@pytest.fixture
def rt(project: Project, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningRuntime]:
    with running_runtime(project, monkeypatch) as running:
        yield running


def create(client: httpx.Client, **body: Any) -> dict[str, Any]:
    answer = client.post("/v1/streams", json={"object_type": "inventory", **body})
    assert answer.status_code == 201, answer.text
    return answer.json()


def read_all(client: httpx.Client, stream_id: str, partition: int, *, limit: int = 7, after: str | None = None,
             headers: dict[str, str] | None = None) -> tuple[list[dict[str, Any]], str]:
    """Every record of a partition from `after` (default: the checkpoint), page by page."""
    records: list[dict[str, Any]] = []
    while True:
        params: dict[str, Any] = {"limit": limit}
        if after is not None:
            params["after"] = after
        answer = client.get(f"/v1/streams/{stream_id}/partitions/{partition}/records", params=params, headers=headers)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        records += page["records"]
        if not page["records"]:
            return records, page["next_position"]
        after = page["next_position"]


def problem_of(answer: httpx.Response, status: int) -> str:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    return answer.json()["detail"]


def test_every_record_of_four_partitions_is_read_exactly_once_in_its_partition_in_key_order(rt: RunningRuntime) -> None:
    client = rt.client(rt.partner("acme"))
    stream = create(client, partitions=4)
    assert [p["partition"] for p in stream["partitions"]] == [0, 1, 2, 3]
    keys = [f"SKU-{i}" for i in range(60)]
    for round_ in range(3):  # three versions of every key, interleaved across keys
        rt.ingest("inventory", [{"sku": key, "quantity": round_ * 10 + i} for i, key in enumerate(keys)])
    assert delete(rt.store, "inventory", "SKU-7")
    wait_for_writer(rt, stream["id"])

    seen: dict[tuple[str, int], int] = {}
    for partition in range(4):
        records, _ = read_all(client, stream["id"], partition)
        versions: dict[str, int] = {}
        for record in records:
            assert zlib.crc32(record["key"].encode()) % 4 == partition
            assert versions.get(record["key"], 0) < record["version"], "per-key order"
            versions[record["key"]] = record["version"]
            assert (record["key"], record["version"]) not in seen, "read twice"
            seen[(record["key"], record["version"])] = partition
            assert set(record) == {"object_type", "key", "op", "version", "changed_at", "changed_fields", "data", "position"}
    assert len(seen) == 60 * 3 + 1
    assert seen[("SKU-7", 4)] == zlib.crc32(b"SKU-7") % 4  # the delete record, in its key's partition


def test_create_answers_the_contract_shape_and_starts_now(rt: RunningRuntime) -> None:
    client = rt.client(rt.partner("acme"))
    rt.ingest("inventory", [{"sku": "OLD", "quantity": 1}])
    answer = client.post("/v1/streams", json={"object_type": "inventory", "query": {"quantity": {"lt": 5}}})
    assert answer.status_code == 201
    stream = answer.json()
    assert set(stream) == {"id", "url", "object_type", "query", "generation", "retention", "created_at", "partitions"}
    assert stream["url"] == f"{rt.url}/v1/streams/{stream['id']}" == answer.headers["location"]
    assert (stream["object_type"], stream["query"], stream["generation"], stream["retention"]) == (
        "inventory", {"quantity": {"lt": 5}}, 1, "P7D")
    assert [set(p) for p in stream["partitions"]] == [{"partition", "checkpoint", "head", "lag", "leased_until"}]
    assert stream["partitions"][0]["lag"] == 0
    # Committed right after the 201: in the stream; before it: not (start_at now).
    rt.ingest("inventory", [{"sku": "NEW", "quantity": 2}, {"sku": "BIG", "quantity": 50}])
    wait_for_writer(rt, stream["id"])
    records, _ = read_all(client, stream["id"], 0)
    assert [r["key"] for r in records] == ["NEW"]  # the query holds too
    assert client.get(f"/v1/streams/{stream['id']}").json()["partitions"][0]["lag"] == 1
    assert [s["id"] for s in client.get("/v1/streams").json()] == [stream["id"]]


def test_start_at_earliest_and_a_time(rt: RunningRuntime) -> None:
    client = rt.client(rt.partner("acme"))
    rt.ingest("inventory", [{"sku": "A", "quantity": 1}])
    middle = now_ms() + 1  # after A was written, at or before B is
    wait_until(lambda: now_ms() > middle, what="the clock to pass a millisecond")
    rt.ingest("inventory", [{"sku": "B", "quantity": 1}])
    earliest = create(client, start_at="earliest")
    since = create(client, start_at=format_time(middle))
    wait_for_writer(rt, earliest["id"])
    wait_for_writer(rt, since["id"])
    assert [r["key"] for r in read_all(client, earliest["id"], 0)[0]] == ["A", "B"]
    assert [r["key"] for r in read_all(client, since["id"], 0)[0]] == ["B"]


def test_the_partner_scope_and_the_query_both_hold(rt: RunningRuntime) -> None:
    client = rt.client(rt.partner("nyc", {"warehouse": "NYC"}))
    stream = create(client, query={"quantity": {"lt": 5}})
    rt.ingest("inventory", [
        {"sku": "A", "quantity": 1, "warehouse": "NYC"},
        {"sku": "B", "quantity": 1, "warehouse": "SFO"},
        {"sku": "C", "quantity": 9, "warehouse": "NYC"},
    ])
    assert delete(rt.store, "inventory", "A")  # a delete matches when its last state did
    wait_for_writer(rt, stream["id"])
    assert [(r["key"], r["op"]) for r in read_all(client, stream["id"], 0)[0]] == [("A", "created"), ("A", "deleted")]


def test_a_commit_then_a_read_without_after_continues_after_it(rt: RunningRuntime) -> None:
    client = rt.client(rt.partner("acme"))
    stream = create(client)
    rt.ingest("inventory", [{"sku": f"S{i}", "quantity": i} for i in range(10)])
    wait_for_writer(rt, stream["id"])
    records = f"/v1/streams/{stream['id']}/partitions/0/records"
    page = client.get(records, params={"limit": 4}).json()
    assert [r["key"] for r in page["records"]] == ["S0", "S1", "S2", "S3"]
    assert page["next_position"] == page["records"][-1]["position"]
    assert client.get(records, params={"limit": 4}).json() == page  # nothing committed: the same page
    commit = {"position": page["next_position"], "generation": page["generation"]}
    assert client.put(f"/v1/streams/{stream['id']}/partitions/0/checkpoint", json=commit).status_code == 204
    assert client.put(f"/v1/streams/{stream['id']}/partitions/0/checkpoint", json=commit).status_code == 204  # again: harmless
    following = client.get(records, params={"limit": 100}).json()
    assert [r["key"] for r in following["records"]] == [f"S{i}" for i in range(4, 10)]
    assert following["head"] == following["next_position"]
    shown = client.get(f"/v1/streams/{stream['id']}").json()["partitions"][0]
    assert (shown["checkpoint"], shown["lag"]) == (page["next_position"], 6)


def test_409_for_a_backwards_commit_a_stale_generation_and_a_missing_lease(rt: RunningRuntime) -> None:
    client = rt.client(rt.partner("acme"))
    stream = create(client)
    rt.ingest("inventory", [{"sku": f"S{i}", "quantity": i} for i in range(5)])
    wait_for_writer(rt, stream["id"])
    base = f"/v1/streams/{stream['id']}"
    records, last = read_all(client, stream["id"], 0)
    assert client.put(f"{base}/partitions/0/checkpoint", json={"position": last, "generation": 1}).status_code == 204
    backwards = client.put(f"{base}/partitions/0/checkpoint", json={"position": records[1]["position"], "generation": 1})
    assert "behind the checkpoint" in problem_of(backwards, 409)

    reset = client.post(f"{base}/reset", json={"to": "earliest"})
    assert reset.status_code == 200 and reset.json()["generation"] == 2
    stale = client.put(f"{base}/partitions/0/checkpoint", json={"position": records[2]["position"], "generation": 1})
    assert "generation 1 is stale" in problem_of(stale, 409)
    assert client.put(f"{base}/partitions/0/checkpoint",
                      json={"position": records[2]["position"], "generation": 2}).status_code == 204

    lease = client.post(f"{base}/partitions/0/lease", json={"ttl_seconds": 60})
    assert lease.status_code == 200
    held = lease.json()
    assert set(held) == {"lease_id", "expires_at", "partition", "checkpoint", "generation"}
    with_lease = {"Lease-Id": held["lease_id"]}
    assert "Lease-Id" in problem_of(client.get(f"{base}/partitions/0/records"), 409)
    assert "Lease-Id" in problem_of(
        client.put(f"{base}/partitions/0/checkpoint", json={"position": last, "generation": 2}), 409)
    assert "not the live lease" in problem_of(
        client.get(f"{base}/partitions/0/records", headers={"Lease-Id": "ls_forged"}), 409)
    assert "leased by another consumer" in problem_of(client.post(f"{base}/partitions/0/lease", json={}), 409)
    assert client.get(f"{base}/partitions/0/records", headers=with_lease).status_code == 200
    assert client.put(f"{base}/partitions/0/checkpoint", json={"position": last, "generation": 2},
                      headers=with_lease).status_code == 204
    renewed = client.post(f"{base}/partitions/0/lease", json={"ttl_seconds": 120}, headers=with_lease).json()
    assert renewed["lease_id"] == held["lease_id"] and renewed["expires_at"] > held["expires_at"]
    assert client.get(base).json()["partitions"][0]["leased_until"] == renewed["expires_at"]
    assert client.delete(f"{base}/partitions/0/lease", headers=with_lease).status_code == 204
    assert client.get(f"{base}/partitions/0/records").status_code == 200  # free again at once
    # The old holder learns it lost the lease, on reads and commits alike.
    assert "no longer live" in problem_of(client.get(f"{base}/partitions/0/records", headers=with_lease), 409)


def test_an_expired_lease_is_taken_over_and_its_old_holder_refused(rt: RunningRuntime) -> None:
    client = rt.client(rt.partner("acme"))
    stream = create(client)
    base = f"/v1/streams/{stream['id']}/partitions/0"
    first = client.post(f"{base}/lease", json={"ttl_seconds": 1}).json()
    # Real time: try until the short lease has expired (no timing is asserted).
    second = wait_until(lambda: (answer := client.post(f"{base}/lease", json={"ttl_seconds": 60})).status_code == 200
                        and answer.json(), what="the first lease to expire")
    assert second["lease_id"] != first["lease_id"]
    assert "not the live lease" in problem_of(client.get(f"{base}/records", headers={"Lease-Id": first["lease_id"]}), 409)
    renew = client.post(f"{base}/lease", json={"ttl_seconds": 60}, headers={"Lease-Id": first["lease_id"]})
    assert "no longer live" in problem_of(renew, 409)
    assert client.get(f"{base}/records", headers={"Lease-Id": second["lease_id"]}).status_code == 200


def test_a_reset_to_an_hour_ago_replays_and_other_targets(rt: RunningRuntime) -> None:
    client = rt.client(rt.partner("acme"))
    stream = create(client, partitions=2)
    rt.ingest("inventory", [{"sku": f"S{i}", "quantity": i} for i in range(20)])
    wait_for_writer(rt, stream["id"])
    base = f"/v1/streams/{stream['id']}"
    before = {}
    for partition in (0, 1):
        records, last = read_all(client, stream["id"], partition)
        before[partition] = records
        assert client.put(f"{base}/partitions/{partition}/checkpoint",
                          json={"position": last, "generation": 1}).status_code == 204
        assert read_all(client, stream["id"], partition)[0] == []
    reset = client.post(f"{base}/reset", json={"to": "-PT1H"})
    assert reset.status_code == 200
    assert reset.json()["generation"] == 2
    assert [(p["partition"], p["clamped"]) for p in reset.json()["partitions"]] == [(0, False), (1, False)]
    for partition in (0, 1):
        assert read_all(client, stream["id"], partition)[0] == before[partition]  # replayed, same positions

    only_one = client.post(f"{base}/reset", json={"to": "latest", "partitions": [1]}).json()
    assert only_one["generation"] == 3 and [p["partition"] for p in only_one["partitions"]] == [1]
    assert read_all(client, stream["id"], 1)[0] == [] and read_all(client, stream["id"], 0)[0] == before[0]
    clamped = client.post(f"{base}/reset", json={"to": "-P30D"}).json()  # retention is P7D
    assert all(p["clamped"] for p in clamped["partitions"])
    assert read_all(client, stream["id"], 0)[0] == before[0]
    assert client.post(f"{base}/reset", json={"to": format_time(now_ms() - 60_000)}).status_code == 200

    for to, needle in [("PT1H", "starts with '-'"), ("tomorrow", "to: 'tomorrow' is not a WHEN"), ("", "to:"),
                       (format_time(now_ms() + 3_600_000), "in the future"), ("-PT1X", "to: invalid to")]:
        assert needle in problem_of(client.post(f"{base}/reset", json={"to": to}), 422), to
    for partitions, needle in [([2], "partitions: 2 is not a partition"), ([-1], "partitions: -1"), ([], "empty list"),
                               (["0"], "partitions.0")]:
        assert needle in problem_of(client.post(f"{base}/reset", json={"to": "earliest", "partitions": partitions}), 422)
    assert client.get(base).json()["generation"] == 5  # refused resets changed nothing


def test_malformed_input_gets_a_422_naming_the_field(rt: RunningRuntime) -> None:
    client = rt.client(rt.partner("acme"))
    for body, needle in [
        ({"object_type": "inventory", "partitions": 0}, "partitions"),
        ({"object_type": "inventory", "partitions": 65}, "partitions"),
        ({"object_type": "inventory", "partitions": -1}, "partitions"),
        ({"object_type": "inventory", "partitions": "4"}, "partitions"),
        ({"object_type": "inventory", "partitions": True}, "partitions"),
        ({"object_type": "inventory", "partitions": 2.5}, "partitions"),
        ({"object_type": "nope"}, "object_type: unknown object type 'nope' (known: inventory, order)"),
        ({"object_type": "inventory", "query": {"quantity": {"less": 5}}}, "query: field 'quantity': unknown operator 'less'"),
        ({"object_type": "inventory", "query": ["x"]}, "query"),
        ({"object_type": "inventory", "start_at": "yesterday"}, "start_at: 'yesterday' is not a WHEN"),
        ({"object_type": "inventory", "start_at": format_time(now_ms() + 86_400_000)}, "start_at"),
        ({"object_type": "inventory", "partition": 2}, "partition"),
        ({}, "object_type"),
    ]:
        assert needle in problem_of(client.post("/v1/streams", json=body), 422), body
    assert client.get("/v1/streams").json() == []

    stream = create(client, partitions=2)
    other = create(client)
    rt.ingest("inventory", [{"sku": "A", "quantity": 1}])
    wait_for_writer(rt, stream["id"])
    wait_for_writer(rt, other["id"])
    base = f"/v1/streams/{stream['id']}/partitions"
    theirs = read_all(client, other["id"], 0)[1]
    own_1 = client.get(f"{base}/1/records").json()["next_position"]
    for params, needle in [
        ({"after": "zzz"}, "after: 'zzz' is not a stream position"),
        ({"after": own_1}, "is a position of partition 1 of this stream, not of partition 0"),
        ({"after": theirs}, "is a position of another stream"),
        ({"after": own_1[:8] + "f" * 16}, "after"),
        ({"after": "x" * 65}, "after"),
        ({"limit": 0}, "limit"),
        ({"limit": 10_000_000}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"wait": 61}, "wait"),
        ({"wait": -1}, "wait"),
        ({"wait": "nan"}, "wait"),
        ({"wait": "inf"}, "wait"),
    ]:
        assert needle in problem_of(client.get(f"{base}/0/records", params=params), 422), params
    for partition in ("2", "-1", "x", "00000001", "1.0", "%20"):
        assert "partition" in problem_of(client.get(f"{base}/{partition}/records"), 422), partition
    for body, needle in [
        ({"position": "nope", "generation": 1}, "position: 'nope' is not a stream position"),
        ({"position": own_1, "generation": 1}, "partition 1 of this stream"),
        ({"position": own_1, "generation": "1"}, "generation"),
        ({"position": own_1}, "generation"),
        ({"position": own_1, "generation": 1, "extra": 1}, "extra"),
    ]:
        assert needle in problem_of(client.put(f"{base}/0/checkpoint", json=body), 422), body
    for ttl in (0, -1, 3601, "30", None):
        assert "ttl_seconds" in problem_of(client.post(f"{base}/0/lease", json={"ttl_seconds": ttl}), 422), ttl
    refused = client.post("/v1/streams", content=b'{"object_type": "inventory"', headers={"Content-Type": "application/json"})
    assert problem_of(refused, 422).startswith("body:")
    assert client.post("/v1/streams", content=b"x" * (2 << 20), headers={"Content-Type": "application/json"}).status_code == 413
    assert client.post("/v1/streams", content=b"{}").status_code == 415


def test_the_fast_lane_answers_plain_reads_exactly_as_the_documented_route(rt: RunningRuntime,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # Plain reads skip FastAPI's per-request machinery (`FastReads`); anything else, an unknown
    # parameter included, goes to the documented route. Both must give the same answer, byte for byte.
    served: list[bool] = []
    answer = streams_routes.FastReads._answer

    async def spy(self: Any, request: Any) -> bytes | None:
        body = await answer(self, request)
        served.append(body is not None)
        return body

    monkeypatch.setattr(streams_routes.FastReads, "_answer", spy)
    token = rt.partner("acme")
    client = rt.client(token)
    stream = create(client, partitions=2)
    theirs = create(rt.client(rt.partner("globex")))
    rt.ingest("inventory", [{"sku": f"S{i}", "quantity": i, "name": "caf\u00e9 \u2615"} for i in range(30)])
    wait_for_writer(rt, stream["id"])
    base = f"/v1/streams/{stream['id']}/partitions"
    first = client.get(f"{base}/0/records", params={"limit": 3}).json()
    lease = client.post(f"{base}/1/lease", json={}).json()["lease_id"]
    plain = [  # the lane answers these
        (f"{base}/0/records", {}, {}),
        (f"{base}/0/records", {"limit": 3}, {}),
        (f"{base}/0/records", {"limit": 1000, "wait": 0}, {}),
        (f"{base}/0/records", {"after": first["next_position"], "limit": 5}, {}),
        (f"{base}/0/records", {"after": first["head"], "wait": 0}, {}),  # nothing after the head: an empty page
        (f"{base}/1/records", {"limit": 2}, {"Lease-Id": lease}),
    ]
    odd = [  # the documented route answers these
        (f"{base}/0/records", {"after": first["head"], "wait": 0.2}, {}),  # waits, then answers empty
        (f"{base}/1/records", {}, {}),  # leased by another
        (f"{base}/1/records", {}, {"Lease-Id": "not-the-lease"}),
        (f"{base}/2/records", {}, {}),
        (f"{base}/01/records", {}, {}),
        (f"/v1/streams/{theirs['id']}/partitions/0/records", {}, {}),
        ("/v1/streams/st_nope/partitions/0/records", {}, {}),
        (f"{base}/0/records", {"after": "zzz"}, {}),
        (f"{base}/0/records", {"limit": 0}, {}),
        (f"{base}/0/records", {"limit": "01x"}, {}),
        (f"{base}/0/records", {"limit": 5000}, {}),  # past the inline limit: read in a worker thread
        (f"{base}/0/records", {"wait": 61}, {}),
        (f"{base}/0/records", {"wait": "nan"}, {}),
        (f"{base}/0/records", [("limit", "2"), ("limit", "3")], {}),
        (f"{base}/0/records", {}, {"Authorization": "Bearer nope"}),
        (f"{base}/0/records", {}, {"Authorization": "Basic eDp5"}),
    ]
    for path, params, headers in plain + odd:
        served.clear()
        fast = client.get(path, params=params, headers=headers)
        lane = served == [True]
        slow = client.get(path, params=[*(params.items() if isinstance(params, dict) else params), ("via", "route")],
                          headers=headers)
        assert lane == ((path, params, headers) in plain), (path, params, headers)
        assert (fast.status_code, fast.headers["content-type"], fast.content) == (
            slow.status_code, slow.headers["content-type"], slow.content), (path, params, headers)
    assert client.get(f"{base}/0/records").json()["records"][0]["data"]["name"] == "caf\u00e9 \u2615"


def test_another_partners_streams_are_404_everywhere(rt: RunningRuntime) -> None:
    acme = rt.client(rt.partner("acme"))
    globex = rt.client(rt.partner("globex"))
    stream = create(acme)
    base = f"/v1/streams/{stream['id']}"
    answers = [
        globex.get(base), globex.delete(base), globex.get(f"{base}/partitions/0/records"),
        globex.put(f"{base}/partitions/0/checkpoint", json={"position": stream["partitions"][0]["checkpoint"], "generation": 1}),
        globex.post(f"{base}/reset", json={"to": "earliest"}), globex.post(f"{base}/partitions/0/lease", json={}),
        globex.delete(f"{base}/partitions/0/lease"), globex.get("/v1/streams/st_doesnotexist"),
    ]
    assert [a.status_code for a in answers] == [404] * len(answers)
    assert answers[0].json()["detail"] == answers[-1].json()["detail"].replace("st_doesnotexist", stream["id"])
    assert globex.get("/v1/streams").json() == []
    assert acme.get(base).status_code == 200
    assert httpx.get(f"{rt.url}{base}").status_code == 401


def test_a_deleted_stream_answers_404_and_the_writer_of_a_type_without_streams_stops(rt: RunningRuntime) -> None:
    client = rt.client(rt.partner("acme"))
    stream = create(client)
    wait_until(lambda: "streams:inventory" in rt.runtime.runners, what="the writer to start")
    assert client.delete(f"/v1/streams/{stream['id']}").status_code == 204
    wait_until(lambda: "streams:inventory" not in rt.runtime.runners, what="the writer to stop")
    assert client.get(f"/v1/streams/{stream['id']}").status_code == 404
    assert client.delete(f"/v1/streams/{stream['id']}").status_code == 404


def test_a_position_older_than_retention_answers_410(rt: RunningRuntime) -> None:
    client = rt.client(rt.partner("acme"))
    stream = create(client)
    rt.ingest("inventory", [{"sku": f"S{i}", "quantity": i} for i in range(5)])
    wait_for_writer(rt, stream["id"])
    records, _ = read_all(client, stream["id"], 0)
    rt.ingest("inventory", [{"sku": "LATE", "quantity": 1}])
    wait_for_writer(rt, stream["id"])
    # What retention does, here up to the partition's record of S4 (positions hold the global one in hex).
    while rt.store.first_position() < int(records[-1]["position"][8:], 16):
        assert rt.store.prune(now_ms() + 1000, 1) == 1
    base = f"/v1/streams/{stream['id']}/partitions/0/records"
    gone = client.get(base, params={"after": records[0]["position"]})
    assert "older than the stream's retention" in problem_of(gone, 410)
    assert problem_of(client.get(base), 410)  # the checkpoint is that old too
    assert client.post(f"/v1/streams/{stream['id']}/reset", json={"to": "earliest"}).status_code == 200
    assert [r["key"] for r in read_all(client, stream["id"], 0)[0]] == ["LATE"]


def test_a_revoked_partner_is_refused_and_its_writers_stop(rt: RunningRuntime) -> None:
    from leo_runtime.partners import revoke_partner

    client = rt.client(rt.partner("acme"))
    stream = create(client)
    wait_until(lambda: "streams:inventory" in rt.runtime.runners, what="the writer to start")
    revoke_partner(rt.store, "acme")
    assert client.get(f"/v1/streams/{stream['id']}").status_code == 401
    rt.runtime.system_changed()
    wait_until(lambda: "streams:inventory" not in rt.runtime.runners, what="the writer to stop")
