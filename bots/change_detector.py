"""The `change_detector` source: keeps the object store up to date from a source and writes every
change to ``{object_type}.changes`` as a change record.

Sources: ``json_dir`` (a folder of ``.json`` arrays, ``.ndjson`` and ``.csv`` files, read when
they change), ``sqlite_table`` (a table of any SQLite file) and ``http_poll`` (a URL answering a
JSON array). ``snapshot: full`` means a complete read holds every object, so a key it misses is
deleted; ``partial`` never deletes. The object changes, their change records and the source's
cursor commit in one transaction: a crash or a bad file never applies half a read.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from leo_runtime import objects
from leo_runtime.bot import BotContext, BotSettings, Claim, SourceBot, register_bot
from leo_runtime.config.models import Name
from leo_runtime.errors import BotError
from leo_runtime.sources import Source
from leo_runtime.sources.http_poll import HttpPollSettings, HttpPollSource
from leo_runtime.sources.json_dir import JsonDirSettings, JsonDirSource
from leo_runtime.sources.sqlite_table import SqliteTableSettings, SqliteTableSource
from leo_runtime.store import ObjectBatch

SourceSettings = Annotated[JsonDirSettings | SqliteTableSettings | HttpPollSettings, Field(discriminator="kind")]
_SOURCES: dict[str, Any] = {"json_dir": JsonDirSource, "sqlite_table": SqliteTableSource, "http_poll": HttpPollSource}


@register_bot("change_detector")
class ChangeDetector(SourceBot):
    """Detects created, updated and deleted objects in a source; writes them to the object store
    and their change records to ``{object_type}.changes``."""

    description = "detect object changes in a folder, a SQLite table or a URL (writes T.changes)"

    class Settings(BotSettings):
        object_type: Name = Field(description="an object type declared under object_types")
        source: SourceSettings = Field(description="where objects come from: {kind: json_dir|sqlite_table|http_poll, ...}")
        snapshot: Literal["full", "partial"] = Field(
            "partial", description="full: a complete read holds every object, missing keys are deleted; partial: never deletes"
        )

        @field_validator("object_type")
        @classmethod
        def _declared(cls, value: str, info: ValidationInfo) -> str:
            # The loader hands the file's object_types as context; elsewhere (bots list) it is unknown.
            declared = (info.context or {}).get("object_types")
            if declared is not None and value not in declared:
                close = difflib.get_close_matches(value, sorted(declared), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise ValueError(
                    f"unknown object type '{value}'{hint}; declare it under object_types (like '{value}: {{key: id}}')"
                )
            return value

        @model_validator(mode="after")
        def _incremental_is_partial(self) -> ChangeDetector.Settings:
            if getattr(self.source, "updated_column", None) and self.snapshot == "full":
                raise ValueError(
                    "source.updated_column reads only changed rows, so it cannot tell a deleted row from an unchanged "
                    "one: use snapshot: partial (or drop updated_column to read the whole table)"
                )
            return self

    @classmethod
    def default_out(cls, settings: BotSettings) -> str | None:
        return f"{settings.object_type}.changes"  # type: ignore[attr-defined]

    @classmethod
    def default_schedule(cls, settings: BotSettings) -> str | None:
        return "watch" if settings.source.kind == "json_dir" else "1m"  # type: ignore[attr-defined]

    @classmethod
    def exclusive_claims(cls, settings: BotSettings) -> list[Claim]:
        object_type = settings.object_type  # type: ignore[attr-defined]
        if settings.snapshot != "full":  # type: ignore[attr-defined]
            return []
        # Each full read deletes every key its own source lacks: two of them on one type would
        # delete each other's keys on every read, and recreate them on the next.
        return [Claim(
            f"full snapshot of {object_type}",
            "snapshot",
            f"snapshot: full for object type '{object_type}'",
            "each full read would delete the keys only the other source holds, on every read; put both sources in "
            "one bot (a json_dir folder holds any number of files), make one of them snapshot: partial, or give each "
            "its own object type",
        )]

    def __init__(self, settings: BotSettings, ctx: BotContext) -> None:
        super().__init__(settings, ctx)
        self.source: Source | None = None
        self.key_field = ""

    def setup(self, ctx: BotContext) -> None:
        settings: Any = self.settings
        changes = f"{settings.object_type}.changes"
        if ctx.out_queue not in (None, changes):
            raise BotError(
                f"bot '{ctx.bot_id}': change records always go to '{changes}'; remove 'out: {ctx.out_queue}'"
            )
        self.key_field = _key_field(ctx, settings.object_type)
        self.source = _SOURCES[settings.source.kind](settings.source, ctx, self.key_field, full=settings.snapshot == "full")

    def close(self) -> None:
        if self.source is not None:
            self.source.close()

    def watch_paths(self, ctx: BotContext) -> list[Path]:
        if self.source is None:
            settings: Any = self.settings
            return [ctx.resolve_path(settings.source.path)] if settings.source.kind != "http_poll" else []
        return self.source.watch_paths()

    def produce(self, ctx: BotContext) -> Iterator[ObjectBatch]:
        settings: Any = self.settings
        if self.source is None:
            self.setup(ctx)
        source: Any = self.source
        full = settings.snapshot == "full"
        for read in source.reads(ctx):
            # Yielded batches commit with ctx.state (the source's cursor) in one transaction.
            yield objects.batch_of_rows(
                settings.object_type, read.rows, complete=full and read.complete, source=read.name, pages=read.pages
            )


def _key_field(ctx: BotContext, object_type: str) -> str:
    model = getattr(ctx.config, "model", None)
    declared = getattr(model, "object_types", None) or {}
    if object_type not in declared:
        raise BotError(f"bot '{ctx.bot_id}': object type '{object_type}' is not declared under object_types")
    return declared[object_type].key
