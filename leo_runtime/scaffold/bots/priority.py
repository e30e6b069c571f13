"""A custom bot: tags each order with a priority. Copy it to start your own.

A bot is a class with a `Settings` model and one method; the runtime owns reading, batching,
checkpoints, retries and transactions. Its input here is change records from order.changes
(`{"object_type", "key", "op", "version", "changed_at", "changed_fields", "data"}`).
"""

from leo_runtime import Bot


class PriorityTagger(Bot):
    """Yields the order of each change with `priority` ("urgent" or "normal") by its total."""

    class Settings(Bot.Settings):
        urgent_over: float = 5000

    def process(self, events, ctx):
        for event in events:
            record = event.payload
            order = record.get("data", record)  # a change record, or a plain order
            priority = "urgent" if order.get("total", 0) > self.settings.urgent_over else "normal"
            yield {**order, "priority": priority}
