"""What operators ask of a store, shared by the CLI and the admin API: status, resets, positions."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

from .config import Config
from .delivery.streams import stream_report
from .delivery.webhooks import webhook_report
from .errors import UsageError
from .events import make_eid, position_of
from .leases import LEASE_TTL_MS
from .safetext import redact_urls, shown
from .states import FAILING_AFTER, BotState
from .store import Store
from .system import is_system_bot, system_pipelines
from .timeutil import format_time, now_ms, parse_duration, parse_time


@dataclass(frozen=True)
class ResetTarget:
    """Where a reset moves a checkpoint; `clamped` when the wanted time is older than retention."""

    position: int
    clamped: bool
    description: str


_WHEN_FORMS = (
    "use earliest, latest, an RFC 3339 time (2026-11-26T19:00:00Z), a negative duration (-PT1H: "
    "that long ago) or a position (a number or an eid)"
)
_POSITION = re.compile(r"[0-9]{1,19}")  # ASCII digits that fit a 64-bit position


def reset_target(store: Store, when: str) -> ResetTarget:
    """Resolve WHEN: ``earliest``, ``latest``, an RFC 3339 time, a negative ISO duration
    (``-PT1H``: that long ago), or a position (a number or an eid).

    Strict: anything else, a duration past 100 years, a time outside the years 1 to 9999 or a
    position past the newest event is a `UsageError` with a one-line message.
    """
    text = when.strip()
    if not text:
        raise UsageError(f"--to is empty: {_WHEN_FORMS}")
    earliest = store.first_position()
    if text == "earliest":
        return ResetTarget(earliest, False, "the oldest retained event")
    if text == "latest":
        return ResetTarget(store.last_position(), False, "the newest event (skip everything so far)")
    moment: int | None = None
    if (text[:1] in "-+" and len(text) > 1 and not text[1:].isdecimal()) or text[:1] in "Pp":
        try:
            seconds = parse_duration(text)
        except ValueError as exc:
            raise UsageError(f"--to: {exc}") from None
        if seconds > 0:
            raise UsageError(f"--to {shown(text)}: a duration means that long ago, so it starts with '-' (like -PT1H)")
        moment = now_ms() + int(seconds * 1000)
    elif len(text) >= 10 and text[4:5] == "-" and text[:4].isdecimal():
        try:
            moment = parse_time(text)
        except ValueError as exc:
            raise UsageError(f"--to: {exc}") from None
    if moment is not None:
        position = store.position_at(moment)
        oldest = _oldest_time(store) if position <= earliest else None
        clamped = oldest is not None and moment < oldest
        return ResetTarget(max(position, earliest), clamped, f"the first event at or after {format_time(moment)}")
    if _POSITION.fullmatch(text):
        position = int(text)
    elif text.isascii() and text.isdecimal():
        raise UsageError(f"position {shown(text)} is past the newest event ({store.last_position()})")
    else:
        try:
            position = position_of(text) if text.isascii() and not text.isdecimal() else -1
        except ValueError:
            position = -1
        if position < 0:
            raise UsageError(f"invalid --to {shown(when)}: {_WHEN_FORMS}") from None
    last = store.last_position()
    if position > last:
        raise UsageError(f"position {position} is past the newest event ({last})")
    return ResetTarget(max(position, earliest), position < earliest, f"position {position}")


def _oldest_time(store: Store) -> int | None:
    infos = store.queues()
    times = [info.oldest_timestamp for info in infos if info.oldest_timestamp is not None]
    return min(times) if times else None


def known_bot_ids(store: Store, config: Config | None) -> list[str]:
    """Bots in the pipelines file and bots the store has a record of."""
    ids = {info.bot_id for info in store.bots()} | {cp.bot_id for cp in store.checkpoints()}
    if config is not None:
        ids |= {spec.id for spec in config.bots}
    return sorted(ids)


def check_bot(store: Store, config: Config | None, bot_id: str) -> None:
    """UsageError (with a did-you-mean) when `bot_id` is neither configured nor known to the store."""
    ids = known_bot_ids(store, config)
    if bot_id not in ids:
        hint = difflib.get_close_matches(bot_id, ids, n=1)
        suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
        known = f"; known bots: {', '.join(ids)}" if ids else ""
        raise UsageError(f"unknown bot '{bot_id}'{suggestion}{known}")


def bot_state(info: Any, now: int, *, in_file: bool = True) -> BotState:
    """A bot's state as seen from the store (any process can ask); `in_file`: whether the
    pipelines file still has the bot (pass True when the file is not known)."""
    if info is None:
        return BotState.NEW
    live = bool(info.lease_owner) and (info.lease_expires_at or 0) > now
    if live and info.stuck_since:
        return BotState.STUCK
    if not in_file and not live:
        return BotState.REMOVED
    if info.paused:
        return BotState.PAUSED
    if info.error_count >= FAILING_AFTER:
        return BotState.FAILING
    if info.error_count:
        return BotState.BACKOFF
    if live:
        return BotState.RUNNING
    return BotState.STOPPED


def status_report(store: Store, config: Config | None) -> dict[str, Any]:
    """Bots (state, checkpoint, lag, last error, dead letters), queues (depth, head) and the
    runtimes running on the store (with a failed reload's error), as plain data."""
    now = now_ms()
    infos = {info.bot_id: info for info in store.bots()}
    checkpoint_rows = checkpoint_report(store)
    dead = store.dead_letter_counts()
    specs = {spec.id: spec for spec in config.bots} if config is not None else {}
    if config is not None:  # partner webhooks' and streams' bots, derived from the store
        specs.update((spec.id, spec) for pipeline in system_pipelines() for spec in pipeline.specs(store, config))
    bots = []
    for bot_id in sorted(set(infos) | set(specs)):
        info = infos.get(bot_id)
        spec = specs.get(bot_id)
        reads = [read for read in checkpoint_rows if read["bot"] == bot_id]
        state = bot_state(info, now, in_file=spec is not None or config is None)
        dead_total, dead_waiting = dead.get(bot_id, (0, 0))
        bots.append(
            {
                "id": bot_id,
                "pipeline": spec.pipeline if spec else (info.pipeline if info else None),
                "use": spec.config.use if spec else None,
                "kind": spec.kind if spec else None,
                "in_file": spec is not None and not is_system_bot(spec),
                "system": is_system_bot(spec or (info.pipeline if info else None)),
                "state": str(state),
                "checkpoints": reads,
                "lag": sum(read["lag"] for read in reads),
                "runs": info.runs if info else 0,
                "events_in": info.events_in if info else 0,
                "events_out": info.events_out if info else 0,
                "last_run_at": format_time(info.last_run_at) if info else None,
                "last_error": redact_urls(info.last_error or "") if info and info.error_count else None,
                "last_error_at": format_time(info.last_error_at) if info and info.error_count else None,
                "error_count": info.error_count if info else 0,
                # Input a source refused (file:line: reason), kept in its state by convention.
                "rejected": (info.state or {}).get("rejected") if info else None,
                "stuck_since": format_time(info.stuck_since) if state == BotState.STUCK and info else None,
                "dead_letters": dead_total,
                "dead_letters_waiting": dead_waiting,
                "lease_owner": info.lease_owner if info and (info.lease_expires_at or 0) > now else None,
            }
        )
    return {"store": redact_urls(store.url), "runtimes": runtime_report(store, now), "bots": bots, "queues": queue_report(store),
            "webhooks": webhook_report(store.webhook_status()), "streams": stream_report(store)}


def runtime_report(store: Store, now: int) -> list[dict[str, Any]]:
    """The `leo run` processes on the store that are alive (a heartbeat within the lease TTL)."""
    return [
        {
            "owner": info.owner,
            "file": info.file,
            "started_at": format_time(info.started_at),
            "seen_at": format_time(info.seen_at),
            "reloads": info.reloads,
            "reload_failed": info.reload_error is not None,
            "reload_error": redact_urls(info.reload_error) if info.reload_error else None,
            "reload_error_at": format_time(info.reload_error_at),
        }
        for info in store.runtimes()
        if info.seen_at > now - LEASE_TTL_MS
    ]


def dead_letter_report(store: Store, queue: str | None = None, *, include_redriven: bool = False) -> list[dict[str, Any]]:
    """Dead-lettered events (waiting ones unless `include_redriven`) with where they came from."""
    return [
        {
            "queue": letter.queue,
            "position": letter.position,
            "bot": letter.bot_id,
            "source_queue": letter.source_queue,
            "source_position": letter.source_position,
            "error": letter.error,
            "failures": letter.failures,
            "dead_at": format_time(letter.dead_at),
            "redriven_at": format_time(letter.redriven_at),
            "redriven_queue": letter.redriven_queue,
            "redriven_position": letter.redriven_position,
        }
        for letter in store.dead_letters(queue, include_redriven=include_redriven)
    ]


def checkpoint_report(store: Store) -> list[dict[str, Any]]:
    """Every checkpoint with its queue's head and the bot's lag behind it."""
    return [
        {
            "bot": checkpoint.bot_id,
            "queue": checkpoint.queue,
            "checkpoint": checkpoint.position,
            "head": store.queue_head(checkpoint.queue),
            "lag": store.count_after(checkpoint.queue, checkpoint.position),
            "updated_at": format_time(checkpoint.updated_at),
        }
        for checkpoint in store.checkpoints()
    ]


def queue_report(store: Store) -> list[dict[str, Any]]:
    """Every queue with its depth, head and the times of its oldest and newest event."""
    return [
        {
            "name": queue.name,
            "depth": queue.depth,
            "head": queue.head,
            "head_eid": make_eid(queue.head, queue.newest_timestamp) if queue.newest_timestamp else None,
            "oldest_at": format_time(queue.oldest_timestamp),
            "newest_at": format_time(queue.newest_timestamp),
        }
        for queue in store.queues()
    ]
