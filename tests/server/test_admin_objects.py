"""Admin object ingest and delete over a loopback port: all or nothing, located errors, limits."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from urllib.parse import quote, urlsplit

import httpx
import pytest

from ..conftest import ndjson, payloads_of
from .conftest import ADMIN_TOKEN, Api

NDJSON = {"Content-Type": "application/x-ndjson"}


def _problem(answer: httpx.Response, status: int) -> str:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    return answer.json()["detail"]


def _nothing_written(api: Api) -> bool:
    return api.store.list_objects("inventory", deleted=True) == [] and payloads_of(api.store, "inventory.changes") == []


def test_ingest_reports_created_updated_unchanged_and_writes_change_records(api: Api) -> None:
    items = [{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 2}]
    with api.admin() as admin:
        first = admin.post("/v1/admin/objects/inventory", json=items)
        again = admin.post("/v1/admin/objects/inventory", json=items)
        changed = admin.post("/v1/admin/objects/inventory", content=ndjson([{"sku": "A", "quantity": 0}, items[1]]),
                             headers=NDJSON)
    assert first.status_code == 200
    assert first.json() == {"created": 2, "updated": 0, "unchanged": 0}
    assert again.json() == {"created": 0, "updated": 0, "unchanged": 2}
    assert changed.json() == {"created": 0, "updated": 1, "unchanged": 1}
    records = payloads_of(api.store, "inventory.changes")
    assert [(r["key"], r["op"], r["version"]) for r in records] == [("A", "created", 1), ("B", "created", 1), ("A", "updated", 2)]
    assert records[-1]["changed_fields"] == ["quantity"]
    with api.client(api.partner("acme")) as partner:
        assert partner.get("/v1/objects/inventory/A").json()["data"] == {"sku": "A", "quantity": 0}


@pytest.mark.parametrize("content_type", [None, "application/json", "application/x-ndjson", "application/jsonl",
                                          "application/json; charset=utf-8"])
def test_an_array_or_ndjson_is_taken_with_or_without_a_content_type(api: Api, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    body = ndjson([{"sku": "A"}, {"sku": "B"}]) if "nd" in (content_type or "nd") else json.dumps([{"sku": "A"}, {"sku": "B"}])
    with api.admin() as admin:
        answer = admin.post("/v1/admin/objects/inventory", content=body.encode(), headers=headers)
    assert answer.json() == {"created": 2, "updated": 0, "unchanged": 0}


def test_an_ndjson_line_is_stored_as_sent(api: Api) -> None:
    line = b'{"sku":"A",  "price":1.50, "big":12345678901234567890}'
    with api.admin() as admin:
        assert admin.post("/v1/admin/objects/inventory", content=line + b"\r\n", headers=NDJSON).status_code == 200
    assert api.store.get_object("inventory", "A").data_json == line.decode()


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"sku": "A"}\n{"sku": "B"}\n{"sku": "C",}\n', "body:3: not JSON"),
        (b'{"sku": "A"}\n\n{"sku": "B"}\n{"sku": NaN}\n', "body:4: NaN and Infinity are not JSON"),
        (b'{"sku": "A"}\n{"quantity": 5}\n', "body:2: missing key field 'sku'"),
        (b'[{"sku": "A"}, {"quantity": 5}]', "body: item 2: missing key field 'sku'"),
        (b'[{"sku": "A"},\n {"sku": "B"},\n {"sku": }]', "body:3: not JSON"),
        (b'{"sku": "A"}\n[1, 2]\n', "body:2: expected a JSON object, got an array"),
        (b'[1]', "body: item 1: expected a JSON object, got a number"),
        (b'{"sku": ""}', "body:1: key field 'sku' is an empty string"),
        (b'{"sku": null}', "body:1: key field 'sku' must be a non-empty string or an integer, not null"),
        (b'{"sku": "A"}\n{"sku": "\xff"}\n', "body:2: not UTF-8"),
        (b"\xef\xbb\xbf" + b'{"sku": "A"}', "body:1: starts with a UTF-8 byte order mark"),
        ('[{"sku": "A"}]'.encode("utf-16"), "body:1: is UTF-16 or UTF-32"),
        (b'{"sku": "A", "deep": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", "body:1: nested deeper than 100 levels"),
        (b"[" * 10_000 + b"]" * 10_000, "body:1: nested deeper than 100 levels"),
        (b"  \n \n", "the body is empty"),
        (b"", "the body is empty"),
    ],
)
def test_a_bad_line_or_object_rejects_the_whole_body_with_its_place_and_writes_nothing(
    api: Api, body: bytes, says: str
) -> None:
    with api.admin() as admin:
        answer = admin.post("/v1/admin/objects/inventory", content=body, headers=NDJSON)
        assert says in _problem(answer, 422)
        assert _nothing_written(api)
        assert admin.post("/v1/admin/objects/inventory", json=[{"sku": "ok"}]).status_code == 200  # still serving


def test_an_unknown_object_type_is_422_naming_it(api: Api) -> None:
    with api.admin() as admin:
        detail = _problem(admin.post("/v1/admin/objects/widgets", json=[{"sku": "A"}]), 422)
    assert detail == "unknown object type 'widgets' (known: inventory, order)"


def test_the_key_field_is_the_types_own(api: Api) -> None:
    with api.admin() as admin:
        assert "missing key field 'po_number'" in _problem(admin.post("/v1/admin/objects/order", json=[{"sku": "A"}]), 422)
        assert admin.post("/v1/admin/objects/order", json=[{"po_number": 17}]).json()["created"] == 1
    assert api.store.get_object("order", "17") is not None  # an integer key becomes its decimal text


@pytest.mark.parametrize(
    ("headers", "says"),
    [
        ({"Content-Type": "text/csv"}, "Content-Type 'text/csv' is not accepted"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, "is not accepted: send application/json"),
        ({"Content-Type": "multipart/form-data; boundary=x"}, "is not accepted"),
        ({"Content-Type": "application/json", "Content-Encoding": "br"}, "Content-Encoding 'br' is not supported"),
    ],
)
def test_other_content_types_and_encodings_are_415(api: Api, headers: dict[str, str], says: str) -> None:
    with api.admin() as admin:
        answer = admin.post("/v1/admin/objects/inventory", content=b'[{"sku": "A"}]', headers=headers)
    assert says in _problem(answer, 415)
    assert _nothing_written(api)


def test_a_body_past_the_limit_is_413_declared_or_streamed_and_writes_nothing(make_api) -> None:
    api = make_api(server={"max_ingest_bytes": 10_000})
    body = ndjson([{"sku": f"K{n}", "pad": "x" * 50} for n in range(1000)]).encode()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 4096):
            yield body[start:start + 4096]

    expected = ("the request body is larger than the limit of 10,000 bytes (server.max_ingest_bytes): "
                "send the objects in several requests")
    with api.admin() as admin:
        assert _problem(admin.post("/v1/admin/objects/inventory", content=body, headers=NDJSON), 413) == expected
        assert _problem(admin.post("/v1/admin/objects/inventory", content=chunks(), headers=NDJSON), 413) == expected
        assert _nothing_written(api)
        within = body[:9000].rsplit(b"\n", 1)[0]
        assert admin.post("/v1/admin/objects/inventory", content=within, headers=NDJSON).status_code == 200


def _raw_exchange(api: Api, head: bytes, body: bytes) -> bytes:
    """Send a request head and part of a body on a raw socket, never finishing the body; return
    what the server answers (it must answer without waiting for the rest)."""
    address = urlsplit(api.url)
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        sock.sendall(head + body)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            piece = sock.recv(65536)
            if not piece:
                break
            answer += piece
    return answer


def test_the_limit_is_enforced_while_the_body_streams_in(make_api) -> None:
    """A chunked body that passes the limit and never ends, and a Content-Length far past it with
    no body at all: both get their 413 at once (the server never waits for the whole body)."""
    api = make_api(server={"max_ingest_bytes": 10_000})
    auth = f"Authorization: Bearer {ADMIN_TOKEN}\r\n".encode()
    chunk = b"x" * 6000
    chunked = _raw_exchange(
        api,
        b"POST /v1/admin/objects/inventory HTTP/1.1\r\nHost: t\r\n" + auth + b"Transfer-Encoding: chunked\r\n\r\n",
        (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * 2,  # 12,000 bytes sent, the final 0-chunk never
    )
    declared = _raw_exchange(
        api,
        b"POST /v1/admin/objects/inventory HTTP/1.1\r\nHost: t\r\n" + auth + b"Content-Length: 1000000000000\r\n\r\n",
        b"",
    )
    for answer in (chunked, declared):
        assert answer.startswith(b"HTTP/1.1 413 ")
        assert b"application/problem+json" in answer
        assert b"larger than the limit of 10,000 bytes" in answer
    assert _nothing_written(api)


@pytest.mark.parametrize("key", ["SKU-1", "a/b", "ünï ⚙", "100%", "?#"])
def test_delete_answers_204_writes_a_delete_record_and_then_404(api: Api, key: str) -> None:
    with api.admin() as admin:
        admin.post("/v1/admin/objects/inventory", json=[{"sku": key, "quantity": 3}])
        path = "/v1/admin/objects/inventory/" + quote(key, safe="")
        answer = admin.delete(path)
        assert answer.status_code == 204 and answer.content == b""
        assert "unknown or already deleted" in _problem(admin.delete(path), 404)
    last = payloads_of(api.store, "inventory.changes")[-1]
    assert (last["key"], last["op"], last["version"], last["data"]) == (key, "deleted", 2, {"sku": key, "quantity": 3})
    with api.client(api.partner("acme")) as partner:
        assert partner.get("/v1/objects/inventory/" + quote(key, safe="")).status_code == 404


def test_delete_of_an_unknown_key_or_type_is_404(api: Api) -> None:
    with api.admin() as admin:
        assert "no object 'nope' of type 'inventory'" in _problem(admin.delete("/v1/admin/objects/inventory/nope"), 404)
        assert "unknown object type 'widgets'" in _problem(admin.delete("/v1/admin/objects/widgets/x"), 404)
    assert payloads_of(api.store, "inventory.changes") == []
