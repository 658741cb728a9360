"""The registry's tables: cameras, their history and battery readings, officers, assignments,
conflicts, attributions (whose clip is whose), stations and their backlog samples."""

from __future__ import annotations

from central.core.migrations import Step

TABLES = frozenset(
    {
        "devices",
        "device_history",
        "battery_readings",
        "officers",
        "assignments",
        "conflicts",
        "attributions",
        "stations",
        "station_samples",
        "withdrawn_models",
        "firmware_seen",
    }
)

STEPS = [
    # v2: fleet state, derived from station events and from users' actions: stations as central
    # hears from them ...
    Step(
        2,
        """
    CREATE TABLE stations (
        station_id      TEXT PRIMARY KEY,
        borough         TEXT NOT NULL,
        acked_seq       INTEGER NOT NULL DEFAULT 0,
        last_seen_at    TEXT,
        clock_skew_s    REAL,
        backlog         TEXT,
        oldest_pending_recorded_at TEXT,
        pending_clips   INTEGER NOT NULL DEFAULT 0,
        pending_bytes   INTEGER NOT NULL DEFAULT 0
    );
    """,
        part=1,
    ),
    # ... and cameras, their history and battery, officers, who held what, conflicts, whose clip is whose.
    Step(
        2,
        """
    CREATE TABLE devices (
        serial          TEXT PRIMARY KEY,
        model           TEXT NOT NULL DEFAULT '',
        firmware        TEXT NOT NULL DEFAULT '',
        lifecycle       TEXT NOT NULL DEFAULT 'in_stock',
        borough         TEXT,
        home_station    TEXT,
        assignment_mode TEXT,
        registered_by   TEXT NOT NULL,
        registered_at   TEXT NOT NULL,
        last_docked_at  TEXT,
        last_station    TEXT,
        last_upload_at  TEXT,
        last_clip_at    TEXT,
        telemetry       TEXT,
        battery_soh     REAL,
        battery_cycles  INTEGER,
        battery_temp_c  REAL,
        battery_level   REAL,
        replace_by      TEXT,
        flag_short_shift INTEGER NOT NULL DEFAULT 0,
        flag_over_temp  INTEGER NOT NULL DEFAULT 0,
        flag_capacity_drop INTEGER NOT NULL DEFAULT 0,
        flag_stale      INTEGER NOT NULL DEFAULT 0,
        battery_dirty   INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX devices_borough ON devices (borough, serial);
    CREATE INDEX devices_lifecycle ON devices (lifecycle, serial);
    CREATE INDEX devices_short_shift ON devices (serial) WHERE flag_short_shift;
    CREATE INDEX devices_over_temp ON devices (serial) WHERE flag_over_temp;
    CREATE INDEX devices_capacity_drop ON devices (serial) WHERE flag_capacity_drop;
    CREATE INDEX devices_stale ON devices (serial) WHERE flag_stale;
    CREATE INDEX devices_battery_dirty ON devices (serial) WHERE battery_dirty;
    CREATE TABLE device_history (
        id              INTEGER PRIMARY KEY,
        serial          TEXT NOT NULL,
        at              TEXT NOT NULL,
        actor           TEXT NOT NULL,
        place           TEXT,
        from_state      TEXT,
        to_state        TEXT NOT NULL,
        reason          TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX device_history_serial ON device_history (serial, id);
    CREATE TABLE battery_readings (
        serial          TEXT NOT NULL,
        at              TEXT NOT NULL,
        station_id      TEXT,
        soh_pct         REAL,
        cycle_count     INTEGER,
        temperature_c   REAL,
        level_pct       REAL,
        full_mah        INTEGER,
        design_mah      INTEGER
    );
    CREATE INDEX battery_readings_serial ON battery_readings (serial, at);
    CREATE TABLE officers (
        officer_id      TEXT PRIMARY KEY,
        borough         TEXT NOT NULL,
        team            TEXT NOT NULL DEFAULT '',
        role            TEXT NOT NULL,
        name            TEXT NOT NULL DEFAULT '',
        active          INTEGER NOT NULL DEFAULT 1,
        updated_at      TEXT NOT NULL
    );
    CREATE INDEX officers_borough ON officers (borough, officer_id);
    CREATE TABLE assignments (
        id              INTEGER PRIMARY KEY,
        device_serial   TEXT NOT NULL,
        officer_id      TEXT NOT NULL,
        mode            TEXT NOT NULL CHECK (mode IN ('personal', 'pool')),
        started_at      TEXT NOT NULL,
        ended_at        TEXT,
        station_id      TEXT,
        started_by      TEXT NOT NULL,
        ended_by        TEXT,
        end_reason      TEXT
    );
    CREATE INDEX assignments_device ON assignments (device_serial, started_at);
    CREATE INDEX assignments_officer ON assignments (officer_id, started_at);
    CREATE INDEX assignments_open ON assignments (device_serial) WHERE ended_at IS NULL;
    CREATE TABLE conflicts (
        id              INTEGER PRIMARY KEY,
        kind            TEXT NOT NULL,
        borough         TEXT,
        device_serial   TEXT,
        officer_id      TEXT,
        detail          TEXT NOT NULL,
        detected_at     TEXT NOT NULL,
        resolved_at     TEXT,
        resolved_by     TEXT,
        resolution      TEXT
    );
    CREATE INDEX conflicts_open ON conflicts (detected_at) WHERE resolved_at IS NULL;
    CREATE TABLE attributions (
        clip_id         TEXT PRIMARY KEY,
        device_serial   TEXT NOT NULL,
        recorded_at     TEXT NOT NULL,
        station_id      TEXT,
        officer_id      TEXT,
        assignment_id   INTEGER,
        resolved_by     TEXT,
        resolved_at     TEXT
    );
    CREATE INDEX attributions_device ON attributions (device_serial, recorded_at);
    CREATE INDEX attributions_officer ON attributions (officer_id, recorded_at);
    CREATE INDEX attributions_unattributed ON attributions (recorded_at) WHERE officer_id IS NULL;
    """,
        part=3,
    ),
    # v3: events are applied by a projection worker after they are acknowledged (``applied_seq``);
    # faster indexes for attribution and the device filters.
    Step(
        3,
        """
    ALTER TABLE stations ADD COLUMN applied_seq INTEGER NOT NULL DEFAULT 0;
    UPDATE stations SET applied_seq = acked_seq;
    DROP INDEX attributions_officer;
    CREATE INDEX attributions_officer ON attributions (officer_id, recorded_at) WHERE officer_id IS NOT NULL;
    CREATE INDEX devices_last_station ON devices (last_station, serial);
    CREATE INDEX devices_replace_by ON devices (replace_by) WHERE replace_by IS NOT NULL;
    """,
    ),
    # v4: a conflict names the two assignments that overlap, and is listed once.
    Step(
        4,
        """
    ALTER TABLE conflicts ADD COLUMN assignment_a INTEGER;
    ALTER TABLE conflicts ADD COLUMN assignment_b INTEGER;
    CREATE UNIQUE INDEX conflicts_pair ON conflicts (assignment_a, assignment_b);
    """,
    ),
    # v5: the roll-out's progress counts cameras by the state their history reached.
    Step(
        5,
        """
    CREATE INDEX device_history_to_state ON device_history (to_state, serial);
    """,
        part=2,
    ),
    # v13: each station's backlog over time (the health job samples it), for the sync-lag chart.
    Step(
        13,
        """
    CREATE TABLE station_samples (
        station_id      TEXT NOT NULL,
        at              TEXT NOT NULL,
        pending_clips   INTEGER NOT NULL,
        pending_bytes   INTEGER NOT NULL,
        lag_h           REAL,
        PRIMARY KEY (station_id, at)
    ) WITHOUT ROWID;
    CREATE INDEX station_samples_at ON station_samples (at);
    """,
    ),
    # v16: each station's latest accepted station time (back-dated events are flagged) ...
    Step(
        16,
        """
    ALTER TABLE stations ADD COLUMN latest_at TEXT;
    """,
        part=2,
    ),
    # ... and conflicts found by either assignment of the pair (stale ones are withdrawn when an
    # interval shrinks).
    Step(
        16,
        """
    CREATE INDEX conflicts_b ON conflicts (assignment_b);
    """,
        part=4,
    ),
    # v25: camera models withdrawn from service (not fit for purpose), whose cameras are swapped
    # for others through the roll-out's proposals (central.rollout.replacements) ...
    Step(
        25,
        """
    CREATE TABLE withdrawn_models (
        model           TEXT PRIMARY KEY,
        withdrawn_at    TEXT NOT NULL,
        withdrawn_by    TEXT NOT NULL,
        reason          TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX devices_model ON devices (model, serial);
    """,
        part=1,
    ),
    # v27: the firmware versions each camera reported at its dockings, a row each time the version
    # central held for it changed (a camera's page shows its firmware over time); the cameras known
    # already start with the version they last reported.
    Step(
        27,
        """
    CREATE TABLE firmware_seen (
        serial          TEXT NOT NULL,
        at              TEXT NOT NULL,
        firmware        TEXT NOT NULL,
        station_id      TEXT,
        PRIMARY KEY (serial, at, firmware)
    ) WITHOUT ROWID;
    INSERT INTO firmware_seen (serial, at, firmware, station_id)
        SELECT serial, COALESCE(last_docked_at, registered_at), firmware, last_station FROM devices
        WHERE firmware <> '';
    """,
    ),
    # v26, PostgreSQL only: the projection writes these tables for every event. A camera's row is
    # rewritten at each docking and each run of its clips: with room on its page the new version
    # stays there (a HOT update) instead of going into each of the table's ten indexes. SQLite's
    # implicit ``rowid``, emulated on PostgreSQL by an identity column, is read by nothing here: a
    # sequence and a unique index less on each insert.
    Step(
        26,
        "",
        postgres="""
    ALTER TABLE devices SET (fillfactor = 50);
    ALTER TABLE devices DROP COLUMN rowid;
    ALTER TABLE attributions DROP COLUMN rowid;
    ALTER TABLE battery_readings DROP COLUMN rowid;
    """,
    ),
    # v34: a station's report of ingesting a clip, waiting for the clip's verified upload before its
    # custody record joins the chain, kept in the clip's attribution row (one row a clip, not two:
    # the projection's largest cost after the attribution itself was its claim's row and index).
    # ``claim_seq`` is NULL once the upload settled it. The waiting claims move here from the
    # events package's ``ingest_claims`` (a claim's attribution is its own station's:
    # ``claims.admit_ingests``), which part 2 drops.
    Step(
        34,
        """
    ALTER TABLE attributions ADD COLUMN claim_seq INTEGER;
    ALTER TABLE attributions ADD COLUMN claim_station_at TEXT;
    ALTER TABLE attributions ADD COLUMN claim_size INTEGER;
    ALTER TABLE attributions ADD COLUMN claim_sha256 TEXT;
    UPDATE attributions SET claim_seq = c.seq, claim_station_at = c.station_at, claim_size = c.size,
        claim_sha256 = c.sha256
    FROM ingest_claims AS c WHERE c.clip_id = attributions.clip_id AND c.station_id = attributions.station_id;
    """,
    ),
]
