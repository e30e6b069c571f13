"""A host whose store connection drops keeps retrying, gives up its leases cleanly, and rejoins.

Two `leo run` on one PostgreSQL store; host A reaches the server through a TCP proxy this test
controls. Cutting the proxy (every connection closed, new ones refused) leaves A running but
without its store: its bots move to B within cluster.lease_ttl + 2 s, and no bot runs on both
(recorded from inside the bots). Restoring the proxy brings A back: it takes its share again, and
every event lands once in every output."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from urllib.parse import urlsplit, urlunsplit

import pytest

from leo_runtime.errors import StoreError
from leo_runtime.store import open_store

from ..conftest import Project, _stacks_of, wait_until
from .test_hosts import (
    BOTS,
    TTL,
    Feeder,
    assert_each_event_once_in_every_output,
    assert_no_run_on_two_processes_at_once,
    evenly_over,
    spread,
    write_project,
)

pytestmark = pytest.mark.parametrize("project", ["postgresql"], indirect=True)


class CuttableProxy:
    """A TCP proxy to `upstream` on a loopback port; `cut()` drops every connection and refuses
    new ones until `restore()`."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open = threading.Event()
        self.open.set()
        self.refused: list[float] = []  # when each connection tried during a cut was refused
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open.is_set():
                self.refused.append(time.monotonic())
                client.close()
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)  # 5 s to connect; a quiet connection (a pool's idle one) stays up
            except OSError:
                client.close()
                continue
            with self._lock:  # a cut that came meanwhile takes this pair too
                if not self.open.is_set():
                    client.close()
                    server.close()
                    continue
                self._sockets |= {client, server}
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            # shutdown, then close: close alone would not wake the other direction's thread in
            # recv() on the same socket, and the peer would never hear the connection ended.
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()

    def cut(self) -> None:
        with self._lock:
            self.open.clear()
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            except OSError:
                pass

    def restore(self) -> None:
        self.open.set()

    def close(self) -> None:
        self.cut()
        self.listener.close()


def through(url: str, port: int) -> str:
    parts = urlsplit(url)
    user = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{user}@127.0.0.1:{port}" if user else f"127.0.0.1:{port}"))


def test_a_store_whose_server_went_away_tries_again_every_few_seconds(project: Project) -> None:
    """psycopg's pool doubles its delay between reconnects (1, 2, 4, 8 s ...): after a long cut its
    next try, and the host's return to the cluster, could be a minute away. The store tries at a
    steady cadence instead."""
    parts = urlsplit(project.store_url)
    proxy = CuttableProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    store = open_store(through(project.store_url, proxy.port), project.root)
    try:
        store.append("q", [{"n": 1}])
        store.bot("b1")
        proxy.cut()
        with pytest.raises(StoreError):  # not psycopg's OperationalError: callers know only StoreError
            store.bot("b1")
        with pytest.raises(StoreError):
            store.append("q", [{"n": 2}])  # the pool learns its connection is gone
        wait_until(lambda: len(proxy.refused) >= 6, timeout=60, what="six tries to reconnect")
        gaps = sorted(b - a for a, b in zip(proxy.refused, proxy.refused[1:], strict=False))
        assert gaps[-1] < 5, f"seconds between tries to reconnect: {gaps}"  # doubling: 1, 2, 4, 8, 16
        proxy.restore()
        wait_until(lambda: _answers(store), timeout=15, what="the store answering again")
        assert [e.payload["n"] for e in store.read("q", 0, 10)] == [1]
    finally:
        store.close()
        proxy.close()


def _answers(store) -> bool:
    try:
        store.read("q", 0, 1)
        return True
    except StoreError:
        return False


def test_a_host_that_loses_its_store_gives_up_its_bots_and_rejoins(project: Project, leo_run) -> None:
    write_project(project)
    parts = urlsplit(project.store_url)
    proxy = CuttableProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    try:
        a = leo_run(project, "--role", "bots", "--store", through(project.store_url, proxy.port))
        a.wait_ready()
        b = leo_run(project, "--role", "bots")
        b.wait_ready()
        try:
            wait_until(lambda: evenly_over(project, {a.proc.pid, b.proc.pid}), timeout=30,
                       what="the bots spread over both hosts")
        except AssertionError:
            print(spread(project), a.proc.pid, b.proc.pid, a.log()[-3000:], b.log()[-2000:], sep="\n")
            raise
        feeder = Feeder(project)
        wait_until(lambda: feeder.sent >= 200, what="events flowing")

        proxy.cut()
        cut_at = time.monotonic()
        wait_until(lambda: len(spread(project).get(str(b.proc.pid), [])) == BOTS, timeout=TTL + 20,
                   what="every bot running on the host that still reaches the store")
        moved_after = time.monotonic() - cut_at
        assert moved_after <= TTL + 2 + 3, f"the bots moved {moved_after:.1f}s after the cut"  # + the look's cadence
        assert a.proc.poll() is None  # A keeps running, retrying its store
        try:
            wait_until(lambda: "giving up" in a.log() or "lost its lease" in a.log(), timeout=TTL + 10,
                       what="A saying it gave up its leases")
        except AssertionError:
            print(a.log()[-5000:])
            raise

        proxy.restore()
        restored_at = time.monotonic()
        # psycopg's pool doubles its delay between reconnects while the server is away; the store
        # restarts that series every few seconds (postgres._RECONNECT_SERIES), so A is back soon.
        try:
            wait_until(lambda: evenly_over(project, {a.proc.pid, b.proc.pid}), timeout=40,
                       what="A back with its share of the bots")
        except AssertionError:
            print(spread(project), a.proc.pid, b.proc.pid, a.log()[-4000:], _stacks_of(a.proc.pid), sep="\n")
            raise
        print(f"A rejoined {time.monotonic() - restored_at:.1f}s after the store came back")
        sent = feeder.stop()
        store = project.store()
        try:
            wait_until(lambda: all(store.queue_head(f"out.b{n}") for n in range(1, BOTS + 1))
                       and all(len(store.read(f"out.b{n}", 0, 10_000_000)) >= sent for n in range(1, BOTS + 1)),
                       timeout=60, what="every output caught up")
        finally:
            store.close()
        assert_each_event_once_in_every_output(project, sent)
        assert assert_no_run_on_two_processes_at_once(project) == {a.proc.pid, b.proc.pid}
        assert a.stop() == 0 and b.stop() == 0
    finally:
        proxy.close()
