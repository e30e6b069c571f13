"""WHEN: where a reset (or a first start) puts a checkpoint. One resolver, one rule set, for
``leo checkpoints reset --to``, ``leo streams reset --to``, ``POST /v1/streams/{id}/reset``, a
stream's ``start_at`` and a bot's ``start:`` (README, "WHEN: resets and starts").

A checkpoint is the position of the last event processed: a reader goes on just after it.

=================  ==========================================================================
form               the checkpoint moves to
=================  ==========================================================================
``earliest``       just before the oldest event within retention
``latest``         the newest position: everything so far is skipped
``now``            (``start_at`` only) as ``latest``, taken when the stream is created
RFC 3339 time      just before the first event written at or after that time; the time needs
                   a UTC offset (``Z`` or ``+02:00``) and may not be in the future
``-PT1H``, ``-1h`` that long ago (a negative ISO 8601 or short duration, with its unit)
position           that position: a number as ``leo checkpoints list`` shows it, or an eid
=================  ==========================================================================

Every target is clamped to retention: a time older than ``retention`` (or a position older than
the oldest event kept) gives ``earliest`` and ``clamped: true``, on a fresh store as on a full
one. A position past the newest event, a future time, a time without an offset, a positive
duration, a bare negative number and anything else is an `InputError` naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import InputError
from .events import position_of
from .safetext import shown
from .timeutil import format_time, now_ms, parse_duration, parse_time

if TYPE_CHECKING:
    from .store import Store

RESET_FORMS = frozenset({"earliest", "latest", "time", "ago", "position"})
"""What every reset takes."""
STREAM_START_FORMS = frozenset({"now", "latest", "earliest", "time", "ago"})
"""What a new stream's ``start_at`` takes (``now``, or ``latest``: its first change is the next one committed)."""
BOT_START_FORMS = frozenset({"earliest", "latest", "time", "ago"})
"""What a bot's ``start:`` takes (where its first run begins)."""

_NAMES = {"earliest": "earliest", "latest": "latest", "now": "now", "time": "an RFC 3339 time (2026-11-26T19:00:00Z)",
          "ago": "a negative duration (-PT1H: that long ago)", "position": "a position (a number or an eid)"}
_MAX_TEXT = 100
_DIGITS = re.compile(r"[0-9]+", re.ASCII)


@dataclass(frozen=True)
class When:
    """A parsed WHEN (no store needed): its ``kind`` (``earliest``, ``latest``, ``now``,
    ``time``, ``ago`` or ``position``) with the time in epoch milliseconds (``time``), the
    length in milliseconds (``ago``) or the ``position``."""

    kind: str
    text: str
    moment: int | None = None
    ago_ms: int | None = None
    position: int | None = None


@dataclass(frozen=True)
class Target:
    """Where a WHEN puts a checkpoint: a global position; ``clamped`` when retention moved it
    later than asked; ``description`` says it in words (for the CLI)."""

    position: int
    clamped: bool
    description: str


_SHORT = {"time": "an RFC 3339 time", "ago": "a negative duration like -PT1H", "position": "a position"}


def forms_text(allow: Collection[str], *, short: bool = False) -> str:
    """The accepted forms in words, for messages and help (`short`: without examples)."""
    names = [(_SHORT.get(kind, kind) if short else _NAMES[kind]) for kind in _NAMES if kind in allow]
    return ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]


def parse_when(value: object, *, field: str = "to", allow: Collection[str] = RESET_FORMS) -> When:
    """Read a WHEN (see the module docstring); `InputError` naming `field` for anything else."""
    if not isinstance(value, str):
        raise InputError(f"{field}: {shown(value)} is not text: use {forms_text(allow)}")
    text = value.strip()
    when = _read(text, field, allow)
    if when.kind not in allow:
        raise InputError(f"{field}: {shown(text)} is not taken here: use {forms_text(allow)}")
    return when


def _read(text: str, field: str, allow: Collection[str]) -> When:
    if not text:
        raise InputError(f"{field}: it is empty: use {forms_text(allow)}")
    if text in ("earliest", "latest", "now"):
        return When(text, text)
    if len(text) > _MAX_TEXT:
        raise InputError(f"{field}: {shown(text)} is too long to be a time, a duration or a position")
    if text[:1] in "+-Pp" and not _DIGITS.fullmatch(text[1:]):  # a duration (a time starts with its year)
        try:
            seconds = parse_duration(text, what=field)
        except ValueError as exc:
            raise InputError(f"{field}: {exc}") from None
        if not text.startswith("-") or seconds > 0:
            raise InputError(f"{field}: {shown(text)}: a duration means that long ago, so it starts with '-' (like -PT1H)")
        return When("ago", text, ago_ms=-int(seconds * 1000))
    if text[:1] in "+-":
        raise InputError(f"{field}: {shown(text)}: a number is a position (0 or more); for a time ago write the "
                         "duration with its unit, like -PT1H or -90s")
    if len(text) >= 10 and text[4:5] == "-" and text[:4].isdecimal():
        try:
            moment = parse_time(text)
        except ValueError as exc:
            raise InputError(f"{field}: {exc}") from None
        if moment > now_ms():
            raise InputError(f"{field}: {shown(text)} is in the future; use latest to skip everything so far")
        return When("time", text, moment=moment)
    try:
        position = position_of(text) if _DIGITS.fullmatch(text) or text.startswith("z/") else None
    except ValueError:
        position = None
    if position is None:
        raise InputError(f"{field}: {shown(text)} is not a WHEN: use {forms_text(allow)}")
    return When("position", text, position=position)


def resolve(store: Store, when: When | str, retention_seconds: float, *, field: str = "to",
            allow: Collection[str] = RESET_FORMS) -> Target:
    """Where `when` puts a checkpoint on `store` now (the rules of the module docstring).

    Reads the store's positions and times in separate statements: the answer is as of the
    moment of the call (events appended meanwhile are after it, as for any later event)."""
    if isinstance(when, str):
        when = parse_when(when, field=field, allow=allow)
    now = now_ms()
    cutoff = now - int(retention_seconds * 1000)
    floor = retention_floor(store, retention_seconds, now)
    if when.kind == "earliest":
        return Target(floor, False, "the oldest retained event")
    if when.kind in ("latest", "now"):
        return Target(max(store.last_position(), floor), False, "the newest event (skip everything so far)")
    if when.kind == "position":
        assert when.position is not None
        last = store.last_position()
        if when.position > last:
            raise InputError(f"{field}: position {when.position} is past the newest event ({last})")
        clamped = when.position < floor
        return Target(max(when.position, floor), clamped,
                      "the oldest retained event (clamped)" if clamped else f"position {when.position}")
    moment = when.moment if when.kind == "time" else now - (when.ago_ms or 0)
    assert moment is not None
    position = store.position_at(moment)
    clamped = moment < cutoff or position < floor
    return Target(max(position, floor), clamped, f"the first event at or after {format_time(moment)}"
                  + (" (clamped to the oldest retained event)" if clamped else ""))


def retention_floor(store: Store, retention_seconds: float, now: int | None = None) -> int:
    """The checkpoint of ``earliest``: just before the oldest event within retention."""
    cutoff = (now_ms() if now is None else now) - int(retention_seconds * 1000)
    return max(store.first_position(), store.position_at(cutoff))
