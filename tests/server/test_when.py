"""ONE resolver of WHEN for every reset: `leo checkpoints reset --to`, `leo streams reset --to`
and ``POST /v1/streams/{id}/reset`` give the same answer for every form (README, "WHEN").

Seen: a future time accepted by one and refused by the other, ``2`` a position in one and an
error in the other, and ``clamped`` disagreeing on a fresh store.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from typer.testing import CliRunner

from leo_runtime.cli import app
from leo_runtime.delivery.positions import decode_position
from leo_runtime.events import make_eid
from leo_runtime.timeutil import format_time, now_ms

from ..conftest import Project, wait_until
from .conftest import Api

runner = CliRunner()
DAY_MS = 86_400_000
REFUSED = "refused"

PIPELINES = """
version: 1
retention: P7D
object_types:
  inventory: {key: sku}
pipelines:
  feed:
    bots:
      - {id: low-stock, use: filter, in: inventory.in, out: inventory.low, with: {query: {}}}
"""


class World:
    """One store seen through every reset surface; each answers ``(position, clamped)`` or REFUSED."""

    def __init__(self, api: Api, project: Project) -> None:
        self.api, self.project = api, project
        project.write(PIPELINES)
        self.token = api.partner("acme")
        with api.client(self.token) as client:
            created = client.post("/v1/streams", json={"object_type": "inventory", "start_at": "earliest"})
        assert created.status_code == 201, created.text
        self.stream = created.json()["id"]
        api.store.init_checkpoint("low-stock", "inventory.in", 0)

    def checkpoints_cli(self, when: str) -> Any:
        done = runner.invoke(app, ["checkpoints", "reset", "low-stock", "--to", when, "--json", "-f",
                                   str(self.project.file)], env={"LEO_STORE": ""})
        if done.exit_code:
            assert done.exit_code == 2 and "Traceback" not in done.output, done.output
            return REFUSED
        result = json.loads(done.stdout)
        return result["to"], result["clamped"]

    def streams_cli(self, when: str) -> Any:
        done = runner.invoke(app, ["streams", "reset", self.stream, "--to", when, "--json", "-f",
                                   str(self.project.file)], env={"LEO_STORE": ""})
        if done.exit_code:
            assert done.exit_code == 2 and "Traceback" not in done.output, done.output
            return REFUSED
        [part] = json.loads(done.stdout)["partitions"]  # opaque, as the API's
        return decode_position(part["checkpoint"], self.stream, 0, 1, "checkpoint"), part["clamped"]

    def streams_api(self, when: str) -> Any:
        with self.api.client(self.token) as client:
            answer = client.post(f"/v1/streams/{self.stream}/reset", json={"to": when})
        if answer.status_code != 200:
            assert answer.status_code == 422, answer.text
            assert answer.json()["detail"].startswith("to"), answer.text
            return REFUSED
        [part] = answer.json()["partitions"]
        return decode_position(part["checkpoint"], self.stream, 0, 1, "checkpoint"), part["clamped"]

    def every_surface(self, when: str) -> dict[str, Any]:
        return {"leo checkpoints reset": self.checkpoints_cli(when), "leo streams reset": self.streams_cli(when),
                "POST /v1/streams/{id}/reset": self.streams_api(when)}


@pytest.fixture
def world(make_api: Callable[..., Api], project: Project) -> World:
    return World(make_api(), project)


def append_three(world: World) -> list[tuple[int, int]]:
    """Three events, each written in a later millisecond than the one before: (position, time)."""
    written = []
    for n in range(3):
        if written:
            wait_until(lambda: now_ms() > written[-1][1], what="the clock to move on")
        position, _ = world.api.store.append("inventory.in", [{"n": n}])
        written.append((position, world.api.store.read("inventory.in", position - 1, 1)[0].timestamp))
    return written


def in_offset(ms: int, hours: int) -> str:
    """The same instant written with another UTC offset."""
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    return moment.astimezone(timezone(timedelta(hours=hours))).isoformat(timespec="milliseconds")


FORMS: list[tuple[str, Callable[[list[tuple[int, int]]], str], Callable[[list[tuple[int, int]]], Any]]] = [
    ("earliest", lambda ev: "earliest", lambda ev: (0, False)),
    ("latest", lambda ev: "latest", lambda ev: (ev[2][0], False)),
    ("a time: just before the first event at or after it", lambda ev: format_time(ev[1][1]), lambda ev: (ev[0][0], False)),
    ("the same time with another offset", lambda ev: in_offset(ev[1][1], 2), lambda ev: (ev[0][0], False)),
    ("a negative duration", lambda ev: "-PT1H", lambda ev: (0, False)),
    ("a short negative duration", lambda ev: "-1h", lambda ev: (0, False)),
    ("a time older than retention is clamped", lambda ev: format_time(now_ms() - 30 * DAY_MS), lambda ev: (0, True)),
    ("a duration longer than retention is clamped", lambda ev: "-P30D", lambda ev: (0, True)),
    ("a position", lambda ev: str(ev[1][0]), lambda ev: (ev[1][0], False)),
    ("an eid", lambda ev: make_eid(ev[1][0], ev[1][1]), lambda ev: (ev[1][0], False)),
    ("position 0", lambda ev: "0", lambda ev: (0, False)),
    ("a position past the newest event", lambda ev: str(ev[2][0] + 5), lambda ev: REFUSED),
    ("a future time", lambda ev: format_time(now_ms() + DAY_MS), lambda ev: REFUSED),
    ("a time without its offset", lambda ev: format_time(ev[1][1]).rstrip("Z"), lambda ev: REFUSED),
    ("a date alone", lambda ev: format_time(ev[1][1])[:10], lambda ev: REFUSED),
    ("a positive duration", lambda ev: "PT1H", lambda ev: REFUSED),
    ("a bare negative number", lambda ev: "-3600", lambda ev: REFUSED),
    ("now (only a stream's start_at)", lambda ev: "now", lambda ev: REFUSED),
    ("words", lambda ev: "soon", lambda ev: REFUSED),
    ("nothing", lambda ev: " ", lambda ev: REFUSED),
]


@pytest.mark.parametrize(("form", "when", "expected"), FORMS, ids=[form for form, _, _ in FORMS])
def test_every_form_means_the_same_on_every_reset_surface(world: World, form: str, when: Callable, expected: Callable) -> None:
    events = append_three(world)
    answers = world.every_surface(when(events))
    assert answers == dict.fromkeys(answers, expected(events)), form


def test_on_a_fresh_store_clamped_means_the_same_everywhere(world: World) -> None:
    assert world.every_surface(format_time(now_ms() - 30 * DAY_MS)) == dict.fromkeys(
        ["leo checkpoints reset", "leo streams reset", "POST /v1/streams/{id}/reset"], (0, True))
    assert set(world.every_surface("-PT1H").values()) == {(0, False)}
    assert set(world.every_surface("2").values()) == {REFUSED}  # past the newest event (there is none)


@pytest.mark.parametrize(
    ("start_at", "says"),
    [
        ("2026-11-26T19:00:00", "start_at: invalid time '2026-11-26T19:00:00': it has no UTC offset"),
        ("2999-01-01T00:00:00Z", "start_at: '2999-01-01T00:00:00Z' is in the future"),
        ("42", "start_at: '42' is not taken here"),
    ],
)
def test_a_stream_start_follows_the_same_rules(world: World, start_at: str, says: str) -> None:
    with world.api.client(world.token) as client:
        answer = client.post("/v1/streams", json={"object_type": "inventory", "start_at": start_at})
    assert answer.status_code == 422 and answer.json()["detail"].startswith(says), answer.text


def test_a_stream_can_start_an_hour_ago(world: World) -> None:
    events = append_three(world)
    with world.api.client(world.token) as client:
        answer = client.post("/v1/streams", json={"object_type": "inventory", "start_at": "-PT1H"})
    assert answer.status_code == 201, answer.text
    assert world.api.store.stream(answer.json()["id"]).start_position == 0  # type: ignore[union-attr]
    assert events
