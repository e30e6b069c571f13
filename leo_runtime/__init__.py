"""leo-runtime: change-data delivery for trading partners.

The public surface for bot authors; everything else is internal.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .bot import Bot, BotContext, BotSettings, QuerySetting, RunLimits, SinkBot, SourceBot, register_bot
from .errors import BotError, ConfigError, LeoError, QueryError, StoreError
from .events import Event, Output, RawJSON
from .query import Query

__all__ = [
    "Bot",
    "BotContext",
    "BotError",
    "BotSettings",
    "ConfigError",
    "Event",
    "LeoError",
    "Output",
    "Query",
    "QueryError",
    "QuerySetting",
    "RawJSON",
    "RunLimits",
    "SinkBot",
    "SourceBot",
    "StoreError",
    "__version__",
    "register_bot",
]
