"""The events package's tables: the event log, the changes feed, refused claims. (Ingest claims
waiting for their upload live in their clips' attribution rows since v34: ``central.registry.attribution``.)"""

from __future__ import annotations

from central.core.migrations import Step

TABLES = frozenset({"events", "changes", "station_refusals"})
DROPPED = frozenset({"ingest_claims"})
"""Tables this package had, dropped by a later step (their steps stay: a database migrates through them)."""

STEPS = [
    # v2: events from stations, stored by (station, seq) (between the registry's stations and devices).
    Step(
        2,
        """
    CREATE TABLE events (
        station_id      TEXT NOT NULL,
        seq             INTEGER NOT NULL,
        kind            TEXT NOT NULL,
        station_at      TEXT NOT NULL,
        received_at     TEXT NOT NULL,
        body            BLOB NOT NULL,
        PRIMARY KEY (station_id, seq)
    ) WITHOUT ROWID;
    """,
        part=2,
    ),
    # v2: the changes feed for stations.
    Step(
        2,
        """
    CREATE TABLE changes (
        cursor          INTEGER PRIMARY KEY AUTOINCREMENT,
        borough         TEXT,
        kind            TEXT NOT NULL,
        key             TEXT NOT NULL,
        body            BLOB NOT NULL
    );
    CREATE INDEX changes_borough ON changes (borough, cursor);
    """,
        part=4,
    ),
    # v16: what stations claimed beyond what they may (refused, never applied: ``central.events.claims``);
    # ingests waiting for their upload before their custody record joins the chain.
    Step(
        16,
        """
    CREATE TABLE station_refusals (
        id              INTEGER PRIMARY KEY,
        station_id      TEXT NOT NULL,
        seq             INTEGER NOT NULL,
        kind            TEXT NOT NULL,
        subject         TEXT NOT NULL,
        reason          TEXT NOT NULL,
        station_at      TEXT NOT NULL,
        at              TEXT NOT NULL
    );
    CREATE INDEX station_refusals_station ON station_refusals (station_id, id);
    CREATE INDEX station_refusals_at ON station_refusals (at);
    CREATE TABLE ingest_claims (
        clip_id         TEXT NOT NULL,
        station_id      TEXT NOT NULL,
        seq             INTEGER NOT NULL,
        station_at      TEXT NOT NULL,
        device_serial   TEXT NOT NULL,
        size            INTEGER NOT NULL,
        sha256          TEXT NOT NULL,
        PRIMARY KEY (clip_id, station_id)
    ) WITHOUT ROWID;
    """,
        part=1,
    ),
    # v16: each event's batch's sending time, station clock (future-dated events are flagged).
    Step(
        16,
        """
    ALTER TABLE events ADD COLUMN sent_at TEXT;
    """,
        part=3,
    ),
    # v34: the waiting ingest claims moved into their clips' attribution rows (part 1, the registry's).
    Step(
        34,
        """
    DROP TABLE ingest_claims;
    """,
        part=2,
    ),
]
