"""The HTTP edge of a real runtime on a loopback port, spoken to with raw sockets: header, body
and keep-alive deadlines, the header size limit, the connection cap, problem+json for whatever
the server answers by itself, and long polls that end early near the cap.

The timeouts in these projects are one second; a test waits (up to its socket timeout) for the
server to act, it never measures how long that took.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from leo_runtime.server.edge import backlog_for, connections_that_fit, files_needed

from ..conftest import Project, read_until_closed, wait_until
from ..streams_helpers import ADMIN_TOKEN, STREAMS_PROJECT, RunningRuntime, running_runtime
from .conftest import Api

CAP = 20
EDGE_PROJECT = STREAMS_PROJECT.replace(
    "server: {port: 0}",
    f"server: {{port: 0, max_connections: {CAP}, header_timeout: 1, body_timeout: 1, keep_alive_timeout: 1}}",
)
WAIT = 30.0  # seconds a socket waits for the server: far past every deadline under test


@pytest.fixture
def rt(project: Project, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningRuntime]:
    with running_runtime(project, monkeypatch, EDGE_PROJECT) as running:
        yield running


def connect(rt: RunningRuntime) -> socket.socket:
    host, port = rt.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.settimeout(WAIT)
    return sock


def answers(data: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """The HTTP/1.1 answers in `data` (content-length framed): status, headers, body."""
    found = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {name.lower(): value for name, _, value in (line.partition(": ") for line in lines[1:])}
        length = int(headers.get("content-length", 0))
        found.append((int(lines[0].split()[1]), headers, rest[:length]))
        data = rest[length:]
    return found


def problem_of(data: bytes, status: int) -> dict[str, Any]:
    [(got, headers, body)] = answers(data)
    assert got == status, data
    assert headers["content-type"] == "application/problem+json", data
    problem = json.loads(body)
    assert problem["status"] == status and problem["title"] and problem["detail"] and problem["type"] == "about:blank"
    return problem


def health(rt: RunningRuntime) -> dict[str, Any]:
    sock = connect(rt)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    [(status, _, body)] = answers(read_until_closed(sock))
    assert status == 200
    return json.loads(body)


ADMIN_POST = (f"POST /v1/admin/objects/inventory HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n"
              "Content-Type: application/json\r\n").encode()


# -- deadlines ------------------------------------------------------------------------------------
def test_headers_that_do_not_arrive_in_time_get_a_408_problem_and_the_connection_closes(rt: RunningRuntime) -> None:
    sock = connect(rt)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # the blank line never comes
    assert "server.header_timeout" in problem_of(read_until_closed(sock), 408)["detail"]


def test_a_connection_that_sends_nothing_is_closed(rt: RunningRuntime) -> None:
    assert read_until_closed(connect(rt)) == b""


def test_headers_dripped_a_byte_at_a_time_are_cut_off_too(rt: RunningRuntime) -> None:
    sock = connect(rt)
    stop = threading.Event()
    dripping = drip(sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: y\r\n" * 100_000, stop)
    try:
        problem_of(read_until_closed(sock), 408)  # every byte came in time; the headers never ended
    finally:
        stop.set()
        dripping.join(10)


@pytest.mark.parametrize("body", [b"Content-Length: 100\r\n\r\n[{\"sku\"",
                                  b"Transfer-Encoding: chunked\r\n\r\n7\r\n[{\"sku\"\r\n"], ids=["fixed", "chunked"])
def test_a_body_that_stalls_is_cut_off(rt: RunningRuntime, body: bytes, caplog: pytest.LogCaptureFixture) -> None:
    sock = connect(rt)
    sock.sendall(ADMIN_POST + body)
    assert read_until_closed(sock) == b""  # the route waiting for the body saw the client leave
    assert health(rt)["status"] == "ok"
    assert "Exception in ASGI application" not in caplog.text


def test_an_idle_keep_alive_connection_is_closed(rt: RunningRuntime) -> None:
    sock = connect(rt)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    [(status, headers, _)] = answers(read_until_closed(sock))
    assert status == 200 and "connection" not in headers  # kept alive, then closed when idle
    # By uvicorn's own timer, set from server.keep_alive_timeout (and its backlog from max_connections).
    config = rt.runtime._server.config
    assert (config.timeout_keep_alive, config.backlog, config.ws) == (1, backlog_for(CAP), "none")


def test_an_upgrade_header_is_served_as_a_plain_request_without_a_warning(rt: RunningRuntime,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    sock = connect(rt)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    assert answers(read_until_closed(sock))[0][0] == 200
    assert "upgrade" not in caplog.text.lower()


def drip(sock: socket.socket, data: bytes, stop: threading.Event) -> threading.Thread:
    """Send `data` a byte every 50 ms on a thread (a slow client) until `stop` is set."""

    def send() -> None:
        for byte in data:
            if stop.wait(0.05):
                return
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                return

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def test_an_answer_sent_before_its_body_arrived_closes_the_connection(rt: RunningRuntime) -> None:
    sock = connect(rt)
    sock.sendall(b"POST /v1/streams HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 1000000\r\n\r\n")  # no token: 401 before a byte of the body is read
    stop = threading.Event()
    dripping = drip(sock, b"[" * 1_000_000, stop)  # and the body keeps coming, slowly: nobody reads it
    try:
        problem_of(read_until_closed(sock), 401)
    finally:
        stop.set()
        dripping.join(10)


def test_a_client_still_sending_its_body_after_an_early_answer_gets_the_answer(rt: RunningRuntime) -> None:
    """The answer (a 401, a 413) goes out while the client still sends its body: closed at once,
    with the body unread, the connection would be reset and the client often lose that answer."""
    with httpx.Client(base_url=rt.url, timeout=WAIT) as client:
        for n in range(30):
            admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"} if n % 2 else {}  # a 413, or a 401
            answer = client.post("/v1/admin/partners" if n % 2 else "/v1/streams", content=b"[" * (3 << 20),
                                 headers={"Content-Type": "application/json", **admin})
            assert answer.status_code in (401, 413), answer.text


# -- sizes and malformed requests -----------------------------------------------------------------------
@pytest.mark.parametrize("size", [40_000, 1 << 20])
def test_headers_past_max_header_bytes_are_a_431_problem(rt: RunningRuntime, size: int) -> None:
    sock = connect(rt)
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # refused before all of it was sent
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * size + b"\r\n\r\n")
    assert "server.max_header_bytes" in problem_of(read_until_closed(sock), 431)["detail"]


def test_headers_within_max_header_bytes_are_served(rt: RunningRuntime) -> None:
    sock = connect(rt)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: " + b"a" * 30_000 + b"\r\n\r\n")
    assert answers(read_until_closed(sock))[0][0] == 200


@pytest.mark.parametrize("request_bytes", [
    b"GARBAGE\r\n\r\n",
    b"GET /\xff HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
], ids=["garbage", "url-byte", "content-length", "header-line", "h2-preface"])
def test_malformed_http_is_a_400_problem(rt: RunningRuntime, request_bytes: bytes) -> None:
    sock = connect(rt)
    sock.sendall(request_bytes)
    problem_of(read_until_closed(sock), 400)


def test_a_body_longer_than_declared_ends_the_connection_with_a_problem(rt: RunningRuntime) -> None:
    sock = connect(rt)
    sock.sendall(ADMIN_POST + b"Content-Length: 2\r\n\r\n[]garbage after the body\r\n\r\n")
    found = answers(read_until_closed(sock))
    assert found[-1][0] == 400 and found[-1][1]["content-type"] == "application/problem+json"


def test_http_1_0_pipelining_and_expect_100_continue_are_served(rt: RunningRuntime) -> None:
    sock = connect(rt)
    sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
    [(status, headers, _)] = answers(read_until_closed(sock))
    assert status == 200 and headers["connection"] == "close"
    sock = connect(rt)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n"
                 b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert [status for status, _, _ in answers(read_until_closed(sock))] == [200, 404, 200]
    sock = connect(rt)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
    assert answers(read_until_closed(sock))[0][0] == 200


@pytest.mark.parametrize(("request_line", "status"), [
    (b"GET /v1/streams/ HTTP/1.1", 404),  # a trailing slash is no redirect built from Host
    (b"GET /healthz/ HTTP/1.1", 404),
    (b"GET /nowhere HTTP/1.1", 404),
    (b"DELETE /healthz HTTP/1.1", 405),
])
def test_unknown_routes_and_methods_are_problems_and_nothing_redirects(rt: RunningRuntime, request_line: bytes,
                                                                      status: int) -> None:
    sock = connect(rt)
    sock.sendall(request_line + b"\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
    data = read_until_closed(sock)
    problem_of(data, status)
    assert b"evil.example" not in data and b"location" not in data.lower()


def test_urls_handed_to_partners_never_come_from_the_host_header(api: Api) -> None:
    # A bare app (no runtime has set server.public_url): the URLs come from server.host and port.
    token = api.partner("acme")
    made = httpx.post(api.url + "/v1/streams", json={"object_type": "inventory"},
                      headers={"Authorization": f"Bearer {token}", "Host": "evil.example"})
    assert made.status_code == 201
    assert made.json()["url"].startswith("http://127.0.0.1:8765/v1/streams/")
    assert "evil.example" not in made.text + made.headers["location"]


# -- the connection cap ---------------------------------------------------------------------------------
def test_past_the_cap_the_connection_idle_the_longest_makes_room(rt: RunningRuntime) -> None:
    idle = [connect(rt) for _ in range(CAP)]
    try:
        wait_until(lambda: rt.runtime._edge.open_connections == CAP, what="every connection counted")
        assert health(rt)["connections"] == CAP  # /healthz got in: the oldest idle one was closed for it
        assert read_until_closed(idle[0]) == b""
        sock = connect(rt)  # and again: the next oldest goes
        assert read_until_closed(idle[1]) == b""
        sock.close()
    finally:
        for sock in idle:
            sock.close()
    wait_until(lambda: rt.runtime._edge.open_connections == 0, what="the count back to nothing")
    assert health(rt)["connections"] == 1


def test_when_every_connection_has_a_request_in_progress_a_new_one_gets_a_503_problem(
        project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    # Slow bodies hold their connections (body_timeout 60): none of them is idle.
    text = EDGE_PROJECT.replace("body_timeout: 1", "body_timeout: 60")
    with running_runtime(project, monkeypatch, text) as rt:
        busy = [connect(rt) for _ in range(CAP)]
        try:
            for sock in busy:
                sock.sendall(ADMIN_POST + b"Content-Length: 100\r\n\r\n[")
            wait_until(lambda: not rt.runtime._edge._idle and rt.runtime._edge.open_connections == CAP,
                       what="every connection busy")
            refused = connect(rt)
            problem = problem_of(read_until_closed(refused), 503)
            assert "server.max_connections" in problem["detail"]
        finally:
            for sock in busy:
                sock.close()
        wait_until(lambda: rt.runtime._edge.open_connections == 0, what="the busy ones gone")
        assert health(rt)["status"] == "ok"  # recovered


def test_a_long_poll_answers_early_when_connections_near_the_cap(rt: RunningRuntime) -> None:
    token = rt.partner("acme")
    client = rt.client(token)
    stream_id = client.post("/v1/streams", json={"object_type": "inventory"}).json()["id"]
    wait_until(lambda: "streams:inventory" in rt.runtime.runners, what="the writer")
    idle = rt.waiting()
    poll = connect(rt)
    poll.sendall(f"GET /v1/streams/{stream_id}/partitions/0/records?wait=60 HTTP/1.1\r\nHost: x\r\n"
                 f"Authorization: Bearer {token}\r\n\r\n".encode())
    wait_until(lambda: rt.waiting() == idle + 1, what="the long poll to wait")
    others = [connect(rt) for _ in range(rt.runtime._edge.crowd_at - 1)]  # with the poll: crowded
    try:
        data = b""
        while b"}" not in data:  # long before its 60 s
            chunk = poll.recv(65536)
            assert chunk, "closed without an answer"
            data += chunk
        [(status, _, body)] = answers(data)
        assert status == 200 and json.loads(body)["records"] == []
        # While crowded, a new long poll answers at once.
        again = rt.client(token).get(f"/v1/streams/{stream_id}/partitions/0/records", params={"wait": 60})
        assert again.status_code == 200 and again.json()["records"] == []
    finally:
        for sock in [poll, *others]:
            sock.close()


def test_healthz_names_no_partner_stream_or_webhook(rt: RunningRuntime) -> None:
    client = rt.client(rt.partner("acme"))
    stream_id = client.post("/v1/streams", json={"object_type": "inventory"}).json()["id"]
    wait_until(lambda: "streams:inventory" in rt.runtime.runners, what="the writer")

    def degraded() -> str | None:
        writer = rt.runtime.runners.get("streams:inventory")
        if writer is not None:
            writer.failures = 99  # as if it kept failing (a run that succeeds meanwhile resets it: again)
        text = httpx.get(rt.url + "/healthz").text
        return text if json.loads(text)["status"] == "degraded" else None

    text = wait_until(degraded, what="the writer shown failing")
    body = json.loads(text)
    assert stream_id not in text and "acme" not in text
    assert body["status"] == "degraded" and body["failing"] == ["system:streams"]  # named by its pipeline
    assert list(body["bots"]) == ["low-stock"] and sum(body["states"].values()) == len(rt.runtime.runners)


def test_the_connection_cap_is_lowered_to_what_the_open_file_limit_holds() -> None:
    reserve = 553  # FD_RESERVE, one delivery in flight and what a process has open at start
    assert connections_that_fit(100_000, 2000, reserve) == 2000
    fitting = connections_that_fit(1000, 2000, reserve)
    assert files_needed(fitting, reserve) <= 1000 < files_needed(fitting + 1, reserve)
    assert fitting > 200  # the backlog shrinks with the cap, the budget is not spent on it
    assert connections_that_fit(300, 2000, reserve) == 1  # nothing fits: one, and the warning says why
