"""The /console in a real browser: playwright driving Debian's chromium against a real `leo run`.

An operator signs in, finds a bot in the pipeline graph, pauses it (the CLI shows it paused),
resets its checkpoint by -PT1H after the confirmation and sees the lag change, redrives a dead
letter, replays a webhook's unfetched batch (a real receiver gets it again), and signs out.
Every page is photographed at 1280x800 and at phone width (390x844) into the artifacts folder
(env LEO_TEST_ARTIFACTS, default ./test-artifacts/console): look at them.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from leo_runtime.timeutil import now_ms

from ..conftest import CUSTOM_BOTS, REPO, Project, leo, wait_until
from ..receiver import receiver

playwright = pytest.importorskip("playwright.sync_api", reason="the test extra installs playwright")

CHROMIUM = os.environ.get("LEO_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
ADMIN = "e2e-admin-browser"
SIZES = {"wide": (1280, 800), "phone": (390, 844)}
PROJECT = """
version: 1
server: {allow_private_callbacks: true}
webhooks: {timeout: 10, retry_schedule: [0.2, 0.2, 0.2]}
object_types:
  inventory: {key: sku}
pipelines:
  inventory-feed:
    description: flag the items that run low, and the ones about to run out
    bots:
      - {id: low-stock, use: filter, in: inventory.changes, with: {query: {quantity: {lt: 5}}}, out: inventory.low_stock}
      - {id: urgent, use: filter, in: inventory.low_stock, with: {query: {data.quantity: {lt: 2}}}, out: inventory.urgent}
  risky:
    description: a custom bot that fails on some events; they go to a dead-letter queue
    bots:
      - {id: exploder, use: ./bots/custom.py:Explode, in: raw.in, out: raw.out, on_error: {dead_letter: raw.dead, after: 2}}
"""


@pytest.fixture
def artifacts() -> Path:
    folder = Path(os.environ.get("LEO_TEST_ARTIFACTS", REPO / "test-artifacts")) / "console"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)")
    with playwright.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def test_an_operator_steers_the_runtime_from_the_console(project: Project, leo_run, browser: Any,
                                                        artifacts: Path) -> None:
    project.write(PROJECT)
    project.write(CUSTOM_BOTS, "bots/custom.py")
    with receiver() as hook:
        answers = iter([500])  # the partner's callback fails once, then takes every notification
        hook.answer = lambda received: (next(answers, 204), {})
        run = leo_run(project, "--port", "0", env={"LEO_ADMIN_TOKEN": ADMIN})
        run.wait_ready()
        traffic(run.http, project, hook.url)
        wait_until(lambda: hook.delivered("/h"), what="the first batch notified")
        wait_until(lambda: dead_letters(project), what="the exploder's event set aside")
        store = project.store()  # a history sample now, so the charts show this traffic
        store.sample_bot_history(now_ms())
        store.close()

        page = browser.new_page(viewport=dict(zip(("width", "height"), SIZES["wide"], strict=True)))
        page.goto(run.http + "/console")
        assert page.url.endswith("/console/login")
        shoot(page, artifacts, "login")
        page.fill("input[name=token]", ADMIN)
        page.click("button[type=submit]")
        assert page.url == run.http + "/console"
        shoot(page, artifacts, "overview")

        # Find the bot in its pipeline's graph and open it.
        page.click("svg.graph a[data-bot='low-stock']")
        assert page.url.endswith("/console/bots/low-stock")
        assert page.inner_text("#lag-events").startswith("0")
        page.click("button:has-text('Pause')")
        assert "Paused" in page.inner_text(".note")
        assert page.inner_text("#bot-state") == "paused"
        assert state(project, "low-stock") == "paused"  # the CLI sees what the console did

        # Reset by -PT1H: a confirmation says how many events are redone; then the lag shows them.
        page.select_option("select[name=to]", "-PT1H")
        page.click("button:has-text('Review reset')")
        assert "/console/bots/low-stock/reset?" in page.url
        assert "5 event(s) will be processed again" in page.inner_text("#reset-effect")
        shoot(page, artifacts, "reset")
        page.click("form[action$='/reset'] button[type=submit]")
        assert "5 event(s) will be processed again" in page.inner_text(".note")
        assert page.inner_text("#lag-events").startswith("5")
        shoot(page, artifacts, "bot")
        page.click("button:has-text('Resume')")
        assert state(project, "low-stock") != "paused"
        wait_until(lambda: reload_text(page, "#lag-events").startswith("0"), what="the lag worked off after resume")

        # The dead letter of the failing bot goes back to its queue.
        page.goto(run.http + "/console/bots/exploder")
        shoot(page, artifacts, "bot-failing")
        page.click("button:has-text('Redrive')")
        assert "1 dead-lettered event(s) sent back" in page.inner_text(".note")
        redriven = json.loads(leo("deadletters", "list", "--all", "--json", "-f", str(project.file)).stdout)
        assert [letter["redriven_queue"] for letter in redriven][:1] == ["raw.in"]

        page.goto(run.http + "/console/queues/inventory.low_stock")
        assert page.locator("details.event").count() == 6  # 3 low items, written again by the redone events
        shoot(page, artifacts, "queue")

        # Replay the webhook's unfetched batch: the receiver gets the same batch again.
        page.goto(run.http + "/console/partners")
        assert page.locator(".webhook .badge").first.inner_text() == "healthy"
        shoot(page, artifacts, "partners")
        batch_id = hook.delivered("/h")[0].headers["webhook-id"]
        before = len(hook.delivered("/h"))
        page.click("button:has-text('Replay 1 unfetched')")
        assert "1 unfetched batch(es) will be notified again" in page.inner_text(".note")
        wait_until(lambda: len(hook.delivered("/h")) > before, what="the replayed notification")
        assert hook.delivered("/h")[-1].headers["webhook-id"] == batch_id

        # Phone width: the same pages, still usable.
        phone = browser.new_context(viewport=dict(zip(("width", "height"), SIZES["phone"], strict=True)))
        small = phone.new_page()
        small.goto(run.http + "/console/login")
        small.fill("input[name=token]", ADMIN)
        small.click("button[type=submit]")
        for name, path in (("overview", "/console"), ("bot", "/console/bots/low-stock"),
                           ("queue", "/console/queues/inventory.low_stock"), ("partners", "/console/partners")):
            small.goto(run.http + path)
            shoot(small, artifacts, name, "phone")
        phone.close()

        # Sign out: the session is over, the console asks for the token again.
        page.click("header button:has-text('Sign out')")
        assert page.url.endswith("/console/login?note=signed-out")
        page.goto(run.http + "/console")
        assert page.url.endswith("/console/login")
        assert run.stop() == 0


def traffic(base: str, project: Project, callback: str) -> None:
    admin = {"Authorization": f"Bearer {ADMIN}"}
    token = httpx.post(base + "/v1/admin/partners", json={"name": "acme", "scope": {"warehouse": "NYC"}},
                       headers=admin).json()["token"]
    partner = {"Authorization": f"Bearer {token}"}
    made = httpx.post(base + "/v1/webhooks", json={"object_type": "inventory", "callback_url": callback + "/h",
                                                   "interval": 1}, headers=partner)
    assert made.status_code == 201, made.text
    assert httpx.post(base + "/v1/streams", json={"object_type": "inventory", "partitions": 2},
                      headers=partner).status_code == 201
    items = [{"sku": f"SKU-{n}", "quantity": n, "warehouse": "NYC"} for n in (0, 1, 3, 8, 20)]
    assert httpx.post(base + "/v1/admin/objects/inventory", json=items, headers=admin).status_code == 200
    put = leo("queues", "put", "raw.in", "-", "-f", str(project.file),
              input='{"id": 1}\n{"id": 2, "boom": true}\n{"id": 3}\n')
    assert put.returncode == 0, put.stderr
    wait_until(lambda: state(project, "urgent") and lag(project, "urgent") == 0 and lag(project, "low-stock") == 0,
               what="the pipeline caught up")


def shoot(page: Any, folder: Path, name: str, size: str = "wide") -> None:
    """A screenshot of the page. Chromium sometimes refuses a capture while a loaded machine is
    still painting ("Unable to capture screenshot"); that is the browser's hiccup, not the
    console's, so the capture is tried again once the page has settled."""
    path = str(folder / f"{name}-{size}.png")
    for attempt in range(3):
        try:
            page.screenshot(path=path)
            return
        except Exception as exc:
            if "Unable to capture screenshot" not in str(exc) or attempt == 2:
                raise
            page.wait_for_load_state("networkidle")


def reload_text(page: Any, selector: str) -> str:
    page.reload()
    return page.inner_text(selector)


def status(project: Project) -> dict[str, Any]:
    done = leo("status", "--json", "-f", str(project.file))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def state(project: Project, bot: str) -> str | None:
    return next((b["state"] for b in status(project)["bots"] if b["id"] == bot), None)


def lag(project: Project, bot: str) -> int | None:
    return next((b["lag"] for b in status(project)["bots"] if b["id"] == bot), None)


def dead_letters(project: Project) -> list[Any]:
    return json.loads(leo("deadletters", "list", "--json", "-f", str(project.file)).stdout)
