"""Text from outside reaches the operator escaped: a partner callback that answers 500 with
terminal controls in its body, and a bot error quoting an event, against a real `leo run`,
shown by the real `leo webhooks list`, `leo status` and the run's log."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from ..conftest import CUSTOM_BOTS, Project, leo, wait_until

ADMIN = "e2e-admin-outside-text"
# A window title, a screen clear, colours, a CR, an 8-bit CSI, a bidi override.
CONTROLS = "\x1b]0;pwned\x07\x1b[2J\x1b[31mred\rX\u009b31m\u202egnp.exe"
PROJECT = """
version: 1
server: {allow_private_callbacks: true}
webhooks: {timeout: 5, retry_schedule: [0.2, 0.2, 0.2]}
object_types:
  inventory: {key: sku}
pipelines:
  boom:
    bots:
      - {id: exploder, use: ./bots/custom.py:Explode, in: things, out: done}
"""


def raw_controls(text: str) -> list[str]:
    return [c for c in text if (ord(c) < 32 and c not in "\n\t") or 0x7F <= ord(c) <= 0x9F or c == "\u202e"]


@contextmanager
def callback_answering_500_with_controls() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            body = f"upstream down {CONTROLS}".encode()
            self.send_response(500)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def test_a_callbacks_answer_and_a_bots_error_reach_the_operator_escaped(project: Project, leo_run) -> None:
    project.write(PROJECT)
    project.write(CUSTOM_BOTS, "bots/custom.py")
    env = {"LEO_ADMIN_TOKEN": ADMIN}
    run = leo_run(project, "--port", "0", env=env)
    run.wait_ready()
    made = leo("partners", "create", "acme", "--json", "-f", str(project.file))
    assert made.returncode == 0, made.stderr
    token = json.loads(made.stdout)["token"]
    with callback_answering_500_with_controls() as hook:
        created = httpx.post(f"{run.http}/v1/webhooks", headers={"Authorization": f"Bearer {token}"},
                             json={"object_type": "inventory", "callback_url": hook, "interval": 1})
        assert created.status_code == 201, created.text
        ingested = httpx.post(f"{run.http}/v1/admin/objects/inventory", json=[{"sku": "A", "quantity": 1}],
                              headers={"Authorization": f"Bearer {ADMIN}"})
        assert ingested.status_code == 200, ingested.text

        def last_error() -> str:
            listed = leo("webhooks", "list", "--json", "-f", str(project.file))
            assert listed.returncode == 0, listed.stderr
            return "".join(row["last_error"] or "" for row in json.loads(listed.stdout))

        wait_until(lambda: "pwned" in last_error(), what="the callback's 500 recorded")
    assert "\x1b]0;pwned" in last_error()  # stored as it came; only its display is escaped
    put = leo("queues", "put", "things", "-f", str(project.file), input=json.dumps({"boom": True, "id": CONTROLS}))
    assert put.returncode == 0, put.stderr
    wait_until(lambda: "boom on" in run.log(), what="the bot's error in the log")
    wide = {"COLUMNS": "400"}
    for command in (["webhooks", "list"], ["status"]):
        shown = leo(*command, "-f", str(project.file), env=wide)
        assert shown.returncode == 0, shown.stderr
        assert not raw_controls(shown.stdout + shown.stderr), repr(shown.stdout)
        flat = "".join(shown.stdout.split())  # tables wrap long cells
        assert "HTTP500:upstreamdown\\x1b]0;pwned\\x07\\x1b[2J\\x1b[31mred" in flat, shown.stdout
    assert "boom on \\x1b]0;pwned" in "".join(leo("status", "-f", str(project.file), env=wide).stdout.split("\n"))
    assert run.stop() == 0
    assert not raw_controls(run.log()) and "boom on \\x1b]0;pwned\\x07" in run.log()
