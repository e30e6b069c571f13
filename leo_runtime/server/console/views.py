"""The console's jinja2 environment: templates shipped in this package, escaping always on, and
the filters the pages share (times, durations, numbers, URLs)."""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:  # imported at the first page: `leo run` is ready without it
    import jinja2

NOTES = {
    "paused": "Paused: the bot finishes its current run, then waits.",
    "resumed": "Resumed: the bot runs again.",
    "reset": "Checkpoint moved: nothing to redo or skip.",
    "redo": "Checkpoint moved back: {n} event(s) will be processed again.",
    "skip": "Checkpoint moved forward: {n} event(s) skipped.",
    "redriven": "{n} dead-lettered event(s) sent back.",
    "replayed": "{n} unfetched batch(es) will be notified again.",
    "webhook-paused": "Webhook paused: its batches are still sealed, notifications wait.",
    "webhook-resumed": "Webhook resumed.",
    "revoked": "Partner revoked: its token is refused from the next request on.",
    "signed-out": "Signed out.",
}
"""What an action's redirect says (its ``note`` names one; ``n`` is a count): fixed texts, so a
crafted link cannot make the page say anything else."""


@functools.cache
def environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("leo_runtime.server.console", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=when, dur=duration, num=number, url=lambda text: quote(str(text), safe=""), js=compact_json)
    env.globals.update(note_text=note_text)
    return env


def render(template: str, **values: Any) -> str:
    return environment().get_template(template).render(**values)


def note_text(code: str | None, count: str | None) -> str | None:
    """The message of an action's ``note`` (None for an unknown one)."""
    text = NOTES.get(code or "")
    if text is None:
        return None
    n = int(count) if count and count.isascii() and count.isdecimal() and len(count) < 12 else 0
    return text.format(n=f"{n:,}")


def when(value: str | None) -> str:
    """An RFC 3339 time as the pages show it: ``2026-11-26 19:10:33`` (UTC), or ``-``."""
    if not value:
        return "-"
    return value.replace("T", " ")[:19]


def duration(value: float | None) -> str:
    """Seconds as ``850 ms``, ``12 s``, ``4m 05s``, ``3h 20m`` or ``2d 4h``."""
    seconds = float(value or 0)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms" if seconds else "0 s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h {whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d {whole % 86400 // 3600}h"


def number(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
