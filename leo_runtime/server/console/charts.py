"""Charts drawn on the server as SVG (no JavaScript): a bot's reads, writes and errors over time.

Every bucket is a bar with a ``<title>`` (the browser shows it on hover), so the numbers are
there without a script. Text is escaped; sizes are in a viewBox, so a chart scales with the page.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from markupsafe import Markup, escape

WIDTH = 600
SERIES_HEIGHT = 56
LABEL_WIDTH = 80
GAP = 14
SERIES = (("reads", "reads", "events read", "read"), ("writes", "writes", "events written", "write"),
          ("errors", "errors", "failed runs", "error"))


def activity_chart(activity: dict[str, object], title: str) -> Markup:
    """Three stacked strips (reads, writes, errors), each with its own scale, over the same buckets."""
    start = int(activity["start"])  # type: ignore[call-overload]
    step = int(activity["step"])  # type: ignore[call-overload]
    strips = []
    y = 12
    for key, name, unit, css in SERIES:
        values: Sequence[int] = activity[key]  # type: ignore[assignment]
        strips.append(_strip(values, start, step, y, name, unit, css))
        y += SERIES_HEIGHT + GAP
    count = len(activity["reads"])  # type: ignore[arg-type]
    axis_y = y - GAP + 14
    labels = [
        f'<text class="axis" x="{LABEL_WIDTH}" y="{axis_y}">{escape(clock_label(start, step))}</text>',
        f'<text class="axis" x="{LABEL_WIDTH + (WIDTH - LABEL_WIDTH) / 2:.0f}" y="{axis_y}" text-anchor="middle">'
        f'{escape(clock_label(start + step * (count // 2), step))}</text>',
        f'<text class="axis" x="{WIDTH}" y="{axis_y}" text-anchor="end">now</text>',
    ]
    height = axis_y + 4
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>{"".join(strips)}{"".join(labels)}</svg>'
    )


def _strip(values: Sequence[int], start: int, step: int, top: int, name: str, unit: str, css: str) -> str:
    peak = max(values) if values else 0
    scale = peak or 1
    inner = WIDTH - LABEL_WIDTH
    width = inner / max(len(values), 1)
    bars = []
    for index, value in enumerate(values):
        if not value:
            continue
        height = max(1.5, SERIES_HEIGHT * value / scale)
        x = LABEL_WIDTH + index * width
        tip = f"{value:,} {unit} at {clock_label(start + index * step, step)}"
        bars.append(
            f'<rect class="bar {css}" x="{x:.1f}" y="{top + SERIES_HEIGHT - height:.1f}" width="{max(width - 1, 1):.1f}" '
            f'height="{height:.1f}"><title>{escape(tip)}</title></rect>'
        )
    bottom = top + SERIES_HEIGHT + 0.5
    peak_label = f"max {_short(peak)}" if peak else "none"
    return (
        f'<g class="strip"><text class="series {css}" x="0" y="{top + 14}">{escape(name)}</text>'
        f'<text class="axis" x="0" y="{top + 30}">{escape(_short(sum(values)))} total</text>'
        f'<line class="grid" x1="{LABEL_WIDTH}" x2="{WIDTH}" y1="{top + 0.5}" y2="{top + 0.5}"/>'
        f'<text class="axis" x="{WIDTH}" y="{top - 3}" text-anchor="end">{escape(peak_label)}</text>'
        f'<line class="base" x1="{LABEL_WIDTH}" x2="{WIDTH}" y1="{bottom}" y2="{bottom}"/>{"".join(bars)}</g>'
    )


def clock_label(ms: int, step: int) -> str:
    """A bucket's start as the axis shows it (UTC): ``14:05``, with the day for day-long spans."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return f"{moment:%b %d %H:%M}" if step >= 600_000 else f"{moment:%H:%M}"


def _short(value: int) -> str:
    """1234 -> 1.2k: a compact number for an axis."""
    for limit, suffix in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if value >= limit:
            return f"{value / limit:.1f}".rstrip("0").rstrip(".") + suffix
    return str(value)
