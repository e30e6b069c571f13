"""File events (watchdog) for `schedule: watch` sources and pipelines.yaml reloads."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from watchdog.events import (
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

log = logging.getLogger("leo.watch")

# Reading a file raises "opened" / "closed_no_write" events: a source reading its own folder
# must not wake itself, so only events that change something count.
_CHANGES = {"created", "modified", "moved", "deleted", "closed"}


class _Handler(FileSystemEventHandler):
    def __init__(self, callback: Callable[[], None], only: Path | None) -> None:
        self.callback = callback
        self.only = str(only) if only is not None else None

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in _CHANGES:
            return
        if self.only is not None:
            paths = {str(event.src_path), str(getattr(event, "dest_path", "") or "")}
            if self.only not in paths:
                return
        try:
            self.callback()
        except Exception as exc:  # the callback runs on watchdog's thread: never let it die
            log.warning("file event handler failed: %s", exc)


class FileWatcher:
    """One watchdog observer shared by every watch of the process."""

    def __init__(self) -> None:
        self._observer: Any = None
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._observer is None:
                self._observer = Observer()
                self._observer.daemon = True
                self._observer.start()

    def stop(self) -> None:
        with self._lock:
            if self._observer is not None:
                self._observer.stop()
                self._observer.join(timeout=5)
                self._observer = None

    def watch(
        self, path: Path, callback: Callable[[], None], *, only: Path | None = None, writes: bool = True
    ) -> Any:
        """Call `callback` (on a watchdog thread) when something changes at `path`.

        With ``writes=False`` only finished writes count (a file closed after writing, created,
        moved, deleted), not every write: a folder that also holds the SQLite store (written
        constantly, never closed) then costs nothing.

        A file is watched through its folder (editors replace files by renaming); a path that
        does not exist yet is watched through its nearest existing parent. Returns a handle for
        `unwatch`, or None when nothing could be watched.
        """
        self.start()
        target = Path(path).resolve()
        if only is None and target.is_file():
            only = target
        folder = target if target.is_dir() else target.parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        try:
            kinds: list[type[FileSystemEvent]] = [FileClosedEvent, FileCreatedEvent, FileMovedEvent, FileDeletedEvent]
            if writes:
                kinds.append(FileModifiedEvent)
            return self._observer.schedule(_Handler(callback, only), str(folder), recursive=False, event_filter=kinds)
        except OSError as exc:
            log.warning("cannot watch %s (%s); changes there are noticed only by periodic rescans", folder, exc)
            return None

    def unwatch(self, handle: Any) -> None:
        if handle is None or self._observer is None:
            return
        with contextlib.suppress(KeyError, ValueError):
            self._observer.unschedule(handle)
