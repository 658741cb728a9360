"""The uploads package's table: one row per upload (tus), its offset and state."""

from __future__ import annotations

from central.core.migrations import Step

TABLES = frozenset({"uploads"})

STEPS = [
    # v1: uploads in progress (the clips and the access log beside them are evidence's).
    Step(
        1,
        """
    CREATE TABLE uploads (
        upload_id   TEXT PRIMARY KEY,
        clip_id     TEXT NOT NULL UNIQUE,
        station_id  TEXT,
        length      INTEGER NOT NULL,
        offset      INTEGER NOT NULL DEFAULT 0,
        metadata    TEXT NOT NULL,
        sha256      TEXT NOT NULL,
        state       TEXT NOT NULL DEFAULT 'receiving' CHECK (state IN ('receiving', 'verified')),
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL,
        expires_at  TEXT
    );
    CREATE INDEX uploads_expiry ON uploads (expires_at) WHERE state = 'receiving';
    """,
        part=1,
    ),
    # v18: an upload staged in the S3 bucket (``[blobs] stage_uploads``): its multipart upload, the
    # size of its parts, the MD5 of each part stored (32 hex digits each, in order) and the object
    # holding the bytes after the last whole part. NULL multipart_id: the bytes are in a .part file.
    Step(
        18,
        """
    ALTER TABLE uploads ADD COLUMN multipart_id TEXT;
    ALTER TABLE uploads ADD COLUMN part_bytes INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE uploads ADD COLUMN parts_md5 TEXT NOT NULL DEFAULT '';
    ALTER TABLE uploads ADD COLUMN tail TEXT;
    """,
    ),
]
