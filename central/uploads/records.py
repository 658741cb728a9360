"""The ``uploads`` table: one row per upload, its committed offset, 'receiving' or 'verified'.

SQL only, run inside the caller's transaction; ``central.uploads.service`` makes the commits.
Other packages read uploads through ``of_clips`` (what central knows of a station's claim).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from fleet.clock import from_iso, to_iso

COLUMNS = (
    'upload_id, clip_id, station_id, length, "offset", metadata, sha256, state, expires_at, '
    "multipart_id, part_bytes, parts_md5, tail"
)


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
    multipart_id: str | None = None
    """Staged in the bucket (``central.uploads.staged``): its S3 multipart upload; None: a .part file."""
    part_bytes: int = 0
    parts_md5: str = ""
    """The MD5 (32 hex digits) of each part stored, in order: the parts' ETags."""
    tail: str | None = None
    """The object holding the bytes after the last whole part, if there are any."""

    @property
    def verified(self) -> bool:
        return self.state == "verified"

    @property
    def staged(self) -> bool:
        return self.multipart_id is not None

    @property
    def part_md5s(self) -> list[str]:
        return [self.parts_md5[at : at + 32] for at in range(0, len(self.parts_md5), 32)]

    @property
    def tail_bytes(self) -> int:
        """Counted bytes after the last whole part (held by ``tail``); none once the last, smaller,
        part is sent too (every byte counted, the clip not yet completed)."""
        return max(0, self.offset - len(self.parts_md5) // 32 * self.part_bytes)


def insert(
    db,
    upload_id: str,
    clip_id: str,
    station_id: str | None,
    length: int,
    raw_metadata: str,
    sha256: str,
    now: str,
    expires_at: datetime | None,
    multipart_id: str | None = None,
    part_bytes: int = 0,
) -> None:
    db.execute(
        """INSERT INTO uploads (upload_id, clip_id, station_id, length, metadata, sha256, created_at,
                                updated_at, expires_at, multipart_id, part_bytes)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        [
            upload_id,
            clip_id,
            station_id,
            length,
            raw_metadata,
            sha256,
            now,
            now,
            to_iso(expires_at) if expires_at else None,
            multipart_id,
            part_bytes,
        ],
    )


def set_offset(db, upload_id: str, offset: int, now: str, expires_at: datetime) -> None:
    db.execute(
        'UPDATE uploads SET "offset" = ?, updated_at = ?, expires_at = ? WHERE upload_id = ?',
        [offset, now, to_iso(expires_at), upload_id],
    )


def stage(
    db,
    upload_id: str,
    counted: int,
    offset: int,
    new_parts_md5: str,
    tail: str | None,
    now: str,
    expires_at: datetime,
) -> bool:
    """A staged upload moves from ``counted`` to ``offset`` bytes: its new parts and tail are stored.
    False, and nothing written, when it is no longer at ``counted`` (another replica moved it on,
    restarted, finished or removed it meanwhile)."""
    row = db.execute(
        """UPDATE uploads SET "offset" = ?, parts_md5 = parts_md5 || ?, tail = ?, updated_at = ?, expires_at = ?
           WHERE upload_id = ? AND "offset" = ? AND state = 'receiving' AND multipart_id IS NOT NULL
           RETURNING upload_id""",
        [offset, new_parts_md5, tail, now, to_iso(expires_at), upload_id, counted],
    ).fetchone()
    return row is not None


def restage(db, upload_id: str, old: str, multipart_id: str, now: str, expires_at: datetime) -> bool:
    """A staged upload starts again at 0 in a new multipart upload, if it is still receiving in
    multipart upload ``old``; False otherwise (gone, verified, or restarted by another process)."""
    row = db.execute(
        """UPDATE uploads SET "offset" = 0, multipart_id = ?, parts_md5 = '', tail = NULL, updated_at = ?,
                              expires_at = ?
           WHERE upload_id = ? AND multipart_id = ? AND state = 'receiving' RETURNING upload_id""",
        [multipart_id, now, to_iso(expires_at), upload_id, old],
    ).fetchone()
    return row is not None


def verify(db, upload_id: str, now: str) -> str | None:
    """Every byte is counted and the clip stored: the upload's clip id (None: no such upload, or it
    was verified already, by another replica that finished it too: nothing is recorded twice)."""
    row = db.execute(
        """UPDATE uploads SET state = 'verified', "offset" = length, updated_at = ?,
                            expires_at = NULL WHERE upload_id = ? AND state = 'receiving' RETURNING clip_id""",
        [now, upload_id],
    ).fetchone()
    return row[0] if row else None


def forget(db, upload_id: str) -> str | None:
    """Delete an unfinished upload; its clip id (None: no such upload, or it is verified)."""
    row = db.execute(
        "DELETE FROM uploads WHERE upload_id = ? AND state = 'receiving' RETURNING clip_id", [upload_id]
    ).fetchone()
    return row[0] if row else None


def by(db, column: str, value: str) -> Upload | None:
    """The upload whose ``column`` (upload_id or clip_id, both unique) is ``value``."""
    row = db.execute(f"SELECT {COLUMNS} FROM uploads WHERE {column} = ?", [value]).fetchone()
    return _upload(row) if row else None


def receiving(db) -> list[Upload]:
    return [_upload(r) for r in db.execute(f"SELECT {COLUMNS} FROM uploads WHERE state = 'receiving'")]


def expired(db, now: datetime) -> list[Upload]:
    return [
        _upload(r)
        for r in db.execute(
            f"SELECT {COLUMNS} FROM uploads WHERE state = 'receiving' AND expires_at <= ?", [to_iso(now)]
        )
    ]


def of_clips(db, clip_ids: Iterable[str]) -> dict[str, tuple[str | None, int, str, str]]:
    """{clip: (uploading station, length, sha256, state)} of these clips' uploads, where they have one."""
    return {
        r[0]: r[1:]
        for r in db.execute(
            f"SELECT clip_id, station_id, length, sha256, state FROM uploads WHERE {db.dialect.any_of('clip_id')}",
            [db.dialect.many(dict.fromkeys(clip_ids))],
        )
    }


def _upload(row) -> Upload:
    return Upload(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        row[6],
        row[7],
        from_iso(row[8]) if row[8] else None,
        row[9],
        row[10],
        row[11],
        row[12],
    )
