"""One vocabulary for bot states, shared by the runner, ``/healthz`` and ``leo status``, and the
rules behind them: when a bot counts as failing or stuck, and how long it backs off.

The runner knows the finest state of the bots it runs (``idle``, ``standby``, ...). Any other
process sees a bot through the store only, so `leo status` shows the states the store can tell:
``stuck``, ``paused``, ``failing``, ``backoff``, ``running`` (a live runtime holds its lease),
``stopped``, ``removed`` (no longer in the file) and ``new`` (never run).
"""

from __future__ import annotations

import random
from enum import StrEnum


class BotState(StrEnum):
    """What a bot is doing. The values are what `leo status`, ``--json`` and ``/healthz`` print."""

    NEW = "new"  # in the file, never run
    STARTING = "starting"  # its runner is being set up
    STANDBY = "standby"  # another runtime holds its lease
    IDLE = "idle"  # waiting for input or its schedule
    RUNNING = "running"  # in a run (in `leo status`: held by a live runtime)
    BACKOFF = "backoff"  # its last run failed; waiting before the next try
    FAILING = "failing"  # FAILING_AFTER or more failed runs in a row (still retried)
    STUCK = "stuck"  # its current run overran its `batch.seconds` bound by the stuck margin
    PAUSED = "paused"  # an operator paused it
    STOPPED = "stopped"  # not running anywhere
    REMOVED = "removed"  # in the store but no longer in the pipelines file
    ABANDONED = "abandoned"  # its run did not finish within the drain timeout; left uncommitted
    CRASHED = "crashed"  # the runner itself failed (a bug in leo-runtime, not in the bot)


FAILING_AFTER = 5
"""Consecutive failed runs after which a bot shows as failing (and /healthz as degraded)."""

BACKOFF_BASE_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 60.0
"""A failed bot waits BASE, 2 x BASE, 4 x BASE ... seconds, never more than MAX (jitter included)."""

BACKOFF_JITTER = 0.2
"""Each wait is shortened by up to this fraction, at random, so that bots failing together spread out."""


def backoff_delay(
    failures: int,
    *,
    base: float = BACKOFF_BASE_SECONDS,
    cap: float = BACKOFF_MAX_SECONDS,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait after `failures` failed runs in a row: ``base * 2**(failures-1)`` capped at
    `cap`, then shortened by a random jitter, so the wait never exceeds `cap`."""
    exponent = min(max(failures, 1) - 1, 62)  # 2**62 seconds is already far beyond any cap
    delay = min(cap, base * 2.0**exponent)
    return delay * (1.0 - BACKOFF_JITTER * (rng or random).random())


STUCK_FACTOR = 3.0
STUCK_MIN_MARGIN_SECONDS = 1.0


def stuck_after(seconds: float) -> float:
    """How long a run with a `seconds` bound may last before it counts as stuck.

    The bound is checked between events, so a slow event makes a run overrun it a little; three
    times the bound (at least the bound plus one second) leaves room for that.
    """
    return max(seconds * STUCK_FACTOR, seconds + STUCK_MIN_MARGIN_SECONDS)
