"""pipelines.yaml: models (`models`), what a valid file becomes (`specs`), loading with located
problems (`loader`) and the JSON Schema for editors (`schema`).

The names are imported on first use (PEP 562): a command that never reads the file (``leo
--help``, ``leo version``) does not build the pydantic models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

DEFAULT_FILE = "pipelines.yaml"

if TYPE_CHECKING:
    from .loader import load_config, parse_config
    from .models import (
        NAME_PATTERN,
        NAME_RULE,
        BatchConfig,
        BotConfig,
        Name,
        ObjectTypeConfig,
        PipelineConfig,
        PipelinesFile,
        ServerConfig,
        WebhooksConfig,
    )
    from .schema import json_schema
    from .specs import BotSpec, Config, Schedule

_WHERE = {
    "load_config": "loader",
    "parse_config": "loader",
    **dict.fromkeys(("NAME_PATTERN", "NAME_RULE", "BatchConfig", "BotConfig", "Name", "ObjectTypeConfig",
                     "PipelineConfig", "PipelinesFile", "ServerConfig", "WebhooksConfig"), "models"),
    "json_schema": "schema",
    **dict.fromkeys(("BotSpec", "Config", "Schedule"), "specs"),
}


__getattr__ = lazy_exports(__name__, _WHERE, globals())


__all__ = [
    "DEFAULT_FILE",
    "NAME_PATTERN",
    "NAME_RULE",
    "BatchConfig",
    "BotConfig",
    "BotSpec",
    "Config",
    "Name",
    "ObjectTypeConfig",
    "PipelineConfig",
    "PipelinesFile",
    "Schedule",
    "ServerConfig",
    "WebhooksConfig",
    "json_schema",
    "load_config",
    "parse_config",
]
