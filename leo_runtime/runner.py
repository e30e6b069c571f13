"""One bot, run until stopped: its lease, its runs (read a page, process, commit), its waits,
its failures and backoff. The run itself happens in a worker thread; the rest on the loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from croniter import croniter

from .bot import Bot, BotContext
from .config import NAME_PATTERN, BotSpec
from .errors import BotError, CheckpointMoved, LeaseLost, LeoError
from .events import Event, Output, RawJSON, dumps, encode_payload
from .leases import LEASE_TTL_MS, owner_is_gone
from .store import ObjectBatch, PendingEvent, RunCommit
from .timeutil import parse_time

if TYPE_CHECKING:
    from .runtime import Runtime

log = logging.getLogger("leo.runtime")
_QUEUE_NAME = re.compile(NAME_PATTERN)

IDLE_RECHECK_SECONDS = 30.0
WATCH_RESCAN_SECONDS = 60.0
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 60.0
FAILING_AFTER = 5  # consecutive failures after which a bot shows as failing


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
        self._due = 0.0  # sources: when the next scheduled run is due (time.monotonic())
        self._file_event = False
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
        # One thread per bot: its runs always use the same SQLite connection, whose page cache
        # stays warm (SQLite drops a connection's cache when another connection wrote).
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"leo-bot-{spec.id}"[:60])

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
                    if self.spec.schedule is not None and self.spec.schedule.kind == "cron":
                        self._due = time.monotonic() + self._until_next_source_run()  # cron waits for its tick
                if self.runtime.wakeups.paused(self.id):
                    self.state = "paused"
                    await self.runtime.wakeups.wait(None, 0, IDLE_RECHECK_SECONDS, key=self.id)
                    continue
                if self.spec.kind == "source" and not self._file_event and time.monotonic() < self._due:
                    # Kicks (a lease change, a resume) do not make a source run early; file events do.
                    self.state = "idle"
                    await self.runtime.wakeups.wait(None, 0, self._due - time.monotonic(), key=self.id)
                    continue
                self._file_event = False
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
                with contextlib.suppress(Exception):
                    await self._in_thread(self.store.close_thread)
            self.executor.shutdown(wait=False)

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
            self._due = time.monotonic() + self._until_next_source_run()
        else:
            await self.runtime.wakeups.wait(self.spec.in_queue, result.checkpoint, IDLE_RECHECK_SECONDS, key=self.id)

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
        return loop.run_in_executor(self.executor, lambda: func(*args, **kwargs))

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
            countdown = 64  # look at the clock every 64 events, not for each
            for event in events:
                countdown -= 1
                if not countdown:
                    countdown = 64
                    if monotonic() > deadline:
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
        items = list(produced or ())
        # Object batches (the change detector's) commit in the same transaction as the state.
        objects = [item for item in items if isinstance(item, ObjectBatch)]
        outputs = [self._pending(item, None) for item in items if not isinstance(item, ObjectBatch)]
        state_json = json.dumps(self.ctx.state)
        if outputs or objects or state_json != self._committed_state:
            self.store.commit_run(
                RunCommit(
                    bot_id=self.id,
                    owner=self.runtime.owner,
                    outputs=outputs,
                    state=self.ctx.state if state_json != self._committed_state else None,
                    objects=objects,
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
            handle = self.runtime.watcher.watch(Path(path), lambda: loop.call_soon_threadsafe(self._on_file_event))
            self._watch_handles.append(handle)

    def _on_file_event(self) -> None:
        self._file_event = True
        self.runtime.wakeups.kick(self.id)


def _count_through(events: list[Event], seq: int) -> int:
    return sum(1 for event in events if event.seq <= seq)
