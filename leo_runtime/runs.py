"""What a bot does on its own thread: set up, and run (read a page from its checkpoint, drive
the bot over it, commit outputs, state, checkpoint and dead letters in one transaction).

Everything here runs on the bot's `BotThread`, never on the event loop. Whatever bot code
raises, ``SystemExit`` included, comes out as a `BotError` that names where it happened (for a
processor or a sink: the event, by queue and position); the runner turns it into backoff.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Any

from . import meters
from .bot import Bot, BotContext, SystemContext, gets_system_view
from .botcalls import call_bot, describe, error_text
from .config import NAME_PATTERN, BotSpec, Config
from .errors import BotError, LeaseLost
from .events import Event, Output, RawJSON, allow_fast_decoding, dumps, encode_payload
from .store import ObjectBatch, PendingEvent, RunCommit, Store
from .store.base import DeadLetter, StoreOp
from .storeview import BotStoreView, SystemStoreView
from .when import BOT_START_FORMS, resolve

log = logging.getLogger("leo.runtime")
_QUEUE_NAME = re.compile(NAME_PATTERN)
_QUEUE_OF = attrgetter("queue")


class Paused(Exception):
    """An operator paused the bot before this run started: it does nothing and waits."""


@dataclass(frozen=True)
class RunResult:
    """What one run did (built on the bot's thread, applied on the loop)."""

    processed: int
    checkpoint: int
    behind: bool
    state_json: str
    dead_lettered: Event | None = None


class EventFailed(BotError):
    """Bot code failed on one event of a page: the message names its queue and position."""

    def __init__(self, message: str, event: Event) -> None:
        super().__init__(message)
        self.event = event


class StartFailed(BotError):
    """Constructing the bot, its ``setup`` or its ``watch_paths`` failed (``bot``: constructed or None)."""

    def __init__(self, message: str, bot: Bot | None) -> None:
        super().__init__(message)
        self.bot = bot


@dataclass(frozen=True)
class Poison:
    """An event the bot keeps failing on: how many runs in a row, and the last error."""

    event: Event
    failures: int
    error: str


class PoisonWatch:
    """Counts a bot's failed runs in a row on the same event (``on_error``): at ``after`` of
    them, `due` is the event the next run sets aside. Whoever drives the bot (`leo run`'s
    runner, `leo test`'s bench) tells it of each failure and each committed run."""

    def __init__(self, spec: BotSpec) -> None:
        self.on_error = spec.config.on_error
        self.poison: Poison | None = None
        self.due: Poison | None = None

    def failed(self, exc: Exception, message: str) -> bool:
        """Count a failed run; True when the failing event is now due to be set aside (the next
        run should come at once)."""
        if self.on_error is None or not isinstance(exc, EventFailed):
            return False
        same = self.poison is not None and self.poison.event.seq == exc.event.seq
        failures = self.poison.failures + 1 if same and self.poison else 1
        self.poison = Poison(exc.event, failures, message)
        if failures >= self.on_error.after:
            self.due = self.poison
            return True
        return False

    def committed(self, result: RunResult) -> None:
        """A run committed: forget the poison it set aside or got past."""
        if result.dead_lettered is not None:
            self.poison = self.due = None
        elif self.poison is not None and result.checkpoint >= self.poison.event.seq:
            self.poison = None

    def reset(self) -> None:
        """The checkpoint moved under the bot (an operator's reset): start counting again."""
        self.poison = self.due = None


def bot_context(spec: BotSpec, store: Store, config: Config, logger: logging.Logger | None = None) -> BotContext:
    """The context a bot of `spec` runs with, the same under `leo run` and `leo test`.

    A custom bot gets the narrow `BotContext`: its own queues (``in``, ``out``, its dead-letter
    queue), the objects, read-only, and the declared object types. The delivery bots shipped with leo-runtime that ask for it
    (`Bot.system_view`) get the `SystemContext`: any queue, the partner webhooks' rows and the
    configuration as it is now (a change of a setting they read restarts them)."""
    base = {
        "bot_id": spec.id,
        "pipeline": spec.pipeline,
        "base_dir": config.base_dir,
        "in_queue": spec.in_queue,
        "out_queue": spec.out_queue,
        "limits": spec.limits,
        "logger": logger or logging.getLogger(f"leo.bot.{spec.id}"),
        "object_types": {name: declared.key for name, declared in config.model.object_types.items()},
        "field_types": {name: dict(declared.fields) for name, declared in config.model.object_types.items() if declared.fields},
    }
    if gets_system_view(spec.cls):
        return SystemContext(**base, store=SystemStoreView(store, spec.id), config=config)
    dead_letter = spec.config.on_error.dead_letter if spec.config.on_error is not None else None
    return BotContext(**base, store=BotStoreView(store, spec.id, (spec.in_queue, spec.out_queue, dead_letter)))


class BotWork:
    """One bot's work on its thread. ``current`` is the event the bot was last handed (for the
    runner's stuck message); ``given_up`` is set by the runner when it abandons the run in
    progress, which then never commits."""

    def __init__(self, spec: BotSpec, store: Store, owner: str, ctx: BotContext, retention_seconds: float, *,
                 holds: Callable[[], bool] = lambda: True) -> None:
        self.spec = spec
        self.store = store
        self.owner = owner
        self.ctx = ctx
        self.retention_seconds = retention_seconds  # where `start: earliest` (or a time past it) begins
        self.current: list[Event | None] = [None]
        self.given_up = threading.Event()
        # Whether the bot's lease is surely still this host's (the runner's lease keeper). A run that
        # waited for its store past the lease's end must not start the bot's work (`_still_ours`).
        self.holds = holds
        self.tick_seconds: float | None = None  # set by `prepare` for bots that tick
        self.objects: list[ObjectBatch] = []  # the object batches the current run is applying

    def progress(self) -> int:
        """Grows while the current run gets on (objects compared and written): a long full read
        that makes progress is not stuck, however long it takes."""
        total = 0
        for batch in self.objects:
            counts = batch.counts
            total += counts.read + counts.created + counts.updated + counts.deleted + counts.unchanged
        return total

    def prepare(self, bot: Bot | None) -> tuple[Bot, list[Path]]:
        """Construct the bot (unless it was), set it up, and find the paths a watching source
        watches. Returns the bot and the paths (the loop keeps them)."""
        if bot is None:
            try:
                bot = call_bot(self.spec.cls, self.spec.settings, self.ctx)
            except Exception as exc:
                raise StartFailed(f"cannot start: {error_text(exc)}", None) from exc
        try:
            call_bot(bot.setup, self.ctx)
        except Exception as exc:
            raise StartFailed(f"setup failed: {error_text(exc)}", bot) from exc
        if self.spec.kind != "source":
            try:
                tick = call_bot(bot.tick_seconds)
                self.tick_seconds = float(tick) if tick is not None and float(tick) > 0 else None
            except Exception as exc:
                raise StartFailed(f"tick_seconds failed: {error_text(exc)}", bot) from exc
        schedule = self.spec.schedule
        if self.spec.kind != "source" or schedule is None or schedule.kind != "watch":
            return bot, []
        try:
            return bot, [Path(path) for path in call_bot(bot.watch_paths, self.ctx)]  # type: ignore[attr-defined]
        except Exception as exc:
            raise StartFailed(f"watch_paths failed: {error_text(exc)}", bot) from exc

    def _initial_position(self) -> int:
        if self.spec.initial_position is not None:
            return self.spec.initial_position
        start = self.spec.config.start or "earliest"  # the beginning of the input, within retention
        return resolve(self.store, start, self.retention_seconds, field="start", allow=BOT_START_FORMS).position

    def run_queue(self, bot: Bot, committed_state: str, dead_letter: Poison | None) -> RunResult:
        """Read a page from the checkpoint, drive the bot over it (setting aside `dead_letter`
        when it is in the page) and commit outputs, state, checkpoint and dead letter together."""
        queue = self.spec.in_queue
        assert queue is not None
        self._unless_paused()
        checkpoint = self.store.get_checkpoint(self.spec.id, queue)
        if checkpoint is None:
            checkpoint = self.store.init_checkpoint(self.spec.id, queue, self._initial_position())
        limits = self.spec.limits
        events = self.store.read(queue, checkpoint, limits.records, limits.bytes)
        self._still_ours()
        if not events:
            if self.tick_seconds is None:
                return RunResult(0, checkpoint, False, committed_state)
            return self._tick_only(bot, queue, checkpoint, committed_state)
        allow_fast_decoding(events)
        poison = None
        if dead_letter is not None:
            poison = next((index for index, event in enumerate(events) if event.seq == dead_letter.event.seq), None)
        page = events if poison is None else events[:poison]  # the events before a poison one run as usual
        self.ctx.state = json.loads(committed_state)
        ops: list[StoreOp] = []
        outputs, last, cut = self._drive(bot, page, ops) if page else ([], None, False)
        self.ctx.behind = False
        if self.tick_seconds is not None:
            outputs += self._tick(bot, ops, last or events[0])
        letters: list[DeadLetter] = []
        if poison is not None and not cut and dead_letter is not None:
            on_error = self.spec.config.on_error
            assert on_error is not None
            last = events[poison]
            letters.append(DeadLetter(on_error.dead_letter, last, dead_letter.error, dead_letter.failures))
        assert last is not None
        state_json = json.dumps(self.ctx.state)
        self._commit(
            RunCommit(
                bot_id=self.spec.id,
                owner=self.owner,
                in_queue=queue,
                expected=checkpoint,
                position=last.seq,
                outputs=outputs,
                state=self.ctx.state if state_json != committed_state else None,
                events_in=_count_through(events, last.seq),
                dead_letters=letters,
                ops=ops,
            )
        )
        behind = bool(letters) or cut or self.ctx.behind or len(events) >= limits.records or (
            sum(len(e.payload_json) for e in events) >= limits.bytes
        )
        return RunResult(len(events), last.seq, behind, state_json, letters[0].event if letters else None)

    def _tick(self, bot: Bot, ops: list[StoreOp], source: Event | None) -> list[PendingEvent]:
        """Call the bot's `tick`; its store ops go to `ops`, its other outputs are returned."""
        outputs: list[PendingEvent] = []
        result: Any = None
        try:
            result = bot.tick(self.ctx)
            for item in result or ():
                if isinstance(item, StoreOp):
                    ops.append(item)
                else:
                    outputs.append(self._pending(item, source))
        except BaseException as exc:  # bot code, as in _drive
            _close_quietly(result, self.spec.id)
            raise BotError(f"tick() failed: {error_text(exc)}") from exc
        return outputs

    def _tick_only(self, bot: Bot, queue: str, checkpoint: int, committed_state: str) -> RunResult:
        """A run with nothing to read, of a bot that ticks: its tick commits (the checkpoint stays)."""
        self.ctx.state = json.loads(committed_state)
        self.ctx.behind = False
        ops: list[StoreOp] = []
        outputs = self._tick(bot, ops, None)
        state_json = json.dumps(self.ctx.state)
        if outputs or ops or state_json != committed_state:
            self._commit(
                RunCommit(bot_id=self.spec.id, owner=self.owner, in_queue=queue, expected=checkpoint, position=checkpoint,
                          outputs=outputs, state=self.ctx.state if state_json != committed_state else None, ops=ops)
            )
        return RunResult(0, checkpoint, self.ctx.behind, state_json)

    def _unless_paused(self) -> None:
        """Raise `Paused` when an operator paused the bot: read from the store before every run, so
        a `leo bots pause` that has returned holds even before this process's wakeups notice it."""
        if self.store.is_paused(self.spec.id):
            raise Paused(self.spec.id)

    def _still_ours(self) -> None:
        """Raise `LeaseLost` when the lease may have passed to another host while the run waited
        for its store (a store that stopped answering): the bot's code must then not run here, as
        another host may be running it already."""
        if not self.holds():
            raise LeaseLost(f"bot '{self.spec.id}': its lease ran out while the run waited for the store; "
                            "the run stopped before the bot's code")

    def _commit(self, commit: RunCommit) -> None:
        """Commit the run, unless the runner gave up on it (stuck): then its work is redone by the
        next run, and nothing of this one may land. A committed run is counted (`meters`)."""
        if self.given_up.is_set():
            raise LeaseLost(f"bot '{self.spec.id}': its run was abandoned (stuck); it was not committed")
        self.store.commit_run(commit)
        counting = meters.current()
        if counting.counts:
            counting.bot_run(self.spec.pipeline, self.spec.id, ok=True, read=commit.events_in, written=_written(commit))

    def _drive(
        self, bot: Bot, events: list[Event], ops: list[StoreOp]
    ) -> tuple[list[PendingEvent], Event, bool]:
        """Run `process` over a page; attribute each output to the input last handed to the bot.

        The bot sees an iterator: when the run's time is up, the iterator ends early and the
        checkpoint stops at the last event the bot was given. Events the bot never asked for
        (it returned early) count as processed. Whatever bot code raises (SystemExit included)
        becomes an `EventFailed` naming the event the bot was on.
        """
        deadline = time.monotonic() + self.spec.limits.seconds
        current = self.current
        current[0] = None
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
        result: Any = None
        try:
            result = bot.process(feed(), self.ctx)
            if result is not None:
                if isinstance(result, str | bytes | dict):
                    raise BotError(
                        f"process() returned a {type(result).__name__}; yield the outputs (or return a list of them, or None)"
                    )
                convert = self._pending
                append = outputs.append
                for item in result:
                    if isinstance(item, StoreOp):  # a typed store write (a router's routed changes)
                        ops.append(item)
                        continue
                    append(convert(item, current[0] or events[0]))
        except BaseException as exc:  # bot code: SystemExit, KeyboardInterrupt and the like included
            _close_quietly(result, self.spec.id)
            event = current[0] or events[0]
            where = f"event {event.queue}@{event.seq}" if current[0] is not None else (
                f"the page starting at {event.queue}@{event.seq}, before taking an event"
            )
            raise EventFailed(f"failed on {where}: {error_text(exc)}", event) from exc
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
            if item.queue is not None and not (isinstance(item.queue, str) and _QUEUE_NAME.fullmatch(item.queue)):
                raise BotError(f"bot '{self.spec.id}' yielded Output(queue={item.queue!r}): not a valid queue name")
            queue = item.queue or queue
            text = encode_payload(item.payload)
            if item.event_source_timestamp is not None:
                origin = item.event_source_timestamp
        else:
            try:
                text = dumps(item)
            except (TypeError, ValueError) as exc:
                raise BotError(f"bot '{self.spec.id}' yielded something that is not JSON: {exc}") from exc
        if queue is None:
            if self.spec.kind == "sink":
                raise BotError(f"bot '{self.spec.id}' is a sink and yielded an event; a sink writes no queue (return None)")
            raise BotError(f"bot '{self.spec.id}' yielded an event but has no 'out' queue; add out: QUEUE")
        return PendingEvent(queue, text, origin, correlation)

    def run_source(self, bot: Bot, committed_state: str, _dead_letter: Poison | None = None) -> RunResult:
        """Call the source's ``produce`` and commit its outputs with its state."""
        self._unless_paused()
        self._still_ours()
        self.ctx.state = json.loads(committed_state)
        self.ctx.behind = False
        try:
            produced = bot.produce(self.ctx)  # type: ignore[attr-defined]
            if isinstance(produced, str | bytes | dict):
                raise BotError(f"produce() returned a {type(produced).__name__}; yield the outputs (or return a list)")
            items = list(produced or ())
        except BaseException as exc:  # bot code: SystemExit, KeyboardInterrupt and the like included
            raise BotError(f"produce() failed: {error_text(exc)}") from exc
        # Object batches (the change detector's) commit in the same transaction as the state.
        objects = [item for item in items if isinstance(item, ObjectBatch)]
        ops = [item for item in items if isinstance(item, StoreOp)]
        outputs = [self._pending(item, None) for item in items if not isinstance(item, ObjectBatch | StoreOp)]
        state_json = json.dumps(self.ctx.state)
        if outputs or objects or ops or state_json != committed_state:
            self.objects = objects
            try:
                self._commit(
                    RunCommit(
                        bot_id=self.spec.id,
                        owner=self.owner,
                        outputs=outputs,
                        state=self.ctx.state if state_json != committed_state else None,
                        objects=objects,
                        ops=ops,
                    )
                )
            finally:
                self.objects = []
        return RunResult(len(outputs), 0, self.ctx.behind, state_json)


def _close_quietly(result: Any, bot_id: str) -> None:
    """Close a bot's generator left half-way, so its cleanup runs now and not at some garbage
    collection; whatever that cleanup raises is logged, never raised."""
    close = getattr(result, "close", None)
    if close is None or not callable(close):
        return
    try:
        close()
    except BaseException as exc:
        log.debug("bot '%s': closing its generator raised %s", bot_id, describe(exc))


def _written(commit: RunCommit) -> dict[str, int]:
    """How many events a committed run appended to each queue (outputs, dead letters, changes)."""
    written: dict[str, int] = Counter(map(_QUEUE_OF, commit.outputs))  # counted in C: a few ns per event
    for letter in commit.dead_letters:
        written[letter.queue] = written.get(letter.queue, 0) + 1
    for batch in commit.objects:
        counts = batch.counts
        if counts.created or counts.updated or counts.deleted:
            queue = f"{batch.object_type}.changes"
            written[queue] = written.get(queue, 0) + counts.created + counts.updated + counts.deleted
    return written


def _count_through(events: list[Event], seq: int) -> int:
    return sum(1 for event in events if event.seq <= seq)
