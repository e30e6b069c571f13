"""The models of pipelines.yaml (pydantic): what each key may hold and its default."""

from __future__ import annotations

import datetime
import difflib
import ipaddress
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

from ..fieldtypes import FIELD_TYPES, FieldType
from ..safetext import shown
from ..timeutil import parse_duration
from . import DEFAULT_FILE  # noqa: F401  (named here too; defined where it costs no import)

NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$"
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
MAX_TIMEOUT = 3600
Timeout = Annotated[float, BeforeValidator(_positive_seconds), Field(le=MAX_TIMEOUT), WithJsonSchema({"anyOf": [
    {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_TIMEOUT},
    {"type": "string", "description": "ISO 8601 (PT10S) or short form (10s, 1m), at most an hour"},
]})]
"""Seconds of an edge timeout: more than zero, at most an hour."""
OptionalDuration = Annotated[float, BeforeValidator(_seconds), WithJsonSchema(_DURATION_SCHEMA)]


def time_text(value: Any) -> Any:
    """A date or time YAML read as such (unquoted), as the RFC 3339 text that was written."""
    # YAML turns an unquoted `2026-11-26T00:00:00Z` into a datetime: take it back as RFC 3339 text
    # (one without an offset stays without: times need one, and the check says so).
    if isinstance(value, datetime.datetime):
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


TimeText = Annotated[str, BeforeValidator(time_text)]
ScheduleText = Annotated[
    str,
    BeforeValidator(_schedule_text),
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "number", "exclusiveMinimum": 0}]}),
]


class Model(BaseModel):
    """Strict base: unknown keys are errors, aliases (``with``, ``in``) accepted by name too."""

    # No inf or nan: `.inf` in YAML is a float, and every number here ends up in arithmetic.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True, allow_inf_nan=False)


_BYTE_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
               "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}


def _byte_size(value: Any) -> Any:
    # A size in bytes: a whole number, or a number with a unit (500MB, 1GiB, 10 kib).
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "").replace("_", "")
        number = text.rstrip("kmgtib")
        unit = text[len(number):]
        if unit not in _BYTE_UNITS or not number.replace(".", "", 1).isdigit():
            raise ValueError(f"{shown(value)} is not a size: write bytes (1048576) or a number with a unit "
                             "(500MB, 1GiB; units B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)")
        return int(float(number) * _BYTE_UNITS[unit])
    return value


ByteSize = Annotated[
    int,
    BeforeValidator(_byte_size),
    WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 0},
                              {"type": "string", "description": "a size with a unit: 500MB, 1GiB"}]}),
]


class LimitsConfig(Model):
    """What one partner may create, each checked in the transaction that creates it: going over
    answers 422 problem+json naming the limit (``server.limits.streams``)."""

    streams: int = Field(20, ge=0, le=1_000_000, description="streams per partner")
    webhooks: int = Field(100, ge=0, le=1_000_000, description="webhooks per partner")
    partitions: int = Field(64, ge=1, le=64, description="partitions of one stream")
    all_mode_min_interval: OptionalDuration = Field(
        300.0, le=7 * 86400, description="the shortest interval of a webhook with mode: all (seconds or a duration)")
    batch_bytes: ByteSize = Field(
        1024**3, ge=0, description="bytes of snapshot lines (true-ups, mode: all) a partner's unexpired batches hold; "
        "a snapshot that would pass it waits (the webhook says why) until batches expire or are deleted")


class ServerConfig(Model):
    """The HTTP API (`leo run` serves it beside the bots)."""

    host: str = "127.0.0.1"
    port: int = Field(8765, ge=0, le=65535)
    public_url: str | None = Field(None, description="base of the URLs handed to partners")
    get_object_rate: float = Field(10, gt=0, description="Get Object calls per second per partner")
    allow_private_callbacks: bool = False
    max_ingest_bytes: int = Field(64 * 1024 * 1024, ge=1, description="the largest body POST /v1/admin/objects takes")
    limits: LimitsConfig = Field(default_factory=LimitsConfig, description="per partner: what it may create")
    metrics_public: bool = Field(False, description="true: GET /metrics needs no token (default: the admin token)")
    # The edge (see server/edge.py and the README's "Limits and timeouts").
    max_connections: int = Field(2000, ge=1, le=1_000_000, description="open HTTP connections at most; past it the "
                                 "oldest idle one is closed to make room, else the new one gets 503")
    header_timeout: Timeout = Field(10.0, description="seconds a request may take to send its headers")
    body_timeout: Timeout = Field(30.0, description="seconds a request body may stall (no byte arrives)")
    keep_alive_timeout: Timeout = Field(5.0, description="seconds an idle keep-alive connection stays open")
    max_header_bytes: int = Field(32 * 1024, ge=1024, le=1024 * 1024,
                                  description="bytes of a request line and headers at most (past it: 431)")

    @property
    def listens_everywhere(self) -> bool:
        """Whether `host` is a wildcard address (0.0.0.0, ::): no URL handed to partners can name it."""
        try:
            return not self.host.strip() or ipaddress.ip_address(self.host.strip("[]")).is_unspecified
        except ValueError:  # a host name
            return False

    @property
    def base_url(self) -> str:
        """Where partners reach the API: `public_url`, or one derived from host and port."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


class WebhooksConfig(Model):
    """Delivery settings of partner webhooks."""

    timeout: Duration = 15.0
    retry_schedule: list[OptionalDuration] = Field(default_factory=lambda: [5, 300, 1800, 7200, 18000, 36000, 36000])
    max_in_flight: int = Field(256, ge=1, le=10_000, description="notifications sent at once, across webhooks")


class ClusterConfig(Model):
    """Several `leo run` processes on one store (README, "Several processes and hosts")."""

    lease_ttl: Duration = Field(
        15.0, ge=3, le=3600, description="seconds a host's bot leases outlive its last heartbeat: a host killed "
        "(kill -9) has its bots running elsewhere within this plus 2 seconds")
    workers: int = Field(0, ge=0, le=64, description="bot worker processes leo run starts beside its API process "
                         "(0: one process runs everything); --workers overrides it")


def _field_type(value: Any) -> Any:
    if isinstance(value, str) and value not in FIELD_TYPES:
        close = difflib.get_close_matches(value, FIELD_TYPES, n=1, cutoff=0.5)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ValueError(f"unknown field type {shown(value)}{hint}; a field is {', '.join(FIELD_TYPES[:-1])} "
                         f"or {FIELD_TYPES[-1]}")
    return value


class ObjectTypeConfig(Model):
    """An object type partners exchange; `key` is the field that identifies an object."""

    key: str = Field(min_length=1)
    fields: dict[str, Annotated[FieldType, BeforeValidator(_field_type)]] = Field(
        default_factory=dict, description="types of fields that sources cast to: string, integer, number or boolean"
    )

    @model_validator(mode="after")
    def _key_type(self) -> ObjectTypeConfig:
        kind = self.fields.get(self.key)
        if kind in ("number", "boolean"):
            raise ValueError(f"the key field '{self.key}' cannot be a {kind}: a key is a string or an integer")
        return self


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
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    object_types: dict[Name, ObjectTypeConfig] = Field(default_factory=dict)
    pipelines: dict[Name, PipelineConfig] = Field(default_factory=dict)


