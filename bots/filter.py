"""The `filter` bot: forwards the events whose payload matches a query.

A payload that is a change record (it has ``object_type``, ``op`` and ``data``) is matched on its
``data``; any other payload is matched as it is. Matching events are forwarded untouched (their
stored JSON is not re-encoded); the checkpoint advances over the others.
"""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import Field

from leo_runtime.bot import Bot, BotContext, BotSettings, QuerySetting, register_bot
from leo_runtime.events import Event


class FilterSettings(BotSettings):
    query: QuerySetting = Field(description="the condition events must meet (see Queries in the README)")


@register_bot("filter")
class Filter(Bot[FilterSettings]):
    """Forwards events whose payload (or a change record's data) matches `query`."""

    description = "forward the events that match a query"

    def process(self, events: Iterator[Event], ctx: BotContext) -> Iterator[Event]:
        matches = self.settings.query.predicate
        for event in events:
            payload = event.payload
            # A change record is matched on its data (inline: this loop runs for every event).
            if type(payload) is dict and "op" in payload and "object_type" in payload and "data" in payload:
                payload = payload["data"]
            if matches(payload):
                yield event
