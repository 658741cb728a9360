"""The evidence package's tables: clips, the access log, the audit chain, holds and cases,
retention rules and purges, the configuration last audited, the public's requests to keep footage."""

from __future__ import annotations

from central.core.migrations import Step

TABLES = frozenset(
    {
        "clips",
        "access_log",
        "audit",
        "audit_head",
        "audit_anchors",
        "holds",
        "case_clips",
        "retention_rules",
        "purge_pending",
        "config_seen",
        "held_now",
        "clip_retention",
        "case_shares",
        "case_share_clips",
        "keep_requests",
        "keep_request_clips",
    }
)  # temporary: the clips held now, listed in the retention job's transaction

STEPS = [
    # v1: verified clips (and those still being received), the access log.
    Step(
        1,
        """
    CREATE TABLE clips (
        clip_id       TEXT PRIMARY KEY,
        upload_id     TEXT NOT NULL,
        sha256        TEXT NOT NULL,
        size          INTEGER NOT NULL,
        state         TEXT NOT NULL CHECK (state IN ('receiving', 'verified')),
        station_id    TEXT,
        device_serial TEXT NOT NULL,
        recorded_at   TEXT NOT NULL,
        filename      TEXT NOT NULL,
        evidential    INTEGER NOT NULL DEFAULT 0,
        tags          TEXT NOT NULL DEFAULT '[]',
        duration_s    REAL NOT NULL DEFAULT 0,
        verified_at   TEXT,
        blob_key      TEXT
    );
    CREATE INDEX clips_recorded ON clips (recorded_at, clip_id);
    CREATE INDEX clips_station ON clips (station_id, recorded_at, clip_id);
    CREATE INDEX clips_device ON clips (device_serial, recorded_at, clip_id);
    CREATE TABLE access_log (
        id        INTEGER PRIMARY KEY,
        at        TEXT NOT NULL,
        actor     TEXT NOT NULL,
        action    TEXT NOT NULL,
        clip_id   TEXT,
        detail    TEXT
    );
    """,
        part=2,
    ),
    # v2: the audit trail of fleet actions.
    Step(
        2,
        """
    CREATE TABLE audit (
        id              INTEGER PRIMARY KEY,
        at              TEXT NOT NULL,
        actor           TEXT NOT NULL,
        place           TEXT,
        action          TEXT NOT NULL,
        object_type     TEXT NOT NULL,
        object_id       TEXT NOT NULL,
        detail          TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX audit_object ON audit (object_type, object_id, id);
    """,
        part=5,
    ),
    # v6: the audit trail becomes a hash chain with a head and periodic anchors (central.evidence.audit).
    Step(
        6,
        """
    ALTER TABLE audit ADD COLUMN prev_hash TEXT;
    ALTER TABLE audit ADD COLUMN hash TEXT;
    CREATE TABLE audit_head (
        one             INTEGER PRIMARY KEY CHECK (one = 1),
        last_id         INTEGER NOT NULL,
        last_hash       TEXT NOT NULL
    );
    CREATE TABLE audit_anchors (
        audit_id        INTEGER PRIMARY KEY,
        hash            TEXT NOT NULL,
        at              TEXT NOT NULL
    );
    """,
    ),
    # v7: evidence governance: categories and end of retention per clip, soft deletion and
    # purge, holds (clip, officer + window, case), cases, the retention rules in force.
    Step(
        7,
        """
    ALTER TABLE clips ADD COLUMN categories TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE clips ADD COLUMN retain_until TEXT;
    ALTER TABLE clips ADD COLUMN deleted_at TEXT;
    ALTER TABLE clips ADD COLUMN purged_at TEXT;
    CREATE INDEX clips_retain_until ON clips (retain_until) WHERE deleted_at IS NULL;
    CREATE INDEX clips_unassessed ON clips (clip_id) WHERE retain_until IS NULL;
    CREATE INDEX clips_deleted ON clips (deleted_at) WHERE deleted_at IS NOT NULL AND purged_at IS NULL;
    CREATE TABLE holds (
        id              INTEGER PRIMARY KEY,
        kind            TEXT NOT NULL CHECK (kind IN ('clip', 'officer', 'case')),
        reason          TEXT NOT NULL,
        clip_id         TEXT,
        officer_id      TEXT,
        window_from     TEXT,
        window_to       TEXT,
        case_ref        TEXT,
        created_at      TEXT NOT NULL,
        created_by      TEXT NOT NULL,
        released_at     TEXT,
        released_by     TEXT,
        release_reason  TEXT
    );
    CREATE INDEX holds_clip ON holds (clip_id) WHERE kind = 'clip' AND released_at IS NULL;
    CREATE INDEX holds_case ON holds (case_ref) WHERE kind = 'case' AND released_at IS NULL;
    CREATE INDEX holds_officer ON holds (officer_id, window_from) WHERE kind = 'officer' AND released_at IS NULL;
    CREATE TABLE case_clips (
        case_ref        TEXT NOT NULL,
        clip_id         TEXT NOT NULL,
        added_at        TEXT NOT NULL,
        added_by        TEXT NOT NULL,
        PRIMARY KEY (case_ref, clip_id)
    ) WITHOUT ROWID;
    CREATE INDEX case_clips_clip ON case_clips (clip_id);
    CREATE TABLE retention_rules (
        one             INTEGER PRIMARY KEY CHECK (one = 1),
        rules           TEXT NOT NULL,
        applied_at      TEXT NOT NULL,
        applied_by      TEXT NOT NULL
    );
    """,
    ),
    # v8: bytes of purged clips still to be deleted (written with the purge; emptied after).
    Step(
        8,
        """
    CREATE TABLE purge_pending (
        clip_id         TEXT PRIMARY KEY,
        blob_key        TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
    ),
    # v9: a restore's floor on retention, and categories a person set (kept as set).
    Step(
        9,
        """
    ALTER TABLE clips ADD COLUMN kept_until TEXT;
    ALTER TABLE clips ADD COLUMN categorised_at TEXT;
    """,
    ),
    # v10: MoPI review: a clip whose deciding category is reviewed waits for a reviewer when its
    # period ends instead of being deleted. Clips with categories are assessed again to set it.
    Step(
        10,
        """
    ALTER TABLE clips ADD COLUMN review INTEGER NOT NULL DEFAULT 0;
    UPDATE clips SET retain_until = NULL WHERE categories != '[]' AND deleted_at IS NULL;
    CREATE INDEX clips_review_due ON clips (retain_until) WHERE review AND deleted_at IS NULL;
    """,
    ),
    # v11: the configuration central last started with (secrets as hashes), to audit changes.
    Step(
        11,
        """
    CREATE TABLE config_seen (
        one             INTEGER PRIMARY KEY CHECK (one = 1),
        config          TEXT NOT NULL,
        seen_at         TEXT NOT NULL
    );
    """,
    ),
    # v14: the clips that have a category, newest first, with the categories (covering: the
    # dashboard's category search reads the index, not every categorised clip's row).
    Step(
        14,
        """
    CREATE INDEX clips_categorised ON clips (recorded_at, clip_id, categories) WHERE categories != '[]';
    """,
    ),
    # v19: the camera's pre-record buffer at the start of each clip (seconds recorded before the
    # officer pressed record), as the station's upload declares it.
    Step(
        19,
        """
    ALTER TABLE clips ADD COLUMN pre_record_s REAL NOT NULL DEFAULT 0;
    """,
    ),
    # v20: share links to a case's clips for a partner (the link's secret only as its SHA-256), and
    # the clips each link shares: those of the case when it was made, no others.
    Step(
        20,
        """
    CREATE TABLE case_shares (
        id              INTEGER PRIMARY KEY,
        case_ref        TEXT NOT NULL,
        token_sha256    TEXT NOT NULL UNIQUE,
        recipient       TEXT NOT NULL,
        created_at      TEXT NOT NULL,
        created_by      TEXT NOT NULL,
        expires_at      TEXT NOT NULL,
        revoked_at      TEXT,
        revoked_by      TEXT
    );
    CREATE INDEX case_shares_case ON case_shares (case_ref);
    CREATE TABLE case_share_clips (
        share_id        INTEGER NOT NULL,
        clip_id         TEXT NOT NULL,
        PRIMARY KEY (share_id, clip_id)
    ) WITHOUT ROWID;
    """,
    ),
    # v21: the public's requests to keep footage (central.evidence.keep_requests). An open request
    # protects its borough's clips recorded in its widened window; a narrowed one, the clips its
    # officer chose (keep_request_clips); a closed one, nothing.
    Step(
        21,
        """
    CREATE TABLE keep_requests (
        reference       TEXT PRIMARY KEY,
        borough         TEXT NOT NULL,
        place           TEXT NOT NULL,
        happened_from   TEXT NOT NULL,
        happened_to     TEXT NOT NULL,
        hold_from       TEXT NOT NULL,
        hold_to         TEXT NOT NULL,
        shoulder_numbers TEXT NOT NULL DEFAULT '',
        contact         TEXT NOT NULL,
        received_at     TEXT NOT NULL,
        review_by       TEXT NOT NULL,
        state           TEXT NOT NULL CHECK (state IN ('open', 'narrowed', 'closed')),
        narrowed_at     TEXT,
        narrowed_by     TEXT,
        closed_at       TEXT,
        closed_by       TEXT,
        outcome         TEXT,
        note            TEXT
    ) WITHOUT ROWID;
    CREATE INDEX keep_requests_open ON keep_requests (borough, hold_from, hold_to) WHERE state = 'open';
    CREATE INDEX keep_requests_received ON keep_requests (received_at, reference);
    CREATE TABLE keep_request_clips (
        reference       TEXT NOT NULL,
        clip_id         TEXT NOT NULL,
        PRIMARY KEY (reference, clip_id)
    ) WITHOUT ROWID;
    CREATE INDEX keep_request_clips_clip ON keep_request_clips (clip_id, reference);
    """,
    ),
    # v22: a clip's retention state (end of retention, review, a restore's floor, soft deletion,
    # purge) in a narrow table of its own, one row per verified clip. The retention job writes
    # it for every clip it assesses, deletes or purges: on PostgreSQL an update of a column an
    # index names (or its condition) writes the row anew and an entry in every index of its
    # table, and ``clips`` has seven large ones; this table has its key and three small ones.
    Step(
        22,
        """
    CREATE TABLE clip_retention (
        clip_id       TEXT PRIMARY KEY,
        retain_until  TEXT,
        review        INTEGER NOT NULL DEFAULT 0,
        kept_until    TEXT,
        deleted_at    TEXT,
        purged_at     TEXT
    ) WITHOUT ROWID;
    INSERT INTO clip_retention (clip_id, retain_until, review, kept_until, deleted_at, purged_at)
        SELECT clip_id, retain_until, review, kept_until, deleted_at, purged_at FROM clips WHERE state = 'verified';
    DROP INDEX clips_retain_until;
    DROP INDEX clips_unassessed;
    DROP INDEX clips_deleted;
    DROP INDEX clips_review_due;
    ALTER TABLE clips DROP COLUMN retain_until;
    ALTER TABLE clips DROP COLUMN review;
    ALTER TABLE clips DROP COLUMN kept_until;
    ALTER TABLE clips DROP COLUMN deleted_at;
    ALTER TABLE clips DROP COLUMN purged_at;
    CREATE INDEX clip_retention_due ON clip_retention (retain_until, clip_id) WHERE deleted_at IS NULL;
    CREATE INDEX clip_retention_unassessed ON clip_retention (clip_id) WHERE retain_until IS NULL;
    CREATE INDEX clip_retention_deleted ON clip_retention (deleted_at, clip_id)
        WHERE deleted_at IS NOT NULL AND purged_at IS NULL;
    CREATE INDEX clip_retention_review_due ON clip_retention (retain_until, clip_id)
        WHERE review AND deleted_at IS NULL;
    """,
    ),
]
