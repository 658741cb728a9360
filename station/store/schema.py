"""The station database's schema: every table's migrations, in order (PRAGMA user_version counts them).

One history for the one file: a step may touch several tables, and each table's reads and
writes belong to one module of this package (see its docstring). Steps are only ever added.
"""

MIGRATIONS = [
    """
    CREATE TABLE clips (
        clip_id         TEXT PRIMARY KEY,
        sha256          TEXT NOT NULL,
        size            INTEGER NOT NULL,
        device_serial   TEXT NOT NULL,
        recorded_at     TEXT NOT NULL,
        filename        TEXT NOT NULL,
        duration_s      REAL NOT NULL DEFAULT 0,
        pre_record_s    REAL NOT NULL DEFAULT 0,
        tags            TEXT NOT NULL DEFAULT '[]',
        evidential      INTEGER NOT NULL DEFAULT 0,
        dock_folder     TEXT NOT NULL,
        ingested_at     TEXT NOT NULL,
        state           TEXT NOT NULL DEFAULT 'queued'
                        CHECK (state IN ('queued', 'uploading', 'waiting', 'verified', 'failed')),
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT,
        last_error      TEXT,
        upload_url      TEXT,
        uploaded_bytes  INTEGER NOT NULL DEFAULT 0,
        verified_at     TEXT,
        local_path      TEXT,
        local_deleted_at TEXT
    );
    CREATE INDEX clips_due ON clips (state, evidential DESC, recorded_at);
    CREATE INDEX clips_local ON clips (state, verified_at) WHERE local_path IS NOT NULL;
    CREATE TABLE dockings (
        id              INTEGER PRIMARY KEY,
        folder          TEXT NOT NULL,
        device_serial   TEXT NOT NULL,
        docked_at       TEXT,
        ingested_at     TEXT NOT NULL,
        clip_count      INTEGER NOT NULL,
        device_json     TEXT NOT NULL
    );
    CREATE TABLE bad_folders (
        folder          TEXT PRIMARY KEY,
        reason          TEXT NOT NULL,
        signature       TEXT NOT NULL,
        transient       INTEGER NOT NULL,
        first_seen_at   TEXT NOT NULL,
        last_seen_at    TEXT NOT NULL
    );
    CREATE TABLE meta (
        key             TEXT PRIMARY KEY,
        value           TEXT NOT NULL
    );
    """,
    # v2: the per-chunk checksums computed at ingest, so uploads need not hash again.
    """
    ALTER TABLE clips ADD COLUMN chunk_bytes INTEGER;
    ALTER TABLE clips ADD COLUMN chunk_algorithm TEXT;
    ALTER TABLE clips ADD COLUMN chunk_checksums TEXT;
    """,
    # v3: two-way sync. The event outbox (seq never reused: AUTOINCREMENT), the mirror of
    # central's registry for this borough, and the pool checkouts made at this desk.
    """
    CREATE TABLE outbox (
        seq             INTEGER PRIMARY KEY AUTOINCREMENT,
        kind            TEXT NOT NULL,
        at              TEXT NOT NULL,
        body            BLOB NOT NULL
    );
    CREATE TABLE officers (
        officer_id      TEXT PRIMARY KEY,
        borough         TEXT NOT NULL,
        team            TEXT NOT NULL,
        role            TEXT NOT NULL,
        name            TEXT NOT NULL,
        active          INTEGER NOT NULL
    );
    CREATE TABLE devices (
        serial          TEXT PRIMARY KEY,
        model           TEXT NOT NULL,
        lifecycle       TEXT NOT NULL,
        borough         TEXT,
        home_station    TEXT,
        assignment_mode TEXT
    );
    CREATE TABLE personal_issues (
        device_serial   TEXT PRIMARY KEY,
        officer_id      TEXT NOT NULL,
        since           TEXT NOT NULL
    );
    CREATE INDEX personal_issues_officer ON personal_issues (officer_id);
    CREATE TABLE checkouts (
        id              INTEGER PRIMARY KEY,
        device_serial   TEXT NOT NULL,
        officer_id      TEXT NOT NULL,
        out_at          TEXT NOT NULL,
        battery_pct     REAL,
        out_by          TEXT NOT NULL,
        in_at           TEXT,
        in_reason       TEXT,
        in_by           TEXT
    );
    CREATE UNIQUE INDEX checkouts_open_device ON checkouts (device_serial) WHERE in_at IS NULL;
    CREATE UNIQUE INDEX checkouts_open_officer ON checkouts (officer_id) WHERE in_at IS NULL;
    CREATE INDEX checkouts_device ON checkouts (device_serial, id);
    CREATE INDEX dockings_device ON dockings (device_serial, id);
    """,
    # v4: a checkout remembers the docking it was charged from, so "docked since it was last
    # out" compares row ids, which only grow, rather than station times, which can step back.
    # Checkouts made before this version get the last docking their own clock put before them.
    """
    ALTER TABLE checkouts ADD COLUMN docking_id INTEGER;
    UPDATE checkouts SET docking_id = (SELECT MAX(d.id) FROM dockings d WHERE d.device_serial = checkouts.device_serial
                                       AND d.ingested_at < checkouts.out_at);
    """,
    # v5: clips a hold protects (from central's changes feed): their local copies stay.
    """
    CREATE TABLE held_clips (
        clip_id         TEXT PRIMARY KEY
    ) WITHOUT ROWID;
    """,
    # v6: a docking is looked up by its folder, so that redoing an ingest after a crash
    # (recorded, but INGESTED.json not yet written) records the docking once.
    """
    CREATE INDEX dockings_folder ON dockings (folder);
    """,
    # v7: clips sealed at rest (docs/at-rest.md): each row's data key, wrapped by the station key
    # named by wrapped_by. NULL for a clip stored plain before this version (uploaded as it is).
    """
    ALTER TABLE clips ADD COLUMN wrapped_by TEXT;
    ALTER TABLE clips ADD COLUMN wrapped_key BLOB;
    CREATE INDEX clips_wrapped_by ON clips (wrapped_by) WHERE wrapped_key IS NOT NULL;
    """,
    # v8: deployments (docs/firmware.md): central's offers to this borough's cameras (one per camera),
    # the artifacts downloaded for them, the updates written into docked folders, the cameras' reports.
    """
    CREATE TABLE camera_updates (
        serial          TEXT PRIMARY KEY,
        deployment_id   INTEGER NOT NULL,
        sha256          TEXT,
        body            TEXT NOT NULL,
        received_at     TEXT NOT NULL,
        waiting         TEXT
    );
    CREATE INDEX camera_updates_sha256 ON camera_updates (sha256) WHERE sha256 IS NOT NULL;
    CREATE TABLE firmware_artifacts (
        sha256          TEXT PRIMARY KEY,
        release_id      INTEGER NOT NULL,
        size            INTEGER NOT NULL,
        state           TEXT NOT NULL CHECK (state IN ('verified', 'failed')),
        verified_at     TEXT,
        failures        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT,
        last_error      TEXT,
        last_error_at   TEXT,
        unused_since    TEXT
    );
    CREATE TABLE update_handovers (
        folder          TEXT NOT NULL,
        serial          TEXT NOT NULL,
        deployment_id   INTEGER NOT NULL,
        attempt         INTEGER NOT NULL,
        at              TEXT NOT NULL,
        PRIMARY KEY (folder, deployment_id, attempt)
    );
    CREATE TABLE update_results (
        serial          TEXT NOT NULL,
        deployment_id   INTEGER NOT NULL,
        attempt         INTEGER NOT NULL,
        ok              INTEGER NOT NULL,
        version         TEXT NOT NULL,
        error           TEXT,
        folder          TEXT NOT NULL,
        at              TEXT NOT NULL,
        PRIMARY KEY (serial, deployment_id, attempt)
    );
    """,
    # A hand-over belongs to one docking of one camera, not to a folder name: a dock may name its
    # folders by slot, and a camera taken out before it read its update is handed it again.
    """
    ALTER TABLE update_handovers ADD COLUMN docking TEXT NOT NULL DEFAULT '';
    """,
    # v10: clips a central restored to an earlier point may have lost: asked again before the
    # station's events are resent (docs/backup.md); their local copies are kept meanwhile.
    """
    CREATE TABLE clip_rechecks (
        clip_id         TEXT PRIMARY KEY REFERENCES clips (clip_id)
    );
    """,
    # v11: when each offer last moved (``updates_version`` then: the offer, or the camera's report),
    # so the dock pass looks again at a settled folder only when its own camera's offer moved, not
    # every docked folder at every offer or report that reaches the station.
    """
    ALTER TABLE camera_updates ADD COLUMN moved INTEGER NOT NULL DEFAULT 0;
    """,
]
