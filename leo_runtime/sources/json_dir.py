"""The ``json_dir`` source: a folder of object files (``.json`` arrays, ``.ndjson``, ``.csv``).

The bot's state remembers each file's size, modification time and inode; a run reads only when
they changed. Under ``snapshot: full`` the folder is the whole source: any change re-reads every
file (in name order) as one complete read, so a key found in no file is deleted (an empty
folder is taken as "nothing written yet", not as an empty snapshot). Under ``partial`` the new
and changed files (up to the run's byte bound) are one read, in name order, and nothing is
deleted.

A file that is malformed, empty or still being written (its size or time changes while it is
read) fails the run with its name and line; nothing of it is applied, and it is read again on
the next run (a file event, or the runtime's retry). Hidden files (``.name``) are never read, so
a writer can write ``.x.json`` and rename it when done: under ``snapshot: full`` that is the safe
way, since an NDJSON file cut between two lines by a writer that pauses looks complete.
"""

from __future__ import annotations

import fnmatch
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import Field

from ..bot import BotContext, BotSettings
from ..errors import BotError, LeoError, ObjectInputError
from ..fieldtypes import FieldCaster
from ..store import ObjectPage
from . import SourceRead, shown_path
from .files import is_object_file, read_pages


class JsonDirSettings(BotSettings):
    """A folder of object files, read when they change."""

    kind: Literal["json_dir"]
    path: str = Field(description="the folder, relative to pipelines.yaml")
    pattern: str = Field("*", description="which file names to read (a glob); .json, .ndjson, .jsonl and .csv only")


Fingerprint = list[int]


class JsonDirSource:
    """Reads a folder of object files (see the module docstring)."""

    def __init__(self, settings: JsonDirSettings, ctx: BotContext, key_field: str, *, full: bool,
                 cast: FieldCaster | None = None) -> None:
        self.settings = settings
        self.folder = ctx.resolve_path(settings.path)
        self.base = ctx.base_dir
        self.key_field = key_field
        self.cast = cast
        self.full = full

    def watch_paths(self) -> list[Path]:
        return [self.folder]

    def close(self) -> None:
        pass

    def reads(self, ctx: BotContext) -> Iterator[SourceRead]:
        listing = self._listing()
        known = ctx.state.get("files") or {}
        if self.full:
            ctx.state["files"] = listing
            if listing and listing != known:
                yield SourceRead((), True, shown_path(self.folder, self.base), self._pages(sorted(listing), listing))
            return
        kept = {name: mark for name, mark in known.items() if name in listing}
        budget = ctx.limits.bytes
        names = []
        for name in sorted(listing):
            if listing[name] == known.get(name):
                continue
            if budget <= 0:  # one run reads at least one file, then stops at the byte bound
                ctx.behind = True
                break
            budget -= listing[name][0]
            kept[name] = listing[name]
            names.append(name)
        ctx.state["files"] = kept
        if names:  # one read: the files apply in name order, all or none (each line names its file)
            where = self.folder / names[0] if len(names) == 1 else self.folder
            yield SourceRead((), False, shown_path(where, self.base), self._pages(names, listing))

    def _listing(self) -> dict[str, Fingerprint]:
        try:
            entries = list(os.scandir(self.folder))
        except FileNotFoundError:
            raise BotError(f"{shown_path(self.folder, self.base)}: no such folder; create it or fix 'path'") from None
        except NotADirectoryError:
            raise BotError(f"{shown_path(self.folder, self.base)}: not a folder; 'path' must name a folder") from None
        listing = {}
        for entry in entries:
            if not is_object_file(Path(entry.name)) or not fnmatch.fnmatch(entry.name, self.settings.pattern):
                continue
            try:
                if entry.is_file():
                    listing[entry.name] = _fingerprint(entry.stat())
            except FileNotFoundError:  # removed while listing
                continue
        return listing

    def _pages(self, names: list[str], listing: dict[str, Fingerprint]) -> Iterator[ObjectPage]:
        for name in names:
            path = self.folder / name
            shown = shown_path(path, self.base)
            if listing[name][0] == 0:  # created or truncated, not written yet: never an empty snapshot
                raise _transient(ObjectInputError("is empty (still being written?); read again when it has content", shown))
            try:
                yield from read_pages(path, shown, self.key_field, self.cast)
            except LeoError as exc:  # cut JSON in a file a writer is at is no bad file (yet): it is read again
                exc.transient = _being_written(path, listing[name])
                raise
            if _being_written(path, listing[name], fresh=0):
                raise _transient(ObjectInputError("changed while it was read (still being written?); read again on the "
                                                  "next run", shown))


FRESH_SECONDS = 10.0
"""A file modified this recently may still be being written: a problem in it is retried quietly."""


def _being_written(path: Path, listed: Fingerprint, fresh: float = FRESH_SECONDS) -> bool:
    """Whether `path` changed since it was listed, is gone, or was modified in the last `fresh` seconds."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return True
    return _fingerprint(stat) != listed or time.time() - stat.st_mtime < fresh


def _transient(exc: LeoError) -> LeoError:
    exc.transient = True
    return exc


def _fingerprint(stat: os.stat_result) -> Fingerprint:
    return [stat.st_size, stat.st_mtime_ns, stat.st_ino]
