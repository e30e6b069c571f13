"""docs/partners.md, run for real: every code block of the guide, in order, against a real `leo run`.

Each block is named by the ``<!-- guide: NAME -->`` comment above it, and `STEPS` says what the
name is: a command to run (its exit status must be 0), a program to keep running (a receiver, a
consumer) or a file to write for one. Shell blocks run in bash, Python in this virtualenv's
python3, JavaScript in node and Java through javac, with the values a reader would have (the
base URL, the token, the ids earlier steps returned) in the environment variables the guide
names. Between blocks the test plays the other side (the operator's data changing, time passing)
and checks what each block did. A block without a name, or a name without a step, fails the test:
the guide and its test move together.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from ..conftest import REPO, STORES, Project, leo, wait_until
from .test_streams_kill import free_port
from .test_webhooks_e2e import PARTNER_PROJECT

GUIDE = REPO / "docs" / "partners.md"
BLOCK = re.compile(r"(?:<!-- guide: (?P<name>[\w-]+) -->\n)?```(?P<lang>\w*)\n(?P<body>.*?)\n```", re.DOTALL)
CODE = {"sh", "python", "js", "java"}
ADMIN = "guide-admin-token"


@dataclass
class Block:
    name: str | None
    lang: str
    body: str


def blocks() -> list[Block]:
    return [Block(m["name"], m["lang"], m["body"]) for m in BLOCK.finditer(GUIDE.read_text())]


@dataclass
class Serving:
    """A block's program kept running (a receiver, a consumer), its output in a file."""

    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def lines(self, pattern: str) -> list[str]:
        return [line for line in self.output().splitlines() if re.search(pattern, line)]

    def wait_for(self, pattern: str, count: int = 1, what: str = "") -> None:
        try:
            wait_until(lambda: len(self.lines(pattern)) >= count or self.proc.poll() is not None, timeout=60,
                       what=what or pattern)
        finally:
            assert len(self.lines(pattern)) >= count, f"{what or pattern}: exit {self.proc.poll()}\n{self.output()}"

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # Ctrl-C, as a reader would stop it
        return self.proc.wait(30)


@dataclass
class Reader:
    """Someone following the guide: a folder, the environment variables it names, programs running."""

    work: Path
    project: Project
    url: str
    env: dict[str, str]
    ports: dict[str, int]
    serving: dict[str, Serving] = field(default_factory=dict)
    found: dict[str, Any] = field(default_factory=dict)

    def environment(self, **extra: str) -> dict[str, str]:
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"  # python3: this virtualenv's
        return {**os.environ, "PATH": path, "PYTHONUNBUFFERED": "1", **self.env, **extra}

    def command(self, block: Block) -> list[str]:
        if block.lang == "sh":
            return ["bash", "-e", "-o", "pipefail", "-c", block.body]
        if block.lang == "python":
            return [sys.executable, "-c", block.body]
        raise AssertionError(f"block {block.name}: cannot run {block.lang} directly")

    def run(self, block: Block) -> str:
        done = subprocess.run(self.command(block), cwd=self.work, capture_output=True, text=True, timeout=120,
                              env=self.environment())
        assert done.returncode == 0, f"block {block.name} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def serve(self, name: str, block: Block, port: int | None = None, **extra: str) -> Serving:
        log = self.work / f"{name}.log"
        env = self.environment(**({"PORT": str(port)} if port else {}), **extra)
        proc = subprocess.Popen(self.command(block), cwd=self.work, env=env, stdout=log.open("wb"),
                                stderr=subprocess.STDOUT, start_new_session=True)
        serving = self.serving[name] = Serving(proc, log)
        if port:
            wait_until(lambda: listening(port) or proc.poll() is not None, timeout=90, what=f"{name} to listen")
            assert proc.poll() is None, f"{name} exited {proc.returncode}:\n{serving.output()}"
        return serving

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.env['LEO_TOKEN']}"}, timeout=30)

    def admin_ingest(self, *objects: dict[str, Any]) -> None:
        with httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {ADMIN}"}) as admin:
            answer = admin.post("/v1/admin/objects/inventory", json=list(objects))
            assert answer.status_code == 200, answer.text

    def callback(self, receiver: str) -> None:
        """Point the webhook at one of the running receivers (the reader tries each in turn)."""
        with self.api() as client:
            changed = client.patch(f"/v1/webhooks/{self.env['WEBHOOK_ID']}",
                                   json={"callback_url": f"http://127.0.0.1:{self.ports[receiver]}/leo"})
            assert changed.status_code == 200, changed.text

    def replay(self, batch_id: str) -> None:
        with self.api() as client:
            answer = client.post(f"/v1/webhooks/{self.env['WEBHOOK_ID']}/replay", json={"batch_ids": [batch_id]})
            assert answer.status_code == 202, answer.text


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def runs(check: Callable[[Reader, str], None]) -> Callable[[Reader, Block], None]:
    """A step that runs its block to the end and checks its output."""
    return lambda reader, block: check(reader, reader.run(block))


def writes(filename: str, *samples: str) -> Callable[[Reader, Block], None]:
    """A step that saves its block as `filename`, beside the shipped samples it uses."""
    def step(reader: Reader, block: Block) -> None:
        (reader.work / filename).write_text(block.body + "\n")
        for sample in samples:
            shutil.copy(REPO / "examples" / sample, reader.work / Path(sample).name)
    return step


# -- the steps, by block name ---------------------------------------------------------------------
def get_object(reader: Reader, output: str) -> None:
    found = json.loads(output)
    assert (found["key"], found["version"], found["data"]["quantity"]) == ("SKU-1", 1, 7)


def get_object_unchanged(reader: Reader, output: str) -> None:
    assert output.strip() == "304"


def create_webhook(reader: Reader, output: str) -> None:
    made = json.loads(output)
    assert made["id"].startswith("wh_") and made["secret"].startswith("whsec_") and made["interval"] == 60
    reader.env.update(WEBHOOK_ID=made["id"], LEO_WEBHOOK_SECRET=made["secret"])
    with reader.api() as client:  # the test's hand: a one-second interval instead of waiting a minute
        assert client.patch(f"/v1/webhooks/{made['id']}", json={"interval": 1}).status_code == 200


def notification(reader: Reader, block: Block) -> None:
    with httpx.Client(base_url=reader.url) as client:
        spec = client.get("/openapi.json").json()
    schema = {**spec["webhooks"]["batch.ready"]["post"]["requestBody"]["content"]["application/json"]["schema"],
              "components": spec["components"]}
    jsonschema.validate(json.loads(block.body), schema)  # the example is a notification the API describes


def run_receiver_python(reader: Reader, block: Block) -> None:
    receiver = reader.serve("python", block, reader.ports["python"])
    reader.admin_ingest({"sku": "SKU-1", "warehouse": "NYC", "quantity": 2})  # now it matches quantity < 5
    receiver.wait_for(r"^verified bat_\S+ records: 1$", what="the Python receiver to verify a real notification")
    receiver.wait_for(r"^  SKU-1 version 2 updated$", what="the Python receiver to download the batch")
    reader.env["BATCH_ID"] = receiver.lines("^verified")[0].split()[1]


def other_receiver(name: str) -> Callable[[Reader, Block], None]:
    def step(reader: Reader, block: Block) -> None:
        receiver = reader.serve(name, block, reader.ports[name])
        reader.callback(name)
        reader.replay(reader.env["BATCH_ID"])
        receiver.wait_for(rf"^verified {reader.env['BATCH_ID']} records: 1$", what=f"the {name} receiver to verify")
        receiver.wait_for(r"^  SKU-1 version 2 updated$", what=f"the {name} receiver to download the batch")
        assert not receiver.lines("^rejected|^failed")
        reader.callback("python")
    return step


def download_batch(reader: Reader, output: str) -> None:
    record, listed = (json.loads(line) for line in output.splitlines())
    assert (record["key"], record["version"], record["op"]) == ("SKU-1", 2, "updated")
    assert [batch["id"] for batch in listed] == [reader.env["BATCH_ID"]] and listed[0]["fetched_at"]


def true_up(reader: Reader, output: str) -> None:
    assert json.loads(output)["true_up_requested"] is True
    reader.serving["python"].wait_for(r"^  SKU-1 version 2 snapshot$", what="the true-up batch")


def pause(reader: Reader, block: Block) -> None:
    with reader.api() as client:  # paused (a 410 from the receiver would disable it the same way)
        assert client.patch(f"/v1/webhooks/{reader.env['WEBHOOK_ID']}", json={"status": "paused"}).status_code == 200
    changed = json.loads(reader.run(block))
    assert (changed["status"], changed["delivery"]) == ("active", "ok")


def replay_unfetched(reader: Reader, output: str) -> None:
    assert json.loads(output) == {"replayed": 0}  # the receiver downloaded every batch


def verified(reader: Reader, receiver: Serving) -> int:
    """How many notifications of the guide's batch `receiver` verified so far."""
    return len(receiver.lines(rf"^verified {reader.env['BATCH_ID']} "))


def replay_chosen(reader: Reader, block: Block) -> None:
    receiver = reader.serving["python"]
    before = verified(reader, receiver)
    assert json.loads(reader.run(block)) == {"replayed": 1}
    receiver.wait_for(rf"^verified {reader.env['BATCH_ID']} ", count=before + 1, what="the chosen batch notified again")


def rotate_secret(reader: Reader, output: str) -> None:
    rotated = json.loads(output)
    old, new = reader.env["LEO_WEBHOOK_SECRET"], rotated["secret"]
    assert new.startswith("whsec_") and new != old and rotated["old_secret_expires_at"]
    receiver = reader.serving["python"]  # still holding the old secret: it verifies all the same
    before = verified(reader, receiver)
    reader.replay(reader.env["BATCH_ID"])
    receiver.wait_for(rf"^verified {reader.env['BATCH_ID']} ", count=before + 1, what="the old secret to still verify")
    assert receiver.stop() in (0, -signal.SIGINT, 1) and not receiver.lines("^rejected")
    reader.env["LEO_WEBHOOK_SECRET"] = new  # the receiver restarted with the new secret verifies too
    block = reader.found["run-receiver-python"]
    again = reader.serve("python", block, reader.ports["python"])
    reader.replay(reader.env["BATCH_ID"])
    again.wait_for(rf"^verified {reader.env['BATCH_ID']} ", what="the new secret to verify")
    assert not again.lines("^rejected")


def create_stream(reader: Reader, output: str) -> None:
    made = json.loads(output)
    assert len(made["partitions"]) == 2 and made["generation"] == 1
    reader.env["STREAM_ID"] = made["id"]
    reader.admin_ingest(*({"sku": f"SKU-{n}", "warehouse": "NYC", "quantity": 10 + n} for n in range(1, 7)))


def partition_of(key: str) -> int:
    return zlib.crc32(key.encode()) % 2


def read_and_commit(reader: Reader, output: str) -> None:
    page = json.loads(output.splitlines()[0])
    keys = sorted(record["key"] for record in page["records"])
    assert keys == sorted(f"SKU-{n}" for n in range(1, 7) if partition_of(f"SKU-{n}") == 0) and keys
    with reader.api() as client:
        lags = [p["lag"] for p in client.get(f"/v1/streams/{reader.env['STREAM_ID']}").json()["partitions"]]
    assert lags[0] == 0 and lags[1] > 0  # partition 0 committed; partition 1 waits for a consumer


def consume(reader: Reader, block: Block) -> None:
    consumer = reader.serve("consume", block)
    rest = [f"SKU-{n}" for n in range(1, 7) if partition_of(f"SKU-{n}") == 1]
    for key in rest:  # partition 0 was committed above: only partition 1's records come
        consumer.wait_for(rf"^{key} version \d+ (created|updated)$", what=f"{key} consumed")
    with reader.api() as client:
        wait_until(lambda: [p["lag"] for p in client.get(f"/v1/streams/{reader.env['STREAM_ID']}").json()["partitions"]]
                   == [0, 0], what="the consumer to commit")
    assert consumer.stop() == 0, consumer.output()
    assert len(consumer.lines("^SKU-")) == len(rest)


def reset_stream(reader: Reader, output: str) -> None:
    reset = json.loads(output)
    assert reset["generation"] == 2 and [p["partition"] for p in reset["partitions"]] == [0, 1]
    consumer = reader.serve("consume-again", reader.found["consume"])  # every change of the last hour again
    for n in range(1, 7):
        consumer.wait_for(rf"^SKU-{n} version \d+ (created|updated)$", what=f"SKU-{n} consumed again")
    assert consumer.stop() == 0, consumer.output()


STEPS: dict[str, Callable[[Reader, Block], None]] = {
    "get-object": runs(get_object),
    "get-object-unchanged": runs(get_object_unchanged),
    "create-webhook": runs(create_webhook),
    "notification": notification,
    "receiver-python": writes("receiver.py"),
    "run-receiver-python": run_receiver_python,
    "receiver-node": writes("receiver.mjs", "javascript/consumer.mjs"),
    "run-receiver-node": other_receiver("node"),
    "receiver-java": writes("Receiver.java", "java/Consumer.java"),
    "run-receiver-java": other_receiver("java"),
    "download-batch": runs(download_batch),
    "true-up": runs(true_up),
    "resume-webhook": pause,
    "replay-unfetched": runs(replay_unfetched),
    "replay-chosen": replay_chosen,
    "rotate-secret": runs(rotate_secret),
    "create-stream": runs(create_stream),
    "read-and-commit": runs(read_and_commit),
    "consume": consume,
    "reset-stream": runs(reset_stream),
}


def test_every_code_block_is_named_and_has_a_step() -> None:
    found = blocks()
    unnamed = [block.body[:60] for block in found if block.name is None and block.lang in CODE]
    assert unnamed == [], "name these blocks with <!-- guide: NAME --> and give them a step"
    names = [block.name for block in found if block.name]
    assert len(names) == len(set(names)) and names == list(STEPS), "the steps follow the guide's blocks, in order"
    for block in found:
        assert block.lang in CODE | {"json"}, block.lang
        if block.lang == "json":
            json.loads(block.body)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("project", STORES, indirect=True)
def test_the_partner_guide_runs_against_leo_run(project: Project, leo_run, tmp_path: Path) -> None:
    for tool in ("curl", "node", "java", "javac"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed here")
    project.write(PARTNER_PROJECT)
    run = leo_run(project, "--port", "0", env={"LEO_ADMIN_TOKEN": ADMIN})
    run.wait_ready()
    made = leo("partners", "create", "acme", "--json", "-f", str(project.file))
    assert made.returncode == 0, made.stderr
    ports = {name: free_port() for name in ("python", "node", "java")}
    work = tmp_path / "reader"
    work.mkdir()
    reader = Reader(work, project, run.http, {"LEO_URL": run.http, "LEO_TOKEN": json.loads(made.stdout)["token"],
                                              "CALLBACK_URL": f"http://127.0.0.1:{ports['python']}/leo"}, ports)
    reader.admin_ingest({"sku": "SKU-1", "warehouse": "NYC", "quantity": 7})
    try:
        for block in blocks():
            if block.name is None:
                continue
            reader.found[block.name] = block
            STEPS[block.name](reader, block)
    except BaseException:
        print(f"leo run's log:\n{run.log()[-8000:]}")  # shown with the failure
        raise
    finally:
        for serving in reader.serving.values():
            if serving.proc.poll() is None:
                os.killpg(serving.proc.pid, signal.SIGKILL)
                serving.proc.wait(10)
    assert run.stop() == 0
