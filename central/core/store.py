"""Central's one SQLite store: uploads in progress, verified clips, the access log."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from fleet import sqlite
from fleet.clock import from_iso, to_iso, utc_now
from fleet.errors import Gone
from fleet.protocol import ClipInfo, UploadMetadata
from central.evidence import audit
from central.events import claims
from central.access.scope import CLIPS_OF_BOROUGH

MIGRATIONS = [
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
    # v2: fleet state, derived from station events (stored by (station, seq)) and from
    # users' actions; the changes feed for stations; the audit trail of fleet actions.
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
    CREATE TABLE events (
        station_id      TEXT NOT NULL,
        seq             INTEGER NOT NULL,
        kind            TEXT NOT NULL,
        station_at      TEXT NOT NULL,
        received_at     TEXT NOT NULL,
        body            BLOB NOT NULL,
        PRIMARY KEY (station_id, seq)
    ) WITHOUT ROWID;
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
    CREATE TABLE changes (
        cursor          INTEGER PRIMARY KEY AUTOINCREMENT,
        borough         TEXT,
        kind            TEXT NOT NULL,
        key             TEXT NOT NULL,
        body            BLOB NOT NULL
    );
    CREATE INDEX changes_borough ON changes (borough, cursor);
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
    # v3: events are applied by a projection worker after they are acknowledged; faster
    # indexes for attribution and the device filters.
    """
    ALTER TABLE stations ADD COLUMN applied_seq INTEGER NOT NULL DEFAULT 0;
    UPDATE stations SET applied_seq = acked_seq;
    DROP INDEX attributions_officer;
    CREATE INDEX attributions_officer ON attributions (officer_id, recorded_at) WHERE officer_id IS NOT NULL;
    CREATE INDEX devices_last_station ON devices (last_station, serial);
    CREATE INDEX devices_replace_by ON devices (replace_by) WHERE replace_by IS NOT NULL;
    """,
    # v4: a conflict names the two assignments that overlap, and is listed once.
    """
    ALTER TABLE conflicts ADD COLUMN assignment_a INTEGER;
    ALTER TABLE conflicts ADD COLUMN assignment_b INTEGER;
    CREATE UNIQUE INDEX conflicts_pair ON conflicts (assignment_a, assignment_b);
    """,
    # v5: roll-out allocation proposals, reviewed by a planner before they are committed.
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
    CREATE INDEX device_history_to_state ON device_history (to_state, serial);
    """,
    # v6: the audit trail becomes a hash chain with a head and periodic anchors (central.evidence.audit).
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
    # v7: evidence governance: categories and end of retention per clip, soft deletion and
    # purge, holds (clip, officer + window, case), cases, the retention rules in force.
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
    # v8: bytes of purged clips still to be deleted (written with the purge; emptied after).
    """
    CREATE TABLE purge_pending (
        clip_id         TEXT PRIMARY KEY,
        blob_key        TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
    # v9: a restore's floor on retention, and categories a person set (kept as set).
    """
    ALTER TABLE clips ADD COLUMN kept_until TEXT;
    ALTER TABLE clips ADD COLUMN categorised_at TEXT;
    """,
    # v10: MoPI review: a clip whose deciding category is reviewed waits for a reviewer when its
    # period ends instead of being deleted. Clips with categories are assessed again to set it.
    """
    ALTER TABLE clips ADD COLUMN review INTEGER NOT NULL DEFAULT 0;
    UPDATE clips SET retain_until = NULL WHERE categories != '[]' AND deleted_at IS NULL;
    CREATE INDEX clips_review_due ON clips (retain_until) WHERE review AND deleted_at IS NULL;
    """,
    # v11: the configuration central last started with (secrets as hashes), to audit changes.
    """
    CREATE TABLE config_seen (
        one             INTEGER PRIMARY KEY CHECK (one = 1),
        config          TEXT NOT NULL,
        seen_at         TEXT NOT NULL
    );
    """,
    # v12: users with a role, their API tokens (hashed) and browser sessions (hashed ids).
    """
    CREATE TABLE users (
        name            TEXT PRIMARY KEY,
        role            TEXT NOT NULL,
        borough         TEXT,
        password_hash   TEXT,
        created_at      TEXT NOT NULL,
        created_by      TEXT NOT NULL,
        disabled_at     TEXT
    );
    CREATE TABLE api_tokens (
        id              INTEGER PRIMARY KEY,
        user            TEXT NOT NULL REFERENCES users (name),
        label           TEXT NOT NULL,
        token_sha256    TEXT NOT NULL UNIQUE,
        created_at      TEXT NOT NULL,
        expires_at      TEXT,
        revoked_at      TEXT
    );
    CREATE TABLE sessions (
        id_sha256       TEXT PRIMARY KEY,
        user            TEXT NOT NULL REFERENCES users (name),
        csrf            TEXT NOT NULL,
        created_at      TEXT NOT NULL,
        expires_at      TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX sessions_user ON sessions (user);
    """,
    # v13: each station's backlog over time (the health job samples it), for the sync-lag chart.
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
    # v14: the clips that have a category, newest first, with the categories (covering: the
    # dashboard's category search reads the index, not every categorised clip's row).
    """
    CREATE INDEX clips_categorised ON clips (recorded_at, clip_id, categories) WHERE categories != '[]';
    """,
    # v15: failed dashboard logins per account and per client address (central.access.login_throttle),
    # kept here so a lockout holds across restarts and for every central process on this database.
    """
    CREATE TABLE login_throttle (
        key             TEXT PRIMARY KEY,
        failures        INTEGER NOT NULL,
        last_failed_at  TEXT NOT NULL,
        locked_until    TEXT
    ) WITHOUT ROWID;
    """,
    # v16: what stations claimed beyond what they may (refused, never applied: ``central.events.claims``);
    # ingests waiting for their upload before their custody record joins the chain; each
    # station's latest accepted station time and each event's batch's sending time, both station
    # clock (back-dated and future-dated events are flagged); conflicts found
    # by either assignment of the pair (stale ones are withdrawn when an interval shrinks).
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
    ALTER TABLE stations ADD COLUMN latest_at TEXT;
    ALTER TABLE events ADD COLUMN sent_at TEXT;
    CREATE INDEX conflicts_b ON conflicts (assignment_b);
    """,
    # v17: random keys central signs with (central.access.login_csrf), one per use, made once and kept
    # here so that every central process on this database signs alike and none is in a config file.
    """
    CREATE TABLE signing_keys (
        name            TEXT PRIMARY KEY,
        key             BLOB NOT NULL
    ) WITHOUT ROWID;
    """,
]

CLIP_COLUMNS = ("clip_id, sha256, size, state, station_id, device_serial, recorded_at, filename, evidential, "
                "tags, duration_s, verified_at")


@dataclass(frozen=True)
class Upload:
    upload_id: str
    clip_id: str
    station_id: str | None
    length: int
    offset: int
    metadata: str
    sha256: str
    state: str
    expires_at: datetime | None

    @property
    def verified(self) -> bool:
        return self.state == "verified"


class CentralStore:
    """All reads and writes of central's database; one per process."""

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.db = sqlite.open_database(self.data_dir / "central.db")
        sqlite.migrate(self.db, MIGRATIONS)
        # Event batches touch pages all over the database: a bigger cache and fewer automatic
        # checkpoints keep each commit to (mostly) one sequential WAL write.
        self.db.execute("PRAGMA cache_size = -65536")
        self.db.execute("PRAGMA wal_autocheckpoint = 10000")
        # Reads on connections of their own: the event loop's never wait for the projection's writes.
        self.writer = self._writer = sqlite.Writer(self.db, readers=self.data_dir / "central.db")
        with self.writer.write() as db:
            audit.chain_unhashed(db)  # records from before the chain (schema v6): hashed once

    def close(self) -> None:
        """Close once no thread is inside a write (closing under a running query crashes SQLite)."""
        self._writer.close()

    def ping(self) -> bool:
        with self._writer.read() as db:
            return db.execute("SELECT 1").fetchone() == (1,)

    # -- uploads ---------------------------------------------------------------------------

    def upload(self, upload_id: str) -> Upload | None:
        return self._one_upload("upload_id", upload_id)

    def upload_for_clip(self, clip_id: str) -> Upload | None:
        return self._one_upload("clip_id", clip_id)

    def _one_upload(self, column: str, value: str) -> Upload | None:
        with self._writer.read() as db:
            row = db.execute(
                f"""SELECT upload_id, clip_id, station_id, length, offset, metadata, sha256, state, expires_at
                    FROM uploads WHERE {column} = ?""", [value]).fetchone()
        return _upload(row) if row else None

    def create_upload(self, upload_id: str, meta: UploadMetadata, raw_metadata: str, length: int,
                      station_id: str | None, expires_at: datetime) -> Upload:
        """Insert the upload and its 'receiving' clip row, unless the clip already has one.

        Not a durable commit: it acknowledges no bytes. A power cut may take it back; the
        station then finds the upload gone (404) and creates it again. Every commit that
        counts bytes or says "verified" is durable, and makes this one durable with it."""
        with self._writer.write(durable=False) as db:
            existing = self.upload_for_clip(str(meta.clip_id))
            if existing:
                return existing
            self._insert_upload(db, upload_id, meta, raw_metadata, length, station_id, expires_at)
        return self.upload(upload_id)

    def record_stored_upload(self, upload_id: str, meta: UploadMetadata, raw_metadata: str, length: int,
                             station_id: str | None, blob_key: str) -> Upload:
        """A clip that came whole in its creation request and is stored: its upload and clip rows,
        both verified, in one durable commit (no 'receiving' commit before it). The clip's
        existing upload instead, if it has one."""
        with self._writer.write() as db:
            existing = self.upload_for_clip(str(meta.clip_id))
            if existing:
                return existing
            self._insert_upload(db, upload_id, meta, raw_metadata, length, station_id, None)
            self._verify(db, upload_id, blob_key)
        return Upload(upload_id, str(meta.clip_id), station_id, length, length, raw_metadata, meta.sha256,
                      "verified", None)

    @staticmethod
    def _insert_upload(db, upload_id: str, meta: UploadMetadata, raw_metadata: str, length: int,
                       station_id: str | None, expires_at: datetime | None) -> None:
        now = to_iso(utc_now())
        clip_id = str(meta.clip_id)
        db.execute(
            """INSERT INTO uploads (upload_id, clip_id, station_id, length, metadata, sha256, created_at,
                                    updated_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [upload_id, clip_id, station_id, length, raw_metadata, meta.sha256, now, now,
             to_iso(expires_at) if expires_at else None],
        )
        db.execute(
            """INSERT INTO clips (clip_id, upload_id, sha256, size, state, station_id, device_serial,
                                  recorded_at, filename, evidential, tags, duration_s)
               VALUES (?, ?, ?, ?, 'receiving', ?, ?, ?, ?, ?, ?, ?)""",
            [clip_id, upload_id, meta.sha256, length, station_id, meta.device_serial,
             to_iso(meta.recorded_at), meta.filename, int(meta.evidential), json.dumps(meta.tags),
             meta.duration_s],
        )

    def set_offset(self, upload_id: str, offset: int, expires_at: datetime) -> None:
        with self._writer.write() as db:
            db.execute("UPDATE uploads SET offset = ?, updated_at = ?, expires_at = ? WHERE upload_id = ?",
                       [offset, to_iso(utc_now()), to_iso(expires_at), upload_id])

    def mark_verified(self, upload_id: str, blob_key: str) -> None:
        """The clip is stored: the one commit after which central answers 'verified'."""
        with self._writer.write() as db:
            self._verify(db, upload_id, blob_key)

    @staticmethod
    def _verify(db, upload_id: str, blob_key: str) -> None:
        now = to_iso(utc_now())
        # The clip by its key, found through the upload's (clips has no index on upload_id:
        # looking it up by that scanned every clip, ever more slowly as the month went on).
        uploaded = db.execute("""UPDATE uploads SET state = 'verified', offset = length, updated_at = ?,
                                     expires_at = NULL WHERE upload_id = ? RETURNING clip_id""",
                              [now, upload_id]).fetchall()
        rows = uploaded and db.execute(
            """UPDATE clips SET state = 'verified', verified_at = ?, blob_key = ? WHERE clip_id = ?
               AND upload_id = ? RETURNING clip_id, station_id, sha256, size""",
            [now, blob_key, uploaded[0][0], upload_id]).fetchall()
        for row in rows or []:
            # A station's ingest reported before this upload joins the chain now, if it matches.
            claims.settle(db, row[0], row[1], row[2], row[3])
            audit.record(db, actor=f"station:{row[1]}" if row[1] else "upload", action="upload-verified",
                         object_type="clip", object_id=row[0], at=from_iso(now),
                         detail=f"whole-file SHA-256 {row[2]} matched, {row[3]} bytes stored")

    def delete_upload(self, upload_id: str) -> None:
        """Forget an unfinished upload (termination or expiry); verified ones are never deleted here."""
        with self._writer.write() as db:
            for (clip_id,) in db.execute("DELETE FROM uploads WHERE upload_id = ? AND state = 'receiving' "
                                         "RETURNING clip_id", [upload_id]).fetchall():
                db.execute("DELETE FROM clips WHERE clip_id = ? AND upload_id = ? AND state = 'receiving'",
                           [clip_id, upload_id])

    def receiving_uploads(self) -> list[Upload]:
        with self._writer.read() as db:
            rows = db.execute("""SELECT upload_id, clip_id, station_id, length, offset, metadata, sha256, state,
                                        expires_at FROM uploads WHERE state = 'receiving'""").fetchall()
        return [_upload(r) for r in rows]

    def expired_uploads(self, now: datetime) -> list[Upload]:
        with self._writer.read() as db:
            rows = db.execute("""SELECT upload_id, clip_id, station_id, length, offset, metadata, sha256, state,
                                        expires_at FROM uploads WHERE state = 'receiving' AND expires_at <= ?""",
                              [to_iso(now)]).fetchall()
        return [_upload(r) for r in rows]

    # -- clips -----------------------------------------------------------------------------

    def clip(self, clip_id: str) -> ClipInfo | None:
        with self._writer.read() as db:
            row = db.execute(f"SELECT {CLIP_COLUMNS} FROM clips WHERE clip_id = ?", [clip_id]).fetchone()
        return _clip(row) if row else None

    def blob_key(self, clip_id: str) -> str | None:
        """The blob of a verified clip that is not deleted; Gone (410) once deleted or purged."""
        with self._writer.read() as db:
            row = db.execute("SELECT blob_key, deleted_at, purged_at FROM clips WHERE clip_id = ? AND state = 'verified'",
                             [clip_id]).fetchone()
        if row and row[2]:
            raise Gone(f"clip {clip_id} was purged on {row[2]} at the end of its retention")
        if row and row[1]:
            raise Gone(f"clip {clip_id} was deleted on {row[1]} (retention ended); an admin can restore it "
                       "until it is purged")
        return row[0] if row else None

    def list_clips(self, *, limit: int, after: tuple[str, str] | None, filters: dict[str, Any]) -> list[ClipInfo]:
        """Clips in (recorded_at, clip_id) order after the keyset ``after``; ``limit`` of them."""
        where, params = [], []
        if filters.get("borough") is not None:
            where.append(f"device_serial IN ({CLIPS_OF_BOROUGH})")
            params.append(filters["borough"])
        for column in ("station_id", "device_serial", "state"):
            if filters.get(column) is not None:
                where.append(f"{column} = ?")
                params.append(filters[column])
        if filters.get("evidential") is not None:
            where.append("evidential = ?")
            params.append(int(filters["evidential"]))
        if filters.get("recorded_from") is not None:
            where.append("recorded_at >= ?")
            params.append(to_iso(filters["recorded_from"]))
        if filters.get("recorded_to") is not None:
            where.append("recorded_at < ?")
            params.append(to_iso(filters["recorded_to"]))
        if after is not None:
            where.append("(recorded_at, clip_id) > (?, ?)")
            params.extend(after)
        sql = f"SELECT {CLIP_COLUMNS} FROM clips"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY recorded_at, clip_id LIMIT ?"
        with self._writer.read() as db:
            rows = db.execute(sql, [*params, limit]).fetchall()
        return [_clip(r) for r in rows]

    def log_access(self, actor: str, action: str, clip_id: str | None, detail: str = "") -> None:
        """A view or download of footage: in the access log and in the audit chain."""
        with self._writer.write() as db:
            db.execute("INSERT INTO access_log (at, actor, action, clip_id, detail) VALUES (?, ?, ?, ?, ?)",
                       [to_iso(utc_now()), actor, action, clip_id, detail])
            audit.record(db, actor=actor, action=action, object_type="clip", object_id=clip_id or "", detail=detail)

    def access_log(self) -> list[sqlite3.Row | tuple]:
        with self._writer.read() as db:
            return db.execute("SELECT at, actor, action, clip_id, detail FROM access_log ORDER BY id").fetchall()


def _upload(row) -> Upload:
    return Upload(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7],
                  from_iso(row[8]) if row[8] else None)


def _clip(row) -> ClipInfo:
    return ClipInfo(clip_id=row[0], sha256=row[1], size=row[2], state=row[3], station_id=row[4],
                    device_serial=row[5], recorded_at=from_iso(row[6]), filename=row[7], evidential=bool(row[8]),
                    tags=json.loads(row[9]), duration_s=row[10], verified_at=from_iso(row[11]) if row[11] else None)
