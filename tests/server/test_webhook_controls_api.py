"""A chosen replay over the real server: only the partner's own, retained batches, all or nothing,
and a bounded list (the deliveries it makes due are read back from the store)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from leo_runtime.store.base_webhooks import DeliveryOutcome, RecordDeliveries
from leo_runtime.timeutil import now_ms

from ..webhook_helpers import commit, seal_now
from .conftest import Api, put_object
from .test_webhooks_api import create


@pytest.fixture
def open_api(make_api) -> Api:
    return make_api(server={"allow_private_callbacks": True})


def sealed(api: Api, webhook_id: str, key: str, retention_ms: int = 86_400_000) -> str:
    """Seal one batch holding `key` for the webhook; its id."""
    put_object(api.store, "inventory", key, {"sku": key, "quantity": 1})
    batch = seal_now(api.store, webhook_id, retention_ms)
    assert batch is not None
    return batch.id


def deliver_all(api: Api) -> None:
    """Record every due notification as delivered, as the sender would: nothing is due after."""
    now = now_ms()
    done = [DeliveryOutcome(due.batch, "", due.webhook, now, True, None, 204) for due in api.store.due_deliveries("", now)]
    commit(api.store, RecordDeliveries(done), bot="webhooks:sender")
    assert api.store.due_deliveries("", now_ms()) == []


def due_ids(api: Api) -> list[str]:
    return sorted(due.batch_id for due in api.store.due_deliveries("", now_ms()))


def replay(client: httpx.Client, webhook_id: str, body: Any) -> httpx.Response:
    return client.post(f"/v1/webhooks/{webhook_id}/replay", json=body)


def test_only_the_named_batches_are_made_due_and_a_repeat_counts_once(open_api: Api) -> None:
    with open_api.client(open_api.partner("acme")) as client:
        webhook = create(client).json()["id"]
        first, second, third = (sealed(open_api, webhook, key) for key in ("A", "B", "C"))
        deliver_all(open_api)
        answer = replay(client, webhook, {"batch_ids": [third, first, third]})
        assert answer.status_code == 202 and answer.json() == {"replayed": 2}
        assert due_ids(open_api) == sorted([first, third])
        assert second not in due_ids(open_api)


def test_another_partners_or_an_unknown_batch_is_404_and_nothing_is_made_due(open_api: Api) -> None:
    with open_api.client(open_api.partner("acme")) as acme, open_api.client(open_api.partner("globex")) as globex:
        mine, sibling = create(acme).json()["id"], create(acme).json()["id"]
        theirs = create(globex).json()["id"]
        own, other_own, other = sealed(open_api, mine, "A"), sealed(open_api, sibling, "B"), sealed(open_api, theirs, "C")
        deliver_all(open_api)
        for batch_ids, named in (([other], [other]), ([own, other, "bat_nope"], [other, "bat_nope"]),
                                 ([own, other_own], [other_own])):
            refused = replay(acme, mine, {"batch_ids": batch_ids})
            assert refused.status_code == 404, refused.text
            assert refused.headers["content-type"] == "application/problem+json"
            detail = refused.json()["detail"]
            assert all(f"'{name}'" in detail for name in named) and f"'{own}'" not in detail, detail
            assert detail.endswith("nothing was replayed")
            assert due_ids(open_api) == []
        stolen = replay(globex, mine, {"batch_ids": [own]})  # the webhook itself is not theirs
        assert stolen.status_code == 404 and stolen.json()["detail"] == f"no webhook '{mine}'"
        assert replay(acme, "wh_nope", {"batch_ids": [own]}).status_code == 404
        assert due_ids(open_api) == []


def test_an_expired_batch_is_410_and_nothing_is_made_due(open_api: Api) -> None:
    with open_api.client(open_api.partner("acme")) as client:
        webhook = create(client).json()["id"]
        fresh, old = sealed(open_api, webhook, "A"), sealed(open_api, webhook, "B", retention_ms=1)
        deliver_all(open_api)
        assert client.get(f"/v1/batches/{old}").status_code == 410
        refused = replay(client, webhook, {"batch_ids": [fresh, old]})
        assert refused.status_code == 410, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert f"'{old}' is past its retention; nothing was replayed" in refused.json()["detail"]
        assert due_ids(open_api) == []
        # Unknown beats expired: a list with both names the unknown one (404).
        assert replay(client, webhook, {"batch_ids": [old, "bat_nope"]}).status_code == 404


@pytest.mark.parametrize(("body", "detail"), [
    ({"batch_ids": []}, "body.batch_ids: List should have at least 1 item"),
    ({"batch_ids": [f"bat_{i}" for i in range(1001)]}, "body.batch_ids: List should have at most 1000 items"),
    ({"batch_ids": "bat_1"}, "body.batch_ids: "),
    ({"batch_ids": [1]}, "body.batch_ids.0: "),
    ({"batch_ids": [None]}, "body.batch_ids.0: "),
    ({"batch_ids": ["x" * 101]}, "body.batch_ids.0: "),
    ({"batch_ids": ["bat_1"], "also": 1}, "body.also: "),
    ({}, "body.batch_ids: "),
    ([], "body: "),
])
def test_the_list_is_checked_before_anything_is_made_due(open_api: Api, body: Any, detail: str) -> None:
    with open_api.client(open_api.partner("acme")) as client:
        webhook = create(client).json()["id"]
        sealed(open_api, webhook, "A")
        deliver_all(open_api)
        refused = replay(client, webhook, body)
        assert refused.status_code == 422, refused.text
        assert refused.json()["detail"].startswith(detail), refused.json()["detail"]
        assert due_ids(open_api) == []


def test_without_a_body_every_unfetched_batch_is_notified_again_as_before(open_api: Api) -> None:
    with open_api.client(open_api.partner("acme")) as client:
        webhook = create(client).json()["id"]
        first, second = sealed(open_api, webhook, "A"), sealed(open_api, webhook, "B")
        deliver_all(open_api)
        assert client.get(f"/v1/batches/{first}").status_code == 200  # downloaded: not replayed without a body
        for request in ({}, {"headers": {"Content-Type": "application/json"}}):
            answer = client.post(f"/v1/webhooks/{webhook}/replay", **request)
            assert answer.status_code == 202 and answer.json() == {"replayed": 1}, answer.text
            assert due_ids(open_api) == [second]
        assert client.post(f"/v1/webhooks/{webhook}/replay", content=b'{"batch_ids": []}').status_code == 415
