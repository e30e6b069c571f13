"""One reading of every API body: a key named twice, or an integer past 64 bits, is a 422 naming
the field (``body.query.total``) or the line (``body:1``), and nothing is written (see also
tests/test_one_reading.py for every other way JSON comes in)."""

from __future__ import annotations

import gzip
import json

import httpx
import pytest

from leo_runtime.jsonio import MAX_INT
from leo_runtime.objects import ingest, parse_objects

from ..objects_helpers import live_objects
from .conftest import Api

BIG = "123456789012345678901234567890"


def test_the_admin_ingest_api_refuses_the_body(api: Api) -> None:
    with api.admin() as admin:
        answer = admin.post("/v1/admin/objects/order", content=b'{"po_number":"A","po_number":"B"}\n',
                            headers={"Content-Type": "application/x-ndjson"})
        array = admin.post("/v1/admin/objects/order", content=b'[{"po_number":"A","total":' + BIG.encode() + b"}]",
                           headers={"Content-Type": "application/json"})
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["detail"].startswith("body:1: duplicate key 'po_number' (column 18)")
    assert array.status_code == 422 and f"body:1: integer {BIG} at [0].total is outside 64 bits" in array.json()["detail"]
    assert live_objects(api.store, "order") == {}


@pytest.mark.parametrize(
    ("route", "body", "detail"),
    [
        ("/v1/streams", '{"object_type": "order", "object_type": "inventory"}',
         "body: duplicate key 'object_type' (column 26): an object may name each key once"),
        ("/v1/streams", '{"object_type": "order", "query": {"total": {"lt": 1, "lt": 2}}}',
         "body.query.total: duplicate key 'lt': an object may name each key once"),
        ("/v1/streams", '{"object_type": "order", "query": {"total": {"lt": ' + BIG + "}}}",
         f"body.query.total.lt: integer {BIG} is outside 64 bits"),
        ("/v1/webhooks", '{"object_type": "order", "callback_url": "https://example.com/a", "interval": 60, '
                         '"callback_url": "https://example.com/b"}',
         "body: duplicate key 'callback_url'"),
        ("/v1/webhooks", '{"object_type": "order", "callback_url": "https://example.com/a", "interval": ' + BIG + "}",
         f"body.interval: integer {BIG} is outside 64 bits"),
    ],
)
def test_every_api_body_is_read_one_way(api: Api, route: str, body: str, detail: str) -> None:
    with api.client(api.partner("acme")) as client:
        answer = client.post(route, content=body.encode(), headers={"Content-Type": "application/json"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"].startswith(detail)
    assert api.store.streams() == [] and api.store.webhooks() == []


def test_an_object_stored_under_one_reading_is_what_every_reader_sees(api: Api) -> None:
    text = b'{"po_number":"A","total":18446744073709551615,"neg":-0}'
    ingest(api.store, "order", "po_number", parse_objects(text + b"\n", "test"))
    with api.client(api.partner("acme")) as client:
        answer = client.get("/v1/objects/order/A")
    assert answer.status_code == 200
    assert answer.content.endswith(b',"data":' + text + b"}")
    assert answer.json()["data"]["total"] == MAX_INT


# -- repeated parameters and headers ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "query",
    ["limit=1&limit=2", "limit=1&lim%69t=2", "wait=0&after=&after=", "x=1&x=1"],
)
def test_a_repeated_query_parameter_is_refused_on_every_route(make_api, query: str) -> None:
    api = make_api(server={"allow_private_callbacks": True})
    token = api.partner("acme")
    with api.client(token) as client:
        stream = client.post("/v1/streams", json={"object_type": "order"}).json()["id"]
        webhook = client.post("/v1/webhooks", json={"object_type": "order", "callback_url": "https://example.com/a",
                                                     "interval": 60}).json()["id"]
        for path in (f"/v1/streams/{stream}/partitions/0/records", "/v1/streams", f"/v1/webhooks/{webhook}/batches",
                     "/v1/objects/order/A", "/healthz"):
            answer = client.get(f"{path}?{query}")
            assert answer.status_code == 422, (path, answer.text)
            assert answer.headers["content-type"] == "application/problem+json"
            assert "is given more than once" in answer.json()["detail"]
        # Once each is fine (the stream read's fast lane answers it).
        assert client.get(f"/v1/streams/{stream}/partitions/0/records?limit=1&wait=0").status_code == 200


@pytest.mark.parametrize("header", ["Content-Type", "Content-Encoding", "Lease-Id"])
def test_a_repeated_single_header_is_refused(api: Api, header: str) -> None:
    values = {"Content-Type": ("application/json", "text/plain"), "Content-Encoding": ("identity", "gzip"),
              "Lease-Id": ("ls_a", "ls_b")}[header]
    with api.client(api.partner("acme")) as client:
        answer = client.post("/v1/streams", content=b'{"object_type": "order"}',
                             headers=[("Content-Type", "application/json")] * (header != "Content-Type")
                             + [(header, value) for value in values])
    assert answer.status_code == 400, answer.text
    assert f"header {header} is given more than once" in answer.json()["detail"]
    assert api.store.streams() == []


# -- Content-Encoding: honoured (gzip) or refused, never ignored --------------------------------------------
WEBHOOK = json.dumps({"object_type": "order", "callback_url": "https://203.0.113.10/a", "interval": 60}).encode()


def post_webhook(api: Api, body: bytes, encoding: str) -> httpx.Response:
    token = getattr(api, "token", None) or api.partner("acme")
    api.token = token  # type: ignore[attr-defined]  # one partner per test
    with api.client(token) as client:
        return client.post("/v1/webhooks", content=body, headers={"Content-Type": "application/json",
                                                                  "Content-Encoding": encoding})


def test_a_gzip_body_is_inflated(make_api) -> None:
    api = make_api(server={"allow_private_callbacks": True})
    assert post_webhook(api, gzip.compress(WEBHOOK, mtime=0), "gzip").status_code == 201
    assert post_webhook(api, WEBHOOK, "identity").status_code == 201
    two_members = gzip.compress(WEBHOOK[:20], mtime=0) + gzip.compress(WEBHOOK[20:], mtime=0)  # gzip members, concatenated
    assert post_webhook(api, two_members, "gzip").status_code == 201


@pytest.mark.parametrize(
    ("body", "encoding", "status", "says"),
    [
        (WEBHOOK, "gzip", 400, "Content-Encoding is gzip but the body is not gzip data"),  # seen: accepted as plain
        (gzip.compress(WEBHOOK, mtime=0)[:-12], "gzip", 400, "the gzip data ends before its end"),
        (WEBHOOK, "br", 415, "Content-Encoding 'br' is not supported"),
        (WEBHOOK, "gzip, gzip", 415, "is not supported"),
        (gzip.compress(b"[" + b" " * (2 << 20) + b"]", mtime=0), "gzip", 413,
         "larger than the limit of 1,048,576 bytes once inflated"),
    ],
    ids=["plain body said gzip", "cut-off gzip", "br", "gzip twice", "gzip bomb"],
)
def test_a_body_encoding_that_cannot_be_honoured_is_refused(api: Api, body: bytes, encoding: str, status: int,
                                                            says: str) -> None:
    answer = post_webhook(api, body, encoding)
    assert answer.status_code == status, answer.text
    assert says in answer.json()["detail"]
    if status == 415:
        assert answer.headers["accept-encoding"] == "gzip"
    assert api.store.webhooks() == []


def test_gzip_ingest_is_bounded_by_what_it_inflates_to(make_api) -> None:
    api = make_api(server={"max_ingest_bytes": 10_000})
    lines = b"".join(b'{"po_number":"P%d","total":%d}\n' % (n, n) for n in range(100))
    with api.admin() as admin:
        ok = admin.post("/v1/admin/objects/order", content=gzip.compress(lines, mtime=0),
                        headers={"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"})
        big = admin.post("/v1/admin/objects/order", content=gzip.compress(lines * 10, mtime=0),
                         headers={"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"})
    assert ok.json() == {"created": 100, "updated": 0, "unchanged": 0}
    assert big.status_code == 413 and "(server.max_ingest_bytes)" in big.json()["detail"]
