"""What operators ask of a store: status, lag, resets, replays, hosts. One layer that the CLI, the
console and /metrics all read, so the three never disagree. Resets resolve their WHEN with
`leo_runtime.when` (one rule set for every reset and start)."""

from __future__ import annotations

import difflib
import itertools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .config import Config, PipelinesFile
from .delivery.streams import stream_report
from .delivery.system import SystemPipeline, derive, is_system_bot
from .delivery.webhooks import BOT_PREFIX, public_webhook_id, webhook_report
from .errors import UsageError, did_you_mean, unknown_name
from .events import make_eid
from .leases import LEASE_TTL_MS, owner_is_gone
from .partners import scope_of
from .safetext import redact_urls, shown
from .states import FAILING_AFTER, BotState
from .store import Store
from .store.base import DeadLetterInfo
from .store.base_webhooks import WebhookRecord
from .timeutil import format_time, now_ms
from .when import Target, resolve


def known_bot_ids(store: Store, config: Config | None) -> list[str]:
    """Bots in the pipelines file and bots the store has a record of."""
    ids = {info.bot_id for info in store.bots()} | {cp.bot_id for cp in store.checkpoints()}
    if config is not None:
        ids |= {spec.id for spec in config.bots}
    return sorted(ids)


def known_queues(store: Store, config: Config | None) -> set[str]:
    """Queues the store holds and queues the pipelines file names (read, written, dead letters,
    each object type's ``T.changes``)."""
    names = {info.name for info in store.queues()}
    if config is not None:
        names |= {f"{object_type}.changes" for object_type in config.model.object_types}
        for spec in config.bots:
            names |= {queue for queue in (spec.in_queue, writes_to(spec)) if queue}
            if spec.config.on_error is not None:
                names.add(spec.config.on_error.dead_letter)
    return names


def check_bot(store: Store, config: Config | None, bot_id: str) -> None:
    """UsageError (with a did-you-mean) when `bot_id` is neither configured nor known to the store."""
    ids = known_bot_ids(store, config)
    if bot_id not in ids:
        raise unknown_name("bot", bot_id, ids, f"known bots: {', '.join(ids)}" if ids else "`leo status` lists them")


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


def status_report(store: Store, config: Config | None, *, system: Sequence[SystemPipeline]) -> dict[str, Any]:
    """Bots (state, checkpoint, lag, last error, dead letters), queues (depth, head) and the
    runtimes running on the store (with a failed reload's error), as plain data. `system`: the
    system pipelines whose bots to show with the file's (what `leo run` runs)."""
    now = now_ms()
    infos = {info.bot_id: info for info in store.bots()}
    checkpoint_rows = checkpoint_report(store, now)
    dead = store.dead_letter_counts()
    specs = {spec.id: spec for spec in config.bots} if config is not None else {}
    if config is not None:  # partner webhooks' and streams' bots, derived from the store
        specs.update((spec.id, spec) for pipeline in system for spec in derive(pipeline, store, config)[1] or [])
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
                "lag_seconds": max((read["lag_seconds"] for read in reads), default=0.0),
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
    ttl_ms = int(config.model.cluster.lease_ttl * 1000) if config is not None else LEASE_TTL_MS
    return {"store": redact_urls(store.url), "runtimes": runtime_report(store, now), "hosts": host_report(store, ttl_ms),
            "bots": bots, "queues": queue_report(store),
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


def dead_letter_queues(store: Store, config: Config | None) -> set[str]:
    """The dead-letter queues the pipelines file names (``on_error.dead_letter``) and those the
    store holds dead letters in."""
    names = {letter.queue for letter in store.dead_letters(include_redriven=True)}
    if config is not None:
        names |= {spec.config.on_error.dead_letter for spec in config.bots if spec.config.on_error is not None}
    return names


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


def checkpoint_report(store: Store, now: int | None = None) -> list[dict[str, Any]]:
    """Every checkpoint with its queue's head and the bot's lag behind it, in events and in
    seconds (how long the oldest event after the checkpoint has waited)."""
    now = now_ms() if now is None else now
    return [
        {
            "bot": checkpoint.bot_id,
            "queue": checkpoint.queue,
            "checkpoint": checkpoint.position,
            "head": store.queue_head(checkpoint.queue),
            "lag": store.count_after(checkpoint.queue, checkpoint.position),
            "lag_seconds": lag_seconds(store, checkpoint.queue, checkpoint.position, now),
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


# -- lag in time, hosts ---------------------------------------------------------------------------
def lag_seconds(store: Store, queue: str, checkpoint: int, now: int) -> float:
    """How long the oldest event after `checkpoint` in `queue` has waited (0 when none waits)."""
    waiting = store.read(queue, checkpoint, 1)
    return max(0.0, (now - waiting[0].timestamp) / 1000) if waiting else 0.0


def host_report(store: Store, ttl_ms: int = LEASE_TTL_MS) -> list[dict[str, Any]]:
    """The live hosts on the store (a heartbeat within `ttl_ms`, ``cluster.lease_ttl``), oldest
    first, each with the bots it holds (the fields of `leo hosts`): every `leo run` process is one."""
    now = now_ms()
    held: dict[str, list[str]] = {}
    for lease in store.lease_rows():
        if lease.owner and (lease.expires_at or 0) > now:
            held.setdefault(lease.owner, []).append(lease.bot_id)
    reloads = {runtime.owner: runtime.reload_error is not None for runtime in store.runtimes()}
    return [
        {"host": host.id, "name": host.name, "pid": host.pid, "role": host.role, "address": host.address,
         "started_at": format_time(host.started_at), "last_seen": format_time(host.seen_at),
         "bots": sorted(held.get(host.id, [])), "reload_failed": reloads.get(host.id, False)}
        for host in store.live_hosts(ttl_ms) if not owner_is_gone(host.id)  # killed on this machine: not live
    ]


# -- what /metrics reads from the store ------------------------------------------------------------
STORE_BOT_STATES = ("new", "running", "paused", "backoff", "failing", "stuck", "stopped", "removed")
"""The bot states any process can tell from the store (`bot_state`): the values of ``leo_bot_state``."""


def metrics_report(store: Store, file_bots: set[str] | None = None) -> dict[str, Any]:
    """The store-derived gauges of ``/metrics`` as plain data, the same on every host: per bot its
    state and per input queue its lag (events and seconds), queue heads, unfetched batches per
    partner, each stream's lag, and the number of live hosts. `file_bots`: the bot ids the
    pipelines file holds (system bots always count as in the file); None: all.

    Its cost is bounded by the store's size of things (bots, queues, webhooks, streams), not by
    the events: a lag is one indexed count, a lag in time one indexed read."""
    now = now_ms()
    lags: dict[str, list[dict[str, Any]]] = {}
    for row in checkpoint_report(store, now):
        lags.setdefault(row["bot"], []).append(row)
    bots = []
    for info in store.bots():
        in_file = file_bots is None or info.bot_id in file_bots or is_system_bot(info.pipeline)
        bots.append({"bot": info.bot_id, "pipeline": info.pipeline or "", "state": str(bot_state(info, now, in_file=in_file)),
                     "lags": lags.get(info.bot_id, [])})
    unfetched: dict[str, int] = {}
    for webhook in webhook_report(store.webhook_status()):
        if webhook["partner"] is not None:
            unfetched[webhook["partner"]] = unfetched.get(webhook["partner"], 0) + webhook["unfetched"]
    streams = [{"partner": stream["partner"] or "", "stream": stream["id"], "lag": stream["lag"]}
               for stream in stream_report(store)]
    return {"bots": bots, "queues": store.queue_heads(), "unfetched": unfetched, "streams": streams,
            "hosts": len(host_report(store))}


# -- operators' actions: one implementation for the CLI and the console ----------------------------
def set_bot_paused(store: Store, config: Config | None, bot_id: str, paused: bool) -> None:
    """Pause (it finishes its current run, then waits) or resume a known bot."""
    check_bot(store, config, bot_id)
    store.set_paused(bot_id, paused)


def input_queue(store: Store, config: Config | None, bot: str, wanted: str | None) -> str:
    """The queue to reset: `wanted` when the bot reads it, else the bot's only input.

    A bot's inputs are its ``in:`` in the pipelines file; for a bot no longer in the file (or
    with the file invalid), the queues it has checkpoints in.
    """
    spec = next((spec for spec in config.bots if spec.id == bot), None) if config is not None else None
    if spec is not None:
        inputs = [spec.in_queue] if spec.in_queue else []
    else:
        inputs = sorted({checkpoint.queue for checkpoint in store.checkpoints(bot)})
    if not inputs:
        kind = f"a {spec.kind} bot" if spec is not None else "a bot without checkpoints"
        raise UsageError(f"bot '{bot}' reads no queue ({kind}): it has no checkpoint to reset")
    if wanted is None:
        if len(inputs) == 1:
            return inputs[0]
        raise UsageError(f"bot '{bot}' reads {', '.join(inputs)}; pass --queue QUEUE")
    if wanted not in inputs:
        hint = difflib.get_close_matches(wanted, inputs, n=1)
        suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
        raise UsageError(f"bot '{bot}' does not read queue {shown(wanted)}{suggestion}; it reads {', '.join(inputs)}")
    return wanted


@dataclass(frozen=True)
class ResetPlan:
    """A checkpoint reset before (or after) it is made: where the checkpoint is, where it goes,
    and how many events of the queue that redoes (moving back) or skips (moving forward)."""

    bot: str
    queue: str
    before: int | None
    target: Target
    redo: int
    skip: int

    def as_dict(self) -> dict[str, Any]:
        return {"bot": self.bot, "queue": self.queue, "from": self.before, "to": self.target.position,
                "clamped": self.target.clamped, "target": self.target.description, "redo": self.redo, "skip": self.skip}


def retention_of(config: Config | None) -> float:
    """The file's ``retention`` in seconds (the default when the file is invalid or missing)."""
    return (config.model if config is not None else PipelinesFile(version=1)).retention


def plan_checkpoint_reset(store: Store, config: Config | None, bot: str, to: str, queue: str | None = None, *,
                          field: str = "to") -> ResetPlan:
    """What resetting `bot`'s checkpoint to WHEN (`leo_runtime.when`; an `InputError` naming
    `field` for a WHEN it refuses) would do; changes nothing."""
    check_bot(store, config, bot)
    queue = input_queue(store, config, bot, queue)
    before = store.get_checkpoint(bot, queue)
    target = resolve(store, to, retention_of(config), field=field)
    # A bot that never ran starts at the queue's beginning (the default): nothing to redo yet.
    origin = before if before is not None else store.first_position()
    low, high = sorted((origin, target.position))
    moved = store.count_after(queue, low) - store.count_after(queue, high) if low != high else 0
    return ResetPlan(bot, queue, before, target, moved if target.position < origin else 0,
                     moved if target.position > origin else 0)


def reset_checkpoint(store: Store, config: Config | None, bot: str, to: str, queue: str | None = None, *,
                     field: str = "to") -> ResetPlan:
    """Move `bot`'s checkpoint to WHEN; the bot picks it up at its next run (a run in flight is redone)."""
    plan = plan_checkpoint_reset(store, config, bot, to, queue, field=field)
    store.set_checkpoint(bot, plan.queue, plan.target.position)
    return plan


def find_webhook(store: Store, webhook_id: str) -> WebhookRecord:
    """A webhook by its id (``wh_...``) or a batcher bot's id; UsageError with a did-you-mean."""
    webhook = store.webhook(webhook_id) or store.webhook(BOT_PREFIX + webhook_id)
    if webhook is not None:
        return webhook
    known = [public_webhook_id(w.id) for w in store.webhooks()]
    raise unknown_name("webhook", webhook_id, known, "`leo webhooks list` shows them")


def set_webhook_status(store: Store, webhook_id: str, status: str) -> dict[str, Any] | None:
    """Pause (``paused``: batches are still sealed, notifications wait) or resume (``active``) a
    webhook; returns its row as `leo webhooks list` shows it."""
    webhook = find_webhook(store, webhook_id)
    updated = store.update_webhook(webhook.id, {"status": status}, now_ms())
    rows = [row for row in webhook_report(store.webhook_status()) if updated and row["id"] == webhook_id]
    return rows[0] if rows else None


def replay_webhook(store: Store, webhook_id: str) -> int:
    """Notify again of every batch of the webhook not downloaded yet (a fresh retry schedule)."""
    return store.replay_webhook(find_webhook(store, webhook_id).id, now_ms())


def webhook_health(row: dict[str, Any]) -> str:
    """A webhook row's health as the console shows it: paused, disabled, failing, retrying or healthy."""
    if row["status"] == "paused":
        return "paused"
    return "healthy" if row["delivery"] == "ok" else row["delivery"]


def redrive_dead_letters(store: Store, queue: str, *, to: str | None = None, bot: str | None = None,
                         positions: list[int] | None = None) -> list[DeadLetterInfo]:
    """Send the waiting dead letters of `queue` back (narrowed to a bot or positions), in one
    transaction; UsageError when `queue` holds none, or a position is not waiting in it."""
    every = store.dead_letters(queue, include_redriven=True)
    if not every:
        queues = sorted({letter.queue for letter in store.dead_letters(include_redriven=True)})
        known = f"; dead-letter queues: {', '.join(queues)}" if queues else "; no bot has dead-lettered an event yet"
        raise UsageError(f"queue {shown(queue)} holds no dead-lettered events{did_you_mean(queue, queues)}{known}")
    if bot is not None and not any(letter.bot_id == bot for letter in every):
        bots = sorted({letter.bot_id for letter in every})
        raise UsageError(f"no event in '{queue}' was dead-lettered by bot '{bot}' (it holds events of: {', '.join(bots)})")
    if positions:
        waiting = {letter.position for letter in every if letter.redriven_at is None}
        missing = sorted(set(positions) - waiting)
        if missing:
            raise UsageError(
                f"position(s) {', '.join(map(str, missing))} are not waiting in '{queue}' "
                "(already sent back, or not dead letters): see `leo deadletters list --all`"
            )
    return store.redrive_dead_letters(queue, to=to, bot_id=bot, positions=positions)


def other_readers(config: Config | None, redriven: list[DeadLetterInfo]) -> list[str]:
    """Notes for queues that bots other than the one that gave up also read: they see it again."""
    if config is None:
        return []
    notes = []
    for queue in sorted({letter.redriven_queue for letter in redriven if letter.redriven_queue}):
        senders = {letter.bot_id for letter in redriven if letter.redriven_queue == queue}
        others = sorted(spec.id for spec in config.bots if spec.in_queue == queue and spec.id not in senders)
        if others:
            notes.append(f"note: '{queue}' is also read by {', '.join(others)}: they will get these events again")
    return notes


# -- what the console shows beyond `leo status` -----------------------------------------------------
_FAILED_ON = re.compile(r"failed on event (\S+)@([0-9]{1,19})\b")


def failed_event(store: Store, error: str | None) -> dict[str, Any] | None:
    """The event a bot's last error names (``failed on event QUEUE@POSITION``), if still retained."""
    found = _FAILED_ON.search(error or "")
    if found is None:
        return None
    queue, position = found[1], int(found[2])
    events = store.read(queue, position - 1, 1)
    event = events[0] if events and events[0].seq == position else None
    return {"queue": queue, "position": position, "event": event_view(event) if event is not None else None}


def event_view(event: Any) -> dict[str, Any]:
    """An event for a page: its envelope and its payload as indented JSON text (the stored text
    as is when it is not strict JSON)."""
    try:
        pretty = pretty_json(json.loads(event.payload_json))
    except ValueError:
        pretty = event.payload_json
    return {"position": event.seq, "eid": event.eid, "queue": event.queue, "timestamp": format_time(event.timestamp),
            "correlation_id": event.correlation_json, "payload": pretty}


def pretty_json(value: Any, indent: str = "") -> str:
    """JSON indented by two spaces, with short lists and mappings of scalars kept on one line."""
    flat = json.dumps(value, ensure_ascii=False)
    scalars = isinstance(value, list | dict) and not any(
        isinstance(item, list | dict) for item in (value.values() if isinstance(value, dict) else value))
    if not isinstance(value, list | dict) or not value or (scalars and len(flat) + len(indent) <= 72):
        return flat
    inner = indent + "  "
    if isinstance(value, list):
        items = [inner + pretty_json(item, inner) for item in value]
        return "[\n" + ",\n".join(items) + "\n" + indent + "]"
    items = [f"{inner}{json.dumps(key, ensure_ascii=False)}: {pretty_json(item, inner)}" for key, item in value.items()]
    return "{\n" + ",\n".join(items) + "\n" + indent + "}"


def last_events(store: Store, queue: str, count: int) -> list[Any]:
    """The newest `count` events of `queue`, oldest first."""
    if count == 0:
        return []
    # Walk back from the head in pages: positions are global, so a queue's events are sparse.
    head = store.queue_head(queue)
    found: list[Any] = []
    window = max(count * 4, 1000)
    start = head
    first = store.first_position()
    while start > first and len(found) < count:
        start = max(first, start - window)
        page = store.read(queue, start, count + len(found) + window)
        found = [event for event in page if event.seq <= head]
        window *= 4
    return found[-count:]


def bot_report(store: Store, config: Config | None, bot_id: str, *, system: Sequence[SystemPipeline]) -> dict[str, Any]:
    """One bot as `leo status --json` shows it, with the event its last error names, its inputs
    and outputs, and the dead-letter queues holding events it gave up on."""
    check_bot(store, config, bot_id)
    report = status_report(store, config, system=system)
    bot = next(entry for entry in report["bots"] if entry["id"] == bot_id) if any(
        entry["id"] == bot_id for entry in report["bots"]) else {"id": bot_id, "state": "new", "checkpoints": []}
    spec = next((spec for spec in config.bots if spec.id == bot_id), None) if config is not None else None
    bot["in"] = spec.in_queue if spec is not None else None
    bot["out"] = writes_to(spec) if spec is not None else None
    bot["health"] = bot_health(bot)
    bot["failed_event"] = failed_event(store, bot.get("last_error"))
    bot["dead_letter_queues"] = sorted({letter.queue for letter in store.dead_letters(bot_id=bot_id)})
    return bot


def writes_to(spec: Any) -> str | None:
    """The queue a bot of the file writes: its ``out``, or a change detector's ``T.changes``."""
    if spec.out_queue:
        return spec.out_queue
    object_type = getattr(spec.settings, "object_type", None)
    if spec.kind == "source" and isinstance(object_type, str):
        return f"{object_type}.changes"
    return None


def queue_detail(store: Store, config: Config | None, name: str, count: int = 20) -> dict[str, Any]:
    """A queue as `leo queues list` shows it, its newest `count` events (`event_view`), and the
    bots reading it with their lag; UsageError (did-you-mean) for an unknown queue."""
    queues = {queue["name"]: queue for queue in queue_report(store)}
    if name not in queues:
        raise unknown_name("queue", name, queues, "see `leo queues list`")
    readers = [row for row in checkpoint_report(store) if row["queue"] == name]
    writers = sorted(spec.id for spec in config.bots if writes_to(spec) == name) if config is not None else []
    events = [event_view(event) for event in reversed(last_events(store, name, count))]
    return {**queues[name], "readers": readers, "writers": writers, "events": events}


def partner_report(store: Store, batches: int = 10) -> list[dict[str, Any]]:
    """Every partner with its scope, its webhooks (health, the last `batches` batches with their
    attempts, answer codes and errors) and its streams (per partition: checkpoint, lag, lease)."""
    rows = store.webhook_status()
    webhooks: dict[str, list[dict[str, Any]]] = {}
    for row, report in zip(rows, webhook_report(rows), strict=True):
        if row.partner is None:
            continue
        report["health"] = webhook_health(report)
        report["callback_url"] = redact_urls(row.webhook.callback_url or "")
        report["batches"] = [
            {"id": batch.id, "records": batch.records, "true_up": batch.true_up, "created_at": format_time(batch.created_at),
             "delivered_at": format_time(batch.delivered_at), "fetched_at": format_time(batch.fetched_at),
             "attempts": batch.attempts, "next_attempt_at": format_time(batch.next_attempt_at),
             "last_status": batch.last_status, "last_error": batch.last_error}
            for batch in store.batches(row.webhook.rid, limit=batches)
        ]
        webhooks.setdefault(row.partner, []).append(report)
    streams: dict[str, list[dict[str, Any]]] = {}
    for stream in stream_report(store):
        streams.setdefault(stream["partner"] or "", []).append(stream)
    return [
        {"name": record.name, "scope": scope_of(record), "created_at": format_time(record.created_at),
         "revoked_at": format_time(record.revoked_at), "webhooks": webhooks.get(record.name, []),
         "streams": streams.get(record.name, [])}
        for record in store.partners()
    ]


# -- bot history: the console's charts ------------------------------------------------------------------
HISTORY_SAMPLE_SECONDS = 10
"""How often `leo run` samples every bot's counters into the store (`Store.sample_bot_history`)."""
HISTORY_FINE_SECONDS = 3600
"""Samples older than this are thinned to one per bot and minute."""
HISTORY_KEEP_SECONDS = 25 * 3600
"""Samples older than this are dropped (the longest chart shows a day)."""


def sample_history(store: Store, now: int | None = None) -> int:
    """Take this interval's sample of every bot's counters (a no-op for bots that did nothing,
    and for an interval another host sampled already)."""
    now = now_ms() if now is None else now
    return store.sample_bot_history(now - now % (HISTORY_SAMPLE_SECONDS * 1000))


def prune_history(store: Store, now: int | None = None) -> int:
    """Thin samples older than an hour to one a minute and drop those older than a day and an hour."""
    now = now_ms() if now is None else now
    return store.prune_bot_history(now - HISTORY_KEEP_SECONDS * 1000, now - HISTORY_FINE_SECONDS * 1000)


def bot_activity(store: Store, bot_id: str, span_seconds: int, buckets: int, now: int | None = None) -> dict[str, Any]:
    """A bot's events read, events written and failed runs per bucket over the last `span_seconds`
    (`buckets` equal buckets, the last one holding now), from the history samples: each sample's
    difference from the one before it falls in the bucket of its time."""
    now = now_ms() if now is None else now
    step = max(1, span_seconds * 1000 // buckets)
    end = now - now % step + step
    start = end - buckets * step
    series: dict[str, list[int]] = {"reads": [0] * buckets, "writes": [0] * buckets, "errors": [0] * buckets}
    samples = store.bot_history(bot_id, start)
    for before, sample in itertools.pairwise(samples):
        index = (sample.at - start) // step
        if not 0 <= index < buckets:
            continue
        for name, old, new in (("reads", before.events_in, sample.events_in), ("writes", before.events_out, sample.events_out),
                               ("errors", before.failures, sample.failures)):
            series[name][index] += new - old if new >= old else new  # a counter that restarted (bot re-created)
    return {"start": start, "step": step, **series}


def activity_totals(store: Store, bot_ids: list[str], now: int | None = None) -> dict[str, Any]:
    """Events written per minute (over the last 5 minutes) and failed runs in the last hour,
    summed over `bot_ids`, from the history samples."""
    now = now_ms() if now is None else now
    written = errors = 0
    for bot_id in bot_ids:
        hour = bot_activity(store, bot_id, 3600, 12, now)
        written += hour["writes"][-1] + hour["writes"][-2]  # the last two 5-minute buckets: 5 to 10 minutes
        errors += sum(hour["errors"])
    span_minutes = 5 + (now % 300_000) / 60_000  # the last bucket is partly filled
    return {"events_per_minute": round(written / span_minutes, 1), "errors_last_hour": errors}


# -- the pipelines as graphs --------------------------------------------------------------------------
HEALTH_BY_STATE = {
    "running": "ok", "idle": "ok", "new": "quiet", "stopped": "quiet", "standby": "quiet", "starting": "quiet",
    "paused": "paused", "backoff": "warn", "failing": "bad", "stuck": "bad", "removed": "bad", "crashed": "bad",
    "abandoned": "bad",
}
LAGGING_SECONDS = 300.0
"""A bot whose oldest waiting event is older than this shows as lagging (warn) however it runs."""


def bot_health(bot: dict[str, Any]) -> str:
    """A bot's health in one word for colours: ok, quiet (not running), paused, warn or bad."""
    health = HEALTH_BY_STATE.get(bot.get("state", ""), "quiet")
    if health in ("ok", "quiet") and bot.get("lag_seconds", 0) > LAGGING_SECONDS:
        return "warn"
    return health


def pipeline_report(config: Config | None, bots: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every pipeline of the file as a graph: its bots (with their state, health and lag per
    input from `status_report`'s `bots`) and the queues between them (``edges``: from, to, and
    for a queue read by a bot, that bot's lag on it)."""
    if config is None:
        return []
    by_id = {bot["id"]: bot for bot in bots}
    pipelines = []
    for name, pipeline in config.model.pipelines.items():
        nodes, edges = [], []
        for spec in config.bots_of(name):
            bot = by_id.get(spec.id, {"state": "new", "checkpoints": [], "lag": 0, "lag_seconds": 0.0})
            nodes.append({"id": spec.id, "kind": spec.kind, "use": spec.config.use, "state": bot["state"],
                          "health": bot_health(bot), "lag": bot.get("lag", 0), "lag_seconds": bot.get("lag_seconds", 0.0)})
            if spec.in_queue:
                read = next((row for row in bot["checkpoints"] if row["queue"] == spec.in_queue), None)
                edges.append({"from": spec.in_queue, "to": spec.id, "lag": read["lag"] if read else None,
                              "lag_seconds": read["lag_seconds"] if read else None})
            out = writes_to(spec)
            if out:
                edges.append({"from": spec.id, "to": out, "lag": None, "lag_seconds": None})
            if spec.config.on_error is not None:  # where the events it gives up on go
                edges.append({"from": spec.id, "to": spec.config.on_error.dead_letter, "lag": None, "lag_seconds": None,
                              "dead_letter": True})
        pipelines.append({"name": name, "description": pipeline.description, "bots": nodes, "edges": edges})
    return pipelines
