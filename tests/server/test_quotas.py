"""Partner quotas (`server.limits`) against the real server: checked in the transaction that
creates, so a burst of concurrent creates cannot pass them; over a limit is a 422 problem naming it."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from .conftest import Api

PROBLEM = "application/problem+json"


def burst(api: Api, token: str, path: str, body: dict[str, Any], count: int) -> list[httpx.Response]:
    """`count` POSTs sent at once, each on its own connection."""
    def send(_: int) -> httpx.Response:
        with api.client(token) as client:
            return client.post(path, json=body)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(send, range(count)))


def refusal(response: httpx.Response, limit: str) -> str:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    problem = response.json()
    assert problem["limit"] == limit and problem["detail"].startswith(f"server.limits.{limit}: ")
    return problem["detail"]


def test_concurrent_webhook_creates_never_pass_the_quota(make_api) -> None:
    api = make_api(server={"allow_private_callbacks": True, "limits": {"webhooks": 10}})
    token = api.partner("acme")
    body = {"object_type": "inventory", "callback_url": "http://127.0.0.1:9/hook", "interval": 60}
    answers = burst(api, token, "/v1/webhooks", body, 80)
    assert Counter(answer.status_code for answer in answers) == {201: 10, 422: 70}
    assert "at most 10 webhooks and this one has 10" in refusal(next(a for a in answers if a.status_code == 422),
                                                                 "webhooks")
    with api.client(token) as client:
        assert len(client.get("/v1/webhooks").json()) == 10
        other = api.partner("globex")  # a quota is per partner
        with api.client(other) as globex:
            assert globex.post("/v1/webhooks", json=body).status_code == 201
        gone = client.get("/v1/webhooks").json()[0]["id"]
        assert client.delete(f"/v1/webhooks/{gone}").status_code == 204  # a deleted one frees its place
        assert client.post("/v1/webhooks", json=body).status_code == 201
        refusal(client.post("/v1/webhooks", json=body), "webhooks")


def test_concurrent_stream_creates_never_pass_the_quota(make_api) -> None:
    api = make_api(server={"limits": {"streams": 5}})
    token = api.partner("acme")
    answers = burst(api, token, "/v1/streams", {"object_type": "inventory"}, 60)
    assert Counter(answer.status_code for answer in answers) == {201: 5, 422: 55}
    refusal(next(a for a in answers if a.status_code == 422), "streams")
    with api.client(token) as client:
        streams = client.get("/v1/streams").json()
        assert len(streams) == 5 == len(api.store.streams())
        assert client.delete(f"/v1/streams/{streams[0]['id']}").status_code == 204
        assert client.post("/v1/streams", json={"object_type": "inventory"}).status_code == 201


def test_partitions_past_the_limit_are_refused(make_api) -> None:
    api = make_api(server={"limits": {"partitions": 8}})
    with api.client(api.partner("acme")) as client:
        assert client.post("/v1/streams", json={"object_type": "inventory", "partitions": 8}).status_code == 201
        detail = refusal(client.post("/v1/streams", json={"object_type": "inventory", "partitions": 9}), "partitions")
        assert "at most 8 partitions, not 9" in detail
    assert len(api.store.streams()) == 1


def test_a_mode_all_webhook_keeps_the_smallest_interval(make_api) -> None:
    api = make_api(server={"allow_private_callbacks": True})  # the default: 300 s
    body = {"object_type": "inventory", "callback_url": "http://127.0.0.1:9/hook", "mode": "all"}
    with api.client(api.partner("acme")) as client:
        detail = refusal(client.post("/v1/webhooks", json={**body, "interval": 60}), "all_mode_min_interval")
        assert "at least 300 s" in detail and "not 60 s" in detail
        made = client.post("/v1/webhooks", json={**body, "interval": "PT5M"})
        assert made.status_code == 201
        refusal(client.patch(f"/v1/webhooks/{made.json()['id']}", json={"interval": 299}), "all_mode_min_interval")
        assert client.post("/v1/webhooks", json={**body, "mode": "changes", "interval": 1}).status_code == 201
    assert [w.interval_ms for w in api.store.webhooks()] == [300_000, 1000]


def test_a_snapshot_past_the_byte_quota_waits_and_the_partner_sees_why(make_api) -> None:
    from leo_runtime.store.base_webhooks import StartSnapshot
    from leo_runtime.timeutil import now_ms

    from ..webhook_helpers import commit

    api = make_api(server={"allow_private_callbacks": True, "limits": {"all_mode_min_interval": 1}})
    with api.client(api.partner("acme")) as client:
        made = client.post("/v1/webhooks", json={"object_type": "inventory", "callback_url": "http://127.0.0.1:9/h",
                                                 "interval": 1, "mode": "all"}).json()
        webhook = api.store.webhook(made["id"])
        assert webhook is not None
        commit(api.store, StartSnapshot(webhook.rid, now_ms(), 86_400_000, max_bytes=0), bot="webhooks:batcher")
        shown = client.get(f"/v1/webhooks/{made['id']}").json()
        assert shown["last_error"].startswith("server.limits.batch_bytes: this partner's unexpired batches hold 0 bytes")
        assert client.get(f"/v1/webhooks/{made['id']}/batches").json() == []
