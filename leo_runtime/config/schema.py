"""The JSON Schema of pipelines.yaml (for editors): the models, with each bot's settings."""

from __future__ import annotations

from typing import Any

from ..registry import BotRegistry
from .models import PipelinesFile


def json_schema(registry: BotRegistry | None = None) -> dict[str, Any]:
    """The JSON Schema of pipelines.yaml, built from the models above and every known bot's
    `Settings` (``with:`` is checked against the settings of the bot ``use:`` names)."""
    registry = registry or BotRegistry()
    schema = PipelinesFile.model_json_schema(by_alias=True)
    definitions = schema.setdefault("$defs", {})
    bot_schema = definitions["BotConfig"]
    branches = []
    names = []
    for entry in registry.entries():
        if entry.cls is None:
            continue
        names.append(entry.name)
        settings = entry.cls.Settings.model_json_schema(by_alias=True, ref_template=f"#/$defs/{entry.name}.{{model}}")
        for key, value in settings.pop("$defs", {}).items():
            definitions[f"{entry.name}.{key}"] = value
        settings["title"] = f"{entry.name} settings"
        branches.append(
            {
                "if": {"properties": {"use": {"const": entry.name}}, "required": ["use"]},
                "then": {"properties": {"with": settings}},
            }
        )
    bot_schema["properties"]["use"]["examples"] = names
    if branches:
        bot_schema["allOf"] = branches
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://leo-runtime.dev/schemas/pipelines-v1.json",
        **schema,
        "title": "leo-runtime pipelines.yaml",
    }
