"""The partner samples under examples/ (Node 20 and Java 17), run for real against the real
server: each consumes a stream with commits after processing and verifies webhook signatures
made by the `standardwebhooks` reference signer. Skipped where node or java is missing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from leo_runtime.client import LeoClient

from ..conftest import REPO, Project
from ..streams_helpers import RunningRuntime, running_runtime, wait_for_writer

EXAMPLES = REPO / "examples"
COMMANDS = {
    "node": ["node", str(EXAMPLES / "javascript" / "consumer.mjs")],
    "java": ["java", str(EXAMPLES / "java" / "Consumer.java")],
}
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def runner(name: str) -> list[str]:
    if shutil.which(name) is None:
        pytest.skip(f"{name} is not installed here")
    return COMMANDS[name]


@pytest.fixture
def rt(project: Project, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningRuntime]:
    with running_runtime(project, monkeypatch) as running:
        yield running


@pytest.mark.parametrize("language", ["node", "java"])
def test_the_sample_consumes_a_stream_and_commits_after_processing(language: str, rt: RunningRuntime) -> None:
    command = runner(language)
    token = rt.partner("acme")
    client = LeoClient(rt.url, token)
    stream = client.create_stream("inventory", partitions=3)
    rt.ingest("inventory", [{"sku": f"S{i}", "quantity": i} for i in range(120)])
    rt.ingest("inventory", [{"sku": f"S{i}", "quantity": i + 1} for i in range(0, 120, 2)])
    wait_for_writer(rt, stream["id"])
    done = subprocess.run([*command, "consume", stream["id"], "--max", "180"], capture_output=True, text=True, timeout=240,
                          env={**os.environ, "LEO_URL": rt.url, "LEO_TOKEN": token, "LEO_WAIT": "1"})
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert sorted((r["key"], r["version"]) for r in lines) == sorted(
        [(f"S{i}", 1) for i in range(120)] + [(f"S{i}", 2) for i in range(0, 120, 2)])
    assert all(r["partition"] == zlib.crc32(r["key"].encode()) % 3 for r in lines)
    assert "stopped after 180 record(s)" in done.stderr
    shown = client.get_stream(stream["id"])["partitions"]
    assert [p["lag"] for p in shown] == [0, 0, 0] and all(p["leased_until"] is None for p in shown)
    client.close()


def notification(tmp_path: Path, index: int, body: str, headers: dict[str, str]) -> str:
    path = tmp_path / f"notification-{index}.json"
    path.write_text(json.dumps({"secret": SECRET, "headers": headers, "body": body}))
    return str(path)


@pytest.mark.parametrize("language", ["node", "java"])
def test_the_sample_verifies_webhook_signatures(language: str, tmp_path: Path) -> None:
    command = runner(language)
    body = json.dumps({"type": "batch.ready", "timestamp": "2026-11-26T19:10:33.123Z",
                       "data": {"webhook_id": "wh_1", "batch_id": "b_1", "url": "http://x/v1/batches/b_1", "records": 3,
                                "true_up": False, "note": "caf\u00e9"}}, ensure_ascii=False)
    now = datetime.now(tz=UTC)
    good = {"Webhook-Id": "b_1", "Webhook-Timestamp": str(int(now.timestamp())),
            "Webhook-Signature": Webhook(SECRET).sign("b_1", now, body)}
    cases = [
        (body, good, "valid: batch.ready"),
        (body, {**good, "Webhook-Signature": "v1,bm9wZQ== " + good["Webhook-Signature"]}, "valid: batch.ready"),
        (body.replace("3", "4"), good, "invalid: no matching signature"),
        (body, {**good, "Webhook-Id": "b_2"}, "invalid: no matching signature"),
        (body, {**good, "Webhook-Timestamp": str(int(now.timestamp()) - 3600)}, "invalid: timestamp"),
        (body, {k: v for k, v in good.items() if k != "Webhook-Signature"}, "invalid: missing"),
    ]
    valid = subprocess.run([*command, "verify", *(notification(tmp_path, i, *case[:2]) for i, case in enumerate(cases[:2]))],
                           capture_output=True, text=True, timeout=120)
    assert valid.returncode == 0, valid.stderr
    every = subprocess.run([*command, "verify", *(notification(tmp_path, i, *case[:2]) for i, case in enumerate(cases))],
                           capture_output=True, text=True, timeout=120)
    assert every.returncode == 1, every.stderr
    lines = every.stdout.splitlines()
    assert len(lines) == len(cases)
    for line, (_, _, expected) in zip(lines, cases, strict=True):
        assert line.startswith(expected), (expected, line)
