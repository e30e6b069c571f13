"""Testing a bot from pytest: a few lines, no hand-built events, the bot run as `leo run` runs it.

    from leo_runtime.testing import BotHarness
    from bots.priority import PriorityTagger

    def test_large_orders_are_urgent():
        with BotHarness(PriorityTagger, {"urgent_over": 5000}) as bot:
            assert bot.process([{"po_number": "P-1", "total": 7000}]) == [
                {"po_number": "P-1", "total": 7000, "priority": "urgent"}
            ]

`BotHarness` puts the bot on a temporary store and drives it through the runtime's own run
(`leo_runtime.runs.BotWork`): the real `BotContext`, outputs and ``ctx.state`` committed together
(state is kept from one call to the next), ``on_error`` dead letters after that many failed runs.
`process` appends payloads to the bot's input queue, runs the bot until it has caught up and
returns what it wrote to its output queue; an exception the bot raised comes out of `process`
as a `BotError` caused by it (pytest shows both). `BotHarness.from_file` takes a bot as
pipelines.yaml configures it (its settings, queues, ``on_error``, object types).
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .bot import Bot
from .config import BotConfig, BotSpec, Config, PipelinesFile, load_config
from .errors import BotError
from .pipetest.bench import Bench, BenchBot
from .store.base import DeadLetterInfo
from .yaml_loader import YamlDocument

__all__ = ["BotHarness"]


class BotHarness:
    """One bot on a temporary store (see the module docstring). Use it as a context manager,
    or call `close` (a harness left open is cleaned up when it is garbage collected)."""

    def __init__(
        self,
        bot: type[Bot],
        settings: Mapping[str, Any] | None = None,
        *,
        in_queue: str | None = "in",
        out_queue: str | None = "out",
        on_error: Mapping[str, Any] | None = None,
        object_types: Mapping[str, Any] | None = None,
        base_dir: str | Path = ".",
    ) -> None:
        kind = bot.kind
        model = PipelinesFile.model_validate({"version": 1, "object_types": dict(object_types or {})})
        config = BotConfig.model_validate({
            "id": bot.name or bot.__name__, "use": bot.name or f"{bot.__module__}:{bot.__qualname__}",
            "with": dict(settings or {}), "in": in_queue if kind != "source" else None,
            "out": out_queue if kind != "sink" else None, "on_error": dict(on_error) if on_error else None,
        })
        validated = bot.Settings.model_validate(config.with_, context={"object_types": dict(model.object_types)})
        spec = BotSpec("test", config, bot, validated, config.in_, config.out, None, _limits(config))
        path = Path(base_dir).absolute() / "pipelines.yaml"
        self._setup(Config(path, model, [spec], YamlDocument(str(path), {}, None)), spec)

    @classmethod
    def from_file(cls, pipelines: str | Path, bot_id: str, *, env: Mapping[str, str] | None = None) -> BotHarness:
        """The bot `bot_id` of a pipelines file, as the file configures it (`env` adds to the
        environment its ``${VAR}``s read)."""
        import os

        config = load_config(pipelines, env={**os.environ, **(env or {})})
        spec = next((spec for spec in config.bots if spec.id == bot_id), None)
        if spec is None:
            raise BotError(f"no bot '{bot_id}' in {pipelines} (bots: {', '.join(s.id for s in config.bots)})")
        harness = cls.__new__(cls)
        harness._setup(config, spec)
        return harness

    def _setup(self, config: Config, spec: BotSpec) -> None:
        self.spec = spec
        self._bench = Bench(config, start_ms=None)
        self._bot: BenchBot = self._bench.add(spec)
        self._close = weakref.finalize(self, self._bench.close)
        self.written: dict[str, list[Any]] = {}

    # -- running --------------------------------------------------------------------------------
    def process(self, payloads: Iterable[Any]) -> list[Any]:
        """Append `payloads` (any JSON values) to the bot's input queue, run the bot until it has
        caught up, and return the payloads it wrote to its output queue in this call (`written`
        holds every queue it wrote, ``Output(queue=...)`` ones included)."""
        if self.spec.in_queue is None:
            raise BotError(f"bot '{self.spec.id}' is a source: call produce()")
        self._bench.put(self.spec.in_queue, list(payloads))
        return self._run()

    def produce(self) -> list[Any]:
        """A source's run: call its ``produce`` once and return what it wrote to its output queue."""
        if self.spec.kind != "source":
            raise BotError(f"bot '{self.spec.id}' reads a queue: call process(payloads)")
        return self._run()

    def _run(self) -> list[Any]:
        store = self._bench.store
        before = store.last_position()
        self._bot.start()
        self._bot.catch_up()
        if self._bot.error is not None:
            error, cause = self._bot.error, self._bot.exception
            self._bot.error = self._bot.exception = None  # the next call tries again
            raise BotError(f"bot '{self.spec.id}' failed: {error}") from cause
        self.written = {
            queue.name: [event.payload for event in self._bench.events(queue.name, before)]
            for queue in store.queues() if queue.head > before and queue.name != self.spec.in_queue
        }
        return self.written.get(self.spec.out_queue or "", [])

    # -- what it kept ---------------------------------------------------------------------------
    @property
    def state(self) -> dict[str, Any]:
        """The bot's persistent state (``ctx.state``) as last committed."""
        return json.loads(self._bot.state_json)

    def outputs(self, queue: str | None = None) -> list[Any]:
        """Every payload the bot wrote to `queue` (default: its output queue) so far."""
        return [event.payload for event in self._bench.events(queue or self.spec.out_queue or "")]

    @property
    def dead_letters(self) -> list[DeadLetterInfo]:
        """Events set aside by ``on_error`` (each with its error and how many runs failed on it)."""
        queue = self.spec.config.on_error.dead_letter if self.spec.config.on_error else None
        return self._bench.store.dead_letters(queue, include_redriven=True) if queue else []

    def close(self) -> None:
        """Close the bot and remove its temporary store."""
        self._close()

    def __enter__(self) -> BotHarness:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _limits(config: BotConfig) -> Any:
    from .bot import RunLimits

    return RunLimits(records=config.batch.records, bytes=config.batch.bytes, seconds=config.batch.seconds)
