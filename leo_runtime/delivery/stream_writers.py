"""Partner streams run as system bots: one `stream_writer` per stream, derived from the store.

`leo run` starts a writer when a stream is created (at once when the API made it, within a
second when another process did), stops it when the stream is deleted or its partner revoked,
and shows it in `leo status` like any bot (``streams:<id>``, pipeline ``system:streams``).
"""

from __future__ import annotations

from collections.abc import Hashable

from ..config import BotSpec, Config
from ..jsonio import parse
from ..store import Store
from ..system import SystemPipeline, register_system_pipeline, system_spec
from .streams import WRITERS_PIPELINE, partitions_base, writer_id


class StreamWriters(SystemPipeline):
    """One writer per live stream: it reads ``{object_type}.changes`` from the position the
    stream's ``start_at`` named, with the stream's query and its partner's scope."""

    name = WRITERS_PIPELINE

    def fingerprint(self, store: Store) -> Hashable:
        return store.live_stream_ids()

    def specs(self, store: Store, config: Config) -> list[BotSpec]:
        from ..bots.stream_writer import StreamWriter  # the built-in bots import this package

        records = store.streams()
        partners = {partner.id: partner for partner in store.partners()} if records else {}
        specs = []
        for record in records:
            partner = partners.get(record.partner_id)
            if partner is None or partner.revoked_at is not None:
                continue
            settings = {
                "partitions": len(record.partitions),
                "query": parse(record.query_json) if record.query_json else {},
                "scope": parse(partner.scope_json) if partner.scope_json else {},
            }
            specs.append(system_spec(
                self.name, writer_id(record.id), StreamWriter, settings, in_queue=f"{record.object_type}.changes",
                out_queue=partitions_base(record.id), initial_position=record.start_position,
            ))
        return specs


register_system_pipeline(StreamWriters())
