"""The alerts package's tables: alerts as last observed, what each destination was told, the outbox."""

from __future__ import annotations

from central.core.migrations import Step

TABLES = frozenset({"alerts", "alert_notices", "alert_messages"})

STEPS = [
    # v30: alerts pushed by central (docs/alerts.md). ``alerts``: each (kind, borough) as the digest
    # job last counted it ('' for the force's own, a broken audit chain); ``alert_notices``: what each
    # destination was last told of it (0: that it was resolved); ``alert_messages``: the outbox, a
    # message written in the transaction that records what it tells, sent after, marked after that.
    Step(
        30,
        """
    CREATE TABLE alerts (
        kind            TEXT NOT NULL,
        borough         TEXT NOT NULL,
        count           INTEGER NOT NULL,
        active_since    TEXT,
        changed_at      TEXT NOT NULL,
        PRIMARY KEY (kind, borough)
    ) WITHOUT ROWID;
    CREATE TABLE alert_notices (
        destination     TEXT NOT NULL,
        kind            TEXT NOT NULL,
        borough         TEXT NOT NULL,
        count           INTEGER NOT NULL,
        told_at         TEXT NOT NULL,
        PRIMARY KEY (destination, kind, borough)
    ) WITHOUT ROWID;
    CREATE TABLE alert_messages (
        id              INTEGER PRIMARY KEY,
        message_id      TEXT NOT NULL UNIQUE,
        destination     TEXT NOT NULL,
        channel         TEXT NOT NULL CHECK (channel IN ('webhook', 'email')),
        body            TEXT NOT NULL,
        items           INTEGER NOT NULL,
        created_at      TEXT NOT NULL,
        state           TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'failed')),
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        last_error      TEXT,
        done_at         TEXT
    );
    CREATE INDEX alert_messages_pending ON alert_messages (destination, id) WHERE state = 'pending';
    """,
    ),
]
