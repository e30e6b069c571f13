"""`leo run`: every bot as an asyncio task, the HTTP API beside them, reload on file change.

One process, one event loop. A bot's run (read a page, process, commit) happens in a worker
thread, so the loop stays free for thousands of idle long-poll readers and webhook deliveries.
Processors sleep until their input queue grows (`Wakeups`), sources until their schedule or a
file event. Each bot runs in one place at a time, guarded by a lease row in the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import signal
import socket
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import uvicorn

from .botcalls import clip, describe, error_text, run_in_daemon_thread
from .config import BotSpec, Config, load_config
from .errors import ConfigError, LeoError
from .leases import LeaseKeeper
from .runner import BotRunner, RunnerServices
from .states import FAILING_AFTER, BotState
from .store import Store
from .system import SystemPipeline, spec_fingerprint, system_pipelines
from .timeutil import now_ms
from .wakeups import Wakeups
from .watching import FileChangeWatch, FileWatcher

log = logging.getLogger("leo.runtime")

SYSTEM_RECHECK_SECONDS = 1.0
"""How often the store is asked whether partner webhooks or streams changed in another process."""

LOAD_TIMEOUT_SECONDS = 60.0
"""How long a reload may take to load the file (custom bot code is imported then) before it is
given up as failed; the thread doing it is left behind, the running pipelines keep running."""


class Runtime:
    """All pipelines of one pipelines.yaml, the HTTP API, leases, retention and reloads."""

    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        serve_http: bool = True,
        drain_timeout: float = 30.0,
        load_timeout: float = LOAD_TIMEOUT_SECONDS,
        system: list[SystemPipeline] | None = None,
    ) -> None:
        self.config = config
        self.system = system_pipelines() if system is None else system
        self.store = store
        self.executor = ThreadPoolExecutor(max_workers=32, thread_name_prefix="leo-worker")
        self.leases = LeaseKeeper(store, executor=self.executor)
        self.wakeups = Wakeups(store)
        self.watcher = FileWatcher()
        self.runners: dict[str, BotRunner] = {}
        self.serve_http = serve_http
        self.drain_timeout = drain_timeout
        self.load_timeout = load_timeout
        self.http_address: str | None = None
        self.reload_error: str | None = None
        self.reloads = 0
        self.started_at = now_ms()
        self._abandoned: list[BotRunner] = []  # runners whose run was given up but may still be going
        self._server: Any = None
        self._api_context: Any = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._stop_requested = asyncio.Event()
        self._reload_handle: asyncio.TimerHandle | None = None
        self._reload_tasks: set[asyncio.Task[bool]] = set()
        self._config_watch: Any = None
        self._reload_lock = asyncio.Lock()
        self._system_lock = asyncio.Lock()
        self._system_marks: dict[str, Any] = {}
        self._system_kick = asyncio.Event()
        self._configured_server = config.model.server  # as the file (and command line) gave it

    @property
    def owner(self) -> str:
        """This runtime's lease owner id (``host:pid:nonce``)."""
        return self.leases.owner

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start wakeups, every bot, housekeeping, the file watcher and (optionally) HTTP."""
        loop = asyncio.get_running_loop()
        loop.set_default_executor(self.executor)
        if self.serve_http:  # first: a taken port fails before any bot has started
            await self._start_http()
        self.watcher.start()
        await self.wakeups.start()
        await self._store_call(self.store.register_runtime, self.owner, str(self.config.path))
        for spec in self.config.bots:
            self._start_runner(spec)
        await self._reconcile_system()
        self._tasks.append(loop.create_task(self._watch_system(), name="leo-system-bots"))
        self._tasks.append(loop.create_task(self.leases.renew_forever(), name="leo-leases"))
        self._tasks.append(loop.create_task(self._heartbeat(), name="leo-heartbeat"))
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
        for task in list(self._reload_tasks):  # a reload still loading must not start bots after the drain
            task.cancel()
        await asyncio.gather(*self._reload_tasks, return_exceptions=True)
        runners = list(self.runners.values())
        finished = await asyncio.gather(*(runner.stop(self.drain_timeout) for runner in runners))
        stuck = sorted(runner.id for runner, done in zip(runners, finished, strict=True) if not done)
        if stuck:
            log.error("bot(s) %s did not finish within %ss; their current runs are abandoned uncommitted "
                      "and will be redone", ", ".join(stuck), self.drain_timeout)
        self.runners.clear()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._server is not None:
            self._server.should_exit = True
            await asyncio.gather(self._server_task, return_exceptions=True)
        await self.wakeups.stop()
        await self._store_call(self.store.unregister_runtime, self.owner)
        self.watcher.stop()
        self.executor.shutdown(wait=True, cancel_futures=True)
        if not stuck:
            log.info("stopped; every run committed")
        return not stuck

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
        services = RunnerServices(self.store, self.leases, self.wakeups, self.watcher, self.config, self.executor)
        runner = BotRunner(spec, services)  # runs no bot code: construction happens on the bot's thread
        self.runners[spec.id] = runner
        runner.start()

    async def _stop_runners(self, runners: list[BotRunner], why: str) -> None:
        """Stop runners for a reload: each gets `drain_timeout` to commit, a stuck one none."""
        finished = await asyncio.gather(*(r.stop(self.drain_timeout, abandon_stuck=True) for r in runners))
        for runner, done in zip(runners, finished, strict=True):
            if self.runners.get(runner.id) is runner:
                del self.runners[runner.id]
            if not done:
                self._abandoned.append(runner)
                log.error("bot '%s' did not finish its run (%s); it was abandoned uncommitted and its events are "
                          "redone by the next run", runner.id, why)

    # -- system bots (partner webhooks and streams, derived from the store) ------------------------
    def system_changed(self) -> None:
        """Reconcile the system bots now (the HTTP API calls this after creating or deleting a
        webhook or stream); changes made by other processes are noticed within a second."""
        self._system_kick.set()

    async def _watch_system(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._system_kick.wait(), SYSTEM_RECHECK_SECONDS)
            self._system_kick.clear()
            try:
                await self._reconcile_system()
            except Exception as exc:  # a provider's bug must not end the watch
                log.error("system bots: cannot reconcile: %s", describe(exc))

    async def _reconcile_system(self) -> None:
        """Start the system bots the store now asks for, stop the ones it no longer does, and
        restart the ones whose settings changed; nothing happens while the store is unchanged.
        A provider that fails is logged and keeps its bots as they are; the others go on."""
        if not self.system:
            return
        async with self._system_lock:
            loop = asyncio.get_running_loop()
            changed = await loop.run_in_executor(self.executor, self._system_changed)
            for name, (mark, wanted) in changed.items():
                self._system_marks[name] = mark
                specs = {spec.id: spec for spec in wanted}
                running = [runner for runner in self.runners.values() if runner.spec.pipeline == name]
                stale = [
                    runner for runner in running
                    if runner.id not in specs or spec_fingerprint(specs[runner.id]) != spec_fingerprint(runner.spec)
                ]
                if stale:
                    await self._stop_runners(stale, "its webhook or stream changed")
                for bot_id, spec in specs.items():
                    if bot_id not in self.runners:
                        self._start_runner(spec)

    def _system_changed(self) -> dict[str, tuple[Any, list[BotSpec]]]:
        """The providers whose fingerprint changed: their new fingerprint and the specs they want
        now (runs off the loop, under the system lock that guards the fingerprints)."""
        changed: dict[str, tuple[Any, list[BotSpec]]] = {}
        for pipeline in self.system:
            try:
                mark = pipeline.fingerprint(self.store)
                if mark != self._system_marks.get(pipeline.name):
                    changed[pipeline.name] = (mark, pipeline.specs(self.store, self.config))
            except Exception as exc:  # a provider's bug or a store hiccup: retried at the next check
                log.error("system bots '%s': cannot derive them from the store: %s", pipeline.name, describe(exc))
        return changed

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.leases.ttl_ms / 3000)
            await self._note_runtime()

    async def _note_runtime(self) -> None:
        await self._store_call(self.store.note_runtime, self.owner, reloads=self.reloads, reload_error=self.reload_error)

    async def _store_call(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        """A housekeeping store call, off the loop; a store error is logged, not raised."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, functools.partial(func, *args, **kwargs))
        except LeoError as exc:
            log.warning("store: %s", exc)
            return None

    async def _prune(self) -> None:
        while True:
            try:
                cutoff = now_ms() - int(self.config.model.retention * 1000)
                while await asyncio.to_thread(self.store.prune, cutoff) >= 10_000:
                    await asyncio.sleep(0)
            except LeoError as exc:
                log.warning("retention: cannot prune old events: %s", exc)
            await asyncio.sleep(60)

    def health(self) -> dict[str, Any]:
        """A snapshot for /healthz: states, counts and flags only. It never holds error text
        (bot errors, reload errors): /healthz needs no token; `leo status` shows the details."""
        self._abandoned = [runner for runner in self._abandoned if runner.thread.busy()]
        runners = sorted(self.runners.items())
        failing = [bot for bot, r in runners if r.failures >= FAILING_AFTER or r.state == BotState.CRASHED]
        stuck = [bot for bot, r in runners if r.stuck]
        return {
            "status": "degraded" if failing or stuck or self._abandoned else "ok",
            "pipelines": sorted(self.config.model.pipelines),
            "bots": {bot: {"state": str(r.state), "failures": r.failures} for bot, r in runners},
            "states": dict(sorted(Counter(str(r.state) for _, r in runners).items())),
            "failing": failing,
            "stuck": stuck,
            "abandoned_runs": len(self._abandoned),
            "reloads": self.reloads,
            "reload_failed": self.reload_error is not None,
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
        self._reload_handle = loop.call_later(0.3, self._start_reload)

    def _start_reload(self) -> None:
        task = asyncio.get_running_loop().create_task(self.reload(), name="leo-reload")
        self._reload_tasks.add(task)
        task.add_done_callback(self._reload_tasks.discard)

    async def reload(self) -> bool:
        """Re-read pipelines.yaml; restart only the pipelines that changed. A broken file is
        reported and the running pipelines keep running. Returns True when applied."""
        async with self._reload_lock:
            path = self.config.path
            # Loading imports custom bot code: on a daemon thread, with a time limit, so that code
            # that exits, hangs or raises anything at import cannot stop or block the runtime.
            loading = run_in_daemon_thread(functools.partial(load_config, path, display_name=str(path)),
                                           name="leo-reload")
            try:
                new = await asyncio.wait_for(asyncio.wrap_future(loading), self.load_timeout)
            except ConfigError as exc:
                problems = exc.problems or []
                lines = [str(p) for p in problems if p.severity == "error"] or [str(exc)]
                await self._reload_failed(lines, f"{path} changed but is invalid")
                return False
            except TimeoutError:
                await self._reload_failed(
                    [f"loading {path} took more than {self.load_timeout:g}s (does a custom bot's module hang at "
                     "import?)"], "reload failed")
                return False
            except Exception as exc:
                await self._reload_failed([error_text(exc)], "reload failed")
                return False
            await self._apply(new)
            await self._note_runtime()
            return True

    async def _reload_failed(self, errors: list[str], what: str) -> None:
        errors = [clip(error) for error in errors[:20]] + ([f"({len(errors) - 20} more)"] if len(errors) > 20 else [])
        self.reload_error = "; ".join(errors)
        log.error("%s; the running pipelines keep running:\n  %s", what, "\n  ".join(errors))
        await self._note_runtime()

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
            before = self._configured_server if key == "server" else old.model.store
            if before != getattr(new.model, key):
                log.warning("'%s' changed in %s: restart leo run to apply it", key, new.path)
        # What is served stays as it started (its address, the URL handed to partners) until a restart.
        new.model = new.model.model_copy(update={"server": old.model.server})
        self.reload_error = None
        self.reloads += 1
        self.config = new
        if self._api_context is not None:  # the API serves the new object types, retention, webhooks settings
            self._api_context.settings = new.model
        if not changed:
            log.info("%s reloaded: no pipeline changed", new.path)
            return
        stopping = [runner for runner in self.runners.values() if runner.spec.pipeline in changed]
        await self._stop_runners(stopping, "its pipeline was reloaded")
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
        if server_config.public_url is None:  # the URLs handed to partners (batches) name the bound port
            bound_host, bound_port = sock.getsockname()[:2]
            host = f"[{bound_host}]" if ":" in str(bound_host) else bound_host
            server_config = server_config.model_copy(update={"public_url": f"http://{host}:{bound_port}"})
            self.config.model = self.config.model.model_copy(update={"server": server_config})
        context = self._api_context = ApiContext(
            settings=self.config.model, health=self.health, wait=self._wait_for_queue, changed=self.system_changed
        )
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
    # Bots read the object types they name at setup (the change detector its key field): a
    # pipeline restarts when the declaration of one of them changes too.
    declared = config.model.object_types
    named = {getattr(spec.settings, "object_type", None) for spec in config.bots_of(name)}
    types = {kind: declared[kind].model_dump() for kind in sorted(declared) if kind in named}
    return json.dumps({"pipeline": config.pipeline_data(name), "object_types": types}, sort_keys=True, default=str)


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside `leo run`: the runtime owns the signals, not uvicorn."""

    def capture_signals(self) -> Any:
        return contextlib.nullcontext()


__all__ = ["Runtime"]
