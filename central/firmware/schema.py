"""The firmware package's tables: firmware releases and camera profiles."""

from __future__ import annotations

from central.core.migrations import Step

TABLES = frozenset({"firmware_releases", "camera_profiles"})

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
]
