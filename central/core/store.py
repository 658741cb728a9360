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
from central.access import schema as access_schema
from central.core import migrations
from central.events import schema as events_schema
from central.evidence import schema as evidence_schema
from central.registry import schema as registry_schema
from central.rollout import schema as rollout_schema
from central.uploads import schema as uploads_schema

SCHEMAS = (uploads_schema, evidence_schema, events_schema, registry_schema, rollout_schema, access_schema)
"""Each package's tables and schema steps (``central.core.migrations``)."""
MIGRATIONS = migrations.assemble(SCHEMAS)
"""One script per schema version, each package's share in its place."""

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
