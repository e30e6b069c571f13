"""The models of pipelines.yaml (pydantic): what each key may hold and its default."""

from __future__ import annotations

import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from ..safetext import shown
from ..timeutil import parse_duration

NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$"
DEFAULT_FILE = "pipelines.yaml"
NAME_RULE = "a name holds only letters, digits, '_', '.' and '-', and does not start with '.' or '-'"

Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=200)]


def _seconds(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds < 0:
        raise ValueError(f"must be zero or more, got {shown(value)}")
    return seconds


def _positive_seconds(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"must be more than zero, got {shown(value)}")
    return seconds


_DURATION_SCHEMA = {
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "description": "ISO 8601 (P7D, PT1M) or short form (5s, 10m, 2h, 7d)"},
    ]
}
Duration = Annotated[float, BeforeValidator(_positive_seconds), WithJsonSchema(_DURATION_SCHEMA)]
OptionalDuration = Annotated[float, BeforeValidator(_seconds), WithJsonSchema(_DURATION_SCHEMA)]


def _time_text(value: Any) -> Any:
    # YAML turns an unquoted `2026-11-26T00:00:00Z` into a datetime: take it back as RFC 3339 text.
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.UTC)
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def _schedule_text(value: Any) -> Any:
    # `schedule: 60` means every 60 seconds, as a bare number does for every other duration.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _supported_version(value: Any) -> Any:
    if value != 1 or isinstance(value, bool):
        raise ValueError(f"unsupported version {shown(value)}: this leo-runtime reads 'version: 1'")
    return value


TimeText = Annotated[str, BeforeValidator(_time_text)]
ScheduleText = Annotated[
    str,
    BeforeValidator(_schedule_text),
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "number", "exclusiveMinimum": 0}]}),
]


class Model(BaseModel):
    """Strict base: unknown keys are errors, aliases (``with``, ``in``) accepted by name too."""

    # No inf or nan: `.inf` in YAML is a float, and every number here ends up in arithmetic.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True, allow_inf_nan=False)


class ServerConfig(Model):
    """The HTTP API (`leo run` serves it beside the bots)."""

    host: str = "127.0.0.1"
    port: int = Field(8765, ge=0, le=65535)
    public_url: str | None = Field(None, description="base of the URLs handed to partners")
    get_object_rate: float = Field(10, gt=0, description="Get Object calls per second per partner")
    allow_private_callbacks: bool = False
    max_ingest_bytes: int = Field(64 * 1024 * 1024, ge=1, description="the largest body POST /v1/admin/objects takes")

    @property
    def base_url(self) -> str:
        """Where partners reach the API: `public_url`, or one derived from host and port."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


class WebhooksConfig(Model):
    """Delivery settings of partner webhooks."""

    timeout: Duration = 15.0
    retry_schedule: list[OptionalDuration] = Field(default_factory=lambda: [5, 300, 1800, 7200, 18000, 36000, 36000])
    max_in_flight: int = Field(256, ge=1, le=10_000, description="notifications sent at once, across webhooks")


class ObjectTypeConfig(Model):
    """An object type partners exchange; `key` is the field that identifies an object."""

    key: str = Field(min_length=1)


class BatchConfig(Model):
    """Bounds of one bot run (it runs again at once while behind)."""

    records: int = Field(1000, ge=1, le=1_000_000)
    bytes: int = Field(4_000_000, ge=1, le=1_000_000_000)
    seconds: Duration = 5.0


class OnErrorConfig(Model):
    """What to do with an event that keeps failing: after `after` failed runs in a row on the
    same event, move it to the queue `dead_letter` (with the run's checkpoint) and go on."""

    dead_letter: Name = Field(description="the dead-letter queue")
    after: int = Field(5, ge=1, le=1000, description="failed runs in a row on the same event before it moves")


class BotConfig(Model):
    """One step of a pipeline."""

    id: Name
    use: str = Field(min_length=1, description="built-in name, plugin name, module:Class or ./file.py:Class")
    with_: dict[str, Any] = Field(default_factory=dict, alias="with", description="the bot's settings")
    in_: Name | None = Field(None, alias="in", description="queue the bot reads")
    out: Name | None = Field(None, description="queue the bot writes")
    schedule: ScheduleText | None = Field(None, description="sources: watch, an interval (5s, PT1M) or a cron line")
    start: TimeText | None = Field(None, description="first run: earliest (default), latest or an RFC 3339 time")
    batch: BatchConfig = Field(default_factory=BatchConfig)
    on_error: OnErrorConfig | None = Field(None, description="send an event that keeps failing to a dead-letter queue")
    description: str | None = None


class PipelineConfig(Model):
    """A named group of bots, reloaded as a unit."""

    description: str | None = None
    bots: list[BotConfig] = Field(min_length=1)


class PipelinesFile(Model):
    """The whole pipelines.yaml."""

    version: Annotated[Literal[1], BeforeValidator(_supported_version)]
    store: str = "sqlite:///leo.db"
    server: ServerConfig = Field(default_factory=ServerConfig)
    retention: Duration = Field(7 * 86400.0, description="how long events stay readable")
    webhooks: WebhooksConfig = Field(default_factory=WebhooksConfig)
    object_types: dict[Name, ObjectTypeConfig] = Field(default_factory=dict)
    pipelines: dict[Name, PipelineConfig] = Field(default_factory=dict)


