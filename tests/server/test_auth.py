"""Bearer auth on every /v1 route, problem+json for every error, and the OpenAPI description."""

from __future__ import annotations

import re

import httpx
import pytest

from leo_runtime.server.app import ApiContext, create_app

from .conftest import ADMIN_TOKEN, Api, put_object, serving

OBJECT = "/v1/objects/inventory/SKU-1"


def _problem(answer: httpx.Response, status: int) -> dict:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json()
    assert body["status"] == status and body["type"] == "about:blank" and body["title"] and body["detail"]
    return body


def test_no_token_is_a_401_with_a_bearer_challenge(api: Api) -> None:
    answer = httpx.get(api.url + OBJECT)
    body = _problem(answer, 401)
    assert answer.headers["www-authenticate"] == 'Bearer realm="leo"'
    assert "Authorization: Bearer" in body["detail"]


@pytest.mark.parametrize(
    ("header", "says"),
    [
        ("Basic dXNlcjpwYXNz", "scheme must be Bearer"),
        ("Bearer", "must be 'Bearer <token>'"),
        ("Bearer a b", "must be 'Bearer <token>'"),
        ("Bearer tok\u00e9n", "must be 'Bearer <token>'"),
        ("Bearer " + "a" * 600, "must be 'Bearer <token>'"),
        ("Bearer {token}x", "unknown or was revoked"),
        ("bearer nonsense", "unknown or was revoked"),
        ("Token {token}", "scheme must be Bearer"),
        ("", "the Authorization header is empty"),
    ],
)
def test_malformed_wrong_and_unknown_tokens_are_401(api: Api, header: str, says: str) -> None:
    token = api.partner("acme")
    put_object(api.store, "inventory", "SKU-1", {"sku": "SKU-1"})
    value = header.format(token=token).encode("utf-8")
    answer = httpx.get(api.url + OBJECT, headers=[(b"Authorization", value)])
    body = _problem(answer, 401)
    assert says in body["detail"]
    assert answer.headers["www-authenticate"].startswith('Bearer realm="leo", error="invalid_')
    assert token not in answer.text


@pytest.mark.parametrize("template", ["{token}", "{token} extra", "Token{token}", "Bearer{token}", "Bearer {token} x"])
def test_a_401_never_quotes_any_part_of_the_authorization_header(api: Api, template: str) -> None:
    token = api.partner("acme")
    value = template.format(token=token)
    answer = httpx.get(api.url + OBJECT, headers={"Authorization": value})
    _problem(answer, 401)
    shown = answer.text + "".join(answer.headers.values())
    assert not any(token[start:start + 6] in shown for start in range(len(token) - 5)), shown


def test_two_authorization_headers_are_refused(api: Api) -> None:
    token = api.partner("acme")
    answer = httpx.get(api.url + OBJECT, headers=[("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {token}")])
    assert "exactly one Authorization header" in _problem(answer, 401)["detail"]


def test_a_revoked_token_is_refused_on_the_next_request(api: Api) -> None:
    put_object(api.store, "inventory", "SKU-1", {"sku": "SKU-1"})
    token = api.partner("acme")
    with api.client(token) as client:
        assert client.get(OBJECT).status_code == 200
        api.store.revoke_partner("acme")
        answer = client.get(OBJECT)
    assert "unknown or was revoked" in _problem(answer, 401)["detail"]


def test_the_admin_token_is_not_a_partner_token_and_back(api: Api) -> None:
    token = api.partner("acme")
    with api.admin() as admin:
        assert "use a partner token" in _problem(admin.get(OBJECT), 403)["detail"]
    with api.client(token) as partner:
        assert "needs the admin token" in _problem(partner.get("/v1/admin/partners"), 403)["detail"]
        assert "needs the admin token" in _problem(partner.post("/v1/admin/partners", json={"name": "x"}), 403)["detail"]
    with api.client("not-the-admin-token") as stranger:
        answer = stranger.get("/v1/admin/partners")
        assert _problem(answer, 401)["detail"] == "the token is not the admin token"


def test_admin_routes_are_off_without_LEO_ADMIN_TOKEN_and_say_so(make_api) -> None:
    api = make_api(admin=False)
    for token in (None, ADMIN_TOKEN, "anything"):
        with api.client(token) as client:
            body = _problem(client.post("/v1/admin/partners", json={"name": "acme"}), 403)
        assert body["detail"] == "admin routes are off: set LEO_ADMIN_TOKEN in the environment of `leo run` to turn them on"
    assert api.store.partners() == []


def _operations(api: Api) -> list[tuple[str, str, dict]]:
    """(method, path, operation) of every route the app describes."""
    spec = httpx.get(api.url + "/openapi.json").json()
    return [(method.upper(), path, operation) for path, item in spec["paths"].items() for method, operation in item.items()]


def test_any_visible_ascii_admin_token_works_and_an_unusable_one_keeps_admin_routes_off(make_api, monkeypatch) -> None:
    api = make_api()
    monkeypatch.setenv("LEO_ADMIN_TOKEN", "p@$$w0rd!{}")
    app = create_app(api.store, ApiContext(settings=api.app.state.context.settings))
    with serving(app) as url:
        answer = httpx.get(url + "/v1/admin/partners", headers={"Authorization": "Bearer p@$$w0rd!{}"})
        assert answer.status_code == 200
    monkeypatch.setenv("LEO_ADMIN_TOKEN", "two words")
    app = create_app(api.store, ApiContext(settings=api.app.state.context.settings))
    with serving(app) as url:
        answer = httpx.get(url + "/v1/admin/partners", headers={"Authorization": "Bearer two"})
        detail = _problem(answer, 403)["detail"]
    assert detail.startswith("admin routes are off: LEO_ADMIN_TOKEN must be one token of visible ASCII")
    assert "two words" not in answer.text


def test_every_v1_route_needs_a_token(api: Api) -> None:
    routes = [(method, path) for method, path, _ in _operations(api) if path.startswith("/v1")]
    assert len(routes) >= 6
    for method, path in routes:
        answer = httpx.request(method, api.url + re.sub(r"\{\w+\}", "x", path), json={"name": "x"})
        _problem(answer, 401)
        assert answer.headers["www-authenticate"] == 'Bearer realm="leo"'


def test_unknown_paths_and_methods_are_problems(api: Api) -> None:
    with api.client(api.partner("acme")) as client:
        _problem(client.get("/v1/nothing-here"), 404)
        _problem(client.get("/"), 404)
        answer = client.delete(OBJECT)
        _problem(answer, 405)
        assert answer.headers["allow"] == "GET"


def test_openapi_describes_every_route_its_models_and_the_bearer_schemes(api: Api) -> None:
    spec = httpx.get(api.url + "/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["partnerToken"] == {"type": "http", "scheme": "bearer", "description": schemes["partnerToken"]["description"]}
    assert schemes["adminToken"]["scheme"] == "bearer"
    for method, path, operation in _operations(api):
        assert operation["summary"] and operation["operationId"], (method, path)
        success = [status for status in operation["responses"] if status.startswith("2")]
        assert success, (method, path)
        for status, response in operation["responses"].items():
            if status.startswith(("4", "5")):
                assert response["content"] == {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
            elif status not in ("204", "304"):
                media = {"/v1/batches/{batch_id}": "application/x-ndjson", "/metrics": "text/plain"}.get(path, "application/json")
                assert media in response["content"], (method, path, status)
        if path.startswith("/v1"):
            expected = "adminToken" if path.startswith("/v1/admin") else "partnerToken"
            assert operation["security"] == [{expected: []}], (method, path)
            assert "401" in operation["responses"], (method, path)
    get_object = spec["paths"]["/v1/objects/{object_type}/{key}"]["get"]
    assert get_object["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ObjectOut"}
    assert {"304", "404", "429"} <= set(get_object["responses"])
    assert "Retry-After" in get_object["responses"]["429"]["headers"]
    create = spec["paths"]["/v1/admin/partners"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/PartnerIn"}
    assert create["responses"]["201"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/PartnerCreated"}


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        (b'{"name": ', {"Content-Type": "application/json"}),  # broken JSON
        (b"name=x", {"Content-Type": "text/plain"}),  # not JSON at all
        (b"x" * (2 << 20), {"Content-Type": "application/json"}),  # past the body limit
    ],
)
def test_admin_routes_authenticate_before_reading_the_body(make_api, content: bytes, headers: dict[str, str]) -> None:
    api = make_api()
    for path in ("/v1/admin/partners", "/v1/admin/objects/inventory"):
        assert _problem(httpx.post(api.url + path, content=content, headers=headers), 401)
        answer = httpx.post(api.url + path, content=content, headers={**headers, "Authorization": "Bearer wrong"})
        assert _problem(answer, 401)["detail"] == "the token is not the admin token"
    off = make_api(admin=False)
    refused = httpx.post(off.url + "/v1/admin/partners", content=content, headers=headers)
    assert "admin routes are off" in _problem(refused, 403)["detail"]


def test_an_unexpected_failure_is_a_500_problem_that_tells_nothing_inside(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("secret internals at /var/lib/leo")

    monkeypatch.setattr(api.store, "get_object", broken)
    with api.client(api.partner("acme")) as client:
        answer = client.get(OBJECT)
    assert _problem(answer, 500)["detail"] == "the server failed to answer; the leo run log has the details"
    assert "secret" not in answer.text
