"""List routes page: a bounded default page, `limit`, and the next page named in a `Link` header
with an opaque cursor (the body stays the JSON array it always was); a bad cursor is a 422."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from leo_runtime import client as client_module
from leo_runtime.client import AsyncLeoClient, LeoClient
from leo_runtime.objects import ingest

from ..webhook_helpers import seal_now
from .conftest import Api

HOOK = {"object_type": "inventory", "callback_url": "http://127.0.0.1:9/hook", "interval": 60}


def next_cursor(response: httpx.Response) -> str | None:
    link = response.links.get("next", {}).get("url")
    return parse_qs(urlsplit(link).query)["cursor"][0] if link else None


def every_page(client: httpx.Client, path: str, limit: int, **params: Any) -> list[list[Any]]:
    pages, cursor = [], None
    while True:
        answer = client.get(path, params={**params, "limit": limit, **({"cursor": cursor} if cursor else {})})
        assert answer.status_code == 200, answer.text
        pages.append(answer.json())
        cursor = next_cursor(answer)
        if cursor is None:
            return pages
        assert len(answer.json()) == limit
        assert f"limit={limit}" in answer.headers["link"] and answer.headers["link"].endswith('; rel="next"')


def test_streams_and_webhooks_page_in_creation_order(make_api) -> None:
    api: Api = make_api(server={"allow_private_callbacks": True, "public_url": "https://leo.example"})
    with api.client(api.partner("acme")) as client:
        streams = [client.post("/v1/streams", json={"object_type": "inventory"}).json()["id"] for _ in range(7)]
        hooks = [client.post("/v1/webhooks", json=HOOK).json()["id"] for _ in range(5)]
        pages = every_page(client, "/v1/streams", 3)
        assert [[s["id"] for s in page] for page in pages] == [streams[:3], streams[3:6], streams[6:]]
        assert [[w["id"] for w in page] for page in every_page(client, "/v1/webhooks", 2)] == [
            hooks[:2], hooks[2:4], hooks[4:]]
        whole = client.get("/v1/streams")  # the default page holds a partner's streams: no Link
        assert [s["id"] for s in whole.json()] == streams and "link" not in whole.headers
        linked = client.get("/v1/streams", params={"limit": 2}).headers["link"]
        assert linked.startswith("<https://leo.example/v1/streams?cursor=")  # never the request's Host


@pytest.mark.parametrize("cursor", ["nope", "", "W10", "WzEsMl0", "WyJhIiwiYiJd", "!" * 50])
def test_a_cursor_that_is_not_one_of_the_list_is_a_422(api: Api, cursor: str) -> None:
    with api.client(api.partner("acme")) as client:
        client.post("/v1/streams", json={"object_type": "inventory"})
        webhooks_cursor = "WzEsMl0"  # [1, 2]: the shape of a webhooks cursor, not a streams one
        for path in ("/v1/streams", "/v1/webhooks", "/v1/webhooks/wh_x/batches"):
            answer = client.get(path, params={"cursor": cursor})
            if path == "/v1/webhooks" and cursor == webhooks_cursor:
                assert answer.status_code == 200
                continue
            assert answer.status_code == 422, (path, cursor, answer.text)
            assert answer.json()["detail"].startswith("cursor")
        assert client.get("/v1/streams", params={"limit": 0}).status_code == 422
        assert client.get("/v1/streams", params={"limit": 1001}).status_code == 422


def test_batches_page_newest_first_and_keep_the_status_filter(make_api) -> None:
    api: Api = make_api(server={"allow_private_callbacks": True})
    with api.client(api.partner("acme")) as client:
        hook = client.post("/v1/webhooks", json=HOOK).json()["id"]
        sealed = []
        for round_ in range(5):
            ingest(api.store, "inventory", "sku", [{"sku": f"S{round_}", "quantity": round_}])
            sealed.append(seal_now(api.store, hook).id)  # type: ignore[union-attr]
        pages = every_page(client, f"/v1/webhooks/{hook}/batches", 2, status="unfetched")
        assert [[b["id"] for b in page] for page in pages] == [sealed[:2:-1][:2], sealed[2:0:-1], sealed[:1]]
        assert "status=unfetched" in client.get(f"/v1/webhooks/{hook}/batches",
                                                params={"limit": 1, "status": "unfetched"}).headers["link"]


def test_admin_partners_page_by_name(api: Api) -> None:
    for name in ("delta", "alpha", "echo", "charlie", "bravo"):
        api.partner(name)
    with api.admin() as admin:
        assert [[p["name"] for p in page] for page in every_page(admin, "/v1/admin/partners", 2)] == [
            ["alpha", "bravo"], ["charlie", "delta"], ["echo"]]


def test_the_client_lists_every_page(make_api, monkeypatch: pytest.MonkeyPatch) -> None:
    api: Api = make_api()
    token = api.partner("acme")
    monkeypatch.setattr(client_module, "LIST_PAGE", 2)
    with LeoClient(api.url, token) as client:
        made = [client.create_stream("inventory")["id"] for _ in range(5)]
        assert [s["id"] for s in client.list_streams()] == made

    async def listed() -> list[str]:
        async with AsyncLeoClient(api.url, token) as client:
            return [s["id"] for s in await client.list_streams()]

    assert asyncio.run(listed()) == made
