"""leo-runtime: change-data delivery for trading partners.

The public surface for bot authors; everything else is internal. The names below are imported
on first use (PEP 562), so that a command that needs none of them (``leo --help``) does not pay
for pydantic and the bot machinery.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .lazy import lazy_exports

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .bot import Bot, BotContext, BotSettings, QuerySetting, RunLimits, SinkBot, SourceBot, register_bot
    from .errors import BotError, ConfigError, LeoError, QueryError, StoreError
    from .events import Event, Output, RawJSON
    from .query import Query

_WHERE = {
    **dict.fromkeys(
        ("Bot", "BotContext", "BotSettings", "QuerySetting", "RunLimits", "SinkBot", "SourceBot", "register_bot"), "bot"
    ),
    **dict.fromkeys(("BotError", "ConfigError", "LeoError", "QueryError", "StoreError"), "errors"),
    **dict.fromkeys(("Event", "Output", "RawJSON"), "events"),
    "Query": "query",
}


__getattr__ = lazy_exports(__name__, _WHERE, globals())


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})


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
