"""The HTTP edge: connections are bounded in number, in time and in header size.

uvicorn (with httptools) serves the API. Of its own settings `leo run` uses ``timeout_keep_alive``
(`server.keep_alive_timeout`: an idle keep-alive connection is closed), ``backlog`` (the listen
queue, see `backlog_for`) and ``ws="none"`` (no WebSocket upgrades: the API has none). It does
not use ``limit_concurrency``: that one still accepts every connection (and its fd) and answers
503 in plain text only once the request's headers are in. uvicorn has no deadline for headers or
bodies and no header size limit with httptools, so `EdgeProtocol` (its protocol class,
subclassed) adds them:

- A request's headers must be complete within `server.header_timeout` seconds of the
  connection's opening (its first request) or of the request's first byte (later ones); a
  request that sent part of them gets a 408, a connection that sent nothing is just closed.
- A body that stalls (no byte for `server.body_timeout` seconds while the API waits for it) is
  closed. A connection whose answer went out before its request body arrived (a 401, a 413)
  reads and drops the rest (closed at once, the client's kernel would reset it while it sends,
  and the client often loses the answer); past `DRAIN_SECONDS` or `DRAIN_BYTES` it is closed, and
  it counts as idle meanwhile, so it is the first to go when room is needed.
- Request line and headers hold at most `server.max_header_bytes` bytes, else 431.
- At most `server.max_connections` are open. A new connection past it closes the connection
  idle the longest (no request in progress: a keep-alive one waiting, or one still sending its
  headers), so idle and slow clients never lock out `/healthz` or a partner; when every
  connection has a request in progress, the new one gets a 503 and is closed.
- Near the cap (the last 10%), long polls answer what they have at once (`unless_crowded`), so
  their connections turn idle and can make room.
- Everything uvicorn answers by itself is problem+json too (400 for malformed HTTP, 431, 408, 503).

One sweeper task checks the deadlines a few times per timeout: no timer per request on the hot
path, only a clock reading per phase.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import json
import logging
import os
import resource
import select
from collections.abc import Awaitable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, ClassVar

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..config.models import ServerConfig
from .problems import PROBLEM

log = logging.getLogger("leo.http")

CROWDED_SHARE = 0.1
"""Long polls answer at once while fewer than this share of `max_connections` is free."""

FD_RESERVE = 512
"""Open files kept for everything but HTTP connections (the store's connections, the file
watcher, sources, bots' HTTP clients), beside `webhooks.max_in_flight` for deliveries."""

VICTIM_CANDIDATES = 32
"""How many of the longest idle connections are looked at to pick one to close for a new one."""

READ_CHUNK = 256 * 1024
"""The most asyncio reads from a socket at once: header bytes are counted a chunk at a time."""


def backlog_for(max_connections: int) -> int:
    """The listen backlog: also how many connections asyncio accepts in one go before the cap
    can act on them, so it is counted twice in the file budget (`fit_open_files`)."""
    return max(64, min(1024, max_connections // 2))


@dataclass(frozen=True)
class EdgeLimits:
    """The edge's settings (`server:` in pipelines.yaml)."""

    max_connections: int = 2000
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keep_alive_timeout: float = 5.0
    max_header_bytes: int = 32 * 1024

    @classmethod
    def of(cls, server: ServerConfig, max_connections: int | None = None) -> EdgeLimits:
        return cls(max_connections=max_connections or server.max_connections, header_timeout=server.header_timeout,
                   body_timeout=server.body_timeout, keep_alive_timeout=server.keep_alive_timeout,
                   max_header_bytes=server.max_header_bytes)


class Receiving(enum.Enum):
    HEADERS = "headers"  # waiting for a request's headers (the first byte may not have come)
    BODY = "body"  # headers in, body still coming
    NOTHING = "nothing"  # the last request arrived whole; the next has not begun
    DRAINING = "draining"  # answered before its body arrived: the rest is read and dropped, then closed


DRAIN_BYTES = 8 * 1024 * 1024
"""At most this much of a body that was answered early (a 413, a 401) is read and dropped."""
DRAIN_SECONDS = 5.0
"""...for at most this long after the answer (`check_deadline`), then the connection is closed."""


class Edge:
    """The open connections of one server, which of them are idle (oldest first), their
    deadlines and the crowding signal long polls listen to. Event loop thread only."""

    def __init__(self, limits: EdgeLimits) -> None:
        self.limits = limits
        self.crowd_at = limits.max_connections - max(1, int(limits.max_connections * CROWDED_SHARE))
        self._open: dict[EdgeProtocol, None] = {}
        self._idle: dict[EdgeProtocol, None] = {}  # insertion order: idle the longest first
        self._crowded: asyncio.Event | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.evicted = 0
        self.refused = 0

    # -- counting ---------------------------------------------------------------------------------
    @property
    def open_connections(self) -> int:
        return len(self._open)

    def crowded(self) -> bool:
        """Whether the connections are near the cap (long polls then answer at once)."""
        return len(self._open) >= self.crowd_at

    async def until_crowded(self) -> None:
        """Return once the connections are near the cap."""
        await self._crowding().wait()

    def _crowding(self) -> asyncio.Event:
        if self._crowded is None:
            self._crowded = asyncio.Event()
            if self.crowded():
                self._crowded.set()
        return self._crowded

    def _recount(self) -> None:
        event = self._crowding()
        if self.crowded():
            event.set()
        elif event.is_set():
            event.clear()

    def opened(self, connection: EdgeProtocol) -> bool:
        """Admit a new connection: False when it must be refused (every connection busy)."""
        if self._sweeper is None:  # the first connection: the loop runs now
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever(), name="leo-http-deadlines")
        self._open[connection] = None
        if len(self._open) > self.limits.max_connections:
            victim = self._victim()
            if victim is None:
                del self._open[connection]
                self.refused += 1
                log.warning("refused a connection: all %d allowed (server.max_connections) have a request in "
                            "progress", self.limits.max_connections)
                return False
            self.evicted += 1
            log.debug("closed the connection idle the longest to make room for a new one")
            self.forget(victim)
            victim.close_for_room()
        self._idle[connection] = None
        self._recount()
        return True

    def _victim(self) -> EdgeProtocol | None:
        """The idle connection to close for a new one: the one idle the longest whose socket holds
        no unread bytes. A connection accepted in the same burst as a flood stays idle until the
        loop reads its request, though the request already waits in its socket: one poll of the
        oldest few tells them apart (when all of them have bytes waiting, the oldest goes)."""
        candidates = list(itertools.islice(self._idle, VICTIM_CANDIDATES))
        if len(candidates) <= 1:
            return candidates[0] if candidates else None
        poller = select.poll()
        by_fd: dict[int, EdgeProtocol] = {}
        for candidate in candidates:
            fd = candidate.fileno()
            if fd >= 0:
                by_fd[fd] = candidate
                poller.register(fd, select.POLLIN)
        waiting = {by_fd[fd] for fd, _ in poller.poll(0)}
        return next((candidate for candidate in candidates if candidate not in waiting), candidates[0])

    def forget(self, connection: EdgeProtocol) -> None:
        """The connection closed (or is closing): it no longer counts."""
        if connection in self._open:
            del self._open[connection]
            self._idle.pop(connection, None)
            self._recount()

    def idle(self, connection: EdgeProtocol) -> None:
        """No request in progress on `connection`: it may be closed to make room (the longest idle first)."""
        if connection in self._open:
            self._idle.pop(connection, None)
            self._idle[connection] = None

    def busy(self, connection: EdgeProtocol) -> None:
        """A request is in progress on `connection`: it is not closed to make room."""
        self._idle.pop(connection, None)

    # -- deadlines --------------------------------------------------------------------------------
    async def stop(self) -> None:
        """Stop checking deadlines (it starts with the first connection)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None

    @property
    def sweep_interval(self) -> float:
        """A fifth of the shortest timeout (between 50 ms and 1 s): deadlines hold to within it."""
        shortest = min(self.limits.header_timeout, self.limits.body_timeout)
        return max(0.05, min(1.0, shortest / 5))

    async def _sweep_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.sweep_interval)
            now = loop.time()
            for connection in list(self._open):
                try:
                    connection.check_deadline(now)
                except Exception as exc:  # one connection's trouble must not end the checks
                    log.warning("cannot check an HTTP connection's deadline: %s", exc)


class EdgeProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the edge's limits (see the module docstring).

    `protocol_class` makes a subclass bound to one `Edge`; uvicorn builds one per connection.
    """

    edge: ClassVar[Edge]

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._receiving = Receiving.HEADERS
        self._since = self.loop.time()  # start of the current phase (or last progress of a body)
        self._header_bytes = 0
        self._drain_left = 0  # bytes of an early-answered body still to read and drop
        self._refusal: tuple[int, str] | None = None
        if not self.edge.opened(self):
            self._answer_and_close(503, "the server has as many connections open as it takes "
                                   f"(server.max_connections {self.edge.limits.max_connections}), each with a "
                                   "request in progress; try again shortly", {"retry-after": "1"})

    def connection_lost(self, exc: Exception | None) -> None:
        self.edge.forget(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._receiving is Receiving.HEADERS and not self.transport.is_closing():
            # Bounds what httptools buffers of a header still coming; the exact count is taken
            # when the headers are complete. A chunk can hold the end of a previous request
            # (pipelining), hence the slack of one chunk.
            self._header_bytes += len(data)
            if self._header_bytes > self.edge.limits.max_header_bytes + READ_CHUNK:
                self._refuse_headers()

    # -- parser callbacks -------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._receiving is Receiving.NOTHING:  # a later request: its time runs from its first byte
            self._receiving = Receiving.HEADERS
            self._since = self.loop.time()
            self._header_bytes = 0

    def on_headers_complete(self) -> None:
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.edge.limits.max_header_bytes:
            self._refuse_headers()
            raise ValueError("headers too large")  # httptools stops; uvicorn answers (send_400_response)
        self._receiving = Receiving.BODY
        self._since = self.loop.time()
        self._header_bytes = 0
        self.edge.busy(self)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self._receiving is Receiving.DRAINING:
            self._drain_left -= len(body)
            if self._drain_left < 0:
                self._close()
            return
        super().on_body(body)
        self._since = self.loop.time()

    def on_message_complete(self) -> None:
        if self._receiving is Receiving.DRAINING:
            # All of it came and the answer is out: the connection is between requests again, as
            # after any other (its keep-alive timer, stopped by the body's bytes, starts again).
            self._receiving = Receiving.NOTHING
            self._unset_keepalive_if_required()
            self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)
            return
        super().on_message_complete()
        self._receiving = Receiving.NOTHING

    def _close(self) -> None:
        self.edge.forget(self)
        self.transport.close()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing() or (self.cycle is not None and not self.cycle.response_complete):
            return  # closed, or a pipelined request was started
        if self._receiving is Receiving.BODY:
            # Answered before its body arrived (a 401, a 413). Closing at once would make the
            # client's kernel reset the connection as its next bytes arrive, and a client still
            # sending often loses the answer with it: the rest is read and dropped (bounded in
            # bytes and time, and the connection counts as idle, first to go if room is needed).
            self._receiving = Receiving.DRAINING
            self._since = self.loop.time()
            self._drain_left = DRAIN_BYTES
            self.edge.idle(self)
            if self.flow.read_paused:
                self.flow.resume_reading()
        else:
            self.edge.idle(self)

    # -- deadlines, refusals ----------------------------------------------------------------------
    def check_deadline(self, now: float) -> None:
        """Close the connection if its current phase ran past its deadline (the sweeper calls this)."""
        if self.transport.is_closing():
            return
        limits = self.edge.limits
        if self._receiving is Receiving.HEADERS and now - self._since > limits.header_timeout:
            self.edge.forget(self)
            in_progress = self.cycle is not None and not self.cycle.response_complete
            if self.scope is not None and self.headers is not None and not in_progress and self._began():
                self._answer_and_close(408, f"the request's headers did not arrive within {limits.header_timeout:g}s "
                                       "(server.header_timeout)", {})
            else:
                self.transport.close()
        elif self._receiving is Receiving.DRAINING:
            if now - self._since > DRAIN_SECONDS:
                self._close()
        elif self._receiving is Receiving.BODY:
            if self.flow.read_paused:  # the API has not asked for more yet: the wait is not the client's
                self._since = now
            elif now - self._since > limits.body_timeout:
                self.edge.forget(self)
                self.transport.close()  # the route waiting for the body sees a disconnect

    def _began(self) -> bool:
        """Whether the current request sent anything (a request line started)."""
        return bool(self.url) or bool(self.headers)

    def fileno(self) -> int:
        """The socket's file descriptor (-1 once closed)."""
        sock = self.transport.get_extra_info("socket")
        return sock.fileno() if sock is not None else -1

    def close_for_room(self) -> None:
        """Close this idle connection: a new one needs its place."""
        self.transport.close()

    def _refuse_headers(self) -> None:
        self._refusal = (431, f"the request line and headers are larger than {self.edge.limits.max_header_bytes:,} "
                              "bytes (server.max_header_bytes)")
        if not self.transport.is_closing() and self._receiving is Receiving.HEADERS and self.parser is not None:
            self.send_400_response("")

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request it cannot parse, as problem+json (400, or 431 when the
        headers are too large)."""
        status, detail = self._refusal or (400, "the request is not valid HTTP/1.1")
        self._answer_and_close(status, detail, {})

    def _answer_and_close(self, status: int, detail: str, headers: dict[str, str]) -> None:
        self.edge.forget(self)
        if not self.transport.is_closing():
            self.transport.write(raw_problem(status, detail, self.server_state.default_headers, headers))
            self.transport.close()

    def _unsupported_upgrade_warning(self) -> None:
        # An Upgrade header (WebSocket, h2c) is answered as a plain request: nothing to warn about.
        log.debug("ignored an Upgrade header")


def raw_problem(status: int, detail: str, default_headers: list[tuple[bytes, bytes]],
                headers: dict[str, str]) -> bytes:
    """A whole HTTP/1.1 problem+json answer that closes the connection, as bytes."""
    body = json.dumps({"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status,
                       "detail": detail}).encode()
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}".encode()]
    lines += [name + b": " + value for name, value in default_headers]
    lines += [f"{name}: {value}".encode() for name, value in headers.items()]
    lines += [f"content-type: {PROBLEM}".encode(), f"content-length: {len(body)}".encode(), b"connection: close"]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def protocol_class(edge: Edge) -> type[EdgeProtocol]:
    """`EdgeProtocol` bound to `edge` (uvicorn's ``http=`` setting)."""
    return type("LeoHttpProtocol", (EdgeProtocol,), {"edge": edge})


def uvicorn_config(app: Any, edge: Edge) -> uvicorn.Config:
    """uvicorn's settings for the API behind `edge` (the module docstring says which and why)."""
    return uvicorn.Config(
        app, http=protocol_class(edge), ws="none", lifespan="off", access_log=False, log_level="warning",
        log_config=None,  # `leo run` sets up the log (leo_runtime.logs); uvicorn's own config would replace it
        timeout_keep_alive=edge.limits.keep_alive_timeout,  # type: ignore[arg-type]  (a float works: call_later)
        backlog=backlog_for(edge.limits.max_connections),
    )


async def unless_crowded(edge: Edge | None, waiting: Awaitable[bool]) -> bool:
    """Await `waiting` (a long poll's wakeup), or return False as soon as the connections are near
    the cap: the long poll then answers what it has and its connection can make room."""
    wakeup = asyncio.ensure_future(waiting)
    if edge is None:
        return await wakeup
    crowd = asyncio.ensure_future(edge.until_crowded())
    try:
        await asyncio.wait((wakeup, crowd), return_when=asyncio.FIRST_COMPLETED)
    finally:
        wakeup.cancel()
        crowd.cancel()
    return wakeup.result() if wakeup.done() and not wakeup.cancelled() else False


def open_files_in_use() -> int:
    """How many file descriptors this process holds now (0 when it cannot tell)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def fit_open_files(max_connections: int, in_flight: int) -> tuple[int, str | None]:
    """Raise the soft open-file limit toward the hard one and return the connection cap that
    fits in it, with a warning when `max_connections` had to be lowered (`connections_that_fit`)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    reserve = FD_RESERVE + in_flight + open_files_in_use()
    needed = files_needed(max_connections, reserve)
    if soft != resource.RLIM_INFINITY and needed > soft:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    if soft == resource.RLIM_INFINITY or needed <= soft:
        return max_connections, None
    fitting = connections_that_fit(soft, max_connections, reserve)
    return fitting, (f"server.max_connections {max_connections} does not fit in the open-file limit ({soft}; "
                     f"{FD_RESERVE + in_flight} kept for the store, the watcher and deliveries): serving at most "
                     f"{fitting} connections; raise the limit (ulimit -n, LimitNOFILE=) to serve more")


def files_needed(connections: int, reserve: int) -> int:
    """Open files for `connections`: themselves, twice the backlog (accepted in one burst before
    the cap acts on them) and `reserve` for everything else."""
    return connections + 2 * backlog_for(connections) + reserve


def connections_that_fit(limit: int, max_connections: int, reserve: int) -> int:
    """The most connections (at least 1, at most `max_connections`) whose files fit in `limit`."""
    low, high = 1, max_connections
    while low < high:
        middle = (low + high + 1) // 2
        if files_needed(middle, reserve) <= limit:
            low = middle
        else:
            high = middle - 1
    return low


__all__ = ["Edge", "EdgeLimits", "EdgeProtocol", "connections_that_fit", "fit_open_files", "protocol_class",
           "raw_problem", "unless_crowded", "uvicorn_config"]
