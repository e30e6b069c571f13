"""Versioned schema migrations: every pending one is applied in order, all in ONE transaction
(a failure leaves the file as it was; two processes opening a new file never both migrate).

Never edit a released migration: add a new one. The store refuses a database whose schema is
newer than the newest migration here.
"""

from __future__ import annotations

SQLITE_MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "queues, events, checkpoints, bots",
        """
        CREATE TABLE queues (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            head INTEGER NOT NULL DEFAULT 0,
            depth INTEGER NOT NULL DEFAULT 0,
            created_at INTEGER NOT NULL
        );
        -- Positions come from this counter (not the rowid): never handed out twice, even after
        -- the newest events are pruned. last_time: write times never decrease along positions.
        CREATE TABLE positions (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            last INTEGER NOT NULL,
            last_time INTEGER NOT NULL
        );
        INSERT INTO positions (id, last, last_time) VALUES (1, 0, 0);
        CREATE TABLE events (
            seq INTEGER PRIMARY KEY,
            queue_id INTEGER NOT NULL REFERENCES queues(id),
            payload TEXT NOT NULL,
            event_source_timestamp INTEGER,
            timestamp INTEGER NOT NULL,
            correlation_id TEXT
        );
        CREATE INDEX events_by_queue ON events(queue_id, seq);
        CREATE TABLE checkpoints (
            bot_id TEXT NOT NULL,
            queue TEXT NOT NULL,
            position INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            resets INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (bot_id, queue)
        ) WITHOUT ROWID;
        CREATE TABLE bots (
            bot_id TEXT PRIMARY KEY,
            pipeline TEXT,
            paused INTEGER NOT NULL DEFAULT 0,
            lease_owner TEXT,
            lease_expires_at INTEGER,
            last_run_at INTEGER,
            last_error TEXT,
            last_error_at INTEGER,
            error_count INTEGER NOT NULL DEFAULT 0,
            runs INTEGER NOT NULL DEFAULT 0,
            events_in INTEGER NOT NULL DEFAULT 0,
            events_out INTEGER NOT NULL DEFAULT 0,
            state TEXT
        )
        """,
    ),
    (
        2,
        "objects: the latest state of every object",
        """
        -- One row per object type and key: the content hash of its canonical JSON, its version
        -- (1, 2, 3 ... per key), whether it is deleted, and the position and time of its latest
        -- change record in the queue T.changes. Kept small (no JSON text) so that comparing a
        -- large source, key by key in any order, stays within the page cache. raw_hash: a hash
        -- of a text known to hold exactly this content under this key (the NDJSON line it came
        -- as), so that the same line read again is recognised without parsing it (NULL: none).
        CREATE TABLE objects (
            object_type TEXT NOT NULL,
            key TEXT NOT NULL,
            version INTEGER NOT NULL,
            hash BLOB NOT NULL,
            deleted INTEGER NOT NULL DEFAULT 0,
            changed_at INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            data_id INTEGER NOT NULL,
            raw_hash BLOB,
            PRIMARY KEY (object_type, key)
        ) WITHOUT ROWID;
        -- The JSON text of each object's latest state (its last known state once deleted),
        -- stored as it came; read only to serve it and to name the fields a change touched.
        CREATE TABLE object_data (
            id INTEGER PRIMARY KEY,
            data TEXT NOT NULL
        )
        """,
    ),
    (
        3,
        "dead letters, stuck runs, runtimes",
        """
        -- When a live runtime found the bot's current run overrunning its time bound (NULL when
        -- not); cleared by the run's commit, a failure or the lease's release.
        ALTER TABLE bots ADD COLUMN stuck_since INTEGER;
        -- One row per event a bot moved to a dead-letter queue: seq is the event's position in
        -- that queue; source_queue/source_seq say where it came from (where a redrive sends it).
        CREATE TABLE dead_letters (
            seq INTEGER PRIMARY KEY,
            queue TEXT NOT NULL,
            bot_id TEXT NOT NULL,
            source_queue TEXT NOT NULL,
            source_seq INTEGER NOT NULL,
            error TEXT NOT NULL,
            failures INTEGER NOT NULL,
            dead_at INTEGER NOT NULL,
            redriven_at INTEGER,
            redriven_queue TEXT,
            redriven_seq INTEGER
        );
        CREATE INDEX dead_letters_by_queue ON dead_letters(queue, seq);
        CREATE INDEX dead_letters_by_bot ON dead_letters(bot_id);
        -- Every running `leo run` on this store: what `leo status` shows of it (a failed reload).
        CREATE TABLE runtimes (
            owner TEXT PRIMARY KEY,
            file TEXT,
            started_at INTEGER NOT NULL,
            seen_at INTEGER NOT NULL,
            reloads INTEGER NOT NULL DEFAULT 0,
            reload_error TEXT,
            reload_error_at INTEGER
        )
        """,
    ),
    (
        4,
        "partners: accounts, token hashes and scopes",
        """
        -- A trading partner's account. Tokens are never stored: only their SHA-256 (the UNIQUE
        -- index is what each request looks up). scope: the partner's query as JSON text, NULL for
        -- none. A revoked partner keeps its row (and its name) so that nothing it owned is orphaned.
        CREATE TABLE partners (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            token_hash BLOB NOT NULL UNIQUE,
            scope TEXT,
            created_at INTEGER NOT NULL,
            revoked_at INTEGER
        )
        """,
    ),
    (
        5,
        "webhooks: subscriptions, routed changes, sealed batches, deliveries",
        """
        -- A subscription that seals batches: a partner's webhook (partner_id set; id 'wh_...') or a
        -- batcher bot of pipelines.yaml (partner_id NULL; id 'bot:<bot id>'). source_queue is
        -- where its changes come from and router the bot whose checkpoint there closes a window.
        -- The open window is `generation`: its routed changes sit in webhook_index under that
        -- number, `pending` counts its distinct keys, window_from is the router's checkpoint when
        -- it opened (every change in it lies after that position). Sealing copies nothing: a batch
        -- row takes the window's number and the webhook moves to the next one.
        CREATE TABLE webhooks (
            rid INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            partner_id INTEGER REFERENCES partners(id),
            object_type TEXT,
            source_queue TEXT NOT NULL,
            router TEXT NOT NULL,
            query TEXT,
            callback_url TEXT,
            secret TEXT,
            interval_ms INTEGER NOT NULL,
            mode TEXT NOT NULL DEFAULT 'changes',
            status TEXT NOT NULL DEFAULT 'active',
            start_seq INTEGER NOT NULL DEFAULT 0,
            generation INTEGER NOT NULL DEFAULT 1,
            pending INTEGER NOT NULL DEFAULT 0,
            window_from INTEGER NOT NULL DEFAULT 0,
            next_run_at INTEGER NOT NULL,
            true_up INTEGER NOT NULL DEFAULT 0,
            out_queue TEXT,
            readers TEXT,
            failing INTEGER NOT NULL DEFAULT 0,
            disabled_reason TEXT,
            last_batch_at INTEGER,
            last_delivered_at INTEGER,
            last_error TEXT,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        );
        CREATE INDEX webhooks_by_source ON webhooks(source_queue);
        CREATE INDEX webhooks_by_partner ON webhooks(partner_id, created_at);
        CREATE INDEX webhooks_due ON webhooks(next_run_at);
        -- Bumped by every change of a webhook's settings: routers and the system pipeline compare it.
        CREATE TABLE webhooks_version (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);
        INSERT INTO webhooks_version (id, version) VALUES (1, 0);
        -- Routed changes: per webhook and window, one row per key holding the position of its
        -- latest change (an index into the events table, never a copy of the record).
        CREATE TABLE webhook_index (
            webhook INTEGER NOT NULL,
            generation INTEGER NOT NULL,
            key TEXT NOT NULL,
            seq INTEGER NOT NULL,
            PRIMARY KEY (webhook, generation, key)
        ) WITHOUT ROWID;
        -- A sealed batch: the window (webhook, generation) it holds, the positions around it, its
        -- record count and times. A true-up (snapshot) holds its lines in batch_lines instead.
        -- state: 'building' (a snapshot being copied; invisible), 'sealed', 'expired' (a tombstone
        -- that answers 410 until it is dropped).
        CREATE TABLE batches (
            bid INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            webhook INTEGER NOT NULL,
            generation INTEGER NOT NULL,
            from_seq INTEGER NOT NULL,
            to_seq INTEGER NOT NULL,
            records INTEGER NOT NULL DEFAULT 0,
            true_up INTEGER NOT NULL DEFAULT 0,
            state TEXT NOT NULL DEFAULT 'sealed',
            created_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL,
            fetched_at INTEGER
        );
        CREATE INDEX batches_by_webhook ON batches(webhook, bid);
        CREATE INDEX batches_by_expiry ON batches(expires_at);
        -- The lines of a snapshot batch (true-up, mode all), in order.
        CREATE TABLE batch_lines (
            id INTEGER PRIMARY KEY,
            batch INTEGER NOT NULL,
            line TEXT NOT NULL
        );
        CREATE INDEX batch_lines_by_batch ON batch_lines(batch, id);
        -- A batch's notification to one destination: '' is the partner webhook's callback, a bot
        -- id a webhook_sender of pipelines.yaml. next_attempt_at NULL: nothing to send (delivered,
        -- or its retries ran out). round counts attempts since the last replay (the retry step).
        CREATE TABLE deliveries (
            batch INTEGER NOT NULL,
            sender TEXT NOT NULL,
            webhook INTEGER NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            round INTEGER NOT NULL DEFAULT 0,
            next_attempt_at INTEGER,
            delivered_at INTEGER,
            last_attempt_at INTEGER,
            last_status INTEGER,
            last_error TEXT,
            PRIMARY KEY (batch, sender)
        ) WITHOUT ROWID;
        CREATE INDEX deliveries_due ON deliveries(sender, next_attempt_at) WHERE next_attempt_at IS NOT NULL;
        CREATE INDEX deliveries_by_webhook ON deliveries(webhook, sender)
        """,
    ),
    (
        6,
        "streams: partner streams, their partitions, checkpoints and leases",
        """
        -- A partner's stream of one object type's changes (its query AND the partner's scope).
        -- start_position: where its writer starts in T.changes (fixed when the stream is created).
        -- generation grows with every reset, so a commit made before a reset is refused.
        CREATE TABLE streams (
            id TEXT PRIMARY KEY,
            partner_id INTEGER NOT NULL REFERENCES partners(id),
            object_type TEXT NOT NULL,
            query TEXT,
            partitions INTEGER NOT NULL,
            generation INTEGER NOT NULL DEFAULT 1,
            start_position INTEGER NOT NULL,
            created_at INTEGER NOT NULL
        );
        CREATE INDEX streams_by_partner ON streams(partner_id);
        -- One row per partition: the partner's checkpoint (a position, exclusive) and the lease
        -- a consumer may hold on it (lease_id NULL, or expired: nobody holds it).
        CREATE TABLE stream_partitions (
            stream_id TEXT NOT NULL REFERENCES streams(id),
            partition INTEGER NOT NULL,
            checkpoint INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            lease_id TEXT,
            lease_expires_at INTEGER,
            PRIMARY KEY (stream_id, partition)
        ) WITHOUT ROWID
        """,
    ),
    (
        7,
        "console: bot history samples, failed-run totals, console sessions",
        """
        -- Every failed run, counted for good (error_count goes back to 0 on success): the
        -- console's error charts take differences of it.
        ALTER TABLE bots ADD COLUMN failures INTEGER NOT NULL DEFAULT 0;
        -- A bot's cumulative counters, sampled every few seconds by whichever host runs (one row
        -- per bot and sample time; a row only when a counter changed) and pruned after a day.
        CREATE TABLE bot_history (
            bot_id TEXT NOT NULL,
            at INTEGER NOT NULL,
            events_in INTEGER NOT NULL,
            events_out INTEGER NOT NULL,
            failures INTEGER NOT NULL,
            PRIMARY KEY (bot_id, at)
        ) WITHOUT ROWID;
        -- Signed-in console sessions: the cookie's token only as its SHA-256, with the session's
        -- CSRF token. Kept in the store so that every host of a cluster knows (and ends) them.
        CREATE TABLE console_sessions (
            token_hash BLOB PRIMARY KEY,
            csrf TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL
        )
        """,
    ),
    (
        8,
        "webhooks: the old signing secret, kept while a rotation lets it sign",
        """
        -- After a secret rotation the secret it replaced still signs notifications (beside the new
        -- one) until old_secret_expires_at (epoch ms); NULL when none is kept.
        ALTER TABLE webhooks ADD COLUMN old_secret TEXT;
        ALTER TABLE webhooks ADD COLUMN old_secret_expires_at INTEGER
        """,
    ),
    (
        9,
        "bounds: stream fan-out cursors, streams version, shared snapshot lines and their sizes",
        """
        -- One writer per object type fans each change out to every stream of that type. cursor:
        -- the position of T.changes through which the stream's records are written, while it
        -- catches up (start_at earliest or a time) or waits for the writer to reach its start;
        -- NULL once it follows the writer's own checkpoint. A stream that had a writer of its own
        -- goes on from that writer's checkpoint (whose rows go: no bot of that name runs again).
        ALTER TABLE streams ADD COLUMN cursor INTEGER;
        UPDATE streams SET cursor = COALESCE((SELECT c.position FROM checkpoints c
            WHERE c.bot_id = 'streams:' || streams.id AND c.queue = streams.object_type || '.changes'), start_position);
        DELETE FROM checkpoints WHERE bot_id LIKE 'streams:st\\_%' ESCAPE '\\' AND length(bot_id) = 31;
        DELETE FROM bots WHERE bot_id LIKE 'streams:st\\_%' ESCAPE '\\' AND length(bot_id) = 31;
        CREATE INDEX streams_by_type ON streams(object_type);
        -- Bumped when a stream is created or deleted, or a partner revoked: the writers compare it.
        CREATE TABLE streams_version (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);
        INSERT INTO streams_version (id, version) VALUES (1, 0);
        -- Snapshot batches: bytes counts the lines a batch holds (charged to its partner's
        -- server.limits.batch_bytes); lines_of names the batch whose lines an unchanged snapshot
        -- shares instead of copying them; source_head is the head of the webhook's source queue
        -- a finished snapshot shows (NULL: a change came while it was built, so none may share it).
        ALTER TABLE batches ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE batches ADD COLUMN lines_of INTEGER;
        ALTER TABLE batches ADD COLUMN source_head INTEGER;
        UPDATE batches SET bytes = (SELECT COALESCE(SUM(length(CAST(line AS BLOB))), 0) FROM batch_lines
            WHERE batch_lines.batch = batches.bid) WHERE true_up = 1;
        CREATE INDEX batches_by_lines ON batches(lines_of) WHERE lines_of IS NOT NULL;
        CREATE INDEX batches_holding_lines ON batches(webhook) WHERE bytes > 0
        """,
    ),
    (
        10,
        "hosts: the registry of leo run processes, shared token buckets",
        """
        -- One row per running `leo run` process (a host of the cluster): id is its lease owner
        -- id (name:pid:nonce); role says what it runs (all, api, bots); address is its HTTP
        -- API (NULL: none); seen_at its last heartbeat (older than cluster.lease_ttl: dead).
        CREATE TABLE hosts (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            pid INTEGER NOT NULL,
            role TEXT NOT NULL,
            address TEXT,
            started_at INTEGER NOT NULL,
            seen_at INTEGER NOT NULL
        );
        CREATE INDEX hosts_by_seen ON hosts(seen_at);
        -- Token buckets every host takes from (Get Object's rate per partner): level in the
        -- units of leo_runtime.server.ratelimit, updated_at in epoch nanoseconds.
        CREATE TABLE rate_buckets (
            key TEXT PRIMARY KEY,
            level BIGINT NOT NULL,
            updated_at BIGINT NOT NULL
        )
        """,
    ),
    (
        11,
        "streams: shared logs",
        """
        -- Streams of one object type, query, partner scope and partition count that start while
        -- their writer has written every change read one copy of their records: log is the base
        -- of those shared partition queues (NULL: the stream's own, streams.<id>), joined_at the
        -- position after which the log's records are the stream's.
        ALTER TABLE streams ADD COLUMN log TEXT;
        ALTER TABLE streams ADD COLUMN joined_at INTEGER
        """,
    ),
]
