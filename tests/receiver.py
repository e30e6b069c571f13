"""A real HTTP receiver on loopback for webhook tests: records every request and answers as told."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    answered: int = 0

    @property
    def json(self) -> Any:
        return json.loads(self.body)


Answer = tuple[int, dict[str, str]] | tuple[int, dict[str, str], bytes]
"""(status, headers) or (status, headers, body)."""


@dataclass
class Receiver:
    """Where webhooks are sent in tests. ``answer(received) -> (status, headers)`` decides each
    answer (default 204); ``hold`` (a threading.Event) makes it wait before answering."""

    url: str
    requests: list[Received] = field(default_factory=list)
    answer: Callable[[Received], Answer] = lambda received: (204, {})
    hold: threading.Event | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def received(self, path: str | None = None) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if path is None or r.path == path]

    def delivered(self, path: str | None = None) -> list[Received]:
        """Requests answered with a 2xx."""
        return [r for r in self.received(path) if 200 <= r.answered < 300]


@contextmanager
def receiver() -> Iterator[Receiver]:
    """A ThreadingHTTPServer on 127.0.0.1 (a free port) for the block's duration."""
    state: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            target = state["receiver"]
            received = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time())
            with target.lock:
                target.requests.append(received)
            if target.hold is not None:
                target.hold.wait(60)
            answer = target.answer(received)
            status, headers = answer[0], answer[1]
            body = answer[2] if len(answer) > 2 else b""  # type: ignore[misc]
            received.answered = status
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state["receiver"] = Receiver(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, name="test-receiver", daemon=True)
    thread.start()
    try:
        yield state["receiver"]
    finally:
        if state["receiver"].hold is not None:
            state["receiver"].hold.set()
        server.shutdown()
        server.server_close()
