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
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import uvicorn

from .botcalls import clip, describe, error_text, run_in_daemon_thread
from .config import BotSpec, Config, PipelinesFile, load_config
from .config.models import ServerConfig
from .config.reloading import NEEDS_RESTART, changed_settings, keep_running, needs_restart, setting
from .delivery.system import SYSTEM_PREFIX, SystemPipeline, derive, spec_fingerprint
from .errors import ConfigError, LeoError
from .leases import LeaseKeeper
from .operations import HISTORY_SAMPLE_SECONDS, prune_history, sample_history
from .runner import BotRunner, RunnerServices
from .states import FAILING_AFTER, BotState
from .store import Store
from .store.base_hosts import BOT_ROLES, ROLES
from .timeutil import now_ms
from .wakeups import Wakeups
from .watching import FileChangeWatch, FileWatcher, content_digest

log = logging.getLogger("leo.runtime")

SYSTEM_RECHECK_SECONDS = 1.0
"""How often the store is asked whether partner webhooks or streams changed in another process."""

HISTORY_PRUNE_SECONDS = 300.0
"""How often old bot history samples are thinned and dropped."""

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
        system: Sequence[SystemPipeline] = (),
        server_overrides: Mapping[str, Any] | None = None,
        role: str = "all",
    ) -> None:
        # The system pipelines (partner webhooks, streams) are what the composer hands in
        # (`leo_runtime.cli.compose`): nothing registers itself by being imported.
        self.system = list(system)
        self.server_overrides = dict(server_overrides or {})  # --host / --port: they hold across reloads
        config.model = self._overridden(config.model)
        self.config = config
        self.store = store
        self.executor = ThreadPoolExecutor(max_workers=32, thread_name_prefix="leo-worker")
        if role not in ROLES:
            raise ConfigError(f"role {role!r} is not one of {', '.join(ROLES)}")
        self.role = role  # all, api (HTTP, no bots) or bots (bots; HTTP serves /healthz and /metrics only)
        self.leases = LeaseKeeper(store, executor=self.executor, ttl_ms=int(config.model.cluster.lease_ttl * 1000),
                                  role=role)
        self.wakeups = Wakeups(store, has_peers=lambda: len(self.leases.hosts) > 1)
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
        self._edge: Any = None  # server.edge.Edge while HTTP is served
        self._api_context: Any = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._stop_requested = asyncio.Event()
        self._stopping = False  # set when `stop` begins: no runner starts after that
        self._reload_handle: asyncio.TimerHandle | None = None
        self._reload_tasks: set[asyncio.Task[bool]] = set()
        self._config_watch: Any = None
        self._reload_lock = asyncio.Lock()
        self._system_lock = asyncio.Lock()
        self._system_marks: dict[str, Any] = {}
        self._system_kick = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._configured = config.model  # as the file (and command line) gave it, before the bound public_url
        self._bound_url: str | None = None  # http://host:port of the bound socket (the default public_url)

    @property
    def owner(self) -> str:
        """This runtime's lease owner id (``host:pid:nonce``): its id among the hosts too."""
        return self.leases.owner

    @property
    def runs_bots(self) -> bool:
        return self.role in BOT_ROLES

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start wakeups, every bot, housekeeping, the file watcher and (optionally) HTTP."""
        loop = self._loop = asyncio.get_running_loop()
        loop.set_default_executor(self.executor)
        _check_public_url(self.config.model.server)
        if self.serve_http:  # first: a taken port fails before any bot has started
            await self._start_http()
        self.watcher.start()
        await self.wakeups.start()
        await self._store_call(self.store.register_runtime, self.owner, str(self.config.path))
        self.leases.address = self.http_address if self.role != "bots" else None
        await self.leases.join()
        if self.runs_bots:
            for spec in self.config.bots:
                self._start_runner(spec)
            await self._reconcile_system()
            await self.leases.balance()  # the share, now that every runner is counted
            self._tasks.append(loop.create_task(self._watch_system(), name="leo-system-bots"))
        self._tasks.append(loop.create_task(self.leases.balance_forever(), name="leo-balance"))
        self._tasks.append(loop.create_task(self.leases.renew_forever(), name="leo-leases"))
        self._tasks.append(loop.create_task(self._heartbeat(), name="leo-heartbeat"))
        self._tasks.append(loop.create_task(self._prune(), name="leo-retention"))
        self._tasks.append(loop.create_task(self._sample_history(), name="leo-history"))
        # However the file is replaced (in place, rename, symlinks, a ConfigMap's ..data swap),
        # compared with the bytes the running config was read from: an edit saved since the load
        # (while the bots started) is a change, applied at once.
        self._config_watch = FileChangeWatch(
            self.watcher, self.config.path, lambda: loop.call_soon_threadsafe(self._schedule_reload),
            baseline=self._loaded_digest(self.config),
        )
        log.info(
            "running %s%d bot(s) in %d pipeline(s) from %s; store %s%s",
            f"as role {self.role} ({self.owner}): " if self.role != "all" else "",
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
        # A reconcile of the system bots (or a reload) still going on may start a runner while
        # the others stop: none may, or it would run on past the drain, unstopped.
        self._stopping = True
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
        if self._edge is not None:  # after the server: deadlines hold while it drains
            await self._edge.stop()
        await self.wakeups.stop()
        await self.leases.leave()
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
        if not self.runs_bots or self._stopping:  # role api: the hosts that run bots run this one
            return
        services = RunnerServices(self.store, self.leases, self.wakeups, self.watcher, self.config, self.executor)
        runner = BotRunner(spec, services)  # runs no bot code: construction happens on the bot's thread
        runner.fingerprint = spec_fingerprint(spec, self.config)  # with the settings it reads, as it starts
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
        webhook or stream, from any thread); changes made by other processes are noticed within
        a second."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._system_kick.set()
        else:  # an asyncio.Event is not thread-safe: set it on its loop (a sync route runs in a worker)
            loop.call_soon_threadsafe(self._system_kick.set)

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
        if not self.system or not self.runs_bots:
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
                    if runner.id not in specs or spec_fingerprint(specs[runner.id], self.config) != runner.fingerprint
                ]
                if stale:
                    await self._stop_runners(stale, "its webhook or stream (or a setting it reads) changed")
                for bot_id, spec in specs.items():
                    if bot_id not in self.runners:
                        self._start_runner(spec)
                    else:  # kept: woken, it reads again what it serves (a stream to catch up, say)
                        self.wakeups.kick(bot_id)

    def _system_changed(self) -> dict[str, tuple[Any, list[BotSpec]]]:
        """The providers whose fingerprint changed: their new fingerprint and the specs they want
        now (runs off the loop, under the system lock that guards the fingerprints)."""
        changed: dict[str, tuple[Any, list[BotSpec]]] = {}
        for pipeline in self.system:
            try:
                mark, specs = derive(pipeline, self.store, self.config, self._system_marks.get(pipeline.name))
                if specs is not None:
                    changed[pipeline.name] = (mark, specs)
            except Exception as exc:  # a provider's bug or a store hiccup: retried at the next check
                log.error("system bots '%s': cannot derive them from the store: %s", pipeline.name, describe(exc))
        return changed

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.leases.beat_seconds)
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

    async def _sample_history(self) -> None:
        """Every few seconds, the bots' counters into the store's history (the console's charts);
        every few minutes, old samples thinned and dropped."""
        pruned_at = 0.0
        while True:
            await self._store_call(sample_history, self.store)
            if time.monotonic() - pruned_at > HISTORY_PRUNE_SECONDS:
                pruned_at = time.monotonic()
                await self._store_call(prune_history, self.store)
            await asyncio.sleep(HISTORY_SAMPLE_SECONDS)

    def health(self) -> dict[str, Any]:
        """A snapshot for /healthz: states, counts and flags only. It never holds error text
        (bot errors, reload errors): /healthz needs no token; `leo status` shows the details.
        Nor partner ids: a system bot (``streams:st_...``) is named by its pipeline
        (``system:streams``) in `failing` and `stuck`, and counted only in `states`."""
        self._abandoned = [runner for runner in self._abandoned if runner.thread.busy()]
        runners = sorted(self.runners.items())
        failing = _public_names(r for _, r in runners if r.failures >= FAILING_AFTER or r.state == BotState.CRASHED)
        stuck = _public_names(r for _, r in runners if r.stuck)
        return {
            # Still a 200: a load balancer keeps the host (the old pipelines run on), the operator is told.
            "status": "degraded" if failing or stuck or self._abandoned or self.reload_error is not None else "ok",
            "pipelines": sorted(self.config.model.pipelines),
            "bots": {bot: {"state": str(r.state), "failures": r.failures} for bot, r in runners
                     if not r.spec.pipeline.startswith(SYSTEM_PREFIX)},
            "states": dict(sorted(Counter(str(r.state) for _, r in runners).items())),
            "failing": failing,
            "stuck": stuck,
            "abandoned_runs": len(self._abandoned),
            "reloads": self.reloads,
            "reload_failed": self.reload_error is not None,
            "waiting_readers": self.wakeups.waiting(),
            "connections": self._edge.open_connections if self._edge is not None else 0,
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
            if self._config_watch is not None:  # what runs now was read from these bytes
                self._config_watch.settle(self._loaded_digest(new))
            await self._note_runtime()
            return True

    async def _reload_failed(self, errors: list[str], what: str) -> None:
        errors = [clip(error) for error in errors[:20]] + ([f"({len(errors) - 20} more)"] if len(errors) > 20 else [])
        self.reload_error = "; ".join(errors)
        log.error("%s; the running pipelines keep running:\n  %s", what, "\n  ".join(errors))
        await self._note_runtime()

    async def _apply(self, new: Config) -> None:
        """Apply a valid new file: every setting reaches what reads it (the API at once, the bots
        that read a changed one restart with it), or the log names it as needing a restart and
        what runs keeps its value (`leo_runtime.config.reloading`)."""
        old = self.config
        configured = new.model = self._overridden(new.model)
        settings = [path for path in changed_settings(self._configured, configured) if path != "pipelines"]
        restart = [path for path in settings if needs_restart(path)]
        for path in restart:
            why = NEEDS_RESTART.get(path, "this leo run does not apply it while running")
            log.warning("'%s' changed in %s: restart leo run to apply it (%s)", path, new.path, why)
        self._configured = configured
        effective = keep_running(configured, old.model, restart)
        if effective.server.public_url is None and self._bound_url is not None:  # the URLs handed to partners
            effective = effective.model_copy(update={"server": effective.server.model_copy(
                update={"public_url": self._bound_url})})
        new.model = effective
        names = set(old.model.pipelines) | set(new.model.pipelines)
        changed = sorted(
            name
            for name in names
            if name not in old.model.pipelines
            or name not in new.model.pipelines
            or _pipeline_fingerprint(old, name) != _pipeline_fingerprint(new, name)
        )
        self.reload_error = None
        self.reloads += 1
        self.config = new
        if self._api_context is not None:  # the API serves the new object types, retention, webhooks settings
            self._api_context.settings = new.model
        applied = [path for path in settings if path not in restart]
        stopping = [runner for runner in self.runners.values() if runner.spec.pipeline in changed]
        await self._stop_runners(stopping, "its pipeline was reloaded")
        for spec in new.bots:
            if spec.pipeline in changed:
                self._start_runner(spec)
        # System bots reading a changed setting restart with it (their fingerprints hold the settings).
        self._system_marks.clear()
        await self._reconcile_system()
        what = [f"applied {', '.join(applied)}"] if applied else []
        what += [f"restarted {', '.join(changed)}"] if changed else []
        log.info("%s reloaded: %s", new.path, "; ".join(what) or "no pipeline or setting changed")

    def _overridden(self, model: PipelinesFile) -> PipelinesFile:
        """`model` with the command line's ``--host`` / ``--port``, which beat the file's."""
        if not self.server_overrides:
            return model
        return model.model_copy(update={"server": model.server.model_copy(update=self.server_overrides)})

    @staticmethod
    def _loaded_digest(config: Config) -> str | None:
        """The digest of the bytes `config` was read from (as the file watch takes it)."""
        return content_digest(config.text.encode("utf-8")) if config.text is not None else None

    # -- HTTP -------------------------------------------------------------------------------------
    async def _start_http(self) -> None:
        from .server.app import ApiContext, create_app
        from .server.edge import Edge, EdgeLimits, fit_open_files, uvicorn_config

        server_config = self.config.model.server
        # Connections must never take the open files the store, the watcher and the bots need.
        max_connections, warning = fit_open_files(server_config.max_connections, self.config.model.webhooks.max_in_flight)
        if warning:
            log.warning("%s", warning)
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
        bound_host, bound_port = sock.getsockname()[:2]
        host = f"[{bound_host}]" if ":" in str(bound_host) else bound_host
        self._bound_url = f"http://{host}:{bound_port}"
        if server_config.public_url is None:  # the URLs handed to partners (batches) name the bound port
            server_config = server_config.model_copy(update={"public_url": self._bound_url})
            self.config.model = self.config.model.model_copy(update={"server": server_config})
        self._edge = Edge(EdgeLimits.of(server_config, max_connections))
        context = self._api_context = ApiContext(
            settings=self.config.model, health=self.health, wait=self._wait_for_queue, changed=self.system_changed,
            meters=self._install_meters(), config=lambda: self.config, system=self.system,
            edge=self._edge, shared_limits=self._api_shared,
        )
        app = create_app(self.store, context, partner_api=self.role != "bots")
        self._server = _EmbeddedServer(uvicorn_config(app, self._edge))
        self._server_task = asyncio.get_running_loop().create_task(self._server.serve(sockets=[sock]), name="leo-http")
        while not self._server.started:
            if self._server_task.done():
                raise LeoError(f"the HTTP server stopped at start: {self._server_task.exception()}")
            await asyncio.sleep(0.01)
        host, port = sock.getsockname()[:2]
        self.http_address = f"http://{host}:{port}"

    def _api_shared(self) -> bool:
        """Whether another live host serves the API (as of the last look at the cluster). Before
        the first look (the API answers before the host joins), it may: a restarted host must not
        start from buckets of its own, full, beside the cluster's."""
        hosts = self.leases.hosts  # this host is among them once it has looked
        return not hosts or any(host.address is not None and host.id != self.owner for host in hosts)

    def _install_meters(self) -> Any:
        """The process's meters for /metrics (what this host's bots, deliveries and requests did)."""
        from .meters import install
        from .server.metrics import PrometheusMeters

        meters = PrometheusMeters(self.store, lambda: {spec.id for spec in self.config.bots})
        install(meters)
        return meters


def _check_public_url(server: ServerConfig) -> None:
    """Refuse a wildcard `server.host` (0.0.0.0, ::) without `server.public_url`: the URLs handed to
    partners (batches in notifications, streams) would name an address nobody can reach."""
    if server.public_url is None and server.listens_everywhere:
        raise ConfigError(
            f"server.host {server.host or '(empty)'} listens on every interface, so the URLs handed to partners "
            "(batches, streams) cannot name this host: set server.public_url (like https://leo.example.com or "
            f"http://<this host's name>:{server.port})"
        )


def _public_names(runners: Iterable[BotRunner]) -> list[str]:
    """Bot ids as an open route may show them: a system bot's id holds a partner's webhook or
    stream id, so it is named by its pipeline instead (once)."""
    return sorted({r.spec.pipeline if r.spec.pipeline.startswith(SYSTEM_PREFIX) else r.id for r in runners})


def _pipeline_fingerprint(config: Config, name: str) -> str:
    # Bots read the object types they name at setup (the change detector its key field), and
    # the settings their class reads (`Bot.reads`): a pipeline restarts when one of them changes too.
    declared = config.model.object_types
    specs = config.bots_of(name)
    named = {getattr(spec.settings, "object_type", None) for spec in specs}
    types = {kind: declared[kind].model_dump() for kind in sorted(declared) if kind in named}
    reads = {path: setting(config.model, path) for spec in specs for path in spec.cls.reads}
    return json.dumps({"pipeline": config.pipeline_data(name), "object_types": types, "settings": reads},
                      sort_keys=True, default=str)


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside `leo run`: the runtime owns the signals, not uvicorn."""

    def capture_signals(self) -> Any:
        return contextlib.nullcontext()


__all__ = ["Runtime"]
