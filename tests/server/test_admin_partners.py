"""Admin partner routes over a loopback port, and the hostile bodies they must refuse cleanly."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest

from .conftest import Api, put_object


def _problem(answer, status: int) -> str:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    return answer.json()["detail"]


def test_create_answers_201_with_a_token_that_works_and_is_stored_only_as_a_hash(api: Api) -> None:
    put_object(api.store, "inventory", "NYC-1", {"sku": "NYC-1", "warehouse": "NYC"})
    put_object(api.store, "inventory", "SFO-1", {"sku": "SFO-1", "warehouse": "SFO"})
    with api.admin() as admin:
        answer = admin.post("/v1/admin/partners", json={"name": "acme", "scope": {"warehouse": "NYC"}})
    assert answer.status_code == 201
    created = answer.json()
    assert set(created) == {"name", "token", "scope"}
    assert created["name"] == "acme" and created["scope"] == {"warehouse": "NYC"}
    token = created["token"]
    assert token.startswith("leo_") and len(token) >= 40
    with api.client(token) as partner:
        assert partner.get("/v1/objects/inventory/NYC-1").status_code == 200
        assert partner.get("/v1/objects/inventory/SFO-1").status_code == 404
    record = api.store.partner("acme")
    assert record.token_hash == hashlib.sha256(token.encode()).digest()
    api.store.close()
    for path in api.store.path.parent.glob("leo.db*"):
        assert token.encode() not in path.read_bytes()


def test_two_partners_get_different_tokens_and_a_taken_name_is_409(api: Api) -> None:
    with api.admin() as admin:
        first = admin.post("/v1/admin/partners", json={"name": "acme"}).json()
        second = admin.post("/v1/admin/partners", json={"name": "globex"}).json()
        again = admin.post("/v1/admin/partners", json={"name": "acme"})
    assert first["token"] != second["token"]
    assert first["scope"] is None
    assert _problem(again, 409) == "partner 'acme' already exists; choose another name"


def test_list_and_revoke(api: Api) -> None:
    put_object(api.store, "inventory", "SKU-1", {"sku": "SKU-1"})
    token = api.partner("acme", {"quantity": {"lt": 5}})
    with api.admin() as admin, api.client(token) as partner:
        listed = admin.get("/v1/admin/partners").json()
        assert [(p["name"], p["scope"], p["revoked_at"]) for p in listed] == [("acme", {"quantity": {"lt": 5}}, None)]
        assert "token" not in listed[0]
        assert admin.delete("/v1/admin/partners/acme").status_code == 204
        assert partner.get("/v1/objects/inventory/SKU-1").status_code == 401
        assert admin.get("/v1/admin/partners").json()[0]["revoked_at"].endswith("Z")
        assert admin.delete("/v1/admin/partners/acme").status_code == 204  # again: harmless
        assert _problem(admin.delete("/v1/admin/partners/nobody"), 404) == "no partner 'nobody'; `leo partners list` shows them"


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"name": "acme", "scope": {"quantity": {"less": 5}}},
         "body.scope: Value error, field 'quantity': unknown operator 'less' (did you mean 'lt'?)"),
        ({"name": "acme", "scope": {"quantity": {"lt": [5]}}}, "field 'quantity': operator 'lt' needs a number or a string"),
        ({"name": "acme", "scope": {"a..b": 1}}, "field 'a..b'"),
        ({"name": "acme", "scope": ["warehouse"]}, "body.scope: Input should be a valid dictionary"),
        ({"name": "acme", "scope": "NYC"}, "body.scope: Input should be a valid dictionary"),
        ({"name": "bad name"}, "body.name: Value error, partner name 'bad name' is not valid: a name holds only letters"),
        ({"name": ""}, "body.name: Value error, partner name '' is not valid"),
        ({"name": "x" * 201}, "(at most 200 characters)"),
        ({"name": 5}, "body.name: Input should be a valid string"),
        ({}, "body.name: Field required"),
        ({"name": "acme", "token": "mine"}, "body.token: Extra inputs are not permitted"),
        ([{"name": "acme"}], "body: Input should be a valid dictionary"),
    ],
)
def test_bad_bodies_are_422_naming_the_field(api: Api, body: object, says: str) -> None:
    with api.admin() as admin:
        answer = admin.post("/v1/admin/partners", json=body)
    detail = _problem(answer, 422)
    assert says in detail
    assert answer.json()["errors"][0]["loc"][0] == "body"
    assert api.store.partners() == []


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b'{"name": "acme",}', "body: not JSON"),
        (b'{"name": "acme", "scope": {"n": NaN}}', "body: NaN and Infinity are not JSON"),
        (b'{"name": "acme"', "body: not JSON"),
        (b"\xef\xbb\xbf{\"name\": \"acme\"}", "body: starts with a UTF-8 byte order mark"),
        ('{"name": "acme"}'.encode("utf-16"), "body: "),
        (b'{"name": "\xff"}', "body: not UTF-8"),
        (b'{"name": "\\ud800"}', "body: not JSON"),
        (b'{"name": "acme", "scope": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", "body: nested deeper than 100 levels"),
        (b'{"name": "acme", "scope": ' + b'{"a":' * 150 + b"1" + b"}" * 150 + b"}", "body: nested deeper than 100 levels"),
    ],
)
def test_broken_json_is_a_422_that_says_why(api: Api, raw: bytes, says: str) -> None:
    with api.admin() as admin:
        answer = admin.post("/v1/admin/partners", content=raw, headers={"Content-Type": "application/json; charset=utf-8"})
    assert says in _problem(answer, 422)
    assert api.store.partners() == []


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/jsonx", "json", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None],
)
def test_a_body_that_is_not_declared_json_is_415(api: Api, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    with api.admin() as admin:
        answer = admin.post("/v1/admin/partners", content=b'{"name": "acme"}', headers=headers)
    assert _problem(answer, 415) == "the body must be JSON: send it with 'Content-Type: application/json'"
    assert api.store.partners() == []


def test_a_huge_body_is_413_whether_declared_or_streamed(api: Api) -> None:
    huge = b'{"name": "acme", "pad": "' + b"x" * (2 << 20) + b'"}'

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must count as bytes arrive
        for start in range(0, len(huge), 65536):
            yield huge[start:start + 65536]

    with api.admin() as admin:
        declared = admin.post("/v1/admin/partners", content=huge, headers={"Content-Type": "application/json"})
        streamed = admin.post("/v1/admin/partners", content=chunks(), headers={"Content-Type": "application/json"})
        assert admin.post("/v1/admin/partners", json={"name": "ok"}).status_code == 201  # the server is fine
    for answer in (declared, streamed):
        assert _problem(answer, 413) == "the request body is larger than the limit of 1,048,576 bytes"
    assert [p.name for p in api.store.partners()] == ["ok"]
