"""One bot, run until stopped: its lease, its waits, its failures, backoff and dead letters,
and the watch for a stuck run. What a run does (read a page, process, commit) is in `runs`.

Bot code and the bot's store calls run on the bot's own thread (`BotThread`); everything else
happens on the event loop, which alone changes the runner's state. A runner is handed what it
needs (`RunnerServices`: the store, a lease keeper, wakeups, the file watcher), never the runtime.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import meters
from .bot import Bot
from .botcalls import BotThread, call_bot, clip, error_text
from .config import BotSpec, Config
from .errors import CheckpointMoved, LeaseLost, LeoError, StoreError
from .leases import LeaseKeeper
from .runs import BotWork, EventFailed, Paused, PoisonWatch, RunResult, StartFailed, bot_context
from .states import BACKOFF_BASE_SECONDS, BACKOFF_MAX_SECONDS, FAILING_AFTER, BotState, backoff_delay, stuck_after
from .store import Store
from .timeutil import now_ms
from .wakeups import Wakeups
from .watching import FileWatcher

log = logging.getLogger("leo.runtime")

IDLE_RECHECK_SECONDS = 30.0
WATCH_RESCAN_SECONDS = 60.0

__all__ = [
    "BACKOFF_BASE_SECONDS",
    "BACKOFF_MAX_SECONDS",
    "FAILING_AFTER",
    "BotRunner",
    "EventFailed",
    "RunResult",
    "RunnerServices",
]


@dataclass(frozen=True)
class RunnerServices:
    """What a runner is lent by whoever runs it: the store, the lease keeper, wakeups, the file
    watcher, the configuration it belongs to, and a pool for store calls that must not wait
    behind the bot's own thread (marking a stuck run)."""

    store: Store
    leases: LeaseKeeper
    wakeups: Wakeups
    watcher: FileWatcher
    config: Config
    executor: Executor | None = None


class BotRunner:
    """Runs one bot until stopped: lease, runs, waits, failures, backoff and dead letters."""

    def __init__(self, spec: BotSpec, services: RunnerServices) -> None:
        self.spec = spec
        self.services = services
        self.store = services.store
        self.state = BotState.STARTING
        self.failures = 0
        self._store_failures = 0  # in a row, while registering or taking the lease (`_store_away`)
        self.last_error: str | None = None
        self.stopping = False
        self.bot: Bot[Any] | None = None
        self.fingerprint = ""  # what the runtime compares on a reload (the spec and the settings it reads)
        self.ctx = bot_context(spec, services.store, services.config)
        self.task: asyncio.Task[None] | None = None
        # One thread per bot: its runs always use the same SQLite connection, whose page cache
        # stays warm (SQLite drops a connection's cache when another connection wrote). A daemon
        # thread: a run stuck for good never keeps the process from exiting.
        self.thread = BotThread(f"leo-bot-{spec.id}"[:60])
        self._committed_state = "{}"
        self._watch_handles: list[Any] = []
        self._due = 0.0  # sources: when the next scheduled run is due (time.monotonic())
        self._file_event = False
        self._run_started_ms: int | None = None
        self._stuck_timer: asyncio.TimerHandle | None = None
        self._stuck = asyncio.Event()
        self._progress = 0  # the run's progress when the stuck timer was last set
        self.work = BotWork(spec, services.store, services.leases.owner, self.ctx, services.config.model.retention,
                            holds=lambda: services.leases.holds(spec.id))
        self.poison = PoisonWatch(spec)

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def has_lease(self) -> bool:
        """Whether this runtime holds the bot's lease (as far as it knows)."""
        return self.services.leases.holds(self.id)

    @property
    def stuck(self) -> bool:
        """Whether the current run (or setup) overran its time bound by the stuck margin."""
        return self._stuck.is_set()

    def start(self) -> None:
        self.services.leases.want(self.id, self.lease_lost)
        self.task = asyncio.get_running_loop().create_task(self._main(), name=f"bot:{self.id}")

    async def stop(self, timeout: float | None = None, *, abandon_stuck: bool = False) -> bool:
        """Finish the current run (its commit included), then stop. Returns True when it did.

        After `timeout` seconds (or as soon as the run is stuck, with `abandon_stuck`) the run is
        abandoned uncommitted: its thread may go on, but it can no longer commit, and the next
        runner of this bot redoes its events.
        """
        self.stopping = True
        self.services.wakeups.kick(self.id)
        task = self.task
        if task is None or task.done():
            return True
        waits: set[asyncio.Future[Any]] = {task}
        stuck_wait = asyncio.ensure_future(self._stuck.wait()) if abandon_stuck else None
        if stuck_wait is not None:
            waits.add(stuck_wait)
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if stuck_wait is not None:
                stuck_wait.cancel()
        if task.done():
            return True
        self.work.given_up.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return False

    def lease_lost(self) -> None:
        self.services.wakeups.kick(self.id)

    # -- the loop --------------------------------------------------------------------------------
    async def _main(self) -> None:
        ready = False
        leases = self.services.leases
        registered = False
        try:
            while not self.stopping:
                try:
                    if not registered:
                        await self._in_thread(self.store.ensure_bot, self.id, self.spec.pipeline)
                        registered = True
                    if leases.must_yield(self.id):  # a run boundary: the bot moves to a host below its share
                        await self._give_back(ready)
                        ready = False
                        continue
                    if not leases.holds(self.id) and not await self._acquire():
                        continue
                except StoreError as exc:  # the store is away: stand by and ask again, never stop
                    await self._store_away(exc)
                    continue
                if not ready:  # set up only where the bot runs: after the lease is ours
                    try:
                        self.bot, paths = await self._timed(self._in_thread(self.work.prepare, self.bot))
                    except StartFailed as exc:
                        self.bot = exc.bot
                        await self._failed(exc)
                        continue
                    except Exception as exc:
                        await self._failed(exc)
                        continue
                    ready = True
                    self._watch(paths)
                    if self.spec.schedule is not None and self.spec.schedule.kind == "cron":
                        self._due = time.monotonic() + self._until_next_source_run()  # cron waits for its tick
                if self.services.wakeups.paused(self.id):
                    self.state = BotState.PAUSED
                    await self.services.wakeups.wait(None, 0, IDLE_RECHECK_SECONDS, key=self.id)
                    continue
                if self.spec.kind == "source" and not self._file_event and time.monotonic() < self._due:
                    # Kicks (a lease change, a resume) do not make a source run early; file events do.
                    self.state = BotState.IDLE
                    await self.services.wakeups.wait(None, 0, self._due - time.monotonic(), key=self.id)
                    continue
                self._file_event = False
                await self._step()
        except asyncio.CancelledError:
            # Abandoned by a drain or a reload that could not wait: its run still occupies the
            # bot's thread, so close() cannot run; the run cannot commit either (see stop()).
            ready = False
            self.state = BotState.ABANDONED
            raise
        except Exception as exc:  # a bug in the runner itself: report, never take the runtime down
            log.exception("bot '%s' stopped unexpectedly: %s", self.id, exc)
            self.state = BotState.CRASHED
        finally:
            self._run_over()
            leases.unwant(self.id)
            await self._close(ready)
            if leases.holds(self.id):
                await leases.release(self.id)
            if self.state not in (BotState.CRASHED, BotState.ABANDONED):
                self.state = BotState.STOPPED
                with contextlib.suppress(Exception):
                    await self._in_thread(self.store.close_thread)
            self.thread.shutdown(wait=False)

    async def _close(self, ready: bool) -> None:
        """Stop watching the bot's files and close it (when it was set up)."""
        for handle in self._watch_handles:
            self.services.watcher.unwatch(handle)
        self._watch_handles.clear()
        if ready and self.bot is not None:
            try:
                await self._in_thread(call_bot, self.bot.close)
            except Exception as exc:
                log.warning("bot '%s': close() failed: %s", self.id, exc)

    async def _store_away(self, exc: StoreError) -> None:
        """The store failed while the bot registered or took its lease: forget the lease (the
        store may not have it), stand by a while, then ask again."""
        self.services.leases.forget(self.id)
        self._store_failures += 1
        delay = backoff_delay(self._store_failures, base=BACKOFF_BASE_SECONDS, cap=self.services.leases.ttl_ms / 3000)
        level = logging.INFO if self._store_failures > 1 else logging.WARNING
        log.log(level, "bot '%s': the store did not answer (%s); asking again in %.1fs", self.id, error_text(exc), delay)
        self.state = BotState.STANDBY
        await self.services.wakeups.wait(None, 0, delay, key=self.id)

    async def _give_back(self, ready: bool) -> None:
        """Close the bot and give its lease back, so a host below its fair share takes it."""
        log.info("bot '%s' moves to another host (this one holds more than its fair share)", self.id)
        await self._close(ready)
        self.bot = None  # should it come back, a new instance is set up (nothing carried over from a closed one)
        await self.services.leases.release(self.id)

    async def _acquire(self) -> bool:
        leases = self.services.leases
        room = leases.may_take()
        if room and await leases.acquire(self.id, self.lease_lost):
            info = await self._in_thread(self.store.bot, self.id)
            self._committed_state = json.dumps(info.state if info else {})
            self._store_failures = 0
            return True
        if self.state != BotState.STANDBY:
            log.info("bot '%s' runs elsewhere (%s); standing by", self.id,
                     "lease held" if room else "this host holds its fair share of the bots")
        self.state = BotState.STANDBY
        # The lease keeper's balance wakes it when its lease is free and this host has room.
        await self.services.wakeups.wait(None, 0, self.services.leases.ttl_ms / 3000, key=self.id)
        return False

    async def _step(self) -> None:
        self.state = BotState.RUNNING
        try:
            run = self.work.run_source if self.spec.kind == "source" else self.work.run_queue
            result: RunResult = await self._timed(
                self._in_thread(run, self.bot, self._committed_state, self.poison.due)
            )
        except Paused:
            self.services.wakeups.note_paused(self.id)  # the loop now waits for the resume
            return
        except LeaseLost as exc:
            log.warning("%s", exc)
            self.services.leases.forget(self.id)
            return
        except CheckpointMoved as exc:
            log.info("%s", exc)
            self.poison.reset()
            return
        except Exception as exc:
            await self._failed(exc)
            return
        self._committed_state = result.state_json
        if result.dead_lettered is not None:
            event = result.dead_lettered
            log.warning("bot '%s': moved event %s@%d to dead-letter queue '%s' after %d failed run(s)", self.id,
                        event.queue, event.seq, self.spec.config.on_error.dead_letter,  # type: ignore[union-attr]
                        self.poison.due.failures if self.poison.due else 0)
        self.poison.committed(result)
        if self.failures:
            log.info("bot '%s' recovered after %d failed run(s)", self.id, self.failures)
        self.failures = 0
        self.last_error = None
        if result.behind or self.stopping:
            return
        self.state = BotState.IDLE
        if self.spec.kind == "source":
            self._due = time.monotonic() + self._until_next_source_run()
        else:
            tick = self.work.tick_seconds  # a bot that ticks runs that often while its input is quiet
            wait = IDLE_RECHECK_SECONDS if tick is None else min(tick, IDLE_RECHECK_SECONDS)
            await self.services.wakeups.wait(self.spec.in_queue, result.checkpoint, wait, key=self.id)

    async def _failed(self, exc: Exception) -> None:
        message = clip(error_text(exc))
        self.last_error = message
        count = self.failures + 1
        try:
            count = await self._in_thread(self.store.record_failure, self.id, message)
        except LeoError as store_error:
            log.warning("bot '%s': cannot record its failure: %s", self.id, store_error)
        self.failures = count
        meters.current().bot_run(self.spec.pipeline, self.id, ok=False)
        self.state = BotState.FAILING if count >= FAILING_AFTER else BotState.BACKOFF
        delay = backoff_delay(count, base=BACKOFF_BASE_SECONDS, cap=BACKOFF_MAX_SECONDS)
        if self.poison.failed(exc, message):
            delay = 0.0  # nothing to wait for: the next run sets the event aside
        # A failure a retry is expected to cure (a file caught while it is written) is no error
        # until it persists: the first is INFO, the next ones ERROR.
        level = logging.INFO if count == 1 and _transient(exc) else logging.ERROR
        log.log(level, "bot '%s' failed (%d in a row), retrying in %.1fs: %s", self.id, count, delay, message)
        if not isinstance(exc, LeoError) or isinstance(exc, EventFailed):
            log.debug("bot '%s' traceback", self.id, exc_info=exc)
        await self.services.wakeups.wait(None, 0, delay, key=self.id)

    def _in_thread(self, func: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        return asyncio.get_running_loop().run_in_executor(self.thread, func, *args)

    # -- stuck runs -------------------------------------------------------------------------------
    async def _timed(self, work: asyncio.Future[Any]) -> Any:
        """Await work on the bot's thread; flag it stuck when it overruns its bound by the margin."""
        loop = asyncio.get_running_loop()
        self._run_started_ms = now_ms()
        self._progress = self.work.progress()
        self._stuck_timer = loop.call_later(stuck_after(self.spec.limits.seconds), self._mark_stuck)
        try:
            return await work
        finally:
            self._run_over()

    def _mark_stuck(self) -> None:
        progress = self.work.progress()
        if progress != self._progress:  # a long run that gets on (a large full read) is not stuck
            self._progress = progress
            self._stuck_timer = asyncio.get_running_loop().call_later(stuck_after(self.spec.limits.seconds), self._mark_stuck)
            return
        self._stuck_timer = None
        self._stuck.set()
        previous, self.state = self.state, BotState.STUCK
        event = self.work.current[0]
        where = f" on event {event.queue}@{event.seq}" if event is not None and previous == BotState.RUNNING else ""
        seconds = (now_ms() - (self._run_started_ms or now_ms())) / 1000
        log.warning("bot '%s' is stuck%s: its %s has lasted %.1fs, over its %gs bound (batch.seconds)", self.id, where,
                    "run" if previous == BotState.RUNNING else "setup", seconds, self.spec.limits.seconds)
        # On the shared pool: the bot's own thread is the one that is stuck.
        future = asyncio.get_running_loop().run_in_executor(
            self.services.executor, self.store.mark_stuck, self.id, self.services.leases.owner, self._run_started_ms
        )
        future.add_done_callback(_log_store_failure)

    def _run_over(self) -> None:
        if self._stuck_timer is not None:
            self._stuck_timer.cancel()
            self._stuck_timer = None
        if self._stuck.is_set():
            self._stuck.clear()
            if not self.work.given_up.is_set():
                seconds = (now_ms() - (self._run_started_ms or now_ms())) / 1000
                log.info("bot '%s': its stuck run ended after %.1fs", self.id, seconds)

    def _until_next_source_run(self) -> float:
        schedule = self.spec.schedule
        if schedule is None or schedule.kind == "watch":
            return WATCH_RESCAN_SECONDS
        if schedule.kind == "interval":
            return float(schedule.interval or WATCH_RESCAN_SECONDS)
        now = time.time()
        from croniter import croniter  # here: most pipelines have no cron line

        return max(0.0, croniter(schedule.cron, now).get_next(float) - now)

    def _watch(self, paths: list[Path]) -> None:
        loop = asyncio.get_running_loop()
        for path in paths:
            handle = self.services.watcher.watch(path, lambda: loop.call_soon_threadsafe(self._on_file_event))
            self._watch_handles.append(handle)

    def _on_file_event(self) -> None:
        self._file_event = True
        self.services.wakeups.kick(self.id)


def _log_store_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("cannot note a stuck run in the store: %s", future.exception())


def _transient(exc: BaseException | None) -> bool:
    """Whether `exc`, or an error it was raised from, is one a retry is expected to cure."""
    seen = 0
    while exc is not None and seen < 10:
        if getattr(exc, "transient", False):
            return True
        exc, seen = exc.__cause__, seen + 1
    return False
