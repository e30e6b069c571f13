"""Custom bots the tests run: copied into each test project as ./bots/custom.py.

No bot here sleeps to make something happen "probably in time": a bot that must be caught in
the middle of a run blocks on a file the test controls (`Gate`).
"""

import asyncio
import json
import sys
import time
from pathlib import Path

from leo_runtime import Bot, Output, RawJSON, SinkBot, SourceBot


class Enrich(Bot):
    class Settings(Bot.Settings):
        tag: str = "x"

    def process(self, events, ctx):
        for event in events:
            payload = event.payload
            if payload.get("skip"):
                continue
            ctx.state["seen"] = ctx.state.get("seen", 0) + 1
            yield {**payload, "tag": self.settings.tag}
            if payload.get("audit"):
                yield Output({"audited": payload["id"]}, queue="audit")
            if payload.get("raw"):
                yield RawJSON('{"raw":true}')


class Explode(Bot):
    def process(self, events, ctx):
        for event in events:
            if event.payload.get("boom"):
                raise RuntimeError("boom on " + str(event.payload["id"]))
            yield event


class Counter(SourceBot):
    class Settings(SourceBot.Settings):
        stop_at: int = 3

    def produce(self, ctx):
        count = ctx.state.get("count", 0)
        if count < self.settings.stop_at:
            ctx.state["count"] = count + 1
            ctx.behind = count + 1 < self.settings.stop_at
            yield {"count": count + 1}


class Tick(SourceBot):
    def produce(self, ctx):
        ctx.state["ticks"] = ctx.state.get("ticks", 0) + 1
        yield {"tick": ctx.state["ticks"]}


class Collect(SinkBot):
    """Delivers each event to a file (one JSON line: idempotency key and payload)."""

    class Settings(SinkBot.Settings):
        path: str

    def process(self, events, ctx):
        with ctx.resolve_path(self.settings.path).open("a") as delivered:
            for event in events:
                delivered.write(json.dumps([event.idempotency_key, event.payload]) + "\n")
        return None


class BadSink(SinkBot):
    """A sink that (wrongly) yields what it reads."""

    def process(self, events, ctx):
        yield from events


class Gate(Bot):
    """Forwards events (marked when `stamp`). At an event whose payload `n` is in `hold`, it
    writes ``DIR/held-N`` and waits until the test creates ``DIR/release-N``: the test decides
    when the run goes on, so a kill or a signal lands in the middle of a run for sure."""

    class Settings(Bot.Settings):
        dir: str = "gates"
        hold: list[int] = []
        stamp: bool = False

    def process(self, events, ctx):
        folder = ctx.resolve_path(self.settings.dir)
        hold = set(self.settings.hold)
        for event in events:
            number = event.payload.get("n")
            if number in hold:
                wait_for_release(folder, number)
            yield {**event.payload, "stamped": True} if self.settings.stamp else event


def wait_for_release(folder: Path, name: object) -> None:
    release = folder / f"release-{name}"
    if release.exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"held-{name}").write_text("")
    while not release.exists():  # waits on the test, not on time
        time.sleep(0.005)


def raise_what(what):
    if what == "exit":
        sys.exit(3)
    if what == "interrupt":
        raise KeyboardInterrupt
    if what == "generator_exit":
        raise GeneratorExit
    if what == "cancel":
        raise asyncio.CancelledError
    raise RuntimeError(f"unknown: {what}")


class Exits(Bot):
    """Raises `what` (exit: sys.exit(3), interrupt, generator_exit, cancel) `when` told to:
    in __init__, setup, close, or process (on an event with "poison": true)."""

    class Settings(Bot.Settings):
        when: str = "process"
        what: str = "exit"

    def __init__(self, settings, ctx):
        super().__init__(settings, ctx)
        if settings.when == "init":
            raise_what(settings.what)

    def setup(self, ctx):
        if self.settings.when == "setup":
            raise_what(self.settings.what)

    def close(self):
        if self.settings.when == "close":
            raise_what(self.settings.what)

    def process(self, events, ctx):
        for event in events:
            if self.settings.when == "process" and event.payload.get("poison"):
                raise_what(self.settings.what)
            yield event


class ExitingSource(SourceBot):
    def produce(self, ctx):
        sys.exit(5)


class Writer(Bot):
    """Tries to write around its run's commit through ctx.store."""

    def process(self, events, ctx):
        ctx.store.append("sneaky", [{"x": 1}])
        yield from events


class Stubborn(Bot):
    """Yields something that is not JSON, and ignores being closed (a GeneratorExit misuse)."""

    def process(self, events, ctx):
        for event in events:
            try:
                yield object()
            except GeneratorExit:
                yield event


class ReturnsText(Bot):
    def process(self, events, ctx):
        return "not a list of outputs"


class ExitingSettings(Bot):
    """Its settings' validator calls sys.exit()."""

    class Settings(Bot.Settings):
        level: int = 0

        @classmethod
        def model_validate(cls, *args, **kwargs):
            sys.exit(9)

    def process(self, events, ctx):
        yield from events


class Loud(Bot):
    """Fails with a 1 MB message."""

    def process(self, events, ctx):
        raise RuntimeError("x" * 1_000_000)


class _Unprintable(Exception):
    def __str__(self):
        sys.exit(2)


class Unprintable(Bot):
    """Fails with an exception whose message cannot even be made."""

    def process(self, events, ctx):
        raise _Unprintable()


class Probe(Bot):
    """Reports what its context lets it reach: for each attempt, what came back or the error."""

    system_view = True  # asking for the wider view: a custom bot never gets it

    def process(self, events, ctx):
        for event in events:
            asked = event.payload
            seen = {"context": type(ctx).__name__, "store": type(ctx.store).__name__,
                    "has_config": hasattr(ctx, "config"), "object_types": dict(ctx.object_types)}
            attempts = {
                "own_in": lambda: len(ctx.store.read(ctx.in_queue, 0)),
                "own_checkpoint": lambda: ctx.store.get_checkpoint(ctx.in_queue),
                "object": lambda: json.loads(ctx.store.get_object("inventory", "S1").data_json),
                "other_queue": lambda: ctx.store.read(asked["other"], 0),  # noqa: B023
                "partner_partition": lambda: ctx.store.read(asked["partition"], 0),  # noqa: B023
                "due_deliveries": lambda: ctx.store.due_deliveries("", 10**15),
                "webhook": lambda: ctx.store.webhook(asked["webhook"]),  # noqa: B023
                "queues": lambda: ctx.store.queues(),
                "checkpoints": lambda: ctx.store.checkpoints(),
            }
            for name, attempt in attempts.items():  # each called at once, in this loop
                try:
                    seen[name] = repr(attempt())
                except Exception as exc:  # what a bot author would see
                    seen[name] = f"{type(exc).__name__}: {exc}"
            yield seen
