"""The firmware package's tables: firmware releases, camera profiles, and their deployments."""

from __future__ import annotations

from central.core.migrations import Step

TABLES = frozenset(
    {
        "firmware_releases",
        "camera_profiles",
        "deployments",
        "deployment_phases",
        "deployment_cameras",
        "camera_settings",
    }
)

STEPS = [
    # v23: vendor-signed firmware releases (the artifact in the blob store under
    # ``firmware-<sha256>``, never a clip's key) and the camera profiles set per scope.
    Step(
        23,
        """
    CREATE TABLE firmware_releases (
        id              INTEGER PRIMARY KEY,
        model           TEXT NOT NULL,
        version         TEXT NOT NULL,
        sha256          TEXT NOT NULL,
        size            INTEGER NOT NULL,
        signature       TEXT NOT NULL,
        signed_by       TEXT NOT NULL,
        blob_key        TEXT NOT NULL,
        notes           TEXT NOT NULL DEFAULT '',
        added_at        TEXT NOT NULL,
        added_by        TEXT NOT NULL,
        withdrawn_at    TEXT,
        withdrawn_by    TEXT,
        withdrawn_reason TEXT,
        UNIQUE (model, version)
    );
    CREATE INDEX firmware_releases_blob ON firmware_releases (blob_key);
    CREATE TABLE camera_profiles (
        scope           TEXT PRIMARY KEY,
        kind            TEXT NOT NULL CHECK (kind IN ('default', 'model', 'borough', 'role')),
        name            TEXT NOT NULL,
        settings        TEXT NOT NULL,
        updated_at      TEXT NOT NULL,
        updated_by      TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
    ),
    # v24: deployments of a release or of the profiles, in phases; each targeted camera's state.
    # ``lock`` (the release's model, or 'profiles') is unique among running and paused
    # deployments: one at a time per model. ``base_results`` / ``base_failures``: a phase's
    # figures when a person last resumed it (the pause rule judges what came after).
    Step(
        24,
        """
    CREATE TABLE deployments (
        id              INTEGER PRIMARY KEY,
        kind            TEXT NOT NULL CHECK (kind IN ('release', 'profiles')),
        release_id      INTEGER REFERENCES firmware_releases (id),
        lock            TEXT NOT NULL,
        state           TEXT NOT NULL CHECK (state IN ('running', 'paused', 'completed', 'aborted', 'rolled_back')),
        target          TEXT NOT NULL,
        policy          TEXT NOT NULL,
        reason          TEXT NOT NULL,
        rollback_of     INTEGER REFERENCES deployments (id),
        created_at      TEXT NOT NULL,
        created_by      TEXT NOT NULL,
        decided_at      TEXT NOT NULL,
        decided_by      TEXT NOT NULL,
        decision        TEXT NOT NULL
    );
    CREATE UNIQUE INDEX deployments_one_at_a_time ON deployments (lock) WHERE state IN ('running', 'paused');
    CREATE TABLE deployment_phases (
        deployment_id   INTEGER NOT NULL REFERENCES deployments (id),
        phase           INTEGER NOT NULL,
        share_pct       REAL,
        boroughs        TEXT,
        max_failure_pct REAL NOT NULL,
        min_results     INTEGER NOT NULL,
        state           TEXT NOT NULL CHECK (state IN ('waiting', 'open', 'done')),
        opened_at       TEXT,
        done_at         TEXT,
        base_results    INTEGER NOT NULL DEFAULT 0,
        base_failures   INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (deployment_id, phase)
    );
    CREATE TABLE deployment_cameras (
        deployment_id   INTEGER NOT NULL REFERENCES deployments (id),
        serial          TEXT NOT NULL,
        phase           INTEGER NOT NULL,
        state           TEXT NOT NULL
            CHECK (state IN ('waiting', 'offered', 'updated', 'failed', 'gave_up', 'cancelled')),
        from_version    TEXT NOT NULL,
        failures        INTEGER NOT NULL DEFAULT 0,
        results         INTEGER NOT NULL DEFAULT 0,
        profile         TEXT,
        handed_attempt  INTEGER,
        handed_at       TEXT,
        result_at       TEXT,
        version         TEXT,
        error           TEXT,
        PRIMARY KEY (deployment_id, serial)
    );
    CREATE INDEX deployment_cameras_phase ON deployment_cameras (deployment_id, phase, state);
    CREATE INDEX deployment_cameras_serial ON deployment_cameras (serial, state);
    """,
    ),
    # v28: a phase's soak (the next phase opens once it has run this long with enough results and
    # few enough failures; NULL for deployments made before, which wait for their cameras) and when
    # a person last resumed it (the soak counts again from then). The phases' figures, counted each
    # time results are applied, read from an index that holds all they need (not the table's rows).
    Step(
        28,
        """
    ALTER TABLE deployment_phases ADD COLUMN soak_hours REAL;
    ALTER TABLE deployment_phases ADD COLUMN resumed_at TEXT;
    DROP INDEX deployment_cameras_phase;
    CREATE INDEX deployment_cameras_phase ON deployment_cameras (deployment_id, phase, state, failures, results);
    """,
    ),
    # v29: each camera's settings over time (``central.firmware.settings_history``): a row each time its
    # effective profile changed, confirmed when the camera reports the profile deployment applied.
    Step(
        29,
        """
    CREATE TABLE camera_settings (
        id              INTEGER PRIMARY KEY,
        serial          TEXT NOT NULL,
        at              TEXT NOT NULL,
        cause           TEXT NOT NULL,
        actor           TEXT NOT NULL,
        settings        TEXT NOT NULL,
        sources         TEXT,
        confirmed_at    TEXT,
        deployment_id   INTEGER REFERENCES deployments (id),
        station_id      TEXT
    );
    CREATE INDEX camera_settings_serial ON camera_settings (serial, id);
    """,
    ),
    # v33: each phase's figures kept as counters, changed with its cameras' rows in one transaction
    # (``central.firmware.deployments._set_cameras``), so that applying a batch of results no longer
    # counts all of a deployment's cameras (a GROUP BY over 20,000 rows, inside the write
    # transaction uploads wait for). Existing deployments' counters are counted here once.
    Step(
        33,
        """
    ALTER TABLE deployment_phases ADD COLUMN cameras INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE deployment_phases ADD COLUMN updated INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE deployment_phases ADD COLUMN failed INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE deployment_phases ADD COLUMN gave_up INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE deployment_phases ADD COLUMN cancelled INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE deployment_phases ADD COLUMN results INTEGER NOT NULL DEFAULT 0;
    UPDATE deployment_phases SET cameras = f.cameras, updated = f.updated, failed = f.failed,
        gave_up = f.gave_up, cancelled = f.cancelled, results = f.results
    FROM (
        SELECT deployment_id, phase, COUNT(*) AS cameras,
            SUM(CASE WHEN state = 'updated' THEN 1 ELSE 0 END) AS updated,
            SUM(CASE WHEN failures > 0 THEN 1 ELSE 0 END) AS failed,
            SUM(CASE WHEN state = 'gave_up' THEN 1 ELSE 0 END) AS gave_up,
            SUM(CASE WHEN state = 'cancelled' THEN 1 ELSE 0 END) AS cancelled,
            SUM(CASE WHEN results > 0 THEN 1 ELSE 0 END) AS results
        FROM deployment_cameras GROUP BY deployment_id, phase
    ) AS f
    WHERE deployment_phases.deployment_id = f.deployment_id AND deployment_phases.phase = f.phase;
    """,
    ),
]
