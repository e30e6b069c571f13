"""Time in the runtime: integer milliseconds since the epoch, UTC everywhere.

Parsing accepts what users write in YAML, the CLI and the HTTP API: RFC 3339 times (with their
UTC offset: a naive time is refused), ISO 8601
durations (``P7D``, ``PT1H``, ``-PT1H``) and short durations (``500ms``, ``5s``, ``10m``, ``2h``,
``7d``, or a bare number of seconds). Parsing is strict and bounded: ASCII digits only, durations
up to `MAX_DURATION_SECONDS` either way, times between the years 1 and 9999; anything else is a
ValueError with a one-line message, never an OverflowError.
"""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime, timedelta

from .safetext import shown

MAX_DURATION_SECONDS = 100 * 365.25 * 86400  # a hundred years
_MAX_TEXT = 64  # a longer "duration" or "time" is not one
# The times format_time can write: 0001-01-01T00:00:00.000Z to 9999-12-31T23:59:59.999Z.
MIN_TIME_MS = int(datetime(1, 1, 1, tzinfo=UTC).timestamp() * 1000)
MAX_TIME_MS = int(datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC).timestamp() * 1000)

_ISO_DURATION = re.compile(
    r"^(?P<sign>[-+])?P(?!$)(?:(?P<weeks>\d+(?:[.,]\d+)?)W)?(?:(?P<days>\d+(?:[.,]\d+)?)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+(?:[.,]\d+)?)H)?(?:(?P<minutes>\d+(?:[.,]\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:[.,]\d+)?)S)?)?$",
    re.IGNORECASE | re.ASCII,
)
_SHORT_DURATION = re.compile(r"^(?P<sign>[-+])?(?P<value>\d+(?:\.\d+)?)\s*(?P<unit>ms|s|m|h|d|w)?$", re.ASCII)
# RFC 3339, with its UTC offset: a time without one (or a date alone) means a different instant
# on every machine, so it is refused. Python's own fromisoformat also takes week dates, ordinal
# dates and the basic format: not here.
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:[Zz]|[+-]\d{2}:\d{2})$", re.ASCII
)
_NAIVE = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?$", re.ASCII)
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}
_ISO_SECONDS = {"weeks": 604800, "days": 86400, "hours": 3600, "minutes": 60, "seconds": 1}


_frozen_ms: int | None = None  # set by `freeze_clock` (leo test); None: the wall clock


def now_ms() -> int:
    """The current wall-clock time in integer milliseconds since the epoch (or the frozen time,
    see `freeze_clock`)."""
    frozen = _frozen_ms
    return time.time_ns() // 1_000_000 if frozen is None else frozen


def freeze_clock(ms: int | None) -> int | None:
    """Stop `now_ms` at `ms` (None: back to the wall clock) and return the previous setting.

    For `leo test`: there time stands still unless a test moves it on, so a test's outputs
    (``changed_at``, timestamps, batches sealed on an interval) are the same on every run.
    `leo run` never calls it.
    """
    global _frozen_ms
    previous, _frozen_ms = _frozen_ms, ms
    return previous


def parse_duration(value: str | float, *, what: str = "duration") -> float:
    """Parse a duration into seconds (may be negative when written with a leading ``-``).

    Accepts ISO 8601 (``P7D``, ``PT1M30S``, ``-PT1H``), short forms (``500ms``, ``5s``, ``10m``,
    ``2h``, ``7d``, ``1w``) and plain numbers of seconds, up to `MAX_DURATION_SECONDS` either
    way. Raises ValueError with a message that shows the accepted forms.
    """
    if isinstance(value, bool):
        raise ValueError(f"invalid {what} {value!r}: expected seconds, '5s', '10m' or an ISO 8601 duration")
    if isinstance(value, int | float):
        return _bounded_seconds(float(value), value, what)
    text = str(value).strip()
    match = _SHORT_DURATION.match(text) if len(text) <= _MAX_TEXT else None
    if match:
        seconds = float(match["value"]) * _UNIT_SECONDS[match["unit"]]
        return _bounded_seconds(-seconds if match["sign"] == "-" else seconds, text, what)
    match = _ISO_DURATION.match(text) if len(text) <= _MAX_TEXT else None
    if match:
        seconds = sum(
            float(match[name].replace(",", ".")) * factor
            for name, factor in _ISO_SECONDS.items()
            if match[name] is not None
        )
        return _bounded_seconds(-seconds if match["sign"] == "-" else seconds, text, what)
    raise ValueError(
        f"invalid {what} {shown(text)}: expected seconds, a short form like '5s', '10m', '2h', '7d', "
        "or an ISO 8601 duration like 'PT1M' or 'P7D'"
    )


def _bounded_seconds(seconds: float, written: object, what: str) -> float:
    if not math.isfinite(seconds):
        raise ValueError(f"invalid {what} {shown(written)}: not a finite number of seconds")
    if abs(seconds) > MAX_DURATION_SECONDS:
        raise ValueError(f"invalid {what} {shown(written)}: longer than 100 years")
    return seconds


def parse_time(value: str) -> int:
    """Parse an RFC 3339 time (``2026-11-26T19:10:33.123Z``) into epoch milliseconds.

    The UTC offset is required (``Z``, ``+02:00``): a time without one, or a date alone, is
    refused. Raises ValueError naming the accepted form (also for times outside the years 1
    to 9999).
    """
    text = value.strip()
    problem = "expected RFC 3339 like '2026-11-26T19:10:33Z'"
    if len(text) <= _MAX_TEXT and _NAIVE.match(text):
        problem = "it has no UTC offset: add Z (UTC) or one like +02:00, as in '2026-11-26T19:10:33Z'"
    elif len(text) <= _MAX_TEXT and _RFC3339.match(text):
        if text.endswith(("z", "Z")):
            text = text[:-1] + "+00:00"
        try:
            ms = int(datetime.fromisoformat(text).timestamp() * 1000)
            if MIN_TIME_MS <= ms <= MAX_TIME_MS:
                return ms
            problem = "outside the years 1 to 9999 in UTC"
        except (ValueError, OverflowError) as exc:
            problem = f"{exc} (expected RFC 3339 like '2026-11-26T19:10:33Z')"
    raise ValueError(f"invalid time {shown(value)}: {problem}")


def format_time(ms: int | None) -> str | None:
    """Format epoch milliseconds as RFC 3339 UTC with milliseconds (``...T19:10:33.123Z``)."""
    if ms is None:
        return None
    moment = _EPOCH + timedelta(milliseconds=ms)  # exact: no float rounding near a second
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T"
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}.{ms % 1000:03d}Z"
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
