"""Partner streams run as system bots: ONE writer per object type, derived from the store.

`leo run` runs a `StreamFanout` (``streams:<type>``, pipeline ``system:streams``) for every
object type that has streams of live partners; it serves all of them, so a stream costs no bot,
thread or connection of its own. Creating or deleting a stream (or revoking a partner) changes
the streams version: the runtime then starts or stops writers as types gain or lose streams, and
wakes the ones that keep running (at once when the API made the change, within a second when
another process did), so a new stream starts gathering at once. `leo status` shows the writers
like any bot.
"""

from __future__ import annotations

from collections.abc import Hashable

from ..config import BotSpec, Config
from ..store import Store
from .stream_fanout import StreamFanout, writer_limits
from .streams import WRITERS_PIPELINE, writer_id
from .system import SystemPipeline, system_spec


class StreamWriters(SystemPipeline):
    """One writer per object type with streams: it reads ``{object_type}.changes`` and fans
    each change out to every stream of that type (see `StreamFanout`)."""

    name = WRITERS_PIPELINE

    def fingerprint(self, store: Store) -> Hashable:
        return store.streams_version()

    def specs(self, store: Store, config: Config) -> list[BotSpec]:
        # A writer that never ran starts at the newest change: streams that start before it catch
        # up on their own, so a back-fill never holds up the others.
        start = store.last_position()
        return [
            system_spec(self.name, writer_id(object_type), StreamFanout, {"object_type": object_type},
                        in_queue=f"{object_type}.changes", initial_position=start,
                        limits=writer_limits(len(store.stream_targets(object_type))))
            for object_type in store.stream_object_types()
        ]
