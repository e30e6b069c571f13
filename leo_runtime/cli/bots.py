"""`leo bots list|pause|resume`."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ..config import DEFAULT_FILE
from ..operations import check_bot
from ..registry import BotRegistry
from .app import bots_app
from .common import FileOption, JsonOption, StoreOption, emit_json, handles_errors, out, project_store


@bots_app.command("list")
@handles_errors
def bots_list(file: FileOption = Path(DEFAULT_FILE), store: StoreOption = None, as_json: JsonOption = False) -> None:
    """Built-in and installed bots with their settings."""
    entries = []
    for entry in BotRegistry().entries():
        settings = []
        if entry.cls is not None:
            for name, info in entry.cls.Settings.model_fields.items():
                settings.append(
                    {
                        "name": info.alias or name,
                        "type": _type_name(info.annotation),
                        "required": info.is_required(),
                        "default": None if info.is_required() else info.get_default(call_default_factory=True),
                        "description": info.description,
                    }
                )
        entries.append(
            {
                "name": entry.name,
                "origin": entry.origin,
                "kind": entry.cls.kind if entry.cls else None,
                "description": (entry.cls.description or (entry.cls.__doc__ or "").strip().splitlines()[0])
                if entry.cls else "failed to load",
                "settings": settings,
            }
        )
    if as_json:
        emit_json(entries)
        return
    table = Table(title="bots", title_justify="left")
    for column in ("name", "kind", "origin", "settings", "description"):
        table.add_column(column, overflow="fold")
    for entry in entries:
        shown = ", ".join(
            f"{s['name']}: {s['type']}" + ("" if s["required"] else f" = {json.dumps(s['default'], default=str)}")
            for s in entry["settings"]
        )
        table.add_row(entry["name"], entry["kind"] or "-", entry["origin"], shown, entry["description"])
    out.print(table)
    out.print("custom bots: use module:Class or ./file.py:Class in pipelines.yaml", markup=False)


def _type_name(annotation: Any) -> str:
    name = getattr(annotation, "__name__", None)
    if name == "Annotated" or name is None:
        text = re.sub(r"\b(?:\w+\.)+(\w+)", r"\1", str(annotation))  # module paths say nothing to users
        return "query" if "Query" in text else text
    return "query" if name == "Query" else name


def _set_paused(bot_id: str, paused: bool, file: Path, store: str | None, as_json: bool) -> None:
    with project_store(file, store) as (the_store, config):
        check_bot(the_store, config, bot_id)
        the_store.set_paused(bot_id, paused)
    if as_json:
        emit_json({"bot": bot_id, "paused": paused})
    else:
        out.print(f"bot '{bot_id}' {'paused' if paused else 'resumed'}", markup=False)


@bots_app.command("pause")
@handles_errors
def bots_pause(
    bot: Annotated[str, typer.Argument(help="bot id")],
    file: FileOption = Path(DEFAULT_FILE),
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Pause a bot: it finishes its current run and waits (its checkpoint stays)."""
    _set_paused(bot, True, file, store, as_json)


@bots_app.command("resume")
@handles_errors
def bots_resume(
    bot: Annotated[str, typer.Argument(help="bot id")],
    file: FileOption = Path(DEFAULT_FILE),
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Resume a paused bot."""
    _set_paused(bot, False, file, store, as_json)


