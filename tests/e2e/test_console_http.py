"""The /console of a real `leo run` over plain HTTP (no browser): sign-in, cookie flags, CSRF,
sign-out, the admin token only, escaping, and the console off without a token."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import httpx

from ..conftest import CUSTOM_BOTS, OBJECTS_PIPELINE, LeoRun, Project, leo, wait_until

ADMIN = "e2e-admin-console"
PROJECT = OBJECTS_PIPELINE + """
  risky:
    bots:
      - {id: exploder, use: ./bots/custom.py:Explode, in: raw.in, out: raw.out, on_error: {dead_letter: raw.dead, after: 20}}
"""

def start(project: Project, leo_run: Callable[..., LeoRun], token: str = ADMIN) -> LeoRun:
    project.write(PROJECT)
    project.write(CUSTOM_BOTS, "bots/custom.py")
    run = leo_run(project, "--port", "0", env={"LEO_ADMIN_TOKEN": token})
    run.wait_ready()
    return run


def sign_in(client: httpx.Client, **headers: str) -> httpx.Response:
    return client.post("/console/login", data={"token": ADMIN}, headers=headers)


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text[:500]
    return found[1]


def paused(project: Project, bot: str) -> bool:
    status = json.loads(leo("status", "--json", "-f", str(project.file)).stdout)
    return next(b for b in status["bots"] if b["id"] == bot)["state"] == "paused"


def test_sign_in_exchanges_the_admin_token_for_a_strict_http_only_cookie(project: Project, leo_run) -> None:
    run = start(project, leo_run)
    with httpx.Client(base_url=run.http) as client:
        first = client.get("/console")
        assert (first.status_code, first.headers["location"]) == (303, "/console/login")
        assert client.get("/console/login").status_code == 200
        assert client.get("/console/bots/low-stock").status_code == 303
        wrong = client.post("/console/login", data={"token": "not-it"})
        assert wrong.status_code == 401 and "not the admin token" in wrong.text and "set-cookie" not in wrong.headers
        partner = httpx.post(run.http + "/v1/admin/partners", json={"name": "acme"},
                             headers={"Authorization": f"Bearer {ADMIN}"}).json()["token"]
        refused = client.post("/console/login", data={"token": partner})
        assert refused.status_code == 401 and "set-cookie" not in refused.headers
        signed = sign_in(client)
        assert (signed.status_code, signed.headers["location"]) == (303, "/console")
        cookie = signed.headers["set-cookie"]
        assert cookie.startswith("leo_console=")
        flags = [flag.strip() for flag in cookie.split(";")[1:]]
        assert {"HttpOnly", "SameSite=Strict", "Path=/console"} <= set(flags)
        assert "Secure" not in flags  # plain http: a Secure cookie would never come back
        overview = client.get("/console")
        assert overview.status_code == 200
        assert 'data-bot="low-stock"' in overview.text and "inventory.low_stock" in overview.text
        assert overview.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in overview.headers["content-security-policy"]
    with httpx.Client(base_url=run.http) as proxied:  # behind a proxy that terminates TLS
        assert "Secure" in sign_in(proxied, **{"X-Forwarded-Proto": "https"}).headers["set-cookie"].split("; ")
    assert run.stop() == 0


def test_every_action_needs_the_sessions_csrf_token_and_sign_out_ends_the_session(project: Project, leo_run) -> None:
    run = start(project, leo_run)
    with httpx.Client(base_url=run.http) as client:
        sign_in(client)
        page = client.get("/console/bots/low-stock")
        token = csrf_of(page)
        assert client.post("/console/bots/low-stock/pause").status_code == 403
        assert client.post("/console/bots/low-stock/pause", data={"other": "1"}).status_code == 403
        assert client.post("/console/bots/low-stock/pause", json={"csrf_token": token}).status_code == 403
        assert client.post("/console/bots/low-stock/pause", data={"csrf_token": "x" + token}).status_code == 403
        assert not paused(project, "low-stock")
        done = client.post("/console/bots/low-stock/pause", data={"csrf_token": token})
        assert (done.status_code, done.headers["location"]) == (303, "/console/bots/low-stock?note=paused")
        assert paused(project, "low-stock")
        assert "Paused: the bot finishes" in client.get(done.headers["location"]).text
        # Another client without the session cannot act, with or without a token.
        with httpx.Client(base_url=run.http) as stranger:
            assert stranger.post("/console/bots/low-stock/resume", data={"csrf_token": token}).status_code == 403
        assert paused(project, "low-stock")
        session = client.cookies["leo_console"]
        assert client.post("/console/logout").status_code == 403  # sign-out is a form like the others
        gone = client.post("/console/logout", data={"csrf_token": token})
        assert (gone.status_code, gone.headers["location"]) == (303, "/console/login?note=signed-out")
        assert "Max-Age=0" in gone.headers["set-cookie"]
    # The old cookie is dead on the server, even when a client keeps sending it.
    with httpx.Client(base_url=run.http, cookies={"leo_console": session}) as replay:
        assert replay.get("/console").status_code == 303
        assert replay.post("/console/bots/low-stock/resume", data={"csrf_token": token}).status_code == 403
    assert paused(project, "low-stock")
    assert run.stop() == 0


def test_pages_escape_what_comes_from_outside_and_unknown_things_are_404(project: Project, leo_run) -> None:
    run = start(project, leo_run)
    hostile = {"id": "<img src=x onerror=alert(1)>", "boom": True, "note": "<script>alert(1)</script>"}
    assert leo("queues", "put", "raw.in", "-", "-f", str(project.file), input=json.dumps(hostile) + "\n").returncode == 0
    wait_until(lambda: "boom on" in (bot_error(project, "exploder") or ""), what="the bot's error")
    with httpx.Client(base_url=run.http) as client:
        sign_in(client)
        queue = client.get("/console/queues/raw.in")
        assert queue.status_code == 200
        assert "<script>alert(1)" not in queue.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in queue.text
        bot = client.get("/console/bots/exploder")
        assert "<img src=x" not in bot.text and "&lt;img src=x onerror=alert(1)&gt;" in bot.text
        assert "The event it failed on" in bot.text
        assert client.get("/console/bots/nosuch").status_code == 404
        missing = client.get("/console/queues/raw.inn")
        assert missing.status_code == 404 and "did you mean" in missing.text
        assert client.get("/console/bots/low-stock/reset", params={"to": "sometime"}).status_code == 422
    assert run.stop() == 0


def test_the_console_is_off_without_an_admin_token(project: Project, leo_run) -> None:
    run = start(project, leo_run, token="")
    with httpx.Client(base_url=run.http) as client:
        assert client.get("/console").status_code == 404
        assert client.get("/console/login").status_code == 404
        off = client.post("/console/login", data={"token": ""})
        assert off.status_code == 404 and "LEO_ADMIN_TOKEN" in off.json()["detail"]
    assert run.stop() == 0


def bot_error(project: Project, bot: str) -> str | None:
    status = json.loads(leo("status", "--json", "-f", str(project.file)).stdout)
    return next(b for b in status["bots"] if b["id"] == bot)["last_error"]
