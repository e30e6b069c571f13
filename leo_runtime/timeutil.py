"""Time in the runtime: integer milliseconds since the epoch, UTC everywhere.

Parsing accepts what users write in YAML, the CLI and the HTTP API: RFC 3339 times, ISO 8601
durations (``P7D``, ``PT1H``, ``-PT1H``) and short durations (``500ms``, ``5s``, ``10m``, ``2h``,
``7d``, or a bare number of seconds).
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

_ISO_DURATION = re.compile(
    r"^(?P<sign>[-+])?P(?!$)(?:(?P<weeks>\d+(?:[.,]\d+)?)W)?(?:(?P<days>\d+(?:[.,]\d+)?)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+(?:[.,]\d+)?)H)?(?:(?P<minutes>\d+(?:[.,]\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:[.,]\d+)?)S)?)?$",
    re.IGNORECASE,
)
_SHORT_DURATION = re.compile(r"^(?P<sign>[-+])?(?P<value>\d+(?:\.\d+)?)\s*(?P<unit>ms|s|m|h|d|w)?$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}
_ISO_SECONDS = {"weeks": 604800, "days": 86400, "hours": 3600, "minutes": 60, "seconds": 1}


def now_ms() -> int:
    """The current wall-clock time in integer milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


def parse_duration(value: str | float, *, what: str = "duration") -> float:
    """Parse a duration into seconds (may be negative when written with a leading ``-``).

    Accepts ISO 8601 (``P7D``, ``PT1M30S``, ``-PT1H``), short forms (``500ms``, ``5s``, ``10m``,
    ``2h``, ``7d``, ``1w``) and plain numbers of seconds. Raises ValueError with a message that
    shows the accepted forms.
    """
    if isinstance(value, bool):
        raise ValueError(f"invalid {what} {value!r}: expected seconds, '5s', '10m' or an ISO 8601 duration")
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    match = _SHORT_DURATION.match(text)
    if match:
        seconds = float(match["value"]) * _UNIT_SECONDS[match["unit"]]
        return -seconds if match["sign"] == "-" else seconds
    match = _ISO_DURATION.match(text)
    if match:
        seconds = sum(
            float(match[name].replace(",", ".")) * factor
            for name, factor in _ISO_SECONDS.items()
            if match[name] is not None
        )
        return -seconds if match["sign"] == "-" else seconds
    raise ValueError(
        f"invalid {what} {text!r}: expected seconds, a short form like '5s', '10m', '2h', '7d', "
        "or an ISO 8601 duration like 'PT1M' or 'P7D'"
    )



def parse_time(value: str) -> int:
    """Parse an RFC 3339 time (``2026-11-26T19:10:33.123Z``) into epoch milliseconds.

    A time without an offset is taken as UTC. Raises ValueError naming the accepted form.
    """
    text = value.strip()
    if text.endswith(("z", "Z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"invalid time {value!r}: expected RFC 3339 like '2026-11-26T19:10:33Z'"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def format_time(ms: int | None) -> str | None:
    """Format epoch milliseconds as RFC 3339 UTC with milliseconds (``...T19:10:33.123Z``)."""
    if ms is None:
        return None
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
