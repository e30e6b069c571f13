"""File events (watchdog) for `schedule: watch` sources and pipelines.yaml reloads.

`FileWatcher` is the one watchdog observer of a process. `FileWatcher.watch` wakes a source
when something changes in a folder; `FileChangeWatch` follows one file however it is replaced
on disk (see there), for the pipelines file.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
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
# Finished changes only (no "modified" per write): a folder that also holds the SQLite store,
# written constantly and never closed, then costs nothing.
_FINISHED: list[type[FileSystemEvent]] = [
    FileClosedEvent,
    FileCreatedEvent,
    FileMovedEvent,
    FileDeletedEvent,
    DirCreatedEvent,
    DirMovedEvent,
    DirDeletedEvent,
]
_MAX_SYMLINKS = 40  # as the kernel's ELOOP limit
_MAX_READ = 4 * 1024 * 1024 + 1  # more than a valid pipelines file may hold


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


@dataclass(frozen=True)
class _Handle:
    watch: Any  # watchdog's ObservedWatch (one per folder and event filter, shared)
    handler: FileSystemEventHandler


class FileWatcher:
    """One watchdog observer shared by every watch of the process."""

    def __init__(self) -> None:
        self._observer: Any = None
        self._lock = threading.RLock()
        self._users: dict[Any, int] = {}  # watchdog's watch -> handlers on it

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
                self._users.clear()

    def watch(self, path: Path, callback: Callable[[], None]) -> Any:
        """Call `callback` (on a watchdog thread) when something changes at `path`.

        A file is watched through its folder (editors replace files by renaming); a path that
        does not exist yet is watched through its nearest existing parent. Returns a handle for
        `unwatch`, or None when nothing could be watched.
        """
        target = Path(path).resolve()
        only = target if target.is_file() else None
        folder = target if target.is_dir() else target.parent
        kinds = [FileClosedEvent, FileCreatedEvent, FileMovedEvent, FileDeletedEvent, FileModifiedEvent]
        return self.watch_folder(folder, _Handler(callback, only), kinds)

    def watch_folder(self, folder: Path, handler: FileSystemEventHandler, kinds: list[type[FileSystemEvent]]) -> Any:
        """Hand the `kinds` of events in `folder` (not its subfolders) to `handler`; a folder that
        does not exist is watched through its nearest existing parent. Returns a handle for
        `unwatch`, or None when nothing could be watched."""
        self.start()
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        try:
            with self._lock:
                watch = self._observer.schedule(handler, str(folder), recursive=False, event_filter=kinds)
                self._users[watch] = self._users.get(watch, 0) + 1
        except OSError as exc:
            log.warning("cannot watch %s (%s); changes there are noticed only by periodic rescans", folder, exc)
            return None
        return _Handle(watch, handler)

    def unwatch(self, handle: Any) -> None:
        """Stop one watch. Others on the same folder (another bot, the pipelines file) go on."""
        if handle is None:
            return
        with self._lock:
            if self._observer is None:
                return
            # watchdog shares one watch per folder and filter: drop it with its last handler.
            users = self._users.get(handle.watch, 1) - 1
            if users > 0:
                self._users[handle.watch] = users
                with contextlib.suppress(KeyError, ValueError):
                    self._observer.remove_handler_for_watch(handle.handler, handle.watch)
            else:
                self._users.pop(handle.watch, None)
                with contextlib.suppress(KeyError, ValueError):
                    self._observer.unschedule(handle.watch)


def symlink_chain(path: Path) -> list[str]:
    """Every name whose change changes what `path` reads: each symlink met while resolving it
    (with its folder resolved) and, last, the file it ends at (which may not exist).

    For a Kubernetes ConfigMap file that is ``dir/pipelines.yaml`` (a symlink to
    ``..data/pipelines.yaml``), ``dir/..data`` (a symlink to ``..2026_11_26_...``), then
    ``dir/..2026_11_26_.../pipelines.yaml``.
    """
    absolute = Path(os.path.abspath(path))
    pending = list(absolute.parts[1:])
    current = absolute.anchor
    chain: list[str] = []
    while pending:
        name = pending.pop(0)
        if name in ("", "."):
            continue
        if name == "..":
            current = os.path.dirname(current)
            continue
        candidate = os.path.join(current, name)
        if os.path.islink(candidate) and len(chain) < _MAX_SYMLINKS:
            chain.append(candidate)
            try:
                target = Path(os.readlink(candidate))
            except OSError:
                current = candidate
                continue
            if target.is_absolute():
                current = target.anchor
            pending[:0] = list(target.parts[1:] if target.is_absolute() else target.parts)
        else:
            current = candidate
    chain.append(current)
    return chain


class FileChangeWatch:
    """Call back when the content read through `path` changes, however it was changed.

    Editors and config managers replace files in many ways: written in place, replaced by a
    rename (vim, ``sed -i``), a symlink pointed at another file (``ln -sfn``), a symlinked
    folder swapped atomically (Kubernetes ConfigMaps: ``pipelines.yaml -> ..data/pipelines.yaml``,
    ``..data`` renamed over to point at a new timestamped folder), the project folder itself a
    symlink swapped by a deploy. So the folder of every name in `symlink_chain` is watched, the
    watches follow the chain after every event, and `callback` runs only when the bytes read
    through `path` differ from the last time: a burst of events is one call, a touch is none.

    All the work happens on one thread of its own (watchdog's thread only wakes it), which
    also looks every `poll_interval` seconds (None: never) to back the events up on
    filesystems that send none (network mounts). `callback` runs on that thread.
    """

    def __init__(
        self, watcher: FileWatcher, path: Path, callback: Callable[[], None], *, poll_interval: float | None = 5.0,
        baseline: str | None = None,
    ) -> None:
        """`baseline`: the `content_digest` of the bytes what runs was read from. The first look
        is at once, against it: a change saved before the watch began is a change. Without
        one, the content at the start is the baseline."""
        self.path = Path(os.path.abspath(path))
        self._watcher = watcher
        self._callback = callback
        self._poll_interval = poll_interval
        self._handles: dict[str, Any] = {}  # watched folder -> handle
        self._names: frozenset[str] = frozenset()
        self._wake = threading.Event()
        self._closed = False
        self._handler = _ChainHandler(self)
        self._content = _content_digest(self.path) if baseline is None else baseline
        self._follow_chain()
        if baseline is not None:
            self._wake.set()
        self._thread = threading.Thread(target=self._run, name="leo-config-watch", daemon=True)
        self._thread.start()

    def settle(self, digest: str | None) -> None:
        """What runs now was read from bytes of this `content_digest` (a reload applied them):
        compare with them from now on, and look at once (the file may have changed since)."""
        if digest is not None:
            self._content = digest
            self._wake.set()

    def close(self) -> None:
        """Stop watching and wait for the watch's thread (idempotent)."""
        self._closed = True
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def wake(self, event: FileSystemEvent) -> None:
        """Called on watchdog's thread: look again soon if `event` touches the chain."""
        names = self._names
        if any(isinstance(path, str) and path in names for path in (event.src_path, getattr(event, "dest_path", None))):
            self._wake.set()

    def _run(self) -> None:
        try:
            while not self._closed:
                self._wake.wait(self._poll_interval)
                self._wake.clear()
                if self._closed:
                    break
                try:
                    self._check()
                except Exception as exc:  # a thread of its own: log, never die
                    log.warning("watching %s failed: %s", self.path, exc)
        finally:
            for handle in self._handles.values():
                self._watcher.unwatch(handle)
            self._handles.clear()

    def _check(self) -> None:
        """Follow the symlink chain again; call back when the content changed."""
        self._follow_chain()
        content = _content_digest(self.path)
        if content != self._content:
            self._content = content
            self._callback()

    def _follow_chain(self) -> None:
        chain = symlink_chain(self.path)
        names = set(chain)
        folders = set()
        for name in chain:
            folder = os.path.dirname(name)
            # A folder that is gone is watched through its nearest parent: its return counts.
            while not os.path.isdir(folder) and os.path.dirname(folder) != folder:
                names.add(folder)
                folder = os.path.dirname(folder)
            folders.add(folder)
        self._names = frozenset(names)
        for folder in set(self._handles) - folders:
            self._watcher.unwatch(self._handles.pop(folder))
        for folder in folders - set(self._handles):
            self._handles[folder] = self._watcher.watch_folder(Path(folder), self._handler, _FINISHED)


class _ChainHandler(FileSystemEventHandler):
    def __init__(self, owner: FileChangeWatch) -> None:
        self.owner = owner

    def on_any_event(self, event: FileSystemEvent) -> None:
        self.owner.wake(event)


def content_digest(data: bytes) -> str:
    """The digest `FileChangeWatch` compares contents by."""
    return hashlib.blake2b(data[:_MAX_READ], digest_size=16).hexdigest()


def _content_digest(path: Path) -> str | None:
    """A digest of what reading `path` gives now (None when it is no regular file or unreadable)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # never block on a pipe or read a device
            return None
        with open(path, "rb") as handle:
            return content_digest(handle.read(_MAX_READ))
    except OSError:
        return None
