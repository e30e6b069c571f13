"""The `file_reader` source: reads NDJSON files from a folder, one event per line.

Lines appended to a file later are read on the next run (``schedule: watch`` runs on file
events); the byte offset reached in each file is the bot's state, committed with the events, so
a crash neither loses nor repeats a line. A line that is not JSON is skipped with a warning that
names the file and line. A last line without its newline is left until it is complete.
"""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Iterator
from pathlib import Path

from pydantic import Field

from leo_runtime.bot import BotContext, BotSettings, SourceBot, register_bot
from leo_runtime.events import RawJSON


@register_bot("file_reader")
class FileReader(SourceBot):
    """Emits every line of the NDJSON files in `path` matching `pattern`, once."""

    description = "read NDJSON files from a folder (new lines are read as they are appended)"

    class Settings(BotSettings):
        path: str = Field(description="a folder (or one file), relative to pipelines.yaml")
        pattern: str = Field("*.ndjson", description="file name pattern inside the folder")

    @classmethod
    def default_schedule(cls, settings: BotSettings) -> str | None:
        return "watch"

    def watch_paths(self, ctx: BotContext) -> list[Path]:
        return [ctx.resolve_path(self.settings.path)]

    def _files(self, ctx: BotContext) -> list[Path]:
        root = ctx.resolve_path(self.settings.path)
        if root.is_file():
            return [root]
        if not root.is_dir():
            return []
        return sorted(
            entry for entry in root.iterdir() if entry.is_file() and fnmatch.fnmatch(entry.name, self.settings.pattern)
        )

    def produce(self, ctx: BotContext) -> Iterator[RawJSON]:
        files = ctx.state.setdefault("files", {})
        budget = ctx.limits.records
        for path in self._files(ctx):
            if budget <= 0:
                ctx.behind = True
                return
            name = path.name
            stat = path.stat()
            cursor = files.get(name)
            if cursor is None or cursor.get("inode") != stat.st_ino or stat.st_size < cursor.get("offset", 0):
                cursor = {"inode": stat.st_ino, "offset": 0, "line": 0}
            if stat.st_size == cursor["offset"]:
                files[name] = cursor
                continue
            with path.open("rb") as handle:
                handle.seek(cursor["offset"])
                while budget > 0:
                    raw = handle.readline()
                    if not raw.endswith(b"\n"):
                        break  # an incomplete last line: wait until its writer finishes it
                    cursor["offset"] += len(raw)
                    cursor["line"] += 1
                    text = raw.decode("utf-8", errors="replace").strip()
                    if not text:
                        continue
                    try:
                        json.loads(text)
                    except ValueError as exc:
                        ctx.logger.warning("%s:%d: skipped a line that is not JSON: %s", path, cursor["line"], exc)
                        cursor["skipped"] = cursor.get("skipped", 0) + 1
                        continue
                    budget -= 1
                    yield RawJSON(text)
                else:
                    ctx.behind = handle.read(1) != b""
            files[name] = cursor
        for gone in set(files) - {path.name for path in self._files(ctx)}:
            if not os.path.exists(ctx.resolve_path(self.settings.path) / gone):
                files.pop(gone, None)
