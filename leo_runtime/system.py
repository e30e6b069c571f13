"""System pipelines: bots the runtime derives from the store instead of pipelines.yaml.

Partner webhooks and streams are created over the HTTP API (or the CLI) while `leo run` runs.
Each kind registers a `SystemPipeline` that turns the store's rows into ordinary `BotSpec`s;
the runtime runs them beside the file's bots (leases, checkpoints, exactly-once commits,
backoff, `leo status`) and reconciles them whenever the rows change: at once when the change
was made in-process (`Runtime.system_changed`), within a second when another process made it.

System bot ids and pipeline names hold a ``:`` (``webhooks:inventory``, ``system:streams``),
which no name in pipelines.yaml may hold, so the two never clash.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Hashable, Mapping
from typing import Any, ClassVar

from .bot import Bot, RunLimits
from .config import BotConfig, BotSpec, Config, Schedule
from .store import Store

SYSTEM_PREFIX = "system:"
"""Pipeline names of system bots start with this; a pipelines.yaml name cannot hold ``:``."""


class SystemPipeline(ABC):
    """One kind of store-derived bots (partner webhooks, partner streams)."""

    name: ClassVar[str]
    """The pipeline name its bots show under, ``system:<kind>``."""

    @abstractmethod
    def fingerprint(self, store: Store) -> Hashable:
        """A cheap value that changes whenever `specs` would (called every second, off the loop)."""

    @abstractmethod
    def specs(self, store: Store, config: Config) -> list[BotSpec]:
        """The bots to run now (called off the loop when the fingerprint changed)."""


_PIPELINES: list[SystemPipeline] = []


def register_system_pipeline(pipeline: SystemPipeline) -> SystemPipeline:
    """Add a kind of system bots (each module that defines one registers it at import)."""
    if any(existing.name == pipeline.name for existing in _PIPELINES):
        raise ValueError(f"system pipeline {pipeline.name!r} is registered twice")
    _PIPELINES.append(pipeline)
    return pipeline


def system_pipelines() -> list[SystemPipeline]:
    """Every registered kind of system bots (importing `leo_runtime.delivery` registers them)."""
    from . import delivery  # noqa: F401  (its modules register their pipelines)

    return list(_PIPELINES)


def system_spec(
    pipeline: str,
    bot_id: str,
    cls: type[Bot],
    settings: Mapping[str, Any],
    *,
    in_queue: str | None = None,
    out_queue: str | None = None,
    schedule: str | None = None,
    initial_position: int | None = None,
    limits: RunLimits | None = None,
) -> BotSpec:
    """A `BotSpec` for a system bot (its settings validated by the bot's own `Settings`)."""
    config = BotConfig.model_construct(
        id=bot_id, use=cls.name or cls.__name__, with_=dict(settings), in_=in_queue, out=out_queue, schedule=schedule,
        start=None, description=None,
    )
    return BotSpec(
        pipeline=pipeline,
        config=config,
        cls=cls,
        settings=cls.Settings.model_validate(dict(settings)),
        in_queue=in_queue,
        out_queue=out_queue,
        schedule=Schedule.parse(schedule) if schedule else None,
        limits=limits or RunLimits(),
        initial_position=initial_position,
    )


def spec_fingerprint(spec: BotSpec) -> str:
    """What makes two specs of one bot id the same bot (a change restarts it)."""
    return json.dumps(
        [spec.cls.__module__, spec.cls.__qualname__, spec.settings.model_dump(mode="json"), spec.in_queue,
         spec.out_queue, spec.schedule.text if spec.schedule else None, spec.initial_position,
         [spec.limits.records, spec.limits.bytes, spec.limits.seconds]],
        sort_keys=True,
        default=str,
    )


def is_system_bot(spec_or_pipeline: BotSpec | str | None) -> bool:
    """Whether a spec (or a pipeline name) belongs to a system pipeline."""
    name = spec_or_pipeline.pipeline if isinstance(spec_or_pipeline, BotSpec) else spec_or_pipeline
    return bool(name) and str(name).startswith(SYSTEM_PREFIX)
