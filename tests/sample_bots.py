"""Custom bots the tests run: copied into each test project as ./bots/custom.py."""

import time

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
    received = []

    def process(self, events, ctx):
        for event in events:
            Collect.received.append((event.idempotency_key, event.payload))
        return None


class BadSink(SinkBot):
    """A sink that (wrongly) yields what it reads."""

    def process(self, events, ctx):
        yield from events


class Slowish(Bot):
    """Takes a millisecond per event: long enough to cross a run's time bound."""

    def process(self, events, ctx):
        for event in events:
            time.sleep(0.001)
            yield event


class Stamp(Bot):
    """Marks each event; a little slow so that a kill lands in the middle of the work."""

    def process(self, events, ctx):
        for event in events:
            time.sleep(0.0002)
            yield {**event.payload, "stamped": True}


class Stuck(Bot):
    """Never finishes its run."""

    def process(self, events, ctx):
        for event in events:
            time.sleep(3600)
            yield event
