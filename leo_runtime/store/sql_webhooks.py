"""The rows of webhooks (see `base_webhooks` for the model): a mixin of `SQLStore`, and the ops
a bot's run commits (`apply_ops`, called inside `commit_run`'s transaction).

Sealing is O(1) whatever the window holds: a batch row takes the window's number and the
webhook's counter moves on. Downloads page through ``webhook_index`` in key order, joined to the
events by position, so each key comes once, at its latest change, without sorting or copying.
What a seal or a delivery outcome does to a webhook is decided in `leo_runtime.delivery.windows`;
this module reads and writes the rows it names. A deleted webhook keeps its row (status
``deleted``) until `prune_webhooks` has dropped its rows.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..delivery import windows
from ..errors import QuotaExceeded
from ..timeutil import now_ms
from .base import PendingEvent
from .base_streams import FanOut
from .base_webhooks import (
    AddSnapshotLines,
    BatchListing,
    BatchRecord,
    BotSubscription,
    ChosenReplay,
    ClaimDeliveries,
    DeliveryOutcome,
    DueDelivery,
    FinishSnapshot,
    NewWebhook,
    RecordDeliveries,
    RouteChanges,
    SealedBatch,
    SealWebhooks,
    StartSnapshot,
    StoreOp,
    WebhookRecord,
    WebhookStatusRow,
)
from .dialects import Connection
from .sql_streams import apply_fanout

if TYPE_CHECKING:
    from .sql import SQLStore

_COLUMNS = (
    "rid, id, partner_id, object_type, source_queue, router, query, callback_url, interval_ms, mode, status, "
    "start_seq, generation, pending, window_from, next_run_at, true_up, out_queue, readers, failing, "
    "disabled_reason, last_batch_at, last_delivered_at, last_error, created_at, updated_at, secret, old_secret, "
    "old_secret_expires_at"
)
_W_COLUMNS = ", ".join(f"w.{column}" for column in _COLUMNS.split(", "))
_BATCH_COLUMNS = (
    "b.bid, b.id, b.webhook, w.id, w.partner_id, w.readers, b.generation, b.from_seq, b.to_seq, b.records, "
    "b.true_up, b.state, b.created_at, b.expires_at, b.fetched_at"
)
_LIVE_PARTNER = "(w.partner_id IS NULL OR EXISTS (SELECT 1 FROM partners p WHERE p.id = w.partner_id AND p.revoked_at IS NULL))"
_CHUNK = 500  # keys per IN list


def _webhook(row: Sequence[Any]) -> WebhookRecord:
    values = list(row)
    values[16] = bool(values[16])  # true_up
    values[19] = bool(values[19])  # failing
    return WebhookRecord(*values)


def _batch(row: Sequence[Any]) -> BatchRecord:
    values = list(row)
    values[10] = bool(values[10])
    return BatchRecord(*values)


def new_batch_id() -> str:
    """A batch id: ``bat_`` and 22 URL-safe random characters (unguessable: it is in a URL)."""
    return "bat_" + secrets.token_urlsafe(16)


def _bump(conn: Connection) -> None:
    conn.execute("UPDATE webhooks_version SET version = version + 1")


def _router_position(conn: Connection, webhook: Mapping[str, Any]) -> int | None:
    """Where the webhook's router stands in its source queue (None: nowhere yet)."""
    if webhook["mode"] == "all":  # nothing is routed: the snapshot covers everything so far
        row = conn.execute("SELECT last FROM positions").fetchone()
    else:
        row = conn.execute(
            "SELECT position FROM checkpoints WHERE bot_id = ? AND queue = ?", (webhook["router"], webhook["source_queue"])
        ).fetchone()
    return row[0] if row else None


def _drop_window(conn: Connection, webhook: int, generation: int, limit: int) -> int:
    """Delete up to `limit` routed changes of one window of a webhook; how many went."""
    return conn.execute(
        "DELETE FROM webhook_index WHERE webhook = ? AND generation = ? AND key IN "
        "(SELECT key FROM webhook_index WHERE webhook = ? AND generation = ? LIMIT ?)",
        (webhook, generation, webhook, generation, limit),
    ).rowcount


def _row(conn: Connection, sql: str, params: Sequence[Any]) -> dict[str, Any] | None:
    cursor = conn.execute(sql, params)
    row = cursor.fetchone()
    if row is None:
        return None
    return dict(zip([column[0] for column in cursor.description], row, strict=True))


class SQLWebhooks:
    """The webhook methods of `SQLStore` (mixed in; uses its connections and transactions)."""

    # -- partner webhooks ------------------------------------------------------------------------
    def create_webhook(self: SQLStore, new: NewWebhook) -> WebhookRecord:
        with self._write() as conn:
            if new.max_webhooks is not None:  # inside the write lock: no other create passes between count and insert
                owned = conn.execute("SELECT COUNT(*) FROM webhooks WHERE partner_id = ? AND status != 'deleted'",
                                     (new.partner_id,)).fetchone()[0]
                if owned >= new.max_webhooks:
                    raise QuotaExceeded("webhooks", new.max_webhooks, f"a partner may have at most {new.max_webhooks} "
                                        f"webhooks and this one has {owned}; delete one (DELETE /v1/webhooks/ID) or "
                                        "ask the operator to raise server.limits.webhooks")
            start = conn.execute("SELECT last FROM positions").fetchone()[0]
            row = conn.execute(
                "INSERT INTO webhooks(id, partner_id, object_type, source_queue, router, query, callback_url, secret, "
                "interval_ms, mode, status, start_seq, window_from, next_run_at, created_at, updated_at) "
                f"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'active', ?, ?, ?, ?, ?) RETURNING {_COLUMNS}",
                (new.id, new.partner_id, new.object_type, new.source_queue, new.router, new.query_json, new.callback_url,
                 new.secret, new.interval_ms, new.mode, start, start, new.now + new.interval_ms, new.now, new.now),
            ).fetchone()
            _bump(conn)
        return _webhook(row)

    def webhook(self: SQLStore, webhook_id: str) -> WebhookRecord | None:
        if not self._at_least(5):
            return None
        row = self._conn().execute(
            f"SELECT {_COLUMNS} FROM webhooks WHERE id = ? AND status != 'deleted'", (webhook_id,)
        ).fetchone()
        return _webhook(row) if row else None

    def webhooks(self: SQLStore, *, partner_id: int | None = None) -> list[WebhookRecord]:
        if not self._at_least(5):
            return []
        sql = f"SELECT {_COLUMNS} FROM webhooks WHERE status != 'deleted'"
        params: list[Any] = []
        if partner_id is not None:
            sql += " AND partner_id = ?"
            params.append(partner_id)
        return [_webhook(row) for row in self._conn().execute(sql + " ORDER BY created_at, rid", params)]

    def update_webhook(self: SQLStore, webhook_id: str, changes: Mapping[str, Any], now: int) -> WebhookRecord | None:
        unknown = set(changes) - {"interval_ms", "query_json", "callback_url", "status"}
        if unknown:
            raise ValueError(f"update_webhook: unknown fields {sorted(unknown)}")
        with self._write() as conn:
            current = _row(conn, "SELECT rid, status FROM webhooks WHERE id = ? AND status != 'deleted'", (webhook_id,))
            if current is None:
                return None
            sets: list[str] = ["updated_at = ?"]
            params: list[Any] = [now]
            if "interval_ms" in changes:
                sets += ["interval_ms = ?", "next_run_at = ?"]
                params += [changes["interval_ms"], now + changes["interval_ms"]]
            if "query_json" in changes:
                sets.append("query = ?")
                params.append(changes["query_json"])
            if "callback_url" in changes:
                sets.append("callback_url = ?")
                params.append(changes["callback_url"])
            if "status" in changes:
                sets.append("status = ?")
                params.append(changes["status"])
                if changes["status"] == "active":
                    sets.append("disabled_reason = NULL")
            row = conn.execute(
                f"UPDATE webhooks SET {', '.join(sets)} WHERE rid = ? RETURNING {_COLUMNS}", (*params, current["rid"])
            ).fetchone()
            _bump(conn)
        return _webhook(row)

    def delete_webhook(self: SQLStore, webhook_id: str) -> bool:
        with self._write() as conn:
            row = conn.execute(
                "UPDATE webhooks SET status = 'deleted', updated_at = ? WHERE id = ? AND status != 'deleted' RETURNING rid",
                (_now(), webhook_id),
            ).fetchone()
            if row is None:
                return False
            # Its batches answer 404 from now on; prune drops their rows a page at a time.
            conn.execute("UPDATE batches SET state = 'expired', expires_at = MIN(expires_at, ?) WHERE webhook = ?",
                         (_now(), row[0]))
            conn.execute("DELETE FROM deliveries WHERE webhook = ?", (row[0],))
            _bump(conn)
        return True

    def request_true_up(self: SQLStore, webhook_id: str) -> WebhookRecord | None:
        with self._write() as conn:
            row = conn.execute(
                f"UPDATE webhooks SET true_up = 1 WHERE id = ? AND status != 'deleted' RETURNING {_COLUMNS}", (webhook_id,)
            ).fetchone()
            if row is not None:
                _bump(conn)
        return _webhook(row) if row else None

    def replay_webhook(self: SQLStore, webhook_id: str, now: int) -> int:
        with self._write() as conn:
            rid = conn.execute("SELECT rid FROM webhooks WHERE id = ? AND status != 'deleted'", (webhook_id,)).fetchone()
            if rid is None:
                return 0
            batches = [bid for (bid,) in conn.execute(
                "SELECT bid FROM batches WHERE webhook = ? AND state = 'sealed' AND fetched_at IS NULL AND expires_at > ?",
                (rid[0], now),
            )]
            for start in range(0, len(batches), _CHUNK):
                chunk = batches[start:start + _CHUNK]
                conn.execute(
                    f"UPDATE deliveries SET next_attempt_at = ?, round = 0 WHERE batch IN ({','.join('?' * len(chunk))})",
                    (now, *chunk),
                )
        return len(batches)

    def replay_batches(self: SQLStore, webhook_id: str, batch_ids: Sequence[str], now: int) -> ChosenReplay:
        wanted = list(dict.fromkeys(batch_ids))  # a repeated id counts once, in the order first asked
        with self._write() as conn:
            row = conn.execute("SELECT rid FROM webhooks WHERE id = ? AND status != 'deleted'", (webhook_id,)).fetchone()
            if row is None:
                return ChosenReplay([], wanted, [])
            rid = row[0]
            found: dict[str, tuple[int, str, int]] = {}
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start:start + _CHUNK]
                for bid, id_, state, expires_at in conn.execute(
                    f"SELECT bid, id, state, expires_at FROM batches WHERE webhook = ? AND state != 'building' "
                    f"AND id IN ({','.join('?' * len(chunk))})",
                    (rid, *chunk),
                ):
                    found[id_] = (bid, state, expires_at)
            unknown = [id_ for id_ in wanted if id_ not in found]
            expired = [id_ for id_ in wanted if id_ in found and (found[id_][1] != "sealed" or found[id_][2] <= now)]
            if unknown or expired:
                return ChosenReplay([], unknown, expired)
            bids = [found[id_][0] for id_ in wanted]
            for start in range(0, len(bids), _CHUNK):  # every destination of each batch, as a full replay does
                chunk = bids[start:start + _CHUNK]
                conn.execute(
                    f"UPDATE deliveries SET next_attempt_at = ?, round = 0 WHERE batch IN ({','.join('?' * len(chunk))})",
                    (now, *chunk),
                )
        return ChosenReplay(wanted, [], [])

    def rotate_webhook_secret(self: SQLStore, webhook_id: str, secret: str, old_expires_at: int | None,
                              now: int) -> WebhookRecord | None:
        with self._write() as conn:
            row = conn.execute(
                "UPDATE webhooks SET old_secret = CASE WHEN ? IS NULL THEN NULL ELSE secret END, "
                "old_secret_expires_at = ?, secret = ?, updated_at = ? "
                f"WHERE id = ? AND partner_id IS NOT NULL AND status != 'deleted' RETURNING {_COLUMNS}",
                (old_expires_at, old_expires_at, secret, now, webhook_id),
            ).fetchone()
        return _webhook(row) if row else None

    def webhooks_version(self: SQLStore) -> int:
        if not self._at_least(5):
            return 0
        return self._conn().execute("SELECT version FROM webhooks_version").fetchone()[0]

    # -- what the webhook bots ask ----------------------------------------------------------------
    def route_subscriptions(self: SQLStore, source_queue: str) -> list[tuple[WebhookRecord, str | None]]:
        rows = self._conn().execute(
            f"SELECT {_W_COLUMNS}, p.scope FROM webhooks w LEFT JOIN partners p ON p.id = w.partner_id "
            "WHERE w.source_queue = ? AND w.partner_id IS NOT NULL AND w.mode = 'changes' AND w.status != 'deleted' "
            "AND p.revoked_at IS NULL ORDER BY w.rid",
            (source_queue,),
        )
        return [(_webhook(row[:-1]), row[-1]) for row in rows]

    def next_seal_at(self: SQLStore) -> int | None:
        row = self._conn().execute(
            "SELECT MIN(next_run_at) FROM webhooks WHERE partner_id IS NOT NULL AND mode = 'changes' AND true_up = 0 "
            "AND status != 'deleted'"
        ).fetchone()
        return row[0] if row else None

    def due_snapshots(self: SQLStore, now: int) -> list[tuple[WebhookRecord, str | None]]:
        rows = self._conn().execute(
            f"SELECT {_W_COLUMNS}, p.scope FROM webhooks w JOIN partners p ON p.id = w.partner_id "
            "WHERE w.status != 'deleted' AND ((w.next_run_at <= ? AND (w.true_up = 1 OR w.mode = 'all')) "
            "OR EXISTS (SELECT 1 FROM batches b WHERE b.webhook = w.rid AND b.state = 'building')) "
            "ORDER BY w.next_run_at",
            (now,),
        )
        return [(_webhook(row[:-1]), row[-1]) for row in rows]

    def due_deliveries(self: SQLStore, sender: str, now: int, limit: int = 1000) -> list[DueDelivery]:
        if not self._at_least(5):
            return []
        rows = self._conn().execute(
            "SELECT d.batch, b.id, d.sender, d.webhook, w.id, b.records, b.true_up, b.created_at, d.attempts, d.round, "
            "w.callback_url, w.secret, w.old_secret, w.old_secret_expires_at FROM deliveries d "
            "JOIN batches b ON b.bid = d.batch "
            "JOIN webhooks w ON w.rid = d.webhook "
            "WHERE d.sender = ? AND d.next_attempt_at IS NOT NULL AND d.next_attempt_at <= ? AND b.state = 'sealed' "
            f"AND b.expires_at > ? AND w.status = 'active' AND {_LIVE_PARTNER} ORDER BY d.next_attempt_at LIMIT ?",
            (sender, now, now, limit),
        )
        return [
            DueDelivery(batch, batch_id, sender_, webhook, webhook_id, records, bool(true_up), created_at, attempts,
                        round_, url, secret, old_secret, old_expires_at)
            for (batch, batch_id, sender_, webhook, webhook_id, records, true_up, created_at, attempts, round_, url,
                 secret, old_secret, old_expires_at) in rows
        ]

    # -- batches ----------------------------------------------------------------------------------
    def batch(self: SQLStore, batch_id: str) -> BatchRecord | None:
        if not self._at_least(5):
            return None
        row = self._conn().execute(
            f"SELECT {_BATCH_COLUMNS} FROM batches b JOIN webhooks w ON w.rid = b.webhook "
            "WHERE b.id = ? AND b.state != 'building' AND w.status != 'deleted'",
            (batch_id,),
        ).fetchone()
        return _batch(row) if row else None

    def batches(self: SQLStore, webhook: int, *, unfetched: bool = False, limit: int = 100,
                before: int | None = None) -> list[BatchListing]:
        rows = self._conn().execute(
            "SELECT b.id, b.records, b.true_up, b.created_at, b.expires_at, b.fetched_at, d.delivered_at, "
            "COALESCE(d.attempts, 0), d.next_attempt_at, d.last_status, d.last_error, b.bid FROM batches b "
            "LEFT JOIN deliveries d ON d.batch = b.bid AND d.sender = "
            "(SELECT MIN(sender) FROM deliveries WHERE batch = b.bid) "
            f"WHERE b.webhook = ? AND b.state = 'sealed' AND b.expires_at > ?{' AND b.fetched_at IS NULL' if unfetched else ''} "
            "AND b.bid < ? ORDER BY b.bid DESC LIMIT ?",
            (webhook, _now(), before if before is not None else 1 << 62, limit),
        )
        return [BatchListing(id_, records, bool(true_up), *rest) for id_, records, true_up, *rest in rows]

    def batch_page(self: SQLStore, batch: BatchRecord, after: str | int | None, limit: int) -> list[tuple[str | int, str]]:
        conn = self._conn()
        if batch.true_up:  # its own lines, or those of the snapshot it shares
            return conn.execute(
                "SELECT id, line FROM batch_lines WHERE batch = (SELECT COALESCE(lines_of, bid) FROM batches "
                "WHERE bid = ?) AND id > ? ORDER BY id LIMIT ?",
                (batch.bid, after or 0, limit),
            ).fetchall()
        if after is None:
            return conn.execute(
                "SELECT w.key, e.payload FROM webhook_index w JOIN events e ON e.seq = w.seq "
                "WHERE w.webhook = ? AND w.generation = ? ORDER BY w.key LIMIT ?",
                (batch.webhook, batch.generation, limit),
            ).fetchall()
        return conn.execute(
            "SELECT w.key, e.payload FROM webhook_index w JOIN events e ON e.seq = w.seq "
            "WHERE w.webhook = ? AND w.generation = ? AND w.key > ? ORDER BY w.key LIMIT ?",
            (batch.webhook, batch.generation, after, limit),
        ).fetchall()

    def mark_fetched(self: SQLStore, bid: int, now: int) -> None:
        with self._write() as conn:
            conn.execute("UPDATE batches SET fetched_at = ? WHERE bid = ?", (now, bid))

    def webhook_status(self: SQLStore, partner_id: int | None = None, *, after: tuple[int, int] | None = None,
                       limit: int | None = None) -> list[WebhookStatusRow]:
        if not self._at_least(5):
            return []
        # One statement: the last batch, the unfetched count and the deliveries waiting on a retry
        # (or out of retries) of each webhook ride along with it.
        chosen, params = "", ()
        if partner_id is not None:
            chosen, params = " AND {w}partner_id = ?", (partner_id,)
        if after is not None:
            chosen += " AND ({w}created_at > ? OR ({w}created_at = ? AND {w}rid > ?))"
            params = (*params, after[0], after[0], after[1])
        rows = self._conn().execute(
            f"SELECT {_W_COLUMNS}, p.name, "
            "(SELECT id FROM batches WHERE webhook = w.rid AND state != 'building' ORDER BY bid DESC LIMIT 1), "
            "(SELECT COUNT(*) FROM batches WHERE webhook = w.rid AND state = 'sealed' AND fetched_at IS NULL "
            "AND expires_at > ?), COALESCE(d.retrying, 0), COALESCE(d.exhausted, 0) "
            "FROM webhooks w LEFT JOIN partners p ON p.id = w.partner_id LEFT JOIN "
            "(SELECT webhook, COUNT(next_attempt_at) AS retrying, COUNT(*) - COUNT(next_attempt_at) AS exhausted "
            "FROM deliveries WHERE delivered_at IS NULL AND attempts > 0 AND webhook IN "
            f"(SELECT rid FROM webhooks WHERE status != 'deleted'{chosen.format(w='')}) GROUP BY webhook) d "
            f"ON d.webhook = w.rid WHERE w.status != 'deleted'{chosen.format(w='w.')} "
            f"ORDER BY p.name, w.created_at, w.rid{f' LIMIT {int(limit)}' if limit is not None else ''}",
            (_now(), *params, *params),
        ).fetchall()
        return [WebhookStatusRow(_webhook(row[:-5]), *row[-5:]) for row in rows]

    # -- retention --------------------------------------------------------------------------------
    def prune_webhooks(self: SQLStore, now: int, limit: int = 10_000) -> int:
        """Expire batches past their time, then drop up to about `limit` rows that nothing needs
        any more (routed changes and snapshot lines of expired batches and deleted webhooks, and
        tombstones one retention period after expiry); short transactions. Returns rows dropped."""
        if not self._at_least(5):
            return 0
        dropped = 0
        with self._write() as conn:
            conn.execute("UPDATE batches SET state = 'expired' WHERE state = 'sealed' AND expires_at <= ?", (now,))
            # A snapshot's lines stay while a later, unexpired snapshot shares them (it expires later).
            expired = conn.execute(
                "SELECT bid, webhook, generation, true_up FROM batches b WHERE state = 'expired' AND NOT EXISTS "
                "(SELECT 1 FROM batches s WHERE s.lines_of = b.bid AND s.state IN ('sealed', 'building')) LIMIT 100"
            ).fetchall()
        for bid, webhook, generation, true_up in expired:
            if dropped >= limit:
                return dropped
            with self._write() as conn:
                if true_up:
                    count = conn.execute(
                        "DELETE FROM batch_lines WHERE id IN (SELECT id FROM batch_lines WHERE batch = ? ORDER BY id LIMIT ?)",
                        (bid, limit),
                    ).rowcount
                else:
                    count = 0
                count += _drop_window(conn, webhook, generation, limit)
                dropped += count
                if count < limit:
                    conn.execute("DELETE FROM deliveries WHERE batch = ?", (bid,))
                    conn.execute("UPDATE batches SET state = 'gone' WHERE bid = ?", (bid,))
        with self._write() as conn:
            # A tombstone answers 410 for one more retention period (expiry + its own lifetime).
            dropped += conn.execute(
                "DELETE FROM batches WHERE state = 'gone' AND expires_at + (expires_at - created_at) <= ?", (now,)
            ).rowcount
            for rid, generation in conn.execute(
                "SELECT rid, generation FROM webhooks WHERE status = 'deleted'"
            ).fetchall():
                if dropped >= limit:
                    break
                count = _drop_window(conn, rid, generation, limit)
                dropped += count
                if count < limit and not conn.execute("SELECT 1 FROM batches WHERE webhook = ? LIMIT 1", (rid,)).fetchone():
                    conn.execute("DELETE FROM webhooks WHERE rid = ?", (rid,))
        return dropped

    def webhook_floor(self: SQLStore, now: int, retention_ms: int) -> int | None:
        """The newest position retention may prune up to without losing a change a webhook still
        needs: one before the oldest change of an unexpired batch or of an open window that holds
        changes (a window left unsealed for a whole retention period past its due time, such as
        a batcher removed from the file, protects nothing). None: no limit."""
        if not self._at_least(5):
            return None
        row = self._conn().execute(
            "SELECT MIN(floor) FROM ("
            "SELECT MIN(from_seq) AS floor FROM batches WHERE state = 'sealed' AND true_up = 0 AND expires_at > ? "
            "UNION ALL SELECT MIN(window_from) FROM webhooks WHERE status != 'deleted' AND mode = 'changes' "
            "AND pending > 0 AND next_run_at > ?) AS floors",
            (now, now - retention_ms),
        ).fetchone()
        return row[0] if row and row[0] is not None else None


# -- ops inside a run's transaction ----------------------------------------------------------------
def apply_ops(store: SQLStore, conn: Connection, ops: Iterable[StoreOp]) -> dict[str, int]:
    """Apply a run's store ops in order, inside its transaction; return the queue heads appended."""
    heads: dict[str, int] = {}
    for op in ops:
        if isinstance(op, RouteChanges):
            _route(conn, op)
        elif isinstance(op, SealWebhooks):
            heads.update(_seal(store, conn, op))
        elif isinstance(op, StartSnapshot):
            _start_snapshot(conn, op)
        elif isinstance(op, AddSnapshotLines):
            _add_lines(conn, op)
        elif isinstance(op, FinishSnapshot):
            _finish_snapshot(conn, op)
        elif isinstance(op, ClaimDeliveries):
            _claim(conn, op)
        elif isinstance(op, RecordDeliveries):
            _record(conn, op.outcomes)
        elif isinstance(op, FanOut):
            heads.update(apply_fanout(store, conn, op))
        else:
            raise TypeError(f"the store cannot apply {type(op).__name__}")
    return heads


def _upsert_subscription(conn: Connection, subscription: BotSubscription, first_seq: int) -> int:
    now = _now()
    row = conn.execute(
        "SELECT rid, source_queue, router, interval_ms, out_queue, readers, status FROM webhooks WHERE id = ?",
        (subscription.id,),
    ).fetchone()
    if row is None:
        rid = conn.execute(
            "INSERT INTO webhooks(id, source_queue, router, interval_ms, mode, status, start_seq, window_from, "
            "next_run_at, out_queue, readers, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, 'changes', 'active', 0, ?, ?, ?, ?, ?, ?) RETURNING rid",
            (subscription.id, subscription.source_queue, subscription.router, subscription.interval_ms, max(first_seq - 1, 0),
             now + subscription.interval_ms, subscription.out_queue, subscription.readers_json, now, now),
        ).fetchone()[0]
        _bump(conn)
        return rid
    rid, source_queue, router, interval_ms, out_queue, readers, status = row
    if status == "deleted":  # a batcher deleted by an operator and still in the file: it starts over
        conn.execute("UPDATE webhooks SET status = 'active', generation = generation + 1, pending = 0, "
                     "window_from = ? WHERE rid = ?", (max(first_seq - 1, 0), rid))
    if (source_queue, router, interval_ms, out_queue, readers) != (
        subscription.source_queue, subscription.router, subscription.interval_ms, subscription.out_queue,
        subscription.readers_json,
    ) or status == "deleted":
        conn.execute(
            "UPDATE webhooks SET source_queue = ?, router = ?, interval_ms = ?, out_queue = ?, readers = ?, "
            "next_run_at = MIN(next_run_at, ?), updated_at = ? WHERE rid = ?",
            (subscription.source_queue, subscription.router, subscription.interval_ms, subscription.out_queue,
             subscription.readers_json, now + subscription.interval_ms, now, rid),
        )
        _bump(conn)
    return rid


def _route(conn: Connection, op: RouteChanges) -> None:
    by_webhook: dict[int, dict[str, int]] = {}
    for rid, seq, key in op.routes:  # in position order: a later change of a key replaces an earlier one
        by_webhook.setdefault(rid, {})[key] = seq
    if 0 in by_webhook:
        if op.subscription is None:
            raise ValueError("RouteChanges: rid 0 needs a subscription")
        first = min(by_webhook[0].values())
        by_webhook[_upsert_subscription(conn, op.subscription, first)] = by_webhook.pop(0)
    for rid, latest in by_webhook.items():
        row = conn.execute("SELECT generation, start_seq, status FROM webhooks WHERE rid = ?", (rid,)).fetchone()
        if row is None or row[2] == "deleted":
            continue
        generation, start, _ = row
        keys = [key for key, seq in latest.items() if seq > start]
        if not keys:
            continue
        present = 0
        for index in range(0, len(keys), _CHUNK):
            chunk = keys[index:index + _CHUNK]
            present += conn.execute(
                "SELECT COUNT(*) FROM webhook_index WHERE webhook = ? AND generation = ? "
                f"AND key IN ({','.join('?' * len(chunk))})",
                (rid, generation, *chunk),
            ).fetchone()[0]
        conn.executemany(
            "INSERT INTO webhook_index(webhook, generation, key, seq) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(webhook, generation, key) DO UPDATE SET seq = excluded.seq",
            [(rid, generation, key, latest[key]) for key in keys],
        )
        if len(keys) > present:
            conn.execute("UPDATE webhooks SET pending = pending + ? WHERE rid = ?", (len(keys) - present, rid))


def _seal(store: SQLStore, conn: Connection, op: SealWebhooks) -> dict[str, int]:
    now = op.now
    if op.webhooks is None:
        cursor = conn.execute(
            "SELECT rid, id, partner_id, source_queue, router, mode, generation, pending, window_from, next_run_at, "
            "interval_ms, out_queue FROM webhooks WHERE next_run_at <= ? AND partner_id IS NOT NULL AND mode = 'changes' "
            "AND true_up = 0 AND status != 'deleted' ORDER BY next_run_at LIMIT ?",
            (now, op.limit),
        )
    else:
        cursor = conn.execute(
            "SELECT rid, id, partner_id, source_queue, router, mode, generation, pending, window_from, next_run_at, "
            f"interval_ms, out_queue FROM webhooks WHERE rid IN ({','.join('?' * len(op.webhooks))}) AND next_run_at <= ? "
            "AND status != 'deleted'",
            (*op.webhooks, now),
        )
    names = [column[0] for column in cursor.description]
    due = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    events: list[PendingEvent] = []
    for webhook in due:
        step = windows.seal(webhook, _router_position(conn, webhook), now)
        if not step.batch:
            # Nothing to seal: the empty window moves up to the router (it protects no change).
            conn.execute("UPDATE webhooks SET next_run_at = ?, window_from = ? WHERE rid = ?",
                         (step.next_run_at, step.to, webhook["rid"]))
            continue
        batch_id = new_batch_id()
        bid = conn.execute(
            "INSERT INTO batches(id, webhook, generation, from_seq, to_seq, records, true_up, state, created_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?, ?, 0, 'sealed', ?, ?) RETURNING bid",
            (batch_id, webhook["rid"], webhook["generation"], webhook["window_from"], step.to, step.records, now,
             now + op.retention_ms),
        ).fetchone()[0]
        if step.notify:
            conn.execute("INSERT INTO deliveries(batch, sender, webhook, next_attempt_at) VALUES (?, '', ?, ?)",
                         (bid, webhook["rid"], now))
        conn.execute(
            "UPDATE webhooks SET generation = generation + 1, pending = 0, window_from = ?, next_run_at = ?, "
            "last_batch_at = ? WHERE rid = ?",
            (step.to, step.next_run_at, now, webhook["rid"]),
        )
        sealed = SealedBatch(bid, batch_id, webhook["id"], step.records, False, now)
        op.sealed.append(sealed)
        if webhook["out_queue"] and op.describe is not None:
            events.append(PendingEvent(webhook["out_queue"], op.describe(sealed)))
    if not events:
        return {}
    return store._insert(conn, events)[2]


def _start_snapshot(conn: Connection, op: StartSnapshot) -> None:
    if conn.execute("SELECT 1 FROM batches WHERE webhook = ? AND state = 'building'", (op.webhook,)).fetchone():
        return
    webhook = _row(conn, "SELECT rid, id, partner_id, source_queue, router, mode, generation, window_from, next_run_at, "
                         "interval_ms, updated_at FROM webhooks WHERE rid = ? AND status != 'deleted'", (op.webhook,))
    if webhook is None:
        return
    head = _source_head(conn, webhook["source_queue"])
    shared = conn.execute(
        "SELECT COALESCE(lines_of, bid), records FROM batches WHERE webhook = ? AND true_up = 1 AND state = 'sealed' "
        "AND expires_at > ? AND source_head = ? AND created_at >= ? ORDER BY bid DESC LIMIT 1",
        (op.webhook, op.now, head, webhook["updated_at"]),
    ).fetchone()
    if shared is None and op.max_bytes is not None and _held_bytes(conn, webhook["partner_id"]) >= op.max_bytes:
        _snapshot_refused(conn, webhook, op.now, op.max_bytes)
        return
    position = windows.window_end(webhook, _router_position(conn, webhook))
    # The snapshot supersedes the open window: its routed changes belong to the snapshot batch
    # (dropped with it) and later changes go to the next window.
    bid = conn.execute(
        "INSERT INTO batches(id, webhook, generation, from_seq, to_seq, records, true_up, state, created_at, expires_at, "
        "lines_of, source_head) VALUES (?, ?, ?, ?, ?, ?, 1, 'building', ?, ?, ?, ?) RETURNING bid",
        (new_batch_id(), op.webhook, webhook["generation"], webhook["window_from"], position,
         shared[1] if shared else 0, op.now, op.now + op.retention_ms, shared[0] if shared else None, head),
    ).fetchone()[0]
    conn.execute("UPDATE webhooks SET generation = generation + 1, pending = 0, window_from = ? WHERE rid = ?",
                 (position, op.webhook))
    if shared is not None:  # nothing changed since the last snapshot: this one is it again, sealed now
        op.sealed.append(_seal_snapshot(conn, webhook, bid, op.now, op.retention_ms))


def _source_head(conn: Connection, source_queue: str) -> int:
    row = conn.execute("SELECT head FROM queues WHERE name = ?", (source_queue,)).fetchone()
    return row[0] if row else 0


def _held_bytes(conn: Connection, partner_id: int | None) -> int:
    """Bytes of snapshot lines the partner's batches hold (until prune drops them: state 'gone')."""
    return conn.execute(
        "SELECT COALESCE(SUM(b.bytes), 0) FROM batches b JOIN webhooks w ON w.rid = b.webhook "
        "WHERE w.partner_id IS ? AND b.state != 'gone' AND b.bytes > 0",
        (partner_id,),
    ).fetchone()[0]


def _snapshot_refused(conn: Connection, webhook: Mapping[str, Any], now: int, max_bytes: int) -> None:
    """A snapshot that would pass the partner's byte quota waits: the webhook says why (the
    partner sees it on GET /v1/webhooks/{id}, operators in `leo webhooks list`) and tries
    again at its next interval."""
    held = _held_bytes(conn, webhook["partner_id"])
    conn.execute(
        "UPDATE webhooks SET next_run_at = ?, last_error = ? WHERE rid = ?",
        (windows.next_run(webhook, now), windows.snapshot_refused(held, max_bytes), webhook["rid"]),
    )


def _building(conn: Connection, webhook: int) -> int | None:
    row = conn.execute("SELECT bid FROM batches WHERE webhook = ? AND state = 'building'", (webhook,)).fetchone()
    return row[0] if row else None


def _add_lines(conn: Connection, op: AddSnapshotLines) -> None:
    bid = _building(conn, op.webhook)
    if bid is None or not op.lines:
        return
    size = sum(len(line) if line.isascii() else len(line.encode("utf-8", "surrogatepass")) for line in op.lines)
    if op.max_bytes is not None:
        webhook = _row(conn, "SELECT rid, partner_id, next_run_at, interval_ms FROM webhooks WHERE rid = ?", (op.webhook,))
        if webhook is not None and _held_bytes(conn, webhook["partner_id"]) + size > op.max_bytes:
            # Dropped with what it superseded (the window's routed changes): a true-up stays
            # requested, and the next snapshot holds every object as it is then.
            generation = conn.execute("DELETE FROM batches WHERE bid = ? RETURNING generation", (bid,)).fetchone()[0]
            conn.execute("DELETE FROM batch_lines WHERE batch = ?", (bid,))
            conn.execute("DELETE FROM webhook_index WHERE webhook = ? AND generation = ?", (op.webhook, generation))
            _snapshot_refused(conn, webhook, op.now, op.max_bytes)
            return
    conn.executemany("INSERT INTO batch_lines(batch, line) VALUES (?, ?)", [(bid, line) for line in op.lines])
    conn.execute("UPDATE batches SET records = records + ?, bytes = bytes + ? WHERE bid = ?", (len(op.lines), size, bid))


def _finish_snapshot(conn: Connection, op: FinishSnapshot) -> None:
    bid = _building(conn, op.webhook)
    webhook = _row(conn, "SELECT rid, id, partner_id, source_queue, next_run_at, interval_ms FROM webhooks WHERE rid = ?",
                   (op.webhook,))
    if bid is None or webhook is None:
        return
    # Shareable only if no change came while it was built (its lines show that head exactly).
    conn.execute("UPDATE batches SET source_head = NULL WHERE bid = ? AND source_head IS NOT ?",
                 (bid, _source_head(conn, webhook["source_queue"])))
    op.sealed.append(_seal_snapshot(conn, webhook, bid, op.now, op.retention_ms))


def _seal_snapshot(conn: Connection, webhook: Mapping[str, Any], bid: int, now: int,
                   retention_ms: int) -> SealedBatch:
    """Seal a snapshot batch: visible, due for notification; the webhook's next run moves on."""
    row = conn.execute(
        "UPDATE batches SET state = 'sealed', created_at = ?, expires_at = ? WHERE bid = ? RETURNING id, records",
        (now, now + retention_ms, bid),
    ).fetchone()
    if webhook["partner_id"] is not None:
        conn.execute("INSERT INTO deliveries(batch, sender, webhook, next_attempt_at) VALUES (?, '', ?, ?)",
                     (bid, webhook["rid"], now))
    conn.execute("UPDATE webhooks SET true_up = 0, next_run_at = ?, last_batch_at = ? WHERE rid = ?",
                 (windows.next_run(webhook, now), now, webhook["rid"]))
    return SealedBatch(bid, row[0], webhook["id"], row[1], True, now)


def _claim(conn: Connection, op: ClaimDeliveries) -> None:
    for batch_id in op.batch_ids:
        row = conn.execute("SELECT bid, webhook FROM batches WHERE id = ? AND state = 'sealed'", (batch_id,)).fetchone()
        if row is None:
            op.unknown.append(batch_id)
            continue
        conn.execute(
            "INSERT OR IGNORE INTO deliveries(batch, sender, webhook, next_attempt_at) VALUES (?, ?, ?, ?)",
            (row[0], op.sender, row[1], op.now),
        )


def _record(conn: Connection, outcomes: Sequence[DeliveryOutcome]) -> None:
    """Record attempts: each delivery's row, then each webhook's state as its outcomes leave it
    (in order: the last one decides). A statement per kind for the whole page, not per outcome:
    the sender's thread then gives the GIL back to the delivery loop a few times, not thousands.

    A delivery made due again after its attempt started (a replay while it was in flight: its
    next attempt lies after this one) keeps that replay's schedule; the attempt is still counted."""
    conn.executemany(
        "UPDATE deliveries SET attempts = attempts + 1, "
        "round = CASE WHEN next_attempt_at > ? THEN round ELSE round + 1 END, last_attempt_at = ?, last_status = ?, "
        "last_error = ?, next_attempt_at = CASE WHEN next_attempt_at > ? THEN next_attempt_at ELSE ? END, "
        "delivered_at = CASE WHEN ? THEN ? ELSE delivered_at END WHERE batch = ? AND sender = ?",
        [(o.attempted_at, o.attempted_at, o.status, o.error, o.attempted_at, o.next_attempt_at, o.delivered,
          o.attempted_at, o.batch, o.sender)
         for o in outcomes],
    )
    # A deleted webhook's outcomes update no row below either (its rid is gone).
    judgement = windows.judge(outcomes)
    # The callback answers again: the webhook's other notifications waiting for a retry go now.
    conn.executemany(
        "UPDATE deliveries SET next_attempt_at = ? WHERE webhook = ? AND sender = ? AND delivered_at IS NULL "
        "AND next_attempt_at > ?",
        [(attempted_at, webhook, sender, attempted_at) for (webhook, sender), attempted_at in judgement.released.items()],
    )
    conn.executemany(
        "UPDATE webhooks SET failing = COALESCE(?, failing), last_error = ?, "
        "last_delivered_at = COALESCE(?, last_delivered_at) WHERE rid = ?",
        [(None if state.failing is None else int(state.failing), state.last_error, state.last_delivered_at, webhook)
         for webhook, state in judgement.webhooks.items()],
    )
    for outcome in judgement.disabled:
        conn.execute(
            "UPDATE webhooks SET status = 'disabled', disabled_reason = ?, last_error = ?, updated_at = ? "
            "WHERE rid = ? AND status = 'active'",
            (windows.GONE_REASON, outcome.error, outcome.attempted_at, outcome.webhook),
        )
    if judgement.disabled:
        _bump(conn)


def _now() -> int:
    return now_ms()

