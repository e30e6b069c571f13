"""`leo run`: every bot as an asyncio task, the HTTP API beside them, reload on file change.

One process, one event loop. A bot's run (read a page, process, commit) happens in a worker
thread, so the loop stays free for thousands of idle long-poll readers and webhook deliveries.
Processors sleep until their input queue grows (`Wakeups`), sources until their schedule or a
file event. Each bot runs in one place at a time, guarded by a lease row in the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import uvicorn

from .config import BotSpec, Config, load_config
from .errors import ConfigError, LeoError
from .leases import LEASE_TTL_MS, make_owner
from .runner import FAILING_AFTER, BotRunner
from .store import Store
from .timeutil import now_ms
from .wakeups import Wakeups
from .watching import FileChangeWatch, FileWatcher

log = logging.getLogger("leo.runtime")


class Runtime:
    """All pipelines of one pipelines.yaml, the HTTP API, leases, retention and reloads."""

    def __init__(self, config: Config, store: Store, *, serve_http: bool = True, drain_timeout: float = 30.0) -> None:
        self.config = config
        self.store = store
        self.owner = make_owner()
        self.wakeups = Wakeups(store)
        self.watcher = FileWatcher()
        self.executor = ThreadPoolExecutor(max_workers=32, thread_name_prefix="leo-worker")
        self.runners: dict[str, BotRunner] = {}
        self.held: set[str] = set()
        self.serve_http = serve_http
        self.drain_timeout = drain_timeout
        self.http_address: str | None = None
        self.reload_error: str | None = None
        self.reloads = 0
        self.started_at = now_ms()
        self._server: Any = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._stop_requested = asyncio.Event()
        self._reload_handle: asyncio.TimerHandle | None = None
        self._config_watch: Any = None
        self._reload_lock = asyncio.Lock()

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start wakeups, every bot, housekeeping, the file watcher and (optionally) HTTP."""
        loop = asyncio.get_running_loop()
        loop.set_default_executor(self.executor)
        if self.serve_http:  # first: a taken port fails before any bot has started
            await self._start_http()
        self.watcher.start()
        await self.wakeups.start()
        for spec in self.config.bots:
            self._start_runner(spec)
        self._tasks.append(loop.create_task(self._renew_leases(), name="leo-leases"))
        self._tasks.append(loop.create_task(self._prune(), name="leo-retention"))
        # However the file is replaced (in place, rename, symlinks, a ConfigMap's ..data swap).
        self._config_watch = FileChangeWatch(
            self.watcher, self.config.path, lambda: loop.call_soon_threadsafe(self._schedule_reload)
        )
        log.info(
            "running %d bot(s) in %d pipeline(s) from %s; store %s%s",
            len(self.runners),
            len(self.config.model.pipelines),
            self.config.path,
            self.store.url,
            f"; HTTP API on {self.http_address}" if self.http_address else "",
        )

    async def stop(self) -> bool:
        """Drain: every bot finishes and commits its current run; then leases go back.

        Returns False when a bot did not finish within `drain_timeout` seconds (its run is then
        abandoned uncommitted, so it is redone by the next runtime: nothing is lost).
        """
        if self._reload_handle is not None:
            self._reload_handle.cancel()
        if self._config_watch is not None:
            self._config_watch.close()
        runners = list(self.runners.values())
        _, pending = await asyncio.wait(
            [asyncio.ensure_future(runner.stop()) for runner in runners], timeout=self.drain_timeout
        ) if runners else (set(), set())
        drained = not pending
        if pending:
            stuck = [runner for runner in runners if runner.task is not None and not runner.task.done()]
            log.error("bot(s) %s did not finish within %ss; their current runs are abandoned uncommitted "
                      "and will be redone", ", ".join(sorted(r.id for r in stuck)), self.drain_timeout)
            for runner in stuck:
                runner.task.cancel()  # type: ignore[union-attr]
            await asyncio.gather(*pending, return_exceptions=True)
        self.runners.clear()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._server is not None:
            self._server.should_exit = True
            await asyncio.gather(self._server_task, return_exceptions=True)
        await self.wakeups.stop()
        self.watcher.stop()
        self.executor.shutdown(wait=True, cancel_futures=True)
        if drained:
            log.info("stopped; every run committed")
        return drained

    def request_stop(self) -> None:
        """Ask `run_until_stopped` to drain and return (signal handlers call this)."""
        self._stop_requested.set()

    async def run_until_stopped(self, *, handle_signals: bool = True) -> bool:
        """Start, run until SIGINT/SIGTERM (or `request_stop`), then drain and stop.

        Returns whether every run finished and committed (see `stop`)."""
        loop = asyncio.get_running_loop()
        if handle_signals:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, self._on_signal, signum)
        try:
            await self.start()
            await self._stop_requested.wait()
            log.info("stopping: finishing the current runs")
        finally:
            if handle_signals:
                for signum in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(signum, self._on_second_signal, signum)
            drained = await self.stop()
        return drained

    def _on_signal(self, signum: int) -> None:
        log.info("received %s", signal.Signals(signum).name)
        self.request_stop()

    def _on_second_signal(self, signum: int) -> None:
        log.warning("received %s again: exiting without waiting for the runs", signal.Signals(signum).name)
        os._exit(1)

    # -- bots -------------------------------------------------------------------------------------
    def _start_runner(self, spec: BotSpec) -> None:
        try:
            runner = BotRunner(spec, self)
        except Exception as exc:  # a bot whose constructor fails must not stop the others
            message = f"cannot start: {type(exc).__name__}: {exc}"
            log.error("bot '%s' %s", spec.id, message)
            with contextlib.suppress(LeoError):
                self.store.record_failure(spec.id, message)
            return
        self.runners[spec.id] = runner
        runner.start()

    def release(self, runner: BotRunner) -> None:
        self.held.discard(runner.id)
        runner.has_lease = False
        try:
            self.store.release_leases(self.owner, [runner.id])
        except LeoError as exc:
            log.warning("cannot release the lease of bot '%s': %s", runner.id, exc)

    async def _renew_leases(self) -> None:
        while True:
            await asyncio.sleep(LEASE_TTL_MS / 3000)
            held = sorted(self.held)
            try:
                lost = await asyncio.to_thread(self.store.renew_leases, self.owner, held, LEASE_TTL_MS)
            except LeoError as exc:
                log.warning("cannot renew leases: %s", exc)
                continue
            for bot_id in lost:
                self.held.discard(bot_id)
                runner = self.runners.get(bot_id)
                if runner is not None:
                    log.warning("bot '%s' lost its lease; standing by", bot_id)
                    runner.lease_lost()

    async def _prune(self) -> None:
        while True:
            try:
                cutoff = now_ms() - int(self.config.model.retention * 1000)
                while await asyncio.to_thread(self.store.prune, cutoff) >= 10_000:
                    await asyncio.sleep(0)
            except LeoError as exc:
                log.warning("retention: cannot prune old events: %s", exc)
            await asyncio.sleep(60)

    def bot_states(self) -> dict[str, dict[str, Any]]:
        """The live state of every bot this process runs (for /healthz)."""
        return {
            bot_id: {
                "state": runner.state,
                "failures": runner.failures,
                "failing": runner.failures >= FAILING_AFTER or runner.state == "crashed",
                "last_error": runner.last_error,
            }
            for bot_id, runner in sorted(self.runners.items())
        }

    def health(self) -> dict[str, Any]:
        """What /healthz adds for this runtime (handed to the HTTP API as its health snapshot)."""
        states = self.bot_states()
        failing = sorted(bot for bot, info in states.items() if info["failing"])
        return {
            "status": "degraded" if failing else "ok",
            "pipelines": sorted(self.config.model.pipelines),
            "bots": states,
            "failing": failing,
            "reloads": self.reloads,
            "reload_error": self.reload_error,
            "waiting_readers": self.wakeups.waiting(),
        }

    async def _wait_for_queue(self, queue: str, after: int, timeout: float) -> bool:
        return await self.wakeups.wait(queue, after, timeout)

    # -- reload -----------------------------------------------------------------------------------
    def _schedule_reload(self) -> None:
        # Editors write in several steps (truncate, write, rename): wait for the burst to end.
        if self._reload_handle is not None:
            self._reload_handle.cancel()
        loop = asyncio.get_running_loop()
        self._reload_handle = loop.call_later(0.3, lambda: loop.create_task(self.reload()))

    async def reload(self) -> bool:
        """Re-read pipelines.yaml; restart only the pipelines that changed. A broken file is
        reported and the running pipelines keep running. Returns True when applied."""
        async with self._reload_lock:
            try:
                new = await asyncio.to_thread(load_config, self.config.path, display_name=str(self.config.path))
            except ConfigError as exc:
                problems = exc.problems or []
                lines = [str(p) for p in problems if p.severity == "error"] or [str(exc)]
                self.reload_error = "; ".join(lines)
                log.error(
                    "%s changed but is invalid; the running pipelines keep running:\n  %s",
                    self.config.path,
                    "\n  ".join(lines),
                )
                return False
            except Exception as exc:
                self.reload_error = f"{type(exc).__name__}: {exc}"
                log.error("reload failed; the running pipelines keep running: %s", self.reload_error)
                return False
            await self._apply(new)
            return True

    async def _apply(self, new: Config) -> None:
        old = self.config
        names = set(old.model.pipelines) | set(new.model.pipelines)
        changed = sorted(
            name
            for name in names
            if name not in old.model.pipelines
            or name not in new.model.pipelines
            or _pipeline_fingerprint(old, name) != _pipeline_fingerprint(new, name)
        )
        for key in ("store", "server"):
            if getattr(old.model, key) != getattr(new.model, key):
                log.warning("'%s' changed in %s: restart leo run to apply it", key, new.path)
        self.reload_error = None
        self.reloads += 1
        self.config = new
        if not changed:
            log.info("%s reloaded: no pipeline changed", new.path)
            return
        stopping = [runner for runner in self.runners.values() if runner.spec.pipeline in changed]
        await asyncio.gather(*(runner.stop() for runner in stopping), return_exceptions=True)
        for runner in stopping:
            self.runners.pop(runner.id, None)
        for spec in new.bots:
            if spec.pipeline in changed:
                self._start_runner(spec)
        log.info("%s reloaded: restarted %s", new.path, ", ".join(changed))

    # -- HTTP -------------------------------------------------------------------------------------
    async def _start_http(self) -> None:
        from .server.app import ApiContext, create_app

        server_config = self.config.model.server
        # Bind here, not in uvicorn: a taken port becomes one clear error instead of uvicorn's exit.
        try:
            infos = socket.getaddrinfo(server_config.host, server_config.port, type=socket.SOCK_STREAM)
            family, kind, proto, _, address = infos[0]
            sock = socket.socket(family, kind, proto)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
        except OSError as exc:
            raise LeoError(
                f"cannot serve HTTP on {server_config.host}:{server_config.port}: {exc.strerror or exc}; "
                "pick another with --port (0 picks a free one) or run with --no-http"
            ) from None
        context = ApiContext(settings=self.config.model, health=self.health, wait=self._wait_for_queue)
        app = create_app(self.store, context)
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self._server = _EmbeddedServer(config)
        self._server_task = asyncio.get_running_loop().create_task(self._server.serve(sockets=[sock]), name="leo-http")
        while not self._server.started:
            if self._server_task.done():
                raise LeoError(f"the HTTP server stopped at start: {self._server_task.exception()}")
            await asyncio.sleep(0.01)
        host, port = sock.getsockname()[:2]
        self.http_address = f"http://{host}:{port}"


def _pipeline_fingerprint(config: Config, name: str) -> str:
    return json.dumps(config.pipeline_data(name), sort_keys=True, default=str)


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside `leo run`: the runtime owns the signals, not uvicorn."""

    def capture_signals(self) -> Any:
        return contextlib.nullcontext()


__all__ = ["Runtime"]
