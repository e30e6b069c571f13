"""pipelines.yaml: models (`models`), what a valid file becomes (`specs`), loading with located
problems (`loader`) and the JSON Schema for editors (`schema`)."""

from __future__ import annotations

from .loader import load_config, parse_config
from .models import (
    DEFAULT_FILE,
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
