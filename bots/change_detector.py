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
from leo_runtime.fieldtypes import FieldCaster
from leo_runtime.sources import Source
from leo_runtime.sources.http_poll import HttpPollSettings, HttpPollSource
from leo_runtime.sources.json_dir import JsonDirSettings, JsonDirSource
from leo_runtime.sources.sqlite_table import SqliteTableSettings, SqliteTableSource
from leo_runtime.store import ObjectBatch

SourceSettings = Annotated[JsonDirSettings | SqliteTableSettings | HttpPollSettings, Field(discriminator="kind")]
_SOURCES: dict[str, Any] = {"json_dir": JsonDirSource, "sqlite_table": SqliteTableSource, "http_poll": HttpPollSource}


class ChangeDetectorSettings(BotSettings):
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
    def _incremental_is_partial(self) -> ChangeDetectorSettings:
        if getattr(self.source, "updated_column", None) and self.snapshot == "full":
            raise ValueError(
                "source.updated_column reads only changed rows, so it cannot tell a deleted row from an unchanged "
                "one: use snapshot: partial (or drop updated_column to read the whole table)"
            )
        return self


@register_bot("change_detector")
class ChangeDetector(SourceBot[ChangeDetectorSettings]):
    """Detects created, updated and deleted objects in a source; writes them to the object store
    and their change records to ``{object_type}.changes``."""

    description = "detect object changes in a folder, a SQLite table or a URL (writes T.changes)"

    @classmethod
    def default_out(cls, settings: ChangeDetectorSettings) -> str | None:
        return f"{settings.object_type}.changes"

    @classmethod
    def default_schedule(cls, settings: ChangeDetectorSettings) -> str | None:
        return "watch" if settings.source.kind == "json_dir" else "1m"

    @classmethod
    def exclusive_claims(cls, settings: ChangeDetectorSettings) -> list[Claim]:
        object_type = settings.object_type
        if settings.snapshot != "full":
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

    def __init__(self, settings: ChangeDetectorSettings, ctx: BotContext) -> None:
        super().__init__(settings, ctx)
        self.source: Source | None = None
        self.key_field = ""

    def setup(self, ctx: BotContext) -> None:
        settings = self.settings
        changes = f"{settings.object_type}.changes"
        if ctx.out_queue not in (None, changes):
            raise BotError(
                f"bot '{ctx.bot_id}': change records always go to '{changes}'; remove 'out: {ctx.out_queue}'"
            )
        self.key_field = _key_field(ctx, settings.object_type)
        fields = ctx.field_types.get(settings.object_type)
        self.source = _SOURCES[settings.source.kind](settings.source, ctx, self.key_field, full=settings.snapshot == "full",
                                                     cast=FieldCaster(settings.object_type, fields) if fields else None)

    def close(self) -> None:
        if self.source is not None:
            self.source.close()

    def watch_paths(self, ctx: BotContext) -> list[Path]:
        if self.source is None:
            source = self.settings.source
            return [ctx.resolve_path(source.path)] if not isinstance(source, HttpPollSettings) else []
        return self.source.watch_paths()

    def produce(self, ctx: BotContext) -> Iterator[ObjectBatch]:
        settings = self.settings
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
    key = ctx.object_types.get(object_type)
    if key is None:
        raise BotError(f"bot '{ctx.bot_id}': object type '{object_type}' is not declared under object_types")
    return key
