"""The ``sqlite_table`` source: every row of a table in any SQLite file is an object.

Read through sqlite-utils on a read-only connection; a row's columns are the object's fields
(its key is the column named like the object type's key). Without ``updated_column`` each run
reads the whole table (a complete read), and only when the file changed since the last one.
With ``updated_column`` a run reads only the rows whose value there is past the cursor it
keeps, in order, at most ``batch.records`` of them (rows need a value in that column, growing
with each change); such reads are never complete, so they need ``snapshot: partial``.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from ..bot import BotContext, BotSettings
from ..errors import BotError, ObjectInputError
from ..fieldtypes import FieldCaster
from ..objects import SourceObject, object_rows
from ..store import ObjectRow
from . import SourceRead, shown_path

if TYPE_CHECKING:  # imported when the table is first read
    import sqlite_utils


class SqliteTableSettings(BotSettings):
    """A table in a SQLite file."""

    kind: Literal["sqlite_table"]
    path: str = Field(description="the SQLite file, relative to pipelines.yaml")
    table: str = Field(min_length=1, description="the table (or view) to read")
    updated_column: str | None = Field(
        None, description="read only rows whose value in this column grew since the last run (needs snapshot: partial)"
    )


class SqliteTableSource:
    """Reads a SQLite table (see the module docstring)."""

    def __init__(self, settings: SqliteTableSettings, ctx: BotContext, key_field: str, *, full: bool,
                 cast: FieldCaster | None = None) -> None:
        self.settings = settings
        self.path = ctx.resolve_path(settings.path)
        self.shown = shown_path(self.path, ctx.base_dir)
        self.key_field = key_field
        self.cast = cast
        self.full = full

    def watch_paths(self) -> list[Path]:
        return [self.path]

    def close(self) -> None:
        pass

    def reads(self, ctx: BotContext) -> Iterator[SourceRead]:
        name = f"{self.shown} table {self.settings.table}"
        if self.settings.updated_column is None:
            mark = self._file_mark()
            if ctx.state.get("file") == mark:
                return  # the file did not change since the last complete read
            ctx.state["file"] = mark
            yield SourceRead(self._all_rows(name), True, name)
            return
        # Incremental: the page is read now (bounded), so the cursor it reaches commits with it.
        page = self._changed_rows(ctx, name)
        if page:
            yield SourceRead(object_rows(page, self.key_field, name, self.cast), False, name)

    # -- reading --------------------------------------------------------------------------------
    def _open(self) -> tuple[sqlite3.Connection, sqlite_utils.Database]:
        import sqlite_utils

        if not self.path.is_file():
            raise BotError(f"{self.shown}: no such SQLite file; create it or fix 'path'")
        try:
            conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
            db = sqlite_utils.Database(conn)
            table = db.table(self.settings.table)
            if not table.exists() and self.settings.table not in db.view_names():
                names = ", ".join(db.table_names() + db.view_names()) or "none"
                conn.close()
                raise BotError(f"{self.shown}: no table '{self.settings.table}' (tables: {names})")
            columns = [column.name for column in db[self.settings.table].columns]
        except sqlite3.Error as exc:
            raise BotError(f"{self.shown}: cannot read: {exc}") from None
        for needed, what in ((self.key_field, "the key of the object type"), (self.settings.updated_column, "updated_column")):
            if needed is not None and needed not in columns:
                conn.close()
                raise BotError(
                    f"{self.shown}: table '{self.settings.table}' has no column '{needed}' ({what}); "
                    f"columns: {', '.join(columns)}"
                )
        return conn, db

    def _all_rows(self, name: str) -> Iterator[ObjectRow]:
        conn, db = self._open()
        try:
            table = db[self.settings.table]
            # In key order when an index gives it for free: sorted keys are compared fastest.
            indexed = self.key_field in getattr(table, "pks", []) or any(
                index.columns[:1] == [self.key_field] for index in getattr(table, "indexes", [])
            )
            rows = table.rows_where(order_by=_quote(self.key_field) if indexed else None)
            yield from object_rows(_objects(rows, name), self.key_field, name, self.cast)
        except sqlite3.Error as exc:
            raise BotError(f"{self.shown}: cannot read table '{self.settings.table}': {exc}") from None
        finally:
            conn.close()

    def _changed_rows(self, ctx: BotContext, name: str) -> list[SourceObject]:
        column, key = _quote(self.settings.updated_column or ""), _quote(self.key_field)
        cursor = ctx.state.get("cursor")
        conn, db = self._open()
        try:
            where, args = (None, None) if cursor is None else (f"{column} > ? OR ({column} = ? AND {key} > ?)",
                                                             [cursor[0], cursor[0], cursor[1]])
            limit = ctx.limits.records
            rows = list(db[self.settings.table].rows_where(where, args, order_by=f"{column}, {key}", limit=limit))
        except sqlite3.Error as exc:
            raise BotError(f"{self.shown}: cannot read table '{self.settings.table}': {exc}") from None
        finally:
            conn.close()
        if rows:
            last = rows[-1]
            ctx.state["cursor"] = [last[self.settings.updated_column or ""], last[self.key_field]]
            ctx.behind = len(rows) >= limit
        return list(_objects(rows, name))

    def _file_mark(self) -> list[int]:
        mark: list[int] = []
        for path in (self.path, self.path.with_name(self.path.name + "-wal")):
            try:
                stat = path.stat()
            except FileNotFoundError:
                mark += [0, 0]
            else:
                mark += [stat.st_size, stat.st_mtime_ns]
        return mark


def _objects(rows: Any, name: str) -> Iterator[SourceObject]:
    for number, row in enumerate(rows, start=1):
        for column, value in row.items():
            if type(value) is float and not math.isfinite(value):
                raise ObjectInputError(f"column '{column}' holds {value}, which JSON cannot carry", f"{name}, row {number}")
            if type(value) is bytes:
                raise ObjectInputError(f"column '{column}' holds a BLOB, which JSON cannot carry", f"{name}, row {number}")
        yield SourceObject(row, f"{name}, row {number}")


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
