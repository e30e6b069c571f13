"""Token buckets per caller, exact to the nanosecond, and the RateLimit headers they answer with.

A bucket holds up to `burst` tokens and gains `rate` tokens per second; a call takes one token
or is refused. Over any span of T seconds a caller therefore gets at most ``burst + rate * T``
calls, and a caller that never goes faster than `rate` (after at most `burst` at once) is never
refused. Levels are integers (units of ``1 / (1e9 * q)`` token for a rate of ``p/q`` per
second), so no rounding ever lets an extra call through or refuses a conforming one.

The clock is injectable (``clock() -> nanoseconds``): tests drive it by hand instead of sleeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..store.base_hosts import HostStore

NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to one call: allowed or not, and what the headers tell the caller."""

    allowed: bool
    limit: int  # the most calls a full bucket allows at once
    remaining: int  # whole tokens left after this call
    reset_ns: int  # until the bucket is full again
    retry_after_ns: int  # until the next call can pass (0 when this one passed)
    policy: str | None

    @property
    def headers(self) -> dict[str, str]:
        """``RateLimit-Limit``, ``-Remaining``, ``-Reset`` (and ``Retry-After`` on a refusal).

        Seconds are whole (HTTP delta-seconds), rounded up: waiting that long always suffices.
        """
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(_ceil_seconds(self.reset_ns)),
        }
        if self.policy:
            headers["RateLimit-Policy"] = self.policy
        if not self.allowed:
            headers["Retry-After"] = str(max(1, _ceil_seconds(self.retry_after_ns)))
        return headers


class TokenBuckets:
    """One token bucket per key (a partner), all with the same rate and burst. Thread-safe."""

    def __init__(self, rate: float, burst: float | None = None, *, clock: Callable[[], int] = time.monotonic_ns) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be more than zero, got {rate!r}")
        self.configured = rate  # as the setting gave it (a change of the setting is seen by comparing)
        exact_rate = Fraction(rate).limit_denominator(1_000_000)
        # A bucket smaller than one token would refuse every call.
        exact_burst = max(Fraction(1), Fraction(rate if burst is None else burst).limit_denominator(1_000_000))
        self.rate = exact_rate
        self.burst = exact_burst
        self.clock = clock
        self._unit = NS * exact_rate.denominator  # level units per token
        self._gain = exact_rate.numerator  # level units gained per nanosecond
        self._capacity = int(exact_burst * self._unit)
        self._limit = int(exact_burst)
        window = exact_burst / exact_rate
        self._policy = f"{self._limit};w={int(window)}" if window.denominator == 1 and self._limit == exact_burst else None
        self._levels: dict[Hashable, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def take(self, key: Hashable) -> Decision:
        """Take one token from `key`'s bucket if it has one; a new key starts with a full bucket."""
        with self._lock:
            now = self.clock()
            level, then = self._levels.get(key, (self._capacity, now))
            level, decision = self._step(level, then, now)
            self._levels[key] = (level, now)
        return decision

    def _step(self, level: int, then: int, now: int) -> tuple[int, Decision]:
        """A bucket at `level` when last taken from at `then`, asked at `now`: its new level and
        the answer."""
        level = min(self._capacity, level + max(0, now - then) * self._gain)
        allowed = level >= self._unit
        if allowed:
            level -= self._unit
        short = 0 if allowed else self._unit - level
        return level, Decision(
            allowed=allowed,
            limit=self._limit,
            remaining=level // self._unit,
            reset_ns=_ceil_div(self._capacity - level, self._gain),
            retry_after_ns=_ceil_div(short, self._gain),
            policy=self._policy,
        )


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _ceil_seconds(ns: int) -> int:
    return _ceil_div(ns, NS)


class SharedTokenBuckets(TokenBuckets):
    """The same buckets kept in the store (`HostStore.step_bucket`), so that every host of a
    cluster takes from one bucket per key: summed over the hosts, a caller gets at most ``burst +
    rate * T`` calls in T seconds. The clock is the wall clock (hosts share it, give or take their
    skew: a clock behind the last taker's adds no tokens, it never takes any back). A take is one
    short write transaction: call it off the event loop."""

    def __init__(self, store: HostStore, rate: float, burst: float | None = None, *, prefix: str,
                 clock: Callable[[], int] = time.time_ns) -> None:
        super().__init__(rate, burst, clock=clock)
        self.store = store
        self.prefix = prefix

    def take(self, key: Hashable) -> Decision:
        def step(level: int | None, then: int | None) -> tuple[int, int, Decision]:
            now = self.clock()
            if level is None or then is None:
                level, then = self._capacity, now
            now = max(now, then)
            level, decision = self._step(level, then, now)
            return level, now, decision

        return self.store.step_bucket(f"{self.prefix}{key}", step)
