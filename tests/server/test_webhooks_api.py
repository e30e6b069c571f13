"""The partner webhook API and the batch download, against the real server on loopback."""

from __future__ import annotations

import gzip
import json

import httpx
import pytest

from leo_runtime.store.base_webhooks import BotSubscription, RouteChanges, SealWebhooks
from leo_runtime.timeutil import now_ms

from ..webhook_helpers import commit, seal_now
from .conftest import Api, put_object

HOOK = "https://203.0.113.10/hook"  # a documentation address: refused unless private callbacks are allowed


@pytest.fixture
def open_api(make_api) -> Api:
    """The API with private callbacks allowed (no DNS, no traffic: the API never calls the URL)."""
    return make_api(server={"allow_private_callbacks": True})


def create(client: httpx.Client, **fields) -> httpx.Response:
    body = {"object_type": "inventory", "callback_url": "http://127.0.0.1:9/hook", "interval": 60, **fields}
    return client.post("/v1/webhooks", json=body)


def test_create_answers_the_webhook_with_its_secret_once(open_api: Api) -> None:
    with open_api.client(open_api.partner("acme")) as client:
        made = create(client, query={"quantity": {"lt": 5}}, interval="PT5M", mode="all")
        assert made.status_code == 201, made.text
        body = made.json()
        assert set(body) >= {"id", "object_type", "query", "callback_url", "interval", "mode", "status", "secret",
                             "next_run_at", "created_at"}
        assert body["id"].startswith("wh_") and body["secret"].startswith("whsec_")
        assert (body["interval"], body["mode"], body["status"], body["delivery"]) == (300, "all", "active", "ok")
        assert body["query"] == {"quantity": {"lt": 5}}
        listed = client.get("/v1/webhooks").json()
        assert [w["id"] for w in listed] == [body["id"]] and "secret" not in listed[0]
        one = client.get(f"/v1/webhooks/{body['id']}").json()
        assert "secret" not in one and one["callback_url"] == "http://127.0.0.1:9/hook"


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        ({"interval": 0}, "interval: must be between 1 second and 7 days"),
        ({"interval": -1}, "interval: must be between"),
        ({"interval": 10**9}, "interval: "),
        ({"interval": "P8D"}, "interval: must be between"),
        ({"interval": "soon"}, "interval: invalid interval"),
        ({"interval": True}, "interval"),
        ({"query": {"quantity": {"less": 5}}}, "query: field 'quantity': unknown operator 'less' (did you mean 'lt'?)"),
        ({"query": {"quantity": {"in": 5}}}, "query: field 'quantity'"),
        ({"object_type": "nope"}, "object_type: unknown object type 'nope' (known: inventory, order)"),
        ({"callback_url": "ftp://8.8.8.8/x"}, "callback_url: must be an http or https URL"),
        ({"callback_url": "https://u:p@8.8.8.8/x"}, "callback_url: must not hold credentials"),
        ({"mode": "some"}, "mode"),
        ({"extra": 1}, "extra"),
    ],
)
def test_bad_fields_are_422_naming_the_field(open_api: Api, fields: dict, detail: str) -> None:
    with open_api.client(open_api.partner("acme")) as client:
        answer = create(client, **fields)
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert detail in answer.json()["detail"]
        assert client.get("/v1/webhooks").json() == []


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/hook", "http://localhost/hook", "http://[::1]/hook",
                                 "http://10.1.2.3/hook", "http://192.168.0.10/hook", "http://169.254.169.254/latest",
                                 "http://2130706433/hook", "http://[::ffff:127.0.0.1]/hook", HOOK])
def test_private_callbacks_are_refused_unless_allowed(api: Api, url: str) -> None:
    with api.client(api.partner("acme")) as client:
        answer = create(client, callback_url=url)
        assert answer.status_code == 422, answer.text
        assert "which partner callbacks may not reach" in answer.json()["detail"]
        made = client.post("/v1/webhooks", json={"object_type": "inventory", "callback_url": "https://8.8.8.8/h",
                                                 "interval": 60})
        assert made.status_code == 201
        patched = client.patch(f"/v1/webhooks/{made.json()['id']}", json={"callback_url": url})
        assert patched.status_code == 422


def test_bodies_are_checked_before_anything_is_written(open_api: Api) -> None:
    token = open_api.partner("acme")
    with open_api.client(token) as client:
        assert client.post("/v1/webhooks", content=b'{"object_type": ', headers={"content-type": "application/json"}
                           ).status_code == 422
        assert client.post("/v1/webhooks", content=b"x=1", headers={"content-type": "text/plain"}).status_code == 415
        huge = b'{"object_type": "' + b"x" * (2 << 20) + b'"}'
        assert client.post("/v1/webhooks", content=huge, headers={"content-type": "application/json"}).status_code == 413
        assert client.post("/v1/webhooks", json=[1, 2]).status_code == 422
        assert client.get("/v1/webhooks").json() == []
    assert httpx.post(open_api.url + "/v1/webhooks", json={}).status_code == 401
    with open_api.admin() as admin:  # the admin token is not a partner
        assert create(admin).status_code == 403


def test_another_partners_webhooks_and_batches_answer_404(open_api: Api) -> None:
    acme, globex = open_api.partner("acme"), open_api.partner("globex")
    with open_api.client(acme) as client, open_api.client(globex) as other:
        webhook = create(client).json()
        put_object(open_api.store, "inventory", "SKU-1", {"sku": "SKU-1", "quantity": 1})
        sealed = seal_now(open_api.store, webhook["id"])
        assert sealed is not None
        for method, path in [("GET", ""), ("PATCH", ""), ("DELETE", ""), ("POST", "/true-up"), ("GET", "/batches"),
                             ("POST", "/replay")]:
            kwargs = {"json": {"interval": 5}} if method == "PATCH" else {}
            answer = other.request(method, f"/v1/webhooks/{webhook['id']}{path}", **kwargs)
            assert answer.status_code == 404, (method, path, answer.text)
            unknown = other.request(method, f"/v1/webhooks/wh_unknown{path}", **kwargs).json()["detail"]
            assert answer.json()["detail"] == unknown.replace("wh_unknown", webhook["id"])  # alike: nothing leaks
        assert other.get(f"/v1/batches/{sealed.id}").status_code == 404
        assert other.get("/v1/batches/bat_unknown").json()["detail"] == "no batch 'bat_unknown'"
        assert other.get("/v1/webhooks").json() == []
        assert client.get(f"/v1/batches/{sealed.id}").status_code == 200
    assert httpx.get(f"{open_api.url}/v1/batches/{sealed.id}").status_code == 401


def test_patch_changes_only_what_it_is_given_and_pauses(open_api: Api) -> None:
    with open_api.client(open_api.partner("acme")) as client:
        webhook = create(client, query={"quantity": {"lt": 5}}).json()
        patched = client.patch(f"/v1/webhooks/{webhook['id']}", json={"interval": "PT2M", "status": "paused"})
        assert patched.status_code == 200, patched.text
        assert (patched.json()["interval"], patched.json()["status"], patched.json()["query"]) == (120, "paused",
                                                                                               {"quantity": {"lt": 5}})
        cleared = client.patch(f"/v1/webhooks/{webhook['id']}", json={"query": None, "status": "active"}).json()
        assert (cleared["query"], cleared["status"]) == (None, "active")
        for bad in ({"status": "disabled"}, {"interval": None}, {"interval": 0}, {"secret": "x"}, {"query": {"a": {"x": 1}}}):
            assert client.patch(f"/v1/webhooks/{webhook['id']}", json=bad).status_code == 422, bad
        assert client.patch(f"/v1/webhooks/{webhook['id']}", json={}).json()["interval"] == 120
        assert client.delete(f"/v1/webhooks/{webhook['id']}").status_code == 204
        assert client.get(f"/v1/webhooks/{webhook['id']}").status_code == 404
        assert client.delete(f"/v1/webhooks/{webhook['id']}").status_code == 404


def test_the_batch_streams_ndjson_with_its_count_gzip_when_asked_and_is_listed(open_api: Api) -> None:
    with open_api.client(open_api.partner("acme", {"warehouse": "NYC"})) as client:
        webhook = create(client, query={"quantity": {"lt": 5}}).json()
        for sku, quantity, warehouse in [("A", 1, "NYC"), ("B", 9, "NYC"), ("C", 2, "SFO"), ("D", 3, "NYC")]:
            put_object(open_api.store, "inventory", sku, {"sku": sku, "quantity": quantity, "warehouse": warehouse})
        put_object(open_api.store, "inventory", "A", {"sku": "A", "quantity": 0, "warehouse": "NYC"})
        # Routing is the router's job; here every change is routed, so the download shows the window as it is.
        sealed = seal_now(open_api.store, webhook["id"])
        assert sealed is not None
        unfetched = client.get(f"/v1/webhooks/{webhook['id']}/batches", params={"status": "unfetched"}).json()
        assert [b["id"] for b in unfetched] == [sealed.id]
        assert unfetched[0]["url"].endswith(f"/v1/batches/{sealed.id}") and unfetched[0]["fetched_at"] is None
        plain = client.get(f"/v1/batches/{sealed.id}", headers={"Accept-Encoding": "identity"})
        assert plain.status_code == 200 and plain.headers["content-type"] == "application/x-ndjson"
        assert plain.headers["leo-record-count"] == "4" and "content-encoding" not in plain.headers
        records = [json.loads(line) for line in plain.text.splitlines()]
        assert [(r["key"], r["version"]) for r in records] == [("A", 2), ("B", 1), ("C", 1), ("D", 1)]
        raw = httpx.get(f"{open_api.url}/v1/batches/{sealed.id}", headers={
            "Authorization": client.headers["authorization"], "Accept-Encoding": "gzip"})
        assert raw.headers["content-encoding"] == "gzip" and raw.text == plain.text  # httpx decoded it
        with httpx.stream("GET", f"{open_api.url}/v1/batches/{sealed.id}", headers={
                "Authorization": client.headers["authorization"], "Accept-Encoding": "gzip"}) as streamed:
            zipped = b"".join(streamed.iter_raw())
        assert gzip.decompress(zipped).decode() == plain.text
        assert client.get(f"/v1/webhooks/{webhook['id']}/batches", params={"status": "unfetched"}).json() == []
        assert client.get(f"/v1/webhooks/{webhook['id']}/batches", params={"status": "all"}).json()[0]["fetched_at"]
        assert client.get(f"/v1/webhooks/{webhook['id']}/batches", params={"status": "some"}).status_code == 422
        with open_api.admin() as admin:
            assert admin.get(f"/v1/batches/{sealed.id}").text == plain.text  # the operator may read any batch


def test_a_batch_past_its_retention_answers_410(open_api: Api) -> None:
    with open_api.client(open_api.partner("acme")) as client:
        webhook = create(client).json()
        put_object(open_api.store, "inventory", "A", {"sku": "A", "quantity": 1})
        sealed = seal_now(open_api.store, webhook["id"], retention_ms=1)
        assert sealed is not None
        answer = client.get(f"/v1/batches/{sealed.id}")
        assert answer.status_code == 410 and "past its retention" in answer.json()["detail"]
        assert client.get(f"/v1/webhooks/{webhook['id']}/batches").json() == []


def test_true_up_and_replay_are_accepted(open_api: Api) -> None:
    with open_api.client(open_api.partner("acme")) as client:
        webhook = create(client).json()
        accepted = client.post(f"/v1/webhooks/{webhook['id']}/true-up")
        assert accepted.status_code == 202 and accepted.json()["true_up_requested"] is True
        assert client.get(f"/v1/webhooks/{webhook['id']}").json()["true_up_requested"] is True
        put_object(open_api.store, "inventory", "A", {"sku": "A", "quantity": 1})
        webhook_row = open_api.store.webhook(webhook["id"])
        commit(open_api.store, RouteChanges([(webhook_row.rid, webhook_row.start_seq + 1, "A")]))
        replayed = client.post(f"/v1/webhooks/{webhook['id']}/replay")
        assert replayed.status_code == 202 and replayed.json() == {"replayed": 0}


def test_a_batcher_bots_batch_is_read_by_the_admin_and_its_named_readers(open_api: Api) -> None:
    store = open_api.store
    reader, stranger = open_api.partner("erp"), open_api.partner("other")
    first, last = store.append("erp.in", [{"n": 1}, {"n": 2}])
    subscription = BotSubscription("bot:erp-batches", "erp.in", "erp-batches", 1000, "erp.batches", '["erp"]')
    commit(store, RouteChanges([(0, first, "#1"), (0, last, "#2")], subscription=subscription), bot="erp-batches")
    rid = store.webhook("bot:erp-batches").rid
    store.update_webhook("bot:erp-batches", {"interval_ms": 1000}, 0)
    seal = SealWebhooks(10**13, 86_400_000, webhooks=[rid])
    commit(store, seal, bot="erp-batches")
    batch_id = seal.sealed[0].id
    with open_api.client(reader) as client:
        assert [json.loads(line)["n"] for line in client.get(f"/v1/batches/{batch_id}").text.splitlines()] == [1, 2]
        assert client.get("/v1/webhooks").json() == []  # a bot's subscription is no partner's webhook
        assert client.get("/v1/webhooks/bot:erp-batches").status_code == 404
    with open_api.client(stranger) as client:
        assert client.get(f"/v1/batches/{batch_id}").status_code == 404
    with open_api.admin() as admin:
        assert admin.get(f"/v1/batches/{batch_id}").headers["leo-record-count"] == "2"


@pytest.mark.parametrize(("header", "gzip_"), [("gzip", True), ("br, gzip;q=0.5", True), ("*", True), ("x-gzip", True),
                                               ("gzip;q=0", False), ("identity", False), ("", False), ("gzipped", False),
                                               ("gzip;q=abc", False), ("deflate, br", False)])
def test_accept_encoding_is_read_with_its_quality(header: str, gzip_: bool) -> None:
    from leo_runtime.server.batches import accepts_gzip

    assert accepts_gzip(header) is gzip_


def test_hostile_ids_and_a_revoked_partner(open_api: Api) -> None:
    token = open_api.partner("acme")
    with open_api.client(token) as client:
        for path in ("/v1/webhooks/..%2Fadmin", "/v1/webhooks/" + "x" * 5000, "/v1/batches/" + "b" * 5000,
                     "/v1/batches/%00", "/v1/webhooks/wh_%F0%9F%98%80"):
            assert client.get(path).status_code in (404, 414), path
        webhook = create(client).json()
        put_object(open_api.store, "inventory", "A", {"sku": "A", "quantity": 1})
        assert seal_now(open_api.store, webhook["id"]) is not None
        assert open_api.store.due_deliveries("", now_ms() + 1000)
        with open_api.admin() as admin:
            assert admin.delete("/v1/admin/partners/acme").status_code == 204
        assert client.get("/v1/webhooks").status_code == 401
    # A revoked partner's webhooks are neither routed nor notified any more.
    assert open_api.store.due_deliveries("", now_ms() + 1000) == []
    assert open_api.store.route_subscriptions("inventory.changes") == []


def test_a_partner_has_at_most_server_limits_webhooks(make_api) -> None:
    api = make_api(server={"allow_private_callbacks": True, "limits": {"webhooks": 3}})
    with api.client(api.partner("acme")) as client:
        assert [create(client).status_code for _ in range(3)] == [201, 201, 201]
        refused = create(client)
        assert refused.status_code == 422 and "at most 3 webhooks" in refused.json()["detail"]
