"""A real `leo run` picks up pipelines.yaml however it is replaced on disk, and a hostile file
edited in during the run is one short located error while the old pipelines keep running."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from ..conftest import FILTER_PIPELINE, LeoRun, Project, payloads_of, wait_until


def _pipeline(limit: int) -> str:
    return FILTER_PIPELINE.replace("lt: 5", f"lt: {limit}").lstrip()


def _swap_symlink(link: Path, target: str) -> None:
    """Point `link` at `target` atomically (what `ln -sfn` and config managers do)."""
    temporary = link.with_name(link.name + ".tmp")
    temporary.symlink_to(target)
    os.replace(temporary, link)


# Each way sets the project up with `setup(project, text)` and then changes the file with
# `change(project, text)`; project.file is always the path `leo run -f` is given.


def _in_place_setup(project: Project, text: str) -> None:
    project.file.write_text(text)


def _in_place_change(project: Project, text: str) -> None:
    with project.file.open("r+") as handle:  # same inode: truncate and write
        handle.truncate(0)
        handle.write(text)


def _rename_change(project: Project, text: str) -> None:
    temporary = project.root / ".pipelines.yaml.swp"  # vim / sed -i: write aside, rename over
    temporary.write_text(text)
    os.replace(temporary, project.file)


def _symlink_setup(project: Project, text: str) -> None:
    configs = project.root / "configs"
    configs.mkdir()
    (configs / "v0.yaml").write_text(text)
    project.file.symlink_to("configs/v0.yaml")


def _symlink_retarget(project: Project, text: str) -> None:
    configs = project.root / "configs"
    name = f"v{len(list(configs.iterdir()))}.yaml"
    (configs / name).write_text(text)
    _swap_symlink(project.file, f"configs/{name}")


def _symlink_target_edited(project: Project, text: str) -> None:
    (project.root / "configs" / "v0.yaml").write_text(text)  # the target, in another folder


def _configmap_setup(project: Project, text: str) -> None:
    # What the kubelet makes of a ConfigMap volume.
    version = project.root / "..2026_11_26_00_00_00.000000001"
    version.mkdir()
    (version / "pipelines.yaml").write_text(text)
    (project.root / "..data").symlink_to(version.name)
    project.file.symlink_to("..data/pipelines.yaml")


def _configmap_update(project: Project, text: str) -> None:
    # The kubelet's atomic update: a new timestamped folder, ..data swapped to it by a rename,
    # the old folder removed.
    old = (project.root / "..data").resolve()
    version = project.root / f"..2026_11_26_00_00_00.{time.monotonic_ns()}"
    version.mkdir()
    (version / "pipelines.yaml").write_text(text)
    _swap_symlink(project.root / "..data", version.name)
    shutil.rmtree(old)


WAYS: dict[str, tuple[Callable[[Project, str], None], Callable[[Project, str], None]]] = {
    "in-place": (_in_place_setup, _in_place_change),
    "rename": (_in_place_setup, _rename_change),
    "symlink-retargeted": (_symlink_setup, _symlink_retarget),
    "symlink-target-edited": (_symlink_setup, _symlink_target_edited),
    "kubernetes-configmap": (_configmap_setup, _configmap_update),
}


def _reloads(run: LeoRun) -> int:
    return run.log().count("reloaded: restarted feed")


@pytest.mark.sqlite_file
@pytest.mark.parametrize("way", list(WAYS))
def test_every_way_of_replacing_the_file_is_picked_up(project: Project, leo_run, way: str) -> None:
    setup, change = WAYS[way]
    setup(project, _pipeline(5))
    store = project.store()
    run = leo_run(project, "--no-http")
    run.wait_ready()
    # Twice: the second change proves the watches followed the file to where it is now.
    for count, limit in enumerate((50, 500), start=1):
        change(project, _pipeline(limit))
        wait_until(lambda count=count: _reloads(run) >= count, what=f"reload #{count} after a {way} change")
        store.append("inventory.in", [{"quantity": limit - 1}])
        wait_until(
            lambda limit=limit: {"quantity": limit - 1} in payloads_of(store, "inventory.low"),
            what=f"the new query (lt: {limit}) applied",
        )
    assert run.stop() == 0
    # The project folder is where the file is named, not where a symlink leads: the store
    # stayed next to pipelines.yaml.
    assert project.db.exists()


ALIAS_BOMB = """\
version: 1
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
version: *h
"""


def test_an_alias_bomb_edited_in_is_one_short_error_and_the_old_pipelines_run_on(project: Project, leo_run) -> None:
    project.write(FILTER_PIPELINE)
    store = project.store()
    run = leo_run(project, "--port", "0")
    run.wait_ready()
    base = run.http

    project.file.write_text(ALIAS_BOMB)
    wait_until(lambda: "changed but is invalid" in run.log(), what="the reload error in the log")
    # The first '*e' of line 7 is where the expanded document passes 100,000 values.
    assert "pipelines.yaml:7:8: too many values: with its aliases expanded" in run.log()
    assert max(len(line) for line in run.log().splitlines()) < 1000
    answer = httpx.get(f"{base}/healthz")
    assert answer.status_code == 200 and len(answer.content) < 10_000

    project.file.write_text("version: 1\nx: " + "[" * 400 + "]" * 400 + "\n")
    wait_until(lambda: "nested deeper than 64 levels" in run.log(), what="the nesting error in the log")
    assert "Traceback" not in run.log() and "RecursionError" not in run.log()

    store.append("inventory.in", [{"quantity": 1}])
    wait_until(lambda: payloads_of(store, "inventory.low") == [{"quantity": 1}], what="the old pipeline")
    assert run.stop() == 0
