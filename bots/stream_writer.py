"""The `stream_writer` bot: spreads the matching change records of a queue over partition queues.

Each change record whose ``data`` matches `query` (and `scope`) is appended, as stored, to the
partition queue ``<out>.<p>`` with ``p = zlib.crc32(key.encode()) % partitions``: one key always
lands in one partition, so its changes keep their order there. Its outputs commit with its
checkpoint, like every processor's. Partner streams (``POST /v1/streams``) run one of these per
stream, with the partner's scope as `scope`; in pipelines.yaml it partitions a change queue for
your own bots:

    - id: orders-by-key
      use: stream_writer
      in: order.changes
      out: order.partitioned          # partitions are order.partitioned.0 ... .3
      with: {partitions: 4, query: {status: open}}
"""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import Field

from leo_runtime.bot import Bot, BotContext, BotSettings, QuerySetting, register_bot
from leo_runtime.delivery.streams import MAX_PARTITIONS, partition_of, partition_queue
from leo_runtime.delivery.subscriptions import compile_subscription
from leo_runtime.errors import BotError
from leo_runtime.events import Event, Output, RawJSON
from leo_runtime.query import Query


class StreamWriterSettings(BotSettings):
    partitions: int = Field(1, ge=1, le=MAX_PARTITIONS, description="how many partition queues: <out>.0, <out>.1, ...")
    query: QuerySetting = Field(default_factory=Query, description="the change records' data must match it")
    scope: QuerySetting = Field(default_factory=Query,
                                description="a second query that must hold too (a partner stream's scope)")
    key: str | None = Field(None, description="for payloads that are not change records: the field to partition by")


@register_bot("stream_writer")
class StreamWriter(Bot[StreamWriterSettings]):
    """Appends each matching change record to partition ``<out>.<crc32(key) % partitions>``."""

    description = "spread matching change records over partition queues by key"

    def setup(self, ctx: BotContext) -> None:
        if not ctx.out_queue:
            raise BotError(f"bot '{ctx.bot_id}': stream_writer needs out: QUEUE (its partitions are QUEUE.0, QUEUE.1, ...)")
        settings = self.settings
        self.queues = [partition_queue(ctx.out_queue, p) for p in range(settings.partitions)]
        self.matches = compile_subscription(ctx.bot_id, "", settings.query, settings.scope).test

    def process(self, events: Iterator[Event], ctx: BotContext) -> Iterator[Output]:
        queues, matches, count = self.queues, self.matches, len(self.queues)
        key_field = self.settings.key
        for event in events:
            payload = event.payload
            if type(payload) is dict and "op" in payload and "key" in payload and "data" in payload:
                key, data = payload["key"], payload["data"]
            elif key_field is not None and type(payload) is dict and key_field in payload:
                key, data = payload[key_field], payload
            else:
                raise BotError(f"event {event.queue}@{event.seq} is not a change record"
                               + ("" if key_field is None else f" and has no field '{key_field}'")
                               + "; stream_writer partitions change records by key (or set key: FIELD)")
            if matches(data):
                yield Output(RawJSON(event.payload_json), queue=queues[partition_of(str(key), count)])
