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
]
