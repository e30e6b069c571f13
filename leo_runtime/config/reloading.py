"""What a reload of pipelines.yaml does with each setting (README, "Reloading").

Every setting either applies on reload to everything that reads it, or needs a restart of
``leo run``, which the reload log says by name. A setting this module does not list needs a
restart: a new setting is never half applied in silence (add it to `APPLIED` once everything
that reads it reads the current configuration, or restarts with it).

How a setting reaches its readers: the HTTP API reads the current settings on every request;
the runtime's own loops (pruning) read them on every round; a bot that reads settings from its
context (`leo_runtime.bot.Bot.reads`) restarts when one of them changes; a pipeline restarts
when its own text, or an object type one of its bots names, changes.
"""

from __future__ import annotations

from typing import Any

from .models import PipelinesFile

APPLIED: dict[str, str] = {
    "version": "checked when the file loads (only 1 is known)",
    "retention": "pruning and the API at once; the bots that seal batches restart",
    "webhooks": "the webhook senders restart with it",
    "object_types": "the API at once; the pipelines whose bots name a changed type restart",
    "pipelines": "the changed pipelines restart; the others keep running",
    "server.public_url": "the API at once; the batchers and webhook senders restart",
    "server.get_object_rate": "the API at once",
    "server.allow_private_callbacks": "the API at once; the partner webhooks' sender restarts",
    "server.max_ingest_bytes": "the API at once",
    "server.metrics_public": "the API at once",
    "server.limits": "the API at once (quotas are checked at each create); the batcher restarts (batch_bytes)",
}
"""Settings (dotted paths) a reload applies, and how."""

NEEDS_RESTART: dict[str, str] = {
    "store": "the store is opened once, when leo run starts",
    "server.host": "the API's socket is bound once, when leo run starts",
    "server.port": "the API's socket is bound once, when leo run starts",
    "server.max_connections": "the server's connection cap and open-file budget are set once, when leo run starts",
    "server.header_timeout": "the server's connection deadlines are set once, when leo run starts",
    "server.body_timeout": "the server's connection deadlines are set once, when leo run starts",
    "server.keep_alive_timeout": "the server's connection deadlines are set once, when leo run starts",
    "server.max_header_bytes": "the server's header limit is set once, when leo run starts",
    "cluster.lease_ttl": "leases and heartbeats are timed once, when leo run starts",
    "cluster.workers": "worker processes are started once, when leo run starts",
}
"""Settings that take effect only when ``leo run`` restarts (what runs keeps the old value)."""

_SPLIT = {path.split(".", 1)[0] for path in (*APPLIED, *NEEDS_RESTART) if "." in path}
"""Top-level settings whose parts are judged one by one (``server.port`` apart from ``server.public_url``)."""


def changed_settings(old: PipelinesFile, new: PipelinesFile) -> list[str]:
    """The settings whose value differs, as dotted paths (``retention``, ``server.port``), sorted."""
    before, after = old.model_dump(), new.model_dump()
    paths = []
    for key in sorted(set(before) | set(after)):
        if before.get(key) == after.get(key):
            continue
        parts_before, parts_after = before.get(key), after.get(key)
        if key in _SPLIT and isinstance(parts_before, dict) and isinstance(parts_after, dict):
            paths.extend(f"{key}.{part}" for part in sorted(set(parts_before) | set(parts_after))
                         if parts_before.get(part) != parts_after.get(part))
        else:
            paths.append(key)
    return paths


def needs_restart(path: str) -> bool:
    """Whether a changed setting takes effect only after a restart (listed so, or not listed)."""
    return path not in APPLIED


def setting(model: PipelinesFile, path: str) -> Any:
    """The value of a dotted setting (``server.public_url``) as plain data."""
    value: Any = model.model_dump(mode="json")
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def keep_running(new: PipelinesFile, running: PipelinesFile, paths: list[str]) -> PipelinesFile:
    """`new` with the settings at `paths` (top-level or ``top.part``) as they run now: what needs
    a restart keeps its running value until then, so every reader sees one consistent state."""
    updates: dict[str, Any] = {}
    for path in paths:
        key, _, part = path.partition(".")
        if not part:
            updates[key] = getattr(running, key)
            continue
        section = updates.get(key, getattr(new, key))
        updates[key] = section.model_copy(update={part: getattr(getattr(running, key), part)})
    return new.model_copy(update=updates)
