"""The `file_reader` source: reads NDJSON files from a folder, one event per line.

Lines appended to a file later are read on the next run (``schedule: watch`` runs on file
events); the byte offset reached in each file is the bot's state, committed with the events, so
a crash neither loses nor repeats a line. A last line without its newline is left until it is
complete.

Only strict JSON gets in (`leo_runtime.jsonio`: UTF-8, RFC 8259, bounded nesting). A line that
is not is refused as ``FILE:LINE: reason``: a warning in the log and in the bot's state
(``rejected``: how many, and the latest few, which ``leo status`` shows), while the lines
around it and the other files go on. A UTF-16/32 file is refused once, as a whole; it is read
again when it is replaced. Each accepted line is stored exactly as written, minus surrounding
blanks.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from pydantic import Field

from leo_runtime.bot import BotContext, BotSettings, SourceBot, register_bot
from leo_runtime.events import RawJSON
from leo_runtime.jsonio import JSONInputError, check_encoding, parse
from leo_runtime.staging import MAX_LINE_BYTES

RECENT_REJECTIONS = 5  # how many refused lines the state keeps to show
WARNINGS_PER_FILE = 10  # per file and run; past it one summary line (the count stays exact)


class FileReaderSettings(BotSettings):
    path: str = Field(description="a folder (or one file), relative to pipelines.yaml")
    pattern: str = Field("*.ndjson", description="file name pattern inside the folder")


@register_bot("file_reader")
class FileReader(SourceBot[FileReaderSettings]):
    """Emits every line of the NDJSON files in `path` matching `pattern`, once."""

    description = "read NDJSON files from a folder (new lines are read as they are appended)"

    @classmethod
    def default_schedule(cls, settings: FileReaderSettings) -> str | None:
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
            rejections = _Rejections(ctx, path)
            try:
                stat = path.stat()
                cursor = files.get(path.name)
                if cursor is None or cursor.get("inode") != stat.st_ino or stat.st_size < cursor.get("offset", 0):
                    cursor = {"inode": stat.st_ino, "offset": 0, "line": 0}
                files[path.name] = cursor
                if stat.st_size == cursor["offset"]:
                    continue
                with path.open("rb") as handle:
                    handle.seek(cursor["offset"])
                    for text in _lines(handle, cursor, rejections, stat.st_size):
                        budget -= 1
                        yield RawJSON(text)
                        if budget <= 0:
                            ctx.behind = ctx.behind or handle.read(1) != b""
                            break
            except FileNotFoundError:  # removed since it was listed
                continue
            except OSError as exc:  # unreadable: say so, and go on with the other files
                rejections.add(f"{path}: cannot read: {exc.strerror or exc}")
            finally:
                rejections.close()
        present = {path.name for path in self._files(ctx)}
        for gone in set(files) - present:
            if not os.path.exists(ctx.resolve_path(self.settings.path) / gone):
                files.pop(gone, None)


def _lines(handle: IO[bytes], cursor: dict[str, Any], rejections: _Rejections, size: int) -> Iterator[str]:
    """The strict-JSON lines of `handle` from the cursor on, advancing the cursor over every
    complete line (refused ones included); an incomplete last line is left for later."""
    if cursor["offset"] == 0 and not cursor.get("skipping"):
        try:
            check_encoding(handle.read(4), str(rejections.path))
        except JSONInputError as exc:
            if "UTF-16" in exc.reason:  # every line would fail: refuse the file once, as a whole
                rejections.add(f"{exc}; the file is skipped until it is replaced")
                cursor["offset"] = size
                return
        handle.seek(0)
    while True:
        raw = handle.readline(MAX_LINE_BYTES + 1)
        if cursor.get("skipping"):  # the rest of a line refused as too long
            cursor["offset"] += len(raw)
            if raw.endswith(b"\n"):
                del cursor["skipping"]
            elif len(raw) <= MAX_LINE_BYTES:
                return  # the end of the file, inside that line: its writer is not done
            continue
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            cursor["offset"] += len(raw)
            cursor["line"] += 1
            cursor["skipping"] = True
            rejections.line(cursor, f"longer than {MAX_LINE_BYTES >> 20} MiB")
            continue
        if not raw.endswith(b"\n"):
            return  # an incomplete last line: wait until its writer finishes it
        cursor["offset"] += len(raw)
        cursor["line"] += 1
        text = raw.strip(b" \t\r\n")
        if not text:
            continue
        try:
            parse(text)
        except JSONInputError as exc:
            rejections.line(cursor, exc.reason)
            continue
        yield text.decode("utf-8")


class _Rejections:
    """Refused lines of one file in one run: logged (bounded), counted in the cursor and in
    the bot's state under ``rejected`` (``count`` and the ``recent`` few)."""

    def __init__(self, ctx: BotContext, path: Path) -> None:
        self.ctx = ctx
        self.path = path
        self.logged = 0
        self.unlogged = 0

    def line(self, cursor: dict[str, Any], reason: str) -> None:
        cursor["skipped"] = cursor.get("skipped", 0) + 1
        self.add(f"{self.path}:{cursor['line']}: {reason}", " (line skipped)")

    def add(self, message: str, note: str = "") -> None:
        rejected = self.ctx.state.setdefault("rejected", {"count": 0, "recent": []})
        rejected["count"] += 1
        rejected["recent"] = [*rejected["recent"], message][-RECENT_REJECTIONS:]
        if self.logged < WARNINGS_PER_FILE:
            self.logged += 1
            self.ctx.logger.warning("%s%s", message, note)
        else:
            self.unlogged += 1

    def close(self) -> None:
        if self.unlogged:
            self.ctx.logger.warning("%s: %d more line(s) refused this run", self.path, self.unlogged)
