"""A pipeline drawn as an SVG graph: bots and queues in columns, left to right along the flow.

Columns come from the longest path to each node (pipelines are acyclic: the loader refuses a
cycle); within a column nodes keep the order of the file. Bots are links to their pages,
coloured by health; each edge from a queue to a bot carries that bot's lag on it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from markupsafe import Markup, escape

COLUMN = 206
NODE_WIDTH = 168
BOT_HEIGHT = 46
QUEUE_HEIGHT = 30
ROW = 64
PAD = 8


def pipeline_svg(pipeline: dict[str, Any]) -> Markup:
    """The SVG of one pipeline from `operations.pipeline_report`."""
    bots = {bot["id"]: bot for bot in pipeline["bots"]}
    order: list[str] = []
    for bot in pipeline["bots"]:  # queues take their place beside the bots that touch them
        for edge in pipeline["edges"]:
            if bot["id"] in (edge["from"], edge["to"]):
                for name in (edge["from"], edge["to"]):
                    if name not in order:
                        order.append(name)
        if bot["id"] not in order:
            order.append(bot["id"])
    rank = {name: 0 for name in order}
    for _ in order:  # longest path: at most one pass per node settles an acyclic graph
        for edge in pipeline["edges"]:
            rank[edge["to"]] = max(rank[edge["to"]], rank[edge["from"]] + 1)
    columns: dict[int, list[str]] = {}
    for name in order:
        columns.setdefault(rank[name], []).append(name)
    place: dict[str, tuple[float, float]] = {}
    for column, names in columns.items():
        for row, name in enumerate(names):
            place[name] = (PAD + column * COLUMN, PAD + row * ROW + (BOT_HEIGHT - _height(name, bots)) / 2)
    width = PAD * 2 + (max(columns) if columns else 0) * COLUMN + NODE_WIDTH
    height = PAD * 2 + max((len(names) for names in columns.values()), default=1) * ROW - (ROW - BOT_HEIGHT)
    parts = [_edge(edge, place, bots) for edge in pipeline["edges"]]
    parts += [_bot(bots[name], place[name]) if name in bots else _queue(name, place[name]) for name in order]
    label = f"pipeline {pipeline['name']}"
    return Markup(
        f'<svg class="graph" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">'
        '<defs><marker id="arrow" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L8,4 L0,8 z" class="arrowhead"/></marker></defs>'
        f'{"".join(parts)}</svg>'
    )


def _height(name: str, bots: dict[str, Any]) -> float:
    return BOT_HEIGHT if name in bots else QUEUE_HEIGHT


def _edge(edge: dict[str, Any], place: dict[str, tuple[float, float]], bots: dict[str, Any]) -> str:
    x1, y1 = place[edge["from"]]
    x2, y2 = place[edge["to"]]
    x1 += NODE_WIDTH
    y1 += _height(edge["from"], bots) / 2
    y2 += _height(edge["to"], bots) / 2
    middle = (x1 + x2) / 2
    path = f"M{x1:.0f},{y1:.0f} C{middle:.0f},{y1:.0f} {middle:.0f},{y2:.0f} {x2 - 2:.0f},{y2:.0f}"
    lagging = edge["lag"] is not None and edge["lag"] > 0
    kind = " lagging" if lagging else " dead" if edge.get("dead_letter") else ""
    parts = [f'<path class="edge{kind}" d="{path}" marker-end="url(#arrow)"/>']
    if edge.get("dead_letter"):
        parts.append(f'<text class="lag" x="{x2 - 8:.0f}" y="{y2 + 16:.0f}" text-anchor="end">dead letters</text>')
    if edge["lag"] is not None:
        text = f"lag {edge['lag']:,}" + (f" · {_seconds(edge['lag_seconds'])}" if lagging else "")
        parts.append(f'<text class="lag{" lagging" if lagging else ""}" x="{middle:.0f}" y="{(y1 + y2) / 2 - 5:.0f}" '
                     f'text-anchor="middle">{escape(text)}</text>')
    return "".join(parts)


def _bot(bot: dict[str, Any], at: tuple[float, float]) -> str:
    x, y = at
    href = "/console/bots/" + quote(bot["id"], safe="")
    return (
        f'<a href="{escape(href)}" class="node bot {escape(bot["health"])}" data-bot="{escape(bot["id"])}">'
        f'<title>{escape(bot["id"])}: {escape(bot["state"])} ({escape(bot["use"])})</title>'
        f'<rect x="{x:.0f}" y="{y:.0f}" width="{NODE_WIDTH}" height="{BOT_HEIGHT}" rx="8"/>'
        f'<circle class="dot" cx="{x + 14:.0f}" cy="{y + 16:.0f}" r="5"/>'
        f'<text class="name" x="{x + 26:.0f}" y="{y + 20:.0f}">{escape(_cut(bot["id"], 18))}</text>'
        f'<text class="sub" x="{x + 26:.0f}" y="{y + 36:.0f}">{escape(_cut(bot["state"] + " · " + bot["use"], 22))}</text>'
        "</a>"
    )


def _queue(name: str, at: tuple[float, float]) -> str:
    x, y = at
    href = "/console/queues/" + quote(name, safe="")
    return (
        f'<a href="{escape(href)}" class="node queue"><title>queue {escape(name)}</title>'
        f'<rect x="{x:.0f}" y="{y:.0f}" width="{NODE_WIDTH}" height="{QUEUE_HEIGHT}" rx="15"/>'
        f'<text class="name" x="{x + NODE_WIDTH / 2:.0f}" y="{y + 19:.0f}" text-anchor="middle">{escape(_cut(name, 24))}</text>'
        "</a>"
    )


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _seconds(value: float | None) -> str:
    """3.2 -> '3s', 125 -> '2m 5s', 7300 -> '2h 1m': how long, for a label."""
    seconds = int(value or 0)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60}m"
