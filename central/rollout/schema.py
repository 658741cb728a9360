"""The roll-out package's tables: allocation proposals and their items."""

from __future__ import annotations

from central.core.migrations import Step

TABLES = frozenset(
    {"rollout_proposals", "rollout_items", "checking"}
)  # temporary: the items a commit checks, set-based

STEPS = [
    # v5: roll-out allocation proposals, reviewed by a planner before they are committed.
    Step(
        5,
        """
    CREATE TABLE rollout_proposals (
        id              INTEGER PRIMARY KEY,
        created_at      TEXT NOT NULL,
        created_by      TEXT NOT NULL,
        description     TEXT NOT NULL DEFAULT '',
        state           TEXT NOT NULL DEFAULT 'proposed' CHECK (state IN ('proposed', 'committed', 'discarded')),
        decided_at      TEXT,
        decided_by      TEXT
    );
    CREATE TABLE rollout_items (
        proposal_id     INTEGER NOT NULL REFERENCES rollout_proposals (id),
        device_serial   TEXT NOT NULL,
        borough         TEXT NOT NULL,
        mode            TEXT NOT NULL CHECK (mode IN ('personal', 'pool')),
        officer_id      TEXT,
        station_id      TEXT,
        PRIMARY KEY (proposal_id, device_serial)
    ) WITHOUT ROWID;
    CREATE INDEX rollout_items_device ON rollout_items (device_serial);
    CREATE INDEX rollout_items_officer ON rollout_items (officer_id) WHERE officer_id IS NOT NULL;
    """,
        part=1,
    ),
    # v25 (part 2): a replacement names the withdrawn camera it replaces (central.rollout.replacements).
    Step(
        25,
        """
    ALTER TABLE rollout_items ADD COLUMN replaces TEXT;
    CREATE INDEX rollout_items_replaces ON rollout_items (replaces) WHERE replaces IS NOT NULL;
    """,
        part=2,
    ),
]
