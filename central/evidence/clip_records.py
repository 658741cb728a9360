"""Clip records: the ``clips`` row of each clip central receives, the clip reads, the access log.

An upload makes its clip's row (``begin``, state 'receiving'), verifies it (``verify``) or,
unfinished, forgets it (``abandon``): the uploads package calls these inside its own
transactions, so an upload and its clip always commit together. Everything else about a clip
(categories, retention, deletion: ``clip_retention``) is ``central.evidence.retention``'s.
"""

from __future__ import annotations

import json
from typing import Any

from central.access.scope import CLIPS_OF_BOROUGH
from central.core.database import Database
from central.evidence import audit, retention
from fleet.clock import from_iso, to_iso, utc_now
from fleet.errors import Gone
from fleet.protocol import ClipInfo, UploadMetadata

CLIP_COLUMNS = (
    "clip_id, sha256, size, state, station_id, device_serial, recorded_at, filename, evidential, "
    "tags, duration_s, verified_at, pre_record_s"
)


def begin(db, upload_id: str, meta: UploadMetadata, length: int, station_id: str | None) -> None:
    """The clip's row as its upload starts: 'receiving', described by the station's metadata."""
    db.execute(
        """INSERT INTO clips (clip_id, upload_id, sha256, size, state, station_id, device_serial,
                              recorded_at, filename, evidential, tags, duration_s, pre_record_s)
           VALUES (?, ?, ?, ?, 'receiving', ?, ?, ?, ?, ?, ?, ?, ?)""",
        [
            str(meta.clip_id),
            upload_id,
            meta.sha256,
            length,
            station_id,
            meta.device_serial,
            to_iso(meta.recorded_at),
            meta.filename,
            int(meta.evidential),
            json.dumps(meta.tags),
            meta.duration_s,
            meta.pre_record_s,
        ],
    )


def verify(db, clip_id: str, upload_id: str, blob_key: str, now: str) -> tuple[str, str | None, str, int, str] | None:
    """The clip of this upload is stored under ``blob_key``: (clip, station, sha256, size, camera),
    or None if the clip's row is another upload's. A verified clip is assessed for retention in
    the same transaction (``retention.assess_verified``: its end of retention is known from the
    first minute), under the rules this statement reads (one statement, no extra round trip)."""
    row = db.execute(
        f"""UPDATE clips SET state = 'verified', verified_at = ?, blob_key = ? WHERE clip_id = ?
           AND upload_id = ? RETURNING clip_id, station_id, sha256, size, device_serial, recorded_at, tags,
           evidential, {retention.RULES_IN_FORCE}""",
        [now, blob_key, clip_id, upload_id],
    ).fetchone()
    if row is None:
        return None
    retention.assess_verified(db, clip_id, from_iso(row[5]), json.loads(row[6]), bool(row[7]), row[8])
    return row[:5]


def abandon(db, clip_id: str, upload_id: str) -> None:
    """An unfinished upload is forgotten: so is its clip, still 'receiving' (a verified one never is)."""
    db.execute("DELETE FROM clips WHERE clip_id = ? AND upload_id = ? AND state = 'receiving'", [clip_id, upload_id])


def camera_and_time(db, clip_id: str) -> tuple[str, str] | None:
    """(camera, recorded_at) of a clip verified at central, or None: what its attribution is made
    of when no station's report made one (``AssignmentService.attribute``)."""
    row = db.execute(
        "SELECT device_serial, recorded_at FROM clips WHERE clip_id = ? AND state = 'verified'", [clip_id]
    ).fetchone()
    return (row[0], row[1]) if row else None


class ClipRecords:
    """The clip API's reads, and its access log (every view and download, also in the audit chain)."""

    def __init__(self, writer: Database) -> None:
        self.writer = writer

    def clip(self, clip_id: str) -> ClipInfo | None:
        with self.writer.read() as db:
            row = db.execute(f"SELECT {CLIP_COLUMNS} FROM clips WHERE clip_id = ?", [clip_id]).fetchone()
        return _clip(row) if row else None

    def blob_key(self, clip_id: str) -> str | None:
        """The blob of a verified clip that is not deleted; Gone (410) once deleted or purged."""
        with self.writer.read() as db:
            row = db.execute(
                "SELECT c.blob_key, r.deleted_at, r.purged_at FROM clips c LEFT JOIN clip_retention r "
                "ON r.clip_id = c.clip_id WHERE c.clip_id = ? AND c.state = 'verified'",
                [clip_id],
            ).fetchone()
        if row and row[2]:
            raise Gone(f"clip {clip_id} was purged on {row[2]} at the end of its retention")
        if row and row[1]:
            raise Gone(
                f"clip {clip_id} was deleted on {row[1]} (retention ended); an admin can restore it until it is purged"
            )
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
        with self.writer.read() as db:
            rows = db.execute(sql, [*params, limit]).fetchall()
        return [_clip(r) for r in rows]

    def log_access(self, actor: str, action: str, clip_id: str | None, detail: str = "") -> None:
        """A view or download of footage: in the access log and in the audit chain."""
        with self.writer.write() as db:
            db.execute(
                "INSERT INTO access_log (at, actor, action, clip_id, detail) VALUES (?, ?, ?, ?, ?)",
                [to_iso(utc_now()), actor, action, clip_id, detail],
            )
            audit.record(db, actor=actor, action=action, object_type="clip", object_id=clip_id or "", detail=detail)

    def access_log(self) -> list[tuple]:
        with self.writer.read() as db:
            return db.execute("SELECT at, actor, action, clip_id, detail FROM access_log ORDER BY id").fetchall()


def _clip(row) -> ClipInfo:
    return ClipInfo(
        clip_id=row[0],
        sha256=row[1],
        size=row[2],
        state=row[3],
        station_id=row[4],
        device_serial=row[5],
        recorded_at=from_iso(row[6]),
        filename=row[7],
        evidential=bool(row[8]),
        tags=json.loads(row[9]),
        duration_s=row[10],
        verified_at=from_iso(row[11]) if row[11] else None,
        pre_record_s=row[12],
    )


def count(db) -> int:
    """Clip records of every state (a backup's manifest says how many it holds)."""
    return db.execute("SELECT COUNT(*) FROM clips").fetchone()[0]
