"""What a validated file becomes: schedules, runnable bot specs and the `Config` itself."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..bot import Bot, BotSettings, RunLimits
from ..errors import Problem
from ..timeutil import parse_duration
from ..yaml_loader import YamlDocument
from .models import BotConfig, PipelinesFile


@dataclass(frozen=True)
class Schedule:
    """When a source runs: on file events (``watch``), every ``interval`` seconds, or by ``cron``."""

    kind: Literal["watch", "interval", "cron"]
    interval: float | None = None
    cron: str | None = None
    text: str = ""

    @staticmethod
    def parse(text: str) -> Schedule:
        """Parse ``watch``, a duration or a cron line; ValueError names the accepted forms."""
        value = str(text).strip()
        if value == "watch":
            return Schedule("watch", text=value)
        try:
            seconds = parse_duration(value, what="schedule")
        except ValueError:
            from croniter import croniter  # here: most files have no cron line

            if len(value.split()) in (5, 6) and croniter.is_valid(value):
                return Schedule("cron", cron=value, text=value)
            raise ValueError(
                f"invalid schedule {value!r}: use 'watch', an interval like '5s' or 'PT1M', "
                "or a cron line like '*/5 * * * *'"
            ) from None
        if seconds <= 0:
            raise ValueError(f"invalid schedule {value!r}: the interval must be more than zero")
        return Schedule("interval", interval=seconds, text=value)


@dataclass
class BotSpec:
    """A bot ready to run: its configuration, class, validated settings and resolved queues."""

    pipeline: str
    config: BotConfig
    cls: type[Bot]
    settings: BotSettings
    in_queue: str | None
    out_queue: str | None
    schedule: Schedule | None
    limits: RunLimits
    path: tuple = ()  # where the bot sits in the file: ("pipelines", name, "bots", index)
    initial_position: int | None = None  # system bots: where the first run starts (beats `start`)

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def kind(self) -> str:
        return self.cls.kind


@dataclass
class Config:
    """A validated pipelines.yaml."""

    path: Path
    model: PipelinesFile
    bots: list[BotSpec]
    document: YamlDocument
    warnings: list[Problem] = field(default_factory=list)
    env: Mapping[str, str] | None = None  # the environment the file was read with (None: os.environ)
    text: str | None = None  # the text it was read from (a reload's watch compares the file with it)

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def store_url(self) -> str:
        """The store to use: env ``LEO_STORE`` (when set and not empty) overrides the file."""
        environ = os.environ if self.env is None else self.env
        return environ.get("LEO_STORE") or self.model.store

    def pipeline_data(self, name: str) -> Any:
        """The pipeline's data as written (after interpolation): what a reload compares."""
        return self.document.data["pipelines"][name]

    def bots_of(self, pipeline: str) -> list[BotSpec]:
        return [spec for spec in self.bots if spec.pipeline == pipeline]


