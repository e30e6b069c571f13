"""`leo bots list|pause|resume`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ..config import DEFAULT_FILE
from .app import bots_app
from .common import FileOption, JsonOption, StoreOption, Table, emit_json, handles_errors, out, project_store


@bots_app.command("list")
@handles_errors
def bots_list(file: FileOption = Path(DEFAULT_FILE), store: StoreOption = None, as_json: JsonOption = False) -> None:
    """Built-in and installed bots with their settings."""
    from ..registry import BotRegistry

    entries = []
    for entry in BotRegistry().entries():
        settings = []
        if entry.cls is not None:
            schema = entry.cls.Settings.model_json_schema()
            properties, defs = schema.get("properties", {}), schema.get("$defs", {})
            for name, info in entry.cls.Settings.model_fields.items():
                key = info.alias or name
                default = None if info.is_required() else info.get_default(call_default_factory=True)
                settings.append(
                    {
                        "name": key,
                        "type": setting_type(properties.get(key, {}), defs),
                        "required": info.is_required(),
                        "default": _plain(default),
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


def setting_type(prop: dict[str, Any], defs: dict[str, Any]) -> str:
    """A setting's type as its users write it, read from the JSON Schema that `leo schema` prints:
    ``string``, ``integer``, ``duration``, ``"full" | "partial"``, ``list of string``, ``query``,
    ``json_dir | sqlite_table | http_poll`` (a source's kinds). Never a Python repr."""
    if prop.get("title") == "Leo query":
        return "query"
    if "$ref" in prop:
        target = defs.get(prop["$ref"].rsplit("/", 1)[-1], {})
        kind = target.get("properties", {}).get("kind", {})
        if "const" in kind or len(kind.get("enum", [])) == 1:
            return str(kind.get("const", (kind.get("enum") or [""])[0]))
        return "mapping"
    if "discriminator" in prop and prop["discriminator"].get("mapping"):
        return " | ".join(prop["discriminator"]["mapping"])
    options = prop.get("anyOf") or prop.get("oneOf")
    if options:
        names = [setting_type(option, defs) for option in options]
        if "number" in names and any("ISO 8601" in str(option.get("description", "")) for option in options):
            names = ["duration" if name == "number" else name for name in names if name != "string"]
        return " | ".join(dict.fromkeys(names))
    if "enum" in prop:
        return " | ".join(json.dumps(value) for value in prop["enum"])
    if "const" in prop:
        return json.dumps(prop["const"])
    kind = prop.get("type")
    if isinstance(kind, list):
        return " | ".join(kind)
    if kind == "array":
        items = prop.get("items")
        return f"list of {setting_type(items, defs)}" if items else "list"
    if kind == "object":
        return "mapping"
    return str(kind or "any")


def _plain(value: Any) -> Any:
    """A default as JSON shows it (a query as its mapping, never a Python repr)."""
    from ..query import Query

    if isinstance(value, Query):
        return value.spec
    if value is None or isinstance(value, (str, int, float, bool, list, dict)):
        return value
    return str(value)


def _set_paused(bot_id: str, paused: bool, file: Path, store: str | None, as_json: bool) -> None:
    from ..operations import set_bot_paused

    with project_store(file, store) as (the_store, config):
        set_bot_paused(the_store, config, bot_id, paused)
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


