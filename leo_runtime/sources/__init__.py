"""Where the `change_detector` reads objects from: a folder of files, a SQLite table, an HTTP URL.

A source knows how to read, not what changed: each run it says what to read (`SourceRead`) and
keeps its cursor in the bot's state; the rows are read lazily, inside the transaction that
applies them, so a read that fails half way (a half-written file, a dropped connection) writes
nothing and is tried again on the next run. Comparing and writing are `leo_runtime.objects`'.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..bot import BotContext
from ..store import ObjectPage, ObjectRow


@dataclass
class SourceRead:
    """One read: its rows (consumed once, lazily), whether they are the whole source (so that a
    full snapshot may delete what they miss), and a name for messages. ``pages`` (after the
    rows) hold texts the store parses only where they differ from what it holds."""

    rows: Iterable[ObjectRow]
    complete: bool
    name: str
    pages: Iterable[ObjectPage] = ()


class Source(Protocol):
    """What the change detector needs of a source."""

    def watch_paths(self) -> list[Path]:
        """Paths whose file events should trigger a run (``schedule: watch``)."""
        ...

    def reads(self, ctx: BotContext) -> Iterator[SourceRead]:
        """What to read this run; cursors go into ``ctx.state`` before each read is yielded.
        Set ``ctx.behind`` when more is waiting than one run should take."""
        ...

    def close(self) -> None:
        """Release clients and connections."""
        ...


def shown_path(path: Path, base: Path) -> str:
    """A path as messages show it: relative to the pipelines file's folder when inside it."""
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)

