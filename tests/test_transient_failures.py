"""A file caught while it is written is no error until it persists: the change detector's first
failure on it is logged at INFO, and ERROR only when the next run fails too (a file that was
broken long before the run is an ERROR at once)."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import pytest

from .conftest import Project, async_wait_until, run_with

DETECTOR = """
version: 1
object_types:
  inventory: {key: sku}
pipelines:
  feed:
    bots:
      - id: detector
        use: change_detector
        with: {object_type: inventory, source: {kind: json_dir, path: data}, snapshot: partial}
        schedule: 1h
"""


def failures_of(records: list[logging.LogRecord]) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in records if "bot 'detector' failed" in r.getMessage()]


def test_a_file_caught_mid_write_that_recovers_is_logged_at_info(project: Project, caplog: pytest.LogCaptureFixture) -> None:
    project.write(DETECTOR)
    data = project.root / "data"
    data.mkdir()
    (data / "items.json").write_text('[{"sku": "A", "quantity": 1}, {"sku": "B", "qua')  # the writer is at it

    async def body(runtime: Any) -> None:
        await async_wait_until(lambda: failures_of(caplog.records), what="the first run on the cut file")
        (data / "items.json").write_text('[{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 2}]')
        await async_wait_until(lambda: runtime.store.queue_head("inventory.changes") == 2, what="the retry")

    with caplog.at_level(logging.INFO):
        run_with(project, body)
    [(level, message)] = failures_of(caplog.records)
    assert level == logging.INFO and "items.json" in message
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_file_broken_long_before_the_run_is_an_error_at_once(project: Project, caplog: pytest.LogCaptureFixture) -> None:
    project.write(DETECTOR)
    data = project.root / "data"
    data.mkdir()
    broken = data / "old.json"
    broken.write_text('[{"sku": "A", "qua')
    long_ago = time.time() - 3600
    os.utime(broken, (long_ago, long_ago))  # broken for an hour: nobody is writing it

    async def body(runtime: Any) -> None:
        await async_wait_until(lambda: failures_of(caplog.records), what="the first run")

    with caplog.at_level(logging.INFO):
        run_with(project, body)
    assert failures_of(caplog.records)[0][0] == logging.ERROR


def test_a_cut_file_that_stays_cut_is_an_error_on_the_next_run(project: Project, caplog: pytest.LogCaptureFixture) -> None:
    project.write(DETECTOR)
    data = project.root / "data"
    data.mkdir()
    (data / "items.json").write_text('[{"sku": "A", "qua')  # the writer died half way

    async def body(runtime: Any) -> None:
        await async_wait_until(lambda: len(failures_of(caplog.records)) >= 2, what="two failed runs", timeout=60)

    with caplog.at_level(logging.INFO):
        run_with(project, body)
    assert [level for level, _ in failures_of(caplog.records)][:2] == [logging.INFO, logging.ERROR]
