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
import random
import re
import signal
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from croniter import croniter

from .bot import Bot, BotContext
from .config import NAME_PATTERN, BotSpec, Config, load_config
from .errors import BotError, CheckpointMoved, ConfigError, LeaseLost, LeoError
from .events import Event, Output, RawJSON, dumps, encode_payload
from .store import PendingEvent, RunCommit, Store
from .timeutil import now_ms, parse_time
from .wakeups import Wakeups
from .watching import FileWatcher

log = logging.getLogger("leo.runtime")
_QUEUE_NAME = re.compile(NAME_PATTERN)

LEASE_TTL_MS = 30_000
IDLE_RECHECK_SECONDS = 30.0
WATCH_RESCAN_SECONDS = 60.0
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 60.0
FAILING_AFTER = 5


def make_owner() -> str:
    """A lease owner id: ``host:pid:nonce`` (the pid lets a restart on this host reclaim at once)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_is_gone(owner: str) -> bool:
    """True when `owner` is a process of this host that no longer runs (killed, crashed)."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


@dataclass
class RunResult:
    """What one run did: events read, where the checkpoint is now, whether more is waiting."""

    processed: int
    checkpoint: int
    behind: bool


class BotRunner:
    """Runs one bot until stopped: lease, runs, waits, failures and backoff."""

    def __init__(self, spec: BotSpec, runtime: Runtime) -> None:
        self.spec = spec
        self.runtime = runtime
        self.store = runtime.store
        self.state = "starting"
        self.failures = 0
        self.last_error: str | None = None
        self.stopping = False
        self.has_lease = False
        self.checkpoint: int | None = None
        self._committed_state = "{}"
        self._watch_handles: list[Any] = []
        self.ctx = BotContext(
            bot_id=spec.id,
            pipeline=spec.pipeline,
            base_dir=runtime.config.base_dir,
            in_queue=spec.in_queue,
            out_queue=spec.out_queue,
            limits=spec.limits,
            config=runtime.config,
            store=runtime.store,
            logger=logging.getLogger(f"leo.bot.{spec.id}"),
        )
        self.bot: Bot = spec.cls(spec.settings, self.ctx)
        self.task: asyncio.Task[None] | None = None

    @property
    def id(self) -> str:
        return self.spec.id

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._main(), name=f"bot:{self.id}")

    async def stop(self) -> None:
        """Finish the current run (its commit included), then stop."""
        self.stopping = True
        self.runtime.wakeups.kick(self.id)
        if self.task is not None:
            await asyncio.shield(self.task)

    def lease_lost(self) -> None:
        self.has_lease = False
        self.runtime.wakeups.kick(self.id)

    # -- the loop --------------------------------------------------------------------------------
    async def _main(self) -> None:
        ready = False
        try:
            await self._in_thread(self.store.ensure_bot, self.id, self.spec.pipeline)
            if self.spec.kind == "source" and self.spec.schedule and self.spec.schedule.kind == "watch":
                self._watch()
            while not self.stopping:
                if not self.has_lease and not await self._acquire():
                    continue
                if not ready:  # set up only where the bot runs: after the lease is ours
                    try:
                        await self._in_thread(self.bot.setup, self.ctx)
                    except Exception as exc:
                        await self._failed(exc, during="setup")
                        continue
                    ready = True
                    if await self._first_cron_tick():
                        continue
                if self.runtime.wakeups.paused(self.id):
                    self.state = "paused"
                    await self.runtime.wakeups.wait(None, 0, IDLE_RECHECK_SECONDS, key=self.id)
                    continue
                await self._step()
        except asyncio.CancelledError:
            # Abandoned by a drain that timed out: its run still occupies a worker thread, so
            # close() cannot run; the run cannot commit either once the lease is released.
            ready = False
            self.state = "abandoned"
            raise
        except Exception as exc:  # a bug in the runner itself: report, never take the runtime down
            log.exception("bot '%s' stopped unexpectedly: %s", self.id, exc)
            self.state = "crashed"
        finally:
            for handle in self._watch_handles:
                self.runtime.watcher.unwatch(handle)
            if ready:
                try:
                    await self._in_thread(self.bot.close)
                except Exception as exc:
                    log.warning("bot '%s': close() failed: %s", self.id, exc)
            if self.has_lease:
                self.runtime.release(self)
            if self.state not in ("crashed", "abandoned"):
                self.state = "stopped"

    async def _acquire(self) -> bool:
        got = await self._in_thread(
            self.store.acquire_lease, self.id, self.runtime.owner, LEASE_TTL_MS, is_stale=owner_is_gone
        )
        if got:
            self.has_lease = True
            self.runtime.held.add(self.id)
            info = await self._in_thread(self.store.bot, self.id)
            self._committed_state = json.dumps(info.state if info else {})
            return True
        if self.state != "standby":
            log.info("bot '%s' runs elsewhere (lease held); standing by", self.id)
        self.state = "standby"
        await self.runtime.wakeups.wait(None, 0, LEASE_TTL_MS / 3000, key=self.id)
        return False

    async def _step(self) -> None:
        try:
            if self.spec.kind == "source":
                self.state = "running"
                result = await self._in_thread(self._run_source)
            else:
                result = await self._in_thread(self._run_queue)
        except LeaseLost as exc:
            log.warning("%s", exc)
            self.has_lease = False
            self.runtime.held.discard(self.id)
            return
        except CheckpointMoved as exc:
            log.info("%s", exc)
            return
        except Exception as exc:
            await self._failed(exc)
            return
        if self.failures:
            log.info("bot '%s' recovered after %d failed run(s)", self.id, self.failures)
        self.failures = 0
        self.last_error = None
        if result.behind or self.stopping:
            return
        self.state = "idle"
        if self.spec.kind == "source":
            await self.runtime.wakeups.wait(None, 0, self._until_next_source_run(), key=self.id)
        else:
            await self.runtime.wakeups.wait(self.spec.in_queue, result.checkpoint, IDLE_RECHECK_SECONDS, key=self.id)

    async def _first_cron_tick(self) -> bool:
        """A cron source waits for its first tick (an interval or watch source runs at once)."""
        schedule = self.spec.schedule
        if self.spec.kind != "source" or schedule is None or schedule.kind != "cron":
            return False
        self.state = "idle"
        await self.runtime.wakeups.wait(None, 0, self._until_next_source_run(), key=self.id)
        return self.stopping

    async def _failed(self, exc: Exception, during: str = "run") -> None:
        self.failures += 1
        message = str(exc) if isinstance(exc, LeoError) else f"{type(exc).__name__}: {exc}"
        if during != "run":
            message = f"{during} failed: {message}"
        self.last_error = message
        count = await self._in_thread(self.store.record_failure, self.id, message[:2000])
        delay = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** min(count - 1, 10))
        delay *= random.uniform(0.8, 1.2)
        self.state = "failing" if count >= FAILING_AFTER else "backoff"
        log.error("bot '%s' failed (%d in a row), retrying in %.1fs: %s", self.id, count, delay, message)
        if not isinstance(exc, LeoError):
            log.debug("bot '%s' traceback", self.id, exc_info=exc)
        await self.runtime.wakeups.wait(None, 0, delay, key=self.id)

    def _in_thread(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self.runtime.executor, lambda: func(*args, **kwargs))

    # -- processors and sinks (worker thread) ----------------------------------------------------
    def _initial_position(self) -> int:
        start = self.spec.config.start
        if start in (None, "earliest"):
            return 0
        if start == "latest":
            return self.store.last_position()
        return self.store.position_at(parse_time(start))

    def _run_queue(self) -> RunResult:
        queue = self.spec.in_queue
        assert queue is not None
        checkpoint = self.store.get_checkpoint(self.id, queue)
        if checkpoint is None:
            checkpoint = self.store.init_checkpoint(self.id, queue, self._initial_position())
        self.checkpoint = checkpoint
        limits = self.spec.limits
        events = self.store.read(queue, checkpoint, limits.records, limits.bytes)
        if not events:
            return RunResult(0, checkpoint, False)
        self.state = "running"
        self.ctx.state = json.loads(self._committed_state)
        outputs, last, cut = self._drive(events)
        state_json = json.dumps(self.ctx.state)
        state = self.ctx.state if state_json != self._committed_state else None
        self.store.commit_run(
            RunCommit(
                bot_id=self.id,
                owner=self.runtime.owner,
                in_queue=queue,
                expected=checkpoint,
                position=last.seq,
                outputs=outputs,
                state=state,
                events_in=len(events) if not cut else _count_through(events, last.seq),
            )
        )
        self._committed_state = state_json
        self.checkpoint = last.seq
        behind = cut or len(events) >= limits.records or sum(len(e.payload_json) for e in events) >= limits.bytes
        return RunResult(len(events), last.seq, behind)

    def _drive(self, events: list[Event]) -> tuple[list[PendingEvent], Event, bool]:
        """Run `process` over a page; attribute each output to the input last handed to the bot.

        The bot sees an iterator: when the run's time is up, the iterator ends early and the
        checkpoint stops at the last event the bot was given. Events the bot never asked for
        (it returned early) count as processed.
        """
        deadline = time.monotonic() + self.spec.limits.seconds
        current: list[Event | None] = [None]
        cut = [False]
        monotonic = time.monotonic

        def feed() -> Iterator[Event]:
            for index, event in enumerate(events):
                if index and index % 64 == 0 and monotonic() > deadline:
                    cut[0] = True
                    return
                current[0] = event
                yield event

        outputs: list[PendingEvent] = []
        result = self.bot.process(feed(), self.ctx)
        if result is not None:
            convert = self._pending
            append = outputs.append
            for item in result:
                source = current[0] or events[0]
                append(convert(item, source))
        last = current[0] if cut[0] and current[0] is not None else events[-1]
        return outputs, last, cut[0]

    def _pending(self, item: Any, source: Event | None) -> PendingEvent:
        queue = self.spec.out_queue
        correlation = f'{{"source":"{source.queue}","start":{source.seq},"units":1}}' if source is not None else None
        if type(item) is Event and queue is not None:  # the hot path: a forwarded event
            return PendingEvent(queue, item.payload_json, item.event_source_timestamp, correlation)
        origin = source.event_source_timestamp if source is not None else None
        if isinstance(item, Event):
            text = item.payload_json
            origin = item.event_source_timestamp
        elif isinstance(item, RawJSON):
            text = item.text
        elif isinstance(item, Output):
            if item.queue is not None and not _QUEUE_NAME.fullmatch(item.queue):
                raise BotError(f"bot '{self.id}' yielded Output(queue={item.queue!r}): not a valid queue name")
            queue = item.queue or queue
            text = encode_payload(item.payload)
            if item.event_source_timestamp is not None:
                origin = item.event_source_timestamp
        else:
            try:
                text = dumps(item)
            except (TypeError, ValueError) as exc:
                raise BotError(f"bot '{self.id}' yielded something that is not JSON: {exc}") from exc
        if queue is None:
            if self.spec.kind == "sink":
                raise BotError(f"bot '{self.id}' is a sink and yielded an event; a sink writes no queue (return None)")
            raise BotError(f"bot '{self.id}' yielded an event but has no 'out' queue; add out: QUEUE")
        return PendingEvent(queue, text, origin, correlation)

    # -- sources (worker thread) -------------------------------------------------------------------
    def _run_source(self) -> RunResult:
        self.ctx.state = json.loads(self._committed_state)
        self.ctx.behind = False
        produced = self.bot.produce(self.ctx)  # type: ignore[attr-defined]
        outputs = [self._pending(item, None) for item in (produced or ())]
        state_json = json.dumps(self.ctx.state)
        if outputs or state_json != self._committed_state:
            self.store.commit_run(
                RunCommit(
                    bot_id=self.id,
                    owner=self.runtime.owner,
                    outputs=outputs,
                    state=self.ctx.state if state_json != self._committed_state else None,
                )
            )
            self._committed_state = state_json
        return RunResult(len(outputs), 0, self.ctx.behind)

    def _until_next_source_run(self) -> float:
        schedule = self.spec.schedule
        if schedule is None or schedule.kind == "watch":
            return WATCH_RESCAN_SECONDS
        if schedule.kind == "interval":
            return float(schedule.interval or WATCH_RESCAN_SECONDS)
        now = time.time()
        return max(0.0, croniter(schedule.cron, now).get_next(float) - now)

    def _watch(self) -> None:
        source_paths = self.bot.watch_paths(self.ctx)  # type: ignore[attr-defined]
        loop = asyncio.get_running_loop()
        for path in source_paths:
            handle = self.runtime.watcher.watch(
                Path(path), lambda: loop.call_soon_threadsafe(self.runtime.wakeups.kick, self.id)
            )
            self._watch_handles.append(handle)


def _count_through(events: list[Event], seq: int) -> int:
    return sum(1 for event in events if event.seq <= seq)


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
        self._config_watch = self.watcher.watch(
            self.config.path,
            lambda: loop.call_soon_threadsafe(self._schedule_reload),
            only=self.config.path,
            writes=False,
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
            self.watcher.unwatch(self._config_watch)
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
            # asyncio.run() would wait for the stuck worker thread at exit: give the loop a fresh
            # default executor so only our own (abandoned) pool holds it.
            asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=1))
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
        self.executor.shutdown(wait=drained, cancel_futures=True)
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
            bot_id: {"state": runner.state, "failures": runner.failures, "last_error": runner.last_error}
            for bot_id, runner in sorted(self.runners.items())
        }

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
        from .server.app import create_app

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
        app = create_app(self.store, runtime=self)
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


def run_file(path: str | Path, store: Store, **kwargs: Any) -> None:
    """Blocking helper: load `path` and run it until SIGINT/SIGTERM."""
    config = load_config(path)
    asyncio.run(Runtime(config, store, **kwargs).run_until_stopped())


__all__ = ["BotRunner", "RunResult", "Runtime", "make_owner", "owner_is_gone", "run_file"]

