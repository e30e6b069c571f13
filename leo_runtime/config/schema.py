"""The JSON Schema of pipelines.yaml (for editors): the models, with each bot's settings.

The schema accepts every file `leo validate` accepts, so an editor never marks a valid file red:

- any scalar may be a ``${VAR}`` interpolation (validation sees the value it becomes);
- a scalar may be written the ways validation reads it: a number or a boolean as text
  (``"8765"``, ``"yes"``), a boolean as 0 or 1, an integer as a boolean (pydantic's lax mode);
- custom bots (``./bots/x.py:Class``, ``module:Class``) named in the file get their settings
  checked too (`leo schema -f FILE` imports them, as `leo validate` does).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..bot import Bot
from ..registry import BotRegistry
from .models import PipelinesFile

INTERPOLATION = {"type": "string", "pattern": r"\$\{", "description": "${VAR}: the value of an environment variable"}
"""A ``${...}`` string: validation sees the value it becomes, so any scalar may be one."""

# Text that pydantic's lax mode reads as an integer, a number or a boolean.
_INTEGER_TEXT = {"type": "string", "pattern": r"^\s*[+-]?\d+(_\d+)*(\.0*)?\s*$"}
_NUMBER_TEXT = {"type": "string", "pattern": r"^\s*[+-]?(\d+(_\d+)*(\.(\d+(_\d+)*)?)?|\.\d+(_\d+)*)([eE][+-]?\d+)?\s*$"}
_BOOLEAN_TEXT = {  # no inline flags: editors run these patterns as ECMAScript regular expressions
    "type": "string",
    "pattern": r"^\s*([01]|[yYnNtTfF]|[yY][eE][sS]|[nN][oO]|[oO][nN]|[oO][fF][fF]|[tT][rR][uU][eE]|[fF][aA][lL][sS][eE])\s*$",
}
_META = ("title", "description", "default", "examples", "deprecated")
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "dependentSchemas")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_VALUES = ("additionalProperties", "items", "not", "if", "then", "else", "contains")


def json_schema(registry: BotRegistry | None = None, bots: Mapping[str, type[Bot]] | None = None) -> dict[str, Any]:
    """The JSON Schema of pipelines.yaml, built from the models above and every known bot's
    `Settings` (``with:`` is checked against the settings of the bot ``use:`` names); `bots`
    adds custom bots by the ``use:`` string a file names them with."""
    registry = registry or BotRegistry()
    schema = PipelinesFile.model_json_schema(by_alias=True)
    definitions = schema.setdefault("$defs", {})
    bot_schema = definitions["BotConfig"]
    branches = []
    names = []
    known = [(entry.name, entry.cls) for entry in registry.entries() if entry.cls is not None]
    known += [(use, cls) for use, cls in sorted((bots or {}).items()) if use not in {name for name, _ in known}]
    for name, cls in known:
        names.append(name)
        settings = cls.Settings.model_json_schema(by_alias=True, ref_template=f"#/$defs/{name}.{{model}}")
        for key, value in settings.pop("$defs", {}).items():
            definitions[f"{name}.{key}"] = value
        settings["title"] = f"{name} settings"
        branches.append(
            {
                "if": {"properties": {"use": {"const": name}}, "required": ["use"]},
                "then": {"properties": {"with": settings}},
            }
        )
    bot_schema["properties"]["use"]["examples"] = names
    if branches:
        bot_schema["allOf"] = branches
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://leo-runtime.dev/schemas/pipelines-v1.json",
        **_as_written(schema),
        "title": "leo-runtime pipelines.yaml",
    }


def _as_written(node: Any) -> Any:
    """A schema that also takes each scalar as a file may write it (see the module docstring)."""
    if not isinstance(node, dict):
        return node
    result = dict(node)
    for key in _SCHEMA_MAPS:
        if isinstance(result.get(key), dict):
            result[key] = {name: _as_written(value) for name, value in result[key].items()}
    for key in _SCHEMA_LISTS:
        if isinstance(result.get(key), list):
            result[key] = [_as_written(value) for value in result[key]]
    for key in _SCHEMA_VALUES:
        if isinstance(result.get(key), dict):
            result[key] = _as_written(result[key])
    alternatives = _alternatives(result)
    if not alternatives:
        return result
    meta = {key: result.pop(key) for key in _META if key in result}
    return {**meta, "anyOf": [result, *alternatives]}


def _alternatives(node: dict[str, Any]) -> list[dict[str, Any]]:
    kind = node.get("type")
    if not isinstance(kind, str):
        return []
    exact = "const" in node or "enum" in node
    if kind == "integer":
        return [INTERPOLATION] if exact else [{"type": "boolean"}, _INTEGER_TEXT, INTERPOLATION]
    if kind == "number":
        return [INTERPOLATION] if exact else [{"type": "boolean"}, _NUMBER_TEXT, INTERPOLATION]
    if kind == "boolean":
        return [INTERPOLATION] if exact else [{"type": "integer", "enum": [0, 1]}, _BOOLEAN_TEXT, INTERPOLATION]
    if kind == "string" and (exact or any(key in node for key in ("pattern", "format", "minLength", "maxLength"))):
        return [INTERPOLATION]
    return []


def file_bots(path: Path, registry: BotRegistry | None = None) -> dict[str, type[Bot]]:
    """The custom bots a pipelines file names (``use:`` strings that are not built-in or plugin
    names), imported as `leo validate` imports them; a bot that does not load is left out (its
    problem is `leo validate`'s to report). A file that cannot be read names none."""
    from ..errors import LeoError
    from ..yaml_loader import load_yaml
    from .loader import read_pipelines_text

    registry = registry or BotRegistry()
    try:
        data = load_yaml(read_pipelines_text(path, str(path)), str(path)).data
    except LeoError:
        return {}
    pipelines = data.get("pipelines") if isinstance(data, dict) else None
    uses = {
        bot["use"].strip()
        for body in (pipelines.values() if isinstance(pipelines, dict) else ())
        if isinstance(body, dict) and isinstance(body.get("bots"), list)
        for bot in body["bots"]
        if isinstance(bot, dict) and isinstance(bot.get("use"), str) and bot["use"].strip()
    }
    found: dict[str, type[Bot]] = {}
    for use in sorted(uses - set(registry.names())):
        try:
            found[use] = registry.resolve(use, path.absolute().parent)
        except LeoError:
            continue
    return found
