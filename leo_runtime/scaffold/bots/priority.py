"""A custom bot: tags each order with a priority. Copy it to start your own.

A bot is a class with a `Settings` model and one method; the runtime owns reading, batching,
checkpoints, retries and transactions.
"""

from leo_runtime import Bot


class PriorityTagger(Bot):
    """Adds `priority` ("urgent" or "normal") by the order's total."""

    class Settings(Bot.Settings):
        urgent_over: float = 5000

    def process(self, events, ctx):
        for event in events:
            order = event.payload
            priority = "urgent" if order.get("total", 0) > self.settings.urgent_over else "normal"
            yield {**order, "priority": priority}
