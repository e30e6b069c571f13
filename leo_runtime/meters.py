"""What this process did, counted for ``/metrics``: the hooks the runtime's layers call.

The runner (bot runs), the webhook delivery engine (attempts) and the HTTP edge (requests) call
`current()`'s methods; by default they do nothing. ``leo run`` installs the Prometheus-backed
meters of `leo_runtime.server.metrics` when it starts, so this module imports nothing and every
other command (``leo status``, ``leo --help``) never loads prometheus-client.

The hooks are process-wide, as a Prometheus client's metrics are: they count what this host did.
Values read from the store (lag, depth, unfetched batches) are not counted here: the server's
collector reads them from the store at scrape time, the same on every host.
"""

from __future__ import annotations

from collections.abc import Mapping


class Meters:
    """The hooks, each a no-op here (a subclass records them). Each is called on the thread that
    did the work (a bot's thread, the delivery loop, the event loop): implementations must be
    thread-safe and cheap (no I/O on the caller's path)."""

    counts = False
    """Whether the hooks record anything (callers skip preparing their arguments when not)."""

    def bot_run(self, pipeline: str, bot: str, *, ok: bool, read: int = 0, written: Mapping[str, int] | None = None) -> None:
        """A bot run ended: committed (`ok`, with the events it read and wrote per queue) or failed."""

    def webhook_delivery(self, webhook: int, sender: str, outcome: str, seconds: float) -> None:
        """One notification attempt of webhook row `webhook` (`sender`: '' for a partner's
        callback, else a webhook_sender bot's id): ``delivered``, ``retry``, ``failed`` (its
        retries ran out) or ``disabled`` (a 410), after `seconds`."""

    def http_request(self, route: str, method: str, status: int, seconds: float, partner: str | None) -> None:
        """An HTTP request was answered (`route`: the route template, never the raw path;
        `partner`: the name of the partner whose token it carried, if any)."""


_current = Meters()


def current() -> Meters:
    """The meters in force in this process (no-ops unless some were installed)."""
    return _current


def install(meters: Meters) -> Meters:
    """Make `meters` the process's meters; returns the ones it replaces."""
    global _current
    previous, _current = _current, meters
    return previous
