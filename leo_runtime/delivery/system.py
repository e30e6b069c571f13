"""System pipelines: bots the runtime derives from the store instead of pipelines.yaml.

Partner webhooks and streams are created over the HTTP API (or the CLI) while `leo run` runs.
Each kind is a `SystemPipeline` that turns the store's rows into ordinary `BotSpec`s; the
runtime runs them beside the file's bots (leases, checkpoints, exactly-once commits, backoff,
`leo status`) and reconciles them whenever the rows change: at once when the change was made
in-process (`Runtime.system_changed`), within a second when another process made it.

Nothing registers itself by being imported: whoever composes the runtime (the CLI's ``leo
run``, see `leo_runtime.cli.compose`) hands it the list of system pipelines.

System bot ids and pipeline names hold a ``:`` (``webhooks:inventory``, ``system:streams``),
which no name in pipelines.yaml may hold, so the two never clash.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Hashable, Mapping
from typing import Any, ClassVar

from ..bot import Bot, RunLimits
from ..config import BotConfig, BotSpec, Config, Schedule
from ..config.reloading import setting
from ..store import Store

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


def derive(
    pipeline: SystemPipeline, store: Store, config: Config, known: Hashable = None
) -> tuple[Hashable, list[BotSpec] | None]:
    """A pipeline's fingerprint and, unless it is `known`, the specs it wants now (None when it
    is): both read in one read transaction of the store, so a webhook, stream or partner deleted
    meanwhile is either wholly there or wholly gone."""
    with store.snapshot():
        mark = pipeline.fingerprint(store)
        if known is not None and mark == known:
            return mark, None
        return mark, pipeline.specs(store, config)


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


def spec_fingerprint(spec: BotSpec, config: Config | None = None) -> str:
    """What makes two specs of one bot id the same bot (a change restarts it): the spec, and
    the values of the settings its class reads (`Bot.reads`) in `config`. Not its initial
    position: that counts only before its first run, and a running bot has a checkpoint."""
    reads = [setting(config.model, path) for path in spec.cls.reads] if config is not None else None
    return json.dumps(
        [spec.cls.__module__, spec.cls.__qualname__, spec.settings.model_dump(mode="json"), spec.in_queue,
         spec.out_queue, spec.schedule.text if spec.schedule else None,
         [spec.limits.records, spec.limits.bytes, spec.limits.seconds], reads],
        sort_keys=True,
        default=str,
    )


def is_system_bot(spec_or_pipeline: BotSpec | str | None) -> bool:
    """Whether a spec (or a pipeline name) belongs to a system pipeline."""
    name = spec_or_pipeline.pipeline if isinstance(spec_or_pipeline, BotSpec) else spec_or_pipeline
    return bool(name) and str(name).startswith(SYSTEM_PREFIX)
