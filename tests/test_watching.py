"""`FileChangeWatch` through real files and real watchdog events (no polling: events only)."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from leo_runtime.watching import FileChangeWatch, FileWatcher, symlink_chain

from .conftest import wait_until


class Calls:
    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    def __call__(self) -> None:
        with self.lock:
            self.count += 1


@pytest.fixture
def watcher() -> Iterator[FileWatcher]:
    shared = FileWatcher()
    yield shared
    shared.stop()


def _watch(watcher: FileWatcher, path: Path) -> tuple[FileChangeWatch, Calls]:
    calls = Calls()
    return FileChangeWatch(watcher, path, calls, poll_interval=None), calls


def _swap_symlink(link: Path, target: str) -> None:
    temporary = link.with_name(link.name + ".tmp")
    temporary.symlink_to(target)
    os.replace(temporary, link)


def test_in_place_and_rename_and_touch(tmp_path: Path, watcher: FileWatcher) -> None:
    file = tmp_path / "pipelines.yaml"
    file.write_text("a")
    watch, calls = _watch(watcher, file)
    try:
        file.write_text("b")
        wait_until(lambda: calls.count == 1, what="an in-place write")
        (tmp_path / "x.tmp").write_text("c")
        os.replace(tmp_path / "x.tmp", file)
        wait_until(lambda: calls.count == 2, what="a rename over the file")
        # Same content again (a touch, a save without change): no call. Then a real change is
        # seen, and is the only further call.
        file.write_text("c")
        (tmp_path / "other.txt").write_text("unrelated")
        file.write_text("d")
        wait_until(lambda: calls.count >= 3, what="the next change")
        assert calls.count == 3
    finally:
        watch.close()


def test_symlink_retargeted_and_its_new_target_edited(tmp_path: Path, watcher: FileWatcher) -> None:
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "one.yaml").write_text("1")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "two.yaml").write_text("2")
    link = tmp_path / "pipelines.yaml"
    link.symlink_to("configs/one.yaml")
    watch, calls = _watch(watcher, link)
    try:
        (tmp_path / "configs" / "one.yaml").write_text("1b")
        wait_until(lambda: calls.count == 1, what="the target edited in its own folder")
        _swap_symlink(link, str(tmp_path / "elsewhere" / "two.yaml"))
        wait_until(lambda: calls.count == 2, what="the link pointed elsewhere")
        (tmp_path / "elsewhere" / "two.yaml").write_text("2b")  # the watch moved along
        wait_until(lambda: calls.count == 3, what="the new target edited")
        (tmp_path / "configs" / "one.yaml").write_text("1c")  # no longer what the link reads
        (tmp_path / "elsewhere" / "two.yaml").write_text("2c")
        wait_until(lambda: calls.count >= 4, what="the new target edited again")
        assert calls.count == 4
    finally:
        watch.close()


def test_kubernetes_configmap_swaps(tmp_path: Path, watcher: FileWatcher) -> None:
    first = tmp_path / "..2026_11_26_00_00_00.1"
    first.mkdir()
    (first / "pipelines.yaml").write_text("v1")
    (tmp_path / "..data").symlink_to(first.name)
    file = tmp_path / "pipelines.yaml"
    file.symlink_to("..data/pipelines.yaml")
    assert symlink_chain(file) == [str(file), str(tmp_path / "..data"), str(first / "pipelines.yaml")]
    watch, calls = _watch(watcher, file)
    try:
        previous = first
        for n in (2, 3):
            version = tmp_path / f"..2026_11_26_00_00_00.{n}"
            version.mkdir()
            (version / "pipelines.yaml").write_text(f"v{n}")
            _swap_symlink(tmp_path / "..data", version.name)
            shutil.rmtree(previous)
            previous = version
            wait_until(lambda n=n: calls.count == n - 1, what=f"ConfigMap update {n}")
    finally:
        watch.close()


def test_deleted_then_recreated(tmp_path: Path, watcher: FileWatcher) -> None:
    file = tmp_path / "pipelines.yaml"
    file.write_text("a")
    watch, calls = _watch(watcher, file)
    try:
        file.unlink()
        wait_until(lambda: calls.count == 1, what="the file gone")
        file.write_text("b")
        wait_until(lambda: calls.count == 2, what="the file back")
    finally:
        watch.close()


def test_two_watches_on_one_folder_stop_independently(tmp_path: Path, watcher: FileWatcher) -> None:
    # watchdog shares one watch per folder: stopping one user must not silence the other.
    first_file, second_file = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first_file.write_text("a")
    second_file.write_text("b")
    first, first_calls = _watch(watcher, first_file)
    second, second_calls = _watch(watcher, second_file)
    try:
        first.close()
        second_file.write_text("b2")
        wait_until(lambda: second_calls.count == 1, what="the remaining watch")
        assert first_calls.count == 0
    finally:
        second.close()


def test_symlink_loop_is_bounded(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    chain = symlink_chain(tmp_path / "a")
    assert len(chain) <= 41
