"""Get Object over a loopback port: body, ETag / 304, 404s, scopes, hostile keys, rate headers."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest

from leo_runtime.objects import ingest, parse_objects
from leo_runtime.timeutil import format_time

from .conftest import Api, put_object

RATE_HEADERS = ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset")


def test_get_object_answers_the_latest_state_with_etag_and_rate_headers(api: Api) -> None:
    for quantity in (9, 5, 4):  # three versions
        put_object(api.store, "inventory", "SKU-1", {"sku": "SKU-1", "quantity": quantity, "name": "Bolt ⚙"})
    with api.client(api.partner("acme")) as client:
        answer = client.get("/v1/objects/inventory/SKU-1")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert body == {
        "object_type": "inventory",
        "key": "SKU-1",
        "version": 3,
        "changed_at": body["changed_at"],
        "data": {"sku": "SKU-1", "quantity": 4, "name": "Bolt ⚙"},
    }
    assert body["changed_at"] == format_time(api.store.get_object("inventory", "SKU-1").changed_at)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", body["changed_at"])
    assert answer.headers["etag"].startswith('"3-')
    assert answer.headers["cache-control"] == "private, no-cache"
    assert [answer.headers[name] for name in RATE_HEADERS] == ["10", "9", "1"]


@pytest.mark.parametrize("if_none_match", ["{tag}", "W/{tag}", '"other", {tag}', "W/\"x\",W/{tag}", "*"])
def test_if_none_match_with_the_current_tag_answers_304(api: Api, if_none_match: str) -> None:
    put_object(api.store, "inventory", "SKU-1", {"sku": "SKU-1"})
    with api.client(api.partner("acme")) as client:
        tag = client.get("/v1/objects/inventory/SKU-1").headers["etag"]
        answer = client.get("/v1/objects/inventory/SKU-1", headers={"If-None-Match": if_none_match.format(tag=tag)})
    assert answer.status_code == 304
    assert answer.content == b""
    assert answer.headers["etag"] == tag
    assert all(name in answer.headers for name in RATE_HEADERS)


@pytest.mark.parametrize("if_none_match", ['"nope"', "W/\"nope\"", "garbage", '"3-', ""])
def test_if_none_match_with_another_tag_answers_200(api: Api, if_none_match: str) -> None:
    put_object(api.store, "inventory", "SKU-1", {"sku": "SKU-1"})
    with api.client(api.partner("acme")) as client:
        answer = client.get("/v1/objects/inventory/SKU-1", headers={"If-None-Match": if_none_match})
    assert answer.status_code == 200


def test_a_new_version_gets_a_new_tag(api: Api) -> None:
    put_object(api.store, "inventory", "SKU-1", {"sku": "SKU-1", "quantity": 1})
    with api.client(api.partner("acme")) as client:
        old = client.get("/v1/objects/inventory/SKU-1").headers["etag"]
        put_object(api.store, "inventory", "SKU-1", {"sku": "SKU-1", "quantity": 1})  # no change: same tag
        assert client.get("/v1/objects/inventory/SKU-1", headers={"If-None-Match": old}).status_code == 304
        put_object(api.store, "inventory", "SKU-1", {"sku": "SKU-1", "quantity": 2})
        answer = client.get("/v1/objects/inventory/SKU-1", headers={"If-None-Match": old})
    assert answer.status_code == 200
    assert answer.json()["data"]["quantity"] == 2
    assert answer.headers["etag"] != old


def test_unknown_type_unknown_key_and_deleted_objects_answer_404_problems_with_rate_headers(api: Api) -> None:
    put_object(api.store, "inventory", "GONE", {"sku": "GONE"}, deleted=True)
    put_object(api.store, "unlisted", "SKU-1", {"sku": "SKU-1"})  # in the store, but not an object type
    with api.client(api.partner("acme")) as client:
        answers = {
            "type": client.get("/v1/objects/widgets/SKU-1"),
            "unlisted": client.get("/v1/objects/unlisted/SKU-1"),
            "key": client.get("/v1/objects/inventory/NOPE"),
            "deleted": client.get("/v1/objects/inventory/GONE"),
            "empty key": client.get("/v1/objects/inventory/"),
        }
    for answer in answers.values():
        assert answer.status_code == 404
        assert answer.headers["content-type"] == "application/problem+json"
        assert all(name in answer.headers for name in RATE_HEADERS)
        assert set(answer.json()) == {"type", "title", "status", "detail"}
    assert answers["type"].json()["detail"] == "unknown object type 'widgets' (known: inventory, order)"
    assert answers["key"].json()["detail"] == "no object 'NOPE' of type 'inventory'"
    assert answers["deleted"].json()["detail"] == "object 'GONE' of type 'inventory' was deleted"


def test_a_partner_sees_only_objects_inside_its_scope_and_the_rest_look_unknown(api: Api) -> None:
    put_object(api.store, "inventory", "NYC-1", {"sku": "NYC-1", "warehouse": "NYC", "quantity": 3})
    put_object(api.store, "inventory", "SFO-1", {"sku": "SFO-1", "warehouse": "SFO", "quantity": 3})
    put_object(api.store, "inventory", "NYC-GONE", {"sku": "NYC-GONE", "warehouse": "NYC"}, deleted=True)
    put_object(api.store, "inventory", "SFO-GONE", {"sku": "SFO-GONE", "warehouse": "SFO"}, deleted=True)
    nyc = api.partner("nyc", {"warehouse": "NYC"})
    sfo_low = api.partner("sfo-low", {"warehouse": {"in": ["SFO"]}, "quantity": {"lt": 5}})
    everyone = api.partner("everyone")
    with api.client(nyc) as a, api.client(sfo_low) as b, api.client(everyone) as c:
        assert a.get("/v1/objects/inventory/NYC-1").status_code == 200
        assert b.get("/v1/objects/inventory/SFO-1").status_code == 200
        assert c.get("/v1/objects/inventory/NYC-1").status_code == 200
        assert c.get("/v1/objects/inventory/SFO-1").status_code == 200
        outside = a.get("/v1/objects/inventory/SFO-1")
        unknown = a.get("/v1/objects/inventory/XYZ-1")
        outside_deleted = a.get("/v1/objects/inventory/SFO-GONE")
        assert b.get("/v1/objects/inventory/NYC-1").status_code == 404
        assert a.get("/v1/objects/inventory/NYC-GONE").json()["detail"].endswith("was deleted")
    # Nothing tells an object outside the scope from a key that never existed.
    assert outside.status_code == unknown.status_code == outside_deleted.status_code == 404
    assert outside.content.replace(b"SFO-1", b"K") == unknown.content.replace(b"XYZ-1", b"K")
    assert outside_deleted.content.replace(b"SFO-GONE", b"K") == unknown.content.replace(b"XYZ-1", b"K")
    assert sorted(outside.headers.keys()) == sorted(unknown.headers.keys())


@pytest.mark.parametrize(
    "key",
    ["a/b/c", "a b", "100%", "%41", "ünï/cødé ⚙", "q?x=1#frag", "..", ".", "a\\b", "trailing/", "'\"<>"],
)
def test_keys_with_any_character_are_reached_percent_encoded(api: Api, key: str) -> None:
    put_object(api.store, "inventory", key, {"sku": key})
    put_object(api.store, "inventory", "A", {"sku": "A"})  # what "%41" must not reach
    # Clients drop "." and ".." path segments (RFC 3986): such keys need their dots encoded too.
    path = quote(key, safe="") if key.strip(".") else key.replace(".", "%2E")
    with api.client(api.partner("acme")) as client:
        answer = client.get("/v1/objects/inventory/" + path)
        assert answer.status_code == 200, answer.text
        assert answer.json()["key"] == key
        assert answer.json()["data"] == {"sku": key}


def test_slashes_in_a_key_may_also_be_sent_as_is(api: Api) -> None:
    put_object(api.store, "inventory", "a/b", {"sku": "a/b"})
    with api.client(api.partner("acme")) as client:
        assert client.get("/v1/objects/inventory/a/b").json()["key"] == "a/b"
        assert client.get("/v1/objects/inventory/a%2Fb").json()["key"] == "a/b"


def test_a_long_key_is_cut_short_in_the_detail(api: Api) -> None:
    with api.client(api.partner("acme")) as client:
        answer = client.get("/v1/objects/inventory/" + "k" * 10_000)
    assert answer.status_code == 404
    assert answer.json()["detail"] == f"no object '{'k' * 100}...' of type 'inventory'"


def test_a_key_with_invalid_utf8_percent_escapes_is_unknown(api: Api) -> None:
    with api.client(api.partner("acme")) as client:
        answer = client.get("/v1/objects/inventory/%ff%fe")
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"


def test_stored_data_is_served_byte_for_byte(api: Api) -> None:
    text = '{"sku":"X","n":1.50,"big":12345678901234567890,"s":"\\u00e9"}'
    ingest(api.store, "inventory", "sku", parse_objects(text.encode() + b"\n", "test"))
    with api.client(api.partner("acme")) as client:
        answer = client.get("/v1/objects/inventory/X")
    assert answer.status_code == 200
    assert answer.content.endswith(b',"data":' + text.encode() + b"}")
