"""The API reference a partner reads, from the real server: a valid OpenAPI 3.1 document that
describes the batch.ready notification and the cause of every 409, 410 and 422, and /docs and
/redoc pages that load everything from the server itself (no CDN)."""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

import jsonschema
import orjson
import pytest
import standardwebhooks
from openapi_spec_validator import validate

from leo_runtime.delivery.webhooks import new_secret, notification_body, secret_key, signed_headers

from .conftest import Api

CONFLICT_GONE_UNPROCESSABLE = ("409", "410", "422")


@pytest.fixture
def spec(api: Api) -> dict[str, Any]:
    with api.client() as client:
        answer = client.get("/openapi.json")
    assert answer.status_code == 200
    return answer.json()


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, operation) for path, item in spec["paths"].items()
            for method, operation in item.items()]


def test_the_document_is_valid_openapi_3_1(spec: dict[str, Any]) -> None:
    assert spec["openapi"].startswith("3.1.")
    validate(spec)  # raises on the first problem


def test_the_batch_ready_notification_is_documented_as_a_webhook(spec: dict[str, Any]) -> None:
    operation = spec["webhooks"]["batch.ready"]["post"]
    headers = {p["name"]: p for p in operation["parameters"] if p["in"] == "header"}
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert all(p["required"] and p["description"] for p in headers.values())
    description = operation["description"]
    for step in ("{webhook-id}.{webhook-timestamp}.{body}", "HMAC-SHA256", "whsec_", "space-separated", "5 minutes",
                 "rotate-secret", "data.url"):
        assert step in description, step
    assert set(operation["responses"]) == {"2XX", "410", "default"}
    assert "disabled" in operation["responses"]["410"]["description"]
    assert "retry_schedule" in operation["responses"]["default"]["description"]
    # The body schema is what the runtime sends: a real notification validates against it.
    body_schema = operation["requestBody"]["content"]["application/json"]["schema"]
    schema = {**body_schema, "components": spec["components"]}
    sent = notification_body("wh_1", "bat_1", "https://leo.example/v1/batches/bat_1", 3, True, 1_767_225_600_000)
    jsonschema.validate(orjson.loads(sent), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"type": "batch.ready", "timestamp": "x", "data": {"batch_id": "bat_1"}}, schema)
    component = spec["components"]["schemas"]["BatchReadyData"]
    assert set(component["required"]) == set(orjson.loads(sent)["data"]) and all(
        p.get("description") for p in component["properties"].values())
    # And the headers it names are the ones a notification carries, verified as described.
    secret = new_secret()
    sent_headers = signed_headers(secret_key(secret), "bat_1", sent)
    assert set(headers) <= set(sent_headers)
    standardwebhooks.Webhook(secret).verify(sent, sent_headers)


def test_every_409_410_and_422_says_what_causes_it(spec: dict[str, Any]) -> None:
    found = 0
    for method, path, operation in operations(spec):
        for status in CONFLICT_GONE_UNPROCESSABLE:
            response = operation["responses"].get(status)
            if response is None:
                continue
            found += 1
            phrase = HTTPStatus(int(status)).phrase
            description = response["description"]
            assert description.startswith(phrase) and len(description) > len(phrase) + 10, (method, path, status, description)
            assert response["content"] == {"application/problem+json": {
                "schema": {"$ref": "#/components/schemas/Problem"}}}, (method, path, status)
    assert found >= 20
    commit = spec["paths"]["/v1/streams/{stream_id}/partitions/{partition}/checkpoint"]["put"]["responses"]["409"]
    for cause in ("behind the checkpoint", "`generation` is stale", "lease"):
        assert cause in commit["description"], cause
    replay = spec["paths"]["/v1/webhooks/{webhook_id}/replay"]["post"]["responses"]
    assert "past its retention" in replay["410"]["description"] and "nothing is sent" in replay["404"]["description"]
    assert "`batch_ids` is empty" in replay["422"]["description"]
    records = spec["paths"]["/v1/streams/{stream_id}/partitions/{partition}/records"]["get"]["responses"]
    assert "older than the stream's retention" in records["410"]["description"]


def test_a_422_is_listed_only_where_a_request_can_fail_validation(spec: dict[str, Any]) -> None:
    for method, path, operation in operations(spec):
        checked = "requestBody" in operation or any(p["in"] != "path" for p in operation.get("parameters", []))
        assert ("422" in operation["responses"]) == checked, (method, path)
    assert "422" not in spec["paths"]["/v1/objects/{object_type}/{key}"]["get"]["responses"]


def test_every_route_has_a_summary_and_a_description(spec: dict[str, Any]) -> None:
    for method, path, operation in operations(spec):
        assert operation.get("summary") and operation.get("description"), (method, path)
    rotate = spec["paths"]["/v1/webhooks/{webhook_id}/rotate-secret"]["post"]
    assert "two signatures" in " ".join(rotate["description"].split())
    assert "expire_old_after" in spec["components"]["schemas"]["RotateIn"]["properties"]


EXTERNAL = re.compile(r"(?:https?:)?//[^\s\"'<>]+", re.IGNORECASE)
REFERENCED = re.compile(r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']|url:\s*'([^']+)'""", re.IGNORECASE)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_load_everything_from_the_server_itself(api: Api, page: str) -> None:
    with api.client() as client:
        html = client.get(page)
        assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
        assert EXTERNAL.findall(html.text) == []  # no CDN, no fonts, no validator: nothing off this server
        urls = [first or second for first, second in REFERENCED.findall(html.text)]
        assert len(urls) >= 3 and "/openapi.json" in urls  # a script, the icon (and a style sheet), the spec
        for url in urls:
            assert url.startswith("/"), url
            asset = client.get(url)
            assert asset.status_code == 200 and len(asset.content) > 0, url
            kind = asset.headers["content-type"]
            if url.endswith(".js"):
                assert kind.startswith("text/javascript") and b"function" in asset.content[:100_000], url
            elif url.endswith(".css"):
                assert kind.startswith("text/css"), url
            elif url.endswith(".png"):
                assert kind == "image/png" and asset.content.startswith(b"\x89PNG"), url
        assert client.get("/docs/assets/../../pyproject.toml").status_code == 404
        assert client.get("/docs/assets/core.py").status_code == 404
