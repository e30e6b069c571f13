"""The bot API: what a developer writes to add a step to a pipeline.

A bot is a class with a `Settings` model (pydantic) and one method. The runtime owns reading,
batching, checkpoints, retries and transactions; the bot only transforms.

- A *processor* (``kind = "processor"``) reads its ``in`` queue and writes its ``out`` queue:
  ``process(events, ctx)`` yields what to write. Its outputs and its checkpoint commit together.
- A *sink* (``kind = "sink"``) reads ``in`` and acts outside (HTTP, files). ``process`` yields
  nothing; delivery is at-least-once and ``event.idempotency_key`` is stable across retries.
- A *source* (``kind = "source"``) writes ``out`` on a schedule (``watch``, an interval, a cron
  line): ``produce(ctx)`` yields what to write; ``ctx.state`` (its cursor) commits with it.

What a bot may yield: an input `Event` (forwarded with its stored JSON untouched), any JSON
value (a new payload), `RawJSON` (JSON text stored as is) or `Output` (another queue or an
explicit origin time). Returning nothing for an event filters it out; the checkpoint still
advances over it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Generic, TypeVar, get_args, get_origin

from pydantic import BaseModel, ConfigDict, PlainSerializer, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from .errors import BotError, QueryError
from .events import Event
from .query import QUERY_JSON_SCHEMA, Query
from .storeview import BotStoreView, SystemStoreView

BOT_KINDS = ("source", "processor", "sink")


class BotSettings(BaseModel):
    """Base of every bot's settings (the ``with:`` mapping in pipelines.yaml); unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass
class RunLimits:
    """Bounds of one bot run; a bot behind its input runs again at once."""

    records: int = 1000
    bytes: int = 4_000_000
    seconds: float = 5.0


@dataclass
class BotContext:
    """What the runtime hands a bot besides its events: its own things, nothing of others.

    ``state`` is the bot's persistent mapping: change it in place (JSON values only) and it is
    committed with the run's outputs. A source that stopped early because of ``limits`` sets
    ``behind = True`` so the runtime runs it again at once. ``store`` is a read-only view of the
    bot's own queues and of the objects (`BotStoreView`): a bot writes only through its outputs
    and ``state``, which commit together. ``object_types`` maps each declared object type to
    its key field, ``field_types`` to its declared field types (``{field: type}``, only the types
    that declare some). Nothing here leads to a partner's secret, token or data.
    """

    bot_id: str
    pipeline: str
    base_dir: Path
    in_queue: str | None = None
    out_queue: str | None = None
    limits: RunLimits = field(default_factory=RunLimits)
    state: dict[str, Any] = field(default_factory=dict)
    behind: bool = False
    store: BotStoreView | None = None
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("leo.bot"))
    object_types: Mapping[str, str] = field(default_factory=dict)
    field_types: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def resolve_path(self, path: str | Path) -> Path:
        """A path from the bot's settings, relative to the pipelines file's folder."""
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else (self.base_dir / candidate)


@dataclass
class SystemContext(BotContext):
    """The wider context of the bots that deliver to partners (shipped with leo-runtime, see
    `Bot.system_view`): the whole configuration the bot was started with, and a store view
    that reads any queue and the partner webhooks' rows (`SystemStoreView`)."""

    store: SystemStoreView | None = None
    config: Any = None


def system_context(ctx: BotContext) -> SystemContext:
    """`ctx` as the `SystemContext` a delivery bot runs with (a `BotError` for any other)."""
    if not isinstance(ctx, SystemContext) or ctx.store is None:
        raise BotError(f"bot '{ctx.bot_id}' needs the system context, which only bots shipped with leo-runtime get")
    return ctx


SettingsT = TypeVar("SettingsT", bound=BotSettings)


class Bot(Generic[SettingsT]):
    """Base class of every bot. Subclass it, give it a `Settings` model and one method.

    ``class MyBot(Bot[MySettings])`` types ``self.settings`` as ``MySettings`` (and makes it the
    class's `Settings`); a nested ``class Settings(Bot.Settings)`` works too. Subclasses may
    override `setup` (called once before the first run) and `close`.
    """

    kind: ClassVar[str] = "processor"
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Settings: ClassVar[type[BotSettings]] = BotSettings
    system_view: ClassVar[bool] = False
    """Run with a `SystemContext` (the delivery bots). Honoured only for classes defined inside
    leo-runtime itself: a custom bot always gets the narrow `BotContext`."""
    reads: ClassVar[tuple[str, ...]] = ()
    """The settings of pipelines.yaml a system-view bot reads from ``ctx.config`` (``retention``,
    ``webhooks``, ``server.public_url``): a reload that changes one restarts the bot."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "Settings" in cls.__dict__:
            return
        for base in getattr(cls, "__orig_bases__", ()):  # Bot[MySettings]: MySettings is the class's Settings
            origin, args = get_origin(base), get_args(base)
            if (isinstance(origin, type) and issubclass(origin, Bot) and args and isinstance(args[0], type)
                    and issubclass(args[0], BotSettings)):
                cls.Settings = args[0]
                return

    def __init__(self, settings: SettingsT, ctx: BotContext) -> None:
        self.settings: SettingsT = settings
        self.ctx = ctx

    def setup(self, ctx: BotContext) -> None:
        """Called once, in a worker thread, before the first run (open clients, compile things)."""

    def close(self) -> None:
        """Called once when the bot stops (shutdown or reload)."""

    def process(self, events: Iterator[Event], ctx: BotContext) -> Iterable[Any] | None:
        """Processors and sinks: handle a batch of events; yield what to write to ``out``."""
        raise NotImplementedError(f"bot '{self.name or type(self).__name__}' must implement process()")

    def tick_seconds(self) -> float | None:
        """Bots that read a queue and also act on time (a batcher sealing on its interval): how
        often `tick` runs while the input is quiet. None (the default): never."""
        return None

    def tick(self, ctx: BotContext) -> Iterable[Any] | None:
        """Called at the end of every run of a bot whose `tick_seconds` is set, and every that
        many seconds while its input is quiet; yields like `process`, committed with the run."""
        return None

    # Overridable class-level hooks used by validation and scheduling ------------------------
    @classmethod
    def default_out(cls, settings: SettingsT) -> str | None:
        """The queue a bot writes when its YAML gives no ``out`` (None: ``out`` is required)."""
        return None

    @classmethod
    def default_schedule(cls, settings: SettingsT) -> str | None:
        """A source's schedule when its YAML gives none (None: ``schedule`` is required)."""
        return None

    @classmethod
    def exclusive_claims(cls, settings: SettingsT) -> list[Claim]:
        """What only one bot of a pipelines file may do with these settings: two bots making
        the same claim are a config error located at the second one's ``with.FIELD``."""
        return []


def gets_system_view(cls: type[Bot[Any]]) -> bool:
    """Whether bots of `cls` run with the `SystemContext`: shipped classes that ask for it."""
    return bool(cls.system_view) and (cls.__module__ == "leo_runtime" or cls.__module__.startswith("leo_runtime."))


@dataclass(frozen=True)
class Claim:
    """Something only one bot may do: ``key`` identifies it, ``field`` is the ``with:`` setting
    that makes it, ``what`` names it and ``why`` says what goes wrong with two and how to fix it."""

    key: str
    field: str
    what: str
    why: str


class SourceBot(Bot[SettingsT]):
    """A bot that produces events on a schedule; implement `produce`."""

    kind: ClassVar[str] = "source"

    def produce(self, ctx: BotContext) -> Iterable[Any] | None:
        """Yield what to write to ``out``; keep your cursor in ``ctx.state``."""
        raise NotImplementedError(f"source bot '{self.name or type(self).__name__}' must implement produce()")

    def watch_paths(self, ctx: BotContext) -> list[Path]:
        """Paths whose file events trigger a run under ``schedule: watch``."""
        return []


class SinkBot(Bot[SettingsT]):
    """A bot that reads ``in`` and acts outside the runtime; implement `process`."""

    kind: ClassVar[str] = "sink"


_REGISTERED: dict[str, type[Bot[Any]]] = {}
B = TypeVar("B", bound=type[Bot[Any]])


def register_bot(name: str) -> Callable[[B], B]:
    """Class decorator: make a bot usable by `name` in pipelines.yaml (``use: name``).

    Registering a second, different class under a taken name is an error; registering the same
    class again (a module imported twice) is harmless.
    """
    def decorate(cls: B) -> B:
        if not (isinstance(cls, type) and issubclass(cls, Bot)):
            raise BotError(f"register_bot('{name}'): {cls!r} is not a subclass of leo_runtime.Bot")
        if cls.kind not in BOT_KINDS:
            raise BotError(f"bot '{name}': kind must be one of {', '.join(BOT_KINDS)}, not {cls.kind!r}")
        existing = _REGISTERED.get(name)
        if existing is not None and (existing.__module__, existing.__qualname__) != (cls.__module__, cls.__qualname__):
            raise BotError(
                f"bot name '{name}' is registered twice: by {existing.__module__}.{existing.__qualname__} "
                f"and by {cls.__module__}.{cls.__qualname__}"
            )
        cls.name = name
        _REGISTERED[name] = cls
        return cls

    return decorate


def registered_bots() -> dict[str, type[Bot[Any]]]:
    """Bots registered with `register_bot` so far (built-ins once `bots` is imported)."""
    return dict(_REGISTERED)



def _compile_query(value: Any) -> Query:
    try:
        return Query.compile(value)
    except QueryError as exc:
        # Carry the path inside the query so the config loader can point at the exact YAML node.
        raise PydanticCustomError("query", "{message}", {"path": list(exc.path), "message": str(exc)}) from None


def _inline_refs(node: Any, definitions: dict[str, Any]) -> Any:
    # Embedded in another schema, the query schema's local "$defs" refs would dangle: inline them.
    if isinstance(node, dict):
        ref = node.get("$ref", "")
        if ref.startswith("#/$defs/"):
            rest = {key: value for key, value in node.items() if key != "$ref"}
            return _inline_refs({**definitions[ref[len("#/$defs/"):]], **rest}, definitions)
        return {key: _inline_refs(value, definitions) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline_refs(item, definitions) for item in node]
    return node


_QUERY_SCHEMA = _inline_refs(
    {key: value for key, value in QUERY_JSON_SCHEMA.items() if key not in ("$schema", "$defs")},
    QUERY_JSON_SCHEMA.get("$defs", {}),
)

QuerySetting = Annotated[
    Query,
    PlainValidator(_compile_query),
    PlainSerializer(lambda query: query.spec),
    WithJsonSchema(_QUERY_SCHEMA),
]
"""A bot setting holding a query (README, "Queries"), compiled once when the file loads."""
