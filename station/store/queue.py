"""The clip queue: each clip ingested, its transfer to central and its local copy; beside them the
dockings it came with and the dock folders that could not be ingested.

Transfer states of a clip::

    queued ──▶ uploading ──▶ verified ──(grace period)──▶ local copy deleted
       ▲           │
       └─ waiting ◀┘ (transient failure: attempts, next_attempt_at, last_error persisted)
                   └──▶ failed (permanent refusal, with reason; `fleet station retry` requeues)

A verified clip central may have lost (restored to a point before it verified the clip) is
listed in ``clip_rechecks`` until central is asked again (docs/backup.md); its copy is kept.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fleet.clock import from_iso, to_iso, utc_now
from fleet.events import Backlog, BadFolder, CameraDocked, CheckedIn, ClipDamaged, ClipIngested, ClipVerified
from fleet.protocol import ClipTransfer, DeviceInfo, FailedFolder
from fleet.sqlite import Writer
from station.store import meta
from station.store.checkouts import Checkouts
from station.store.mirror import held, not_held
from station.store.outbox import Outbox

LAST_SYNC_OK = "last_sync_ok_at"


@dataclass(frozen=True)
class NewClip:
    """A clip durably copied into the store, about to be recorded."""

    clip_id: str
    sha256: str
    size: int
    device_serial: str
    recorded_at: datetime
    filename: str
    duration_s: float
    pre_record_s: float
    tags: list[str]
    evidential: bool
    local_path: str
    chunk_bytes: int | None = None
    chunk_algorithm: str | None = None
    chunk_checksums: list[str] | None = None
    """Base64 digest of each ``chunk_bytes`` slice: the upload's Upload-Checksum values."""
    wrapped_by: str | None = None
    wrapped_key: bytes | None = None
    """The clip's data key wrapped by station key ``wrapped_by``; None: stored plain (never for a new clip)."""


@dataclass(frozen=True)
class QueuedClip:
    """A clip as the sync worker needs it."""

    clip_id: str
    sha256: str
    size: int
    device_serial: str
    recorded_at: datetime
    filename: str
    duration_s: float
    tags: list[str]
    evidential: bool
    local_path: str | None
    attempts: int
    upload_url: str | None
    chunk_bytes: int | None = None
    chunk_algorithm: str | None = None
    chunk_checksums: list[str] | None = None
    last_error: str | None = None
    wrapped_by: str | None = None
    wrapped_key: bytes | None = None
    """As in ``NewClip``; None for a clip stored plain before encryption at rest (docs/at-rest.md)."""
    pre_record_s: float = 0.0
    """Seconds at the start the camera kept from before the officer pressed record."""


@dataclass(frozen=True)
class KnownClip:
    clip_id: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Docking:
    """A camera's last docking here, as the desk needs it to judge its charge."""

    docking_id: int
    ingested_at: datetime
    device_json: str


_CLIP_COLUMNS = (
    "clip_id",
    "sha256",
    "size",
    "device_serial",
    "recorded_at",
    "filename",
    "duration_s",
    "pre_record_s",
    "tags",
    "evidential",
    "dock_folder",
    "ingested_at",
    "local_path",
    "chunk_bytes",
    "chunk_algorithm",
    "chunk_checksums",
    "wrapped_by",
    "wrapped_key",
)
_INSERT_CLIP = (
    f"INSERT OR IGNORE INTO clips ({', '.join(_CLIP_COLUMNS)}) VALUES ({', '.join(':' + c for c in _CLIP_COLUMNS)})"
)

_QUEUED_COLUMNS = """clip_id, sha256, size, device_serial, recorded_at, filename, duration_s, tags,
    evidential, local_path, attempts, upload_url, chunk_bytes, chunk_algorithm,
    chunk_checksums, last_error, wrapped_by, wrapped_key, pre_record_s"""


def _queued(r) -> QueuedClip:
    return QueuedClip(
        r[0],
        r[1],
        r[2],
        r[3],
        from_iso(r[4]),
        r[5],
        r[6],
        json.loads(r[7]),
        bool(r[8]),
        r[9],
        r[10],
        r[11],
        r[12],
        r[13],
        json.loads(r[14]) if r[14] else None,
        r[15],
        r[16],
        r[17],
        r[18],
    )


_PENDING_SQL = """SELECT COUNT(*), COALESCE(SUM(size), 0), MIN(recorded_at) FROM clips
                  WHERE state IN ('queued', 'uploading', 'waiting')"""
"""What is still to upload: count, bytes and the oldest recording (status and every event batch)."""


class ClipQueue:
    """Every read and write of ``clips``, ``dockings`` and ``bad_folders``."""

    def __init__(self, writer: Writer, outbox: Outbox, checkouts: Checkouts) -> None:
        self.writer = writer
        self.outbox = outbox
        self.checkouts = checkouts

    # -- ingest ----------------------------------------------------------------------------

    def known_clips(self, clip_ids: Iterable[str]) -> dict[str, KnownClip]:
        ids = list(clip_ids)
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        with self.writer.read() as db:
            rows = db.execute(f"SELECT clip_id, sha256, size FROM clips WHERE clip_id IN ({marks})", ids)
            return {r[0]: KnownClip(*r) for r in rows.fetchall()}

    def record_ingest(self, folder: str, device: DeviceInfo, device_json: str, clips: list[NewClip]) -> None:
        """Record a docking and its clips in one durable transaction (the ingest commit point)."""
        moment = utc_now()
        now = to_iso(moment)
        rows = [
            {
                "clip_id": c.clip_id,
                "sha256": c.sha256,
                "size": c.size,
                "device_serial": c.device_serial,
                "recorded_at": to_iso(c.recorded_at),
                "filename": c.filename,
                "duration_s": c.duration_s,
                "pre_record_s": c.pre_record_s,
                "tags": json.dumps(c.tags),
                "evidential": int(c.evidential),
                "dock_folder": folder,
                "ingested_at": now,
                "local_path": c.local_path,
                "chunk_bytes": c.chunk_bytes,
                "chunk_algorithm": c.chunk_algorithm,
                "chunk_checksums": json.dumps(c.chunk_checksums) if c.chunk_checksums is not None else None,
                "wrapped_by": c.wrapped_by,
                "wrapped_key": c.wrapped_key,
            }
            for c in clips
        ]
        with self.writer.write() as db:
            known = set(self.known_clips(c.clip_id for c in clips))
            if rows:  # plain SQL: sqlite-utils' insert_all re-reads the schema on every call (a third of an ingest)
                db.executemany(_INSERT_CLIP, rows)
            if db.execute("SELECT 1 FROM dockings WHERE folder = ? LIMIT 1", [folder]).fetchone():
                # Recorded before a crash that came before INGESTED.json: the redo adds nothing.
                self.outbox.append(self._ingested_events([c for c in clips if c.clip_id not in known]))
                db.execute("DELETE FROM bad_folders WHERE folder = ?", [folder])
                return
            events: list = [CameraDocked(device=device, folder=folder, clip_count=len(clips))]
            events += self._ingested_events([c for c in clips if c.clip_id not in known])
            officer_id = self.checkouts.check_in(device.serial, moment, "docked", "dock")
            if officer_id is not None:  # docking ends a pool checkout
                events.append(CheckedIn(device_serial=device.serial, officer_id=officer_id, reason="docked", by="dock"))
            self.outbox.append(events)
            db.execute(
                "INSERT INTO dockings (folder, device_serial, docked_at, ingested_at, clip_count, device_json) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    folder,
                    device.serial,
                    to_iso(device.docked_at) if device.docked_at else None,
                    now,
                    len(clips),
                    device_json,
                ],
            )
            db.execute("DELETE FROM bad_folders WHERE folder = ?", [folder])

    @staticmethod
    def _ingested_events(clips: list[NewClip]) -> list:
        return [
            ClipIngested(
                clip_id=c.clip_id,
                device_serial=c.device_serial,
                recorded_at=c.recorded_at,
                size=c.size,
                sha256=c.sha256,
                evidential=c.evidential,
                tags=c.tags,
                duration_s=c.duration_s,
            )
            for c in clips
        ]

    def record_bad_folder(self, folder: str, reason: str, signature: str, transient: bool) -> None:
        now = to_iso(utc_now())
        with self.writer.write() as db:
            before = db.execute("SELECT reason FROM bad_folders WHERE folder = ?", [folder]).fetchone()
            if before is None or before[0] != reason:  # report each new problem once, not each rescan
                self.outbox.append([BadFolder(folder=folder, reason=reason)])
            db.execute(
                """INSERT INTO bad_folders (folder, reason, signature, transient, first_seen_at, last_seen_at)
                   VALUES (?, ?, ?, ?, ?, ?)
                   ON CONFLICT (folder) DO UPDATE SET reason = excluded.reason,
                       signature = excluded.signature, transient = excluded.transient,
                       last_seen_at = excluded.last_seen_at""",
                [folder, reason, signature, int(transient), now, now],
            )

    def bad_folder_signatures(self) -> dict[str, tuple[str, bool, datetime]]:
        """Bad folders as folder → (signature, transient, last_seen_at): what the scan may skip."""
        with self.writer.read() as db:
            rows = db.execute("SELECT folder, signature, transient, last_seen_at FROM bad_folders").fetchall()
        return {r[0]: (r[1], bool(r[2]), from_iso(r[3])) for r in rows}

    def retry_transient_folders(self) -> int:
        """Let the next scan retry folders that failed for a passing reason (such as a full disk) at once."""
        with self.writer.write() as db:
            return db.execute(
                "UPDATE bad_folders SET last_seen_at = ? WHERE transient = 1",
                [to_iso(datetime.min.replace(tzinfo=UTC))],
            ).rowcount

    def forget_bad_folders(self, keep: set[str]) -> None:
        """Drop reports of folders that are no longer docked (every scan asks: no write unless one went)."""
        with self.writer.read() as db:
            gone = [(folder,) for (folder,) in db.execute("SELECT folder FROM bad_folders") if folder not in keep]
        if gone:
            with self.writer.write() as db:
                db.executemany("DELETE FROM bad_folders WHERE folder = ?", gone)

    def last_docking(self, serial: str) -> Docking | None:
        with self.writer.read() as db:
            row = db.execute(
                "SELECT id, ingested_at, device_json FROM dockings WHERE device_serial = ? ORDER BY id DESC LIMIT 1",
                [serial],
            ).fetchone()
        return Docking(row[0], from_iso(row[1]), row[2]) if row else None

    def ingested_bytes_since(self, since: datetime) -> int:
        """Bytes of the clips ingested here since then (the doctor's disk trend)."""
        with self.writer.read() as db:
            return db.execute(
                "SELECT COALESCE(SUM(size), 0) FROM clips WHERE ingested_at >= ?", [to_iso(since)]
            ).fetchone()[0]

    def recently_docked(self, limit: int) -> list[str]:
        """Serials of cameras docked here, the most recently docked first (the desk's rack)."""
        with self.writer.read() as db:
            rows = db.execute(
                "SELECT device_serial FROM dockings GROUP BY device_serial ORDER BY MAX(id) DESC LIMIT ?", [limit]
            ).fetchall()
        return [r[0] for r in rows]

    # -- sync ------------------------------------------------------------------------------

    def recover_interrupted(self) -> int:
        """At start-up: clips left 'uploading' by a crash go back to the queue, attempts kept."""
        with self.writer.write() as db:
            return db.execute("UPDATE clips SET state = 'queued' WHERE state = 'uploading'").rowcount

    def claim_due(self, limit: int, now: datetime | None = None, *, routine: bool = True) -> list[QueuedClip]:
        """Mark up to ``limit`` due clips 'uploading' and return them, evidential first.
        ``routine`` False (outside the upload window): only evidential and held clips.

        The claim's commit is not synced: 'uploading' acknowledges nothing, and a claim a power
        cut takes back leaves the clip queued, where ``recover_interrupted`` would put it anyway.
        The next durable commit (the WAL is synced whole) makes it durable with its own."""
        now_iso = to_iso(now or utc_now())
        urgent_only = "" if routine else f"AND (evidential = 1 OR {held('clips.clip_id')})"
        with self.writer.write(durable=False) as db:
            rows = db.execute(
                f"""SELECT {_QUEUED_COLUMNS} FROM clips
                   WHERE state IN ('queued', 'waiting') AND (next_attempt_at IS NULL OR next_attempt_at <= ?)
                   {urgent_only}
                   ORDER BY evidential DESC, recorded_at, clip_id
                   LIMIT ?""",
                [now_iso, limit],
            ).fetchall()
            claimed = [_queued(r) for r in rows]
            db.executemany("UPDATE clips SET state = 'uploading' WHERE clip_id = ?", [(c.clip_id,) for c in claimed])
        return claimed

    # -- after central's restore (docs/backup.md) -------------------------------------------

    def recheck(self, clip_ids: Sequence[str]) -> int:
        """Central may have lost these verified clips (restored to an earlier point): ask it again
        before anything else (their local copies are kept meanwhile)."""
        with self.writer.write() as db:
            return sum(
                db.execute(
                    "INSERT INTO clip_rechecks (clip_id) SELECT clip_id FROM clips WHERE clip_id = ? "
                    "AND state = 'verified' ON CONFLICT DO NOTHING",
                    [c],
                ).rowcount
                for c in clip_ids
            )

    def rechecking(self) -> int:
        with self.writer.read() as db:
            return db.execute("SELECT COUNT(*) FROM clip_rechecks").fetchone()[0]

    def rechecking_ids(self) -> list[str]:
        with self.writer.read() as db:
            return [r[0] for r in db.execute("SELECT clip_id FROM clip_rechecks").fetchall()]

    def to_recheck(self, limit: int, excluding: Collection[str] = ()) -> list[QueuedClip]:
        """Clips to ask central about again, but for ``excluding`` (not to be asked yet)."""
        with self.writer.read() as db:
            rows = db.execute(
                f"SELECT {_QUEUED_COLUMNS} FROM clips WHERE clip_id IN (SELECT clip_id FROM clip_rechecks) "
                "ORDER BY evidential DESC, recorded_at"
            )
            return list(itertools.islice((_queued(r) for r in rows if r[0] not in excluding), limit))

    def rechecked(self, clip_id: str, *, verified: bool, upload_url: str | None = None) -> None:
        """Central's answer: it has the clip (nothing to do: the old "verified" event is resent), or it
        must be sent again (queued, from its local copy; it is verified again, with a new event)."""
        with self.writer.write() as db:
            db.execute("DELETE FROM clip_rechecks WHERE clip_id = ?", [clip_id])
            if not verified:
                db.execute(
                    """UPDATE clips SET state = 'queued', upload_url = ?, uploaded_bytes = 0, next_attempt_at = NULL
                       WHERE clip_id = ? AND state = 'verified'""",
                    [upload_url, clip_id],
                )

    def set_upload_url(self, clip_id: str, url: str | None) -> None:
        with self.writer.write() as db:
            db.execute("UPDATE clips SET upload_url = ? WHERE clip_id = ?", [url, clip_id])

    def set_progress(self, clip_id: str, uploaded_bytes: int) -> None:
        with self.writer.write() as db:
            db.execute("UPDATE clips SET uploaded_bytes = ? WHERE clip_id = ?", [uploaded_bytes, clip_id])

    def mark_verified(self, clip_ids: str | Sequence[str]) -> None:
        """Central verified these clips: one durable commit for them all (the sync worker gathers
        the clips its uploads finished meanwhile, so one fsync serves several)."""
        ids = [clip_ids] if isinstance(clip_ids, str) else list(clip_ids)
        if not ids:
            return
        now = to_iso(utc_now())
        with self.writer.write() as db:
            newly = [
                clip_id
                for clip_id in ids
                if db.execute(
                    """UPDATE clips SET state = 'verified', verified_at = ?, uploaded_bytes = size,
                           last_error = NULL, next_attempt_at = NULL, attempts = attempts + 1
                       WHERE clip_id = ? AND state != 'verified'""",
                    [now, clip_id],
                ).rowcount
            ]
            if newly:
                self.outbox.append([ClipVerified(clip_id=clip_id) for clip_id in newly])
            meta.put(db, LAST_SYNC_OK, now)

    def mark_waiting(self, clip_id: str, error: str, next_attempt_at: datetime) -> None:
        with self.writer.write() as db:
            db.execute(
                """UPDATE clips SET state = 'waiting', attempts = attempts + 1, last_error = ?,
                       next_attempt_at = ? WHERE clip_id = ?""",
                [error, to_iso(next_attempt_at), clip_id],
            )

    def mark_failed(self, clip_id: str, reason: str, *, damaged: bool = False) -> None:
        """Failed for good, with the reason; ``damaged``: its local copy failed authentication, which
        central is told in the same transaction (it goes into the clip's chain of custody there)."""
        with self.writer.write() as db:
            db.execute(
                """UPDATE clips SET state = 'failed', attempts = attempts + 1, last_error = ?,
                       next_attempt_at = NULL WHERE clip_id = ?""",
                [reason, clip_id],
            )
            if damaged:
                self.outbox.append([ClipDamaged(clip_id=clip_id, reason=reason[:500])])

    def release(self, clip_ids: Iterable[str]) -> None:
        """Return claimed clips to the queue untried (shutdown before their turn)."""
        with self.writer.write() as db:
            db.executemany(
                "UPDATE clips SET state = 'queued' WHERE clip_id = ? AND state = 'uploading'",
                [(c,) for c in clip_ids],
            )

    def requeue_failed(self) -> int:
        """Operator action after fixing the cause (a token, a limit): failed clips go back in line."""
        with self.writer.write() as db:
            return db.execute(
                "UPDATE clips SET state = 'queued', next_attempt_at = NULL WHERE state = 'failed'"
            ).rowcount

    def next_attempt_at(self) -> datetime | None:
        with self.writer.read() as db:
            row = db.execute("SELECT MIN(next_attempt_at) FROM clips WHERE state = 'waiting'").fetchone()
        return from_iso(row[0]) if row and row[0] else None

    # -- local copies ----------------------------------------------------------------------

    def purgeable(self, grace: timedelta, now: datetime | None = None, limit: int = 500) -> list[tuple[str, str]]:
        """(clip_id, local_path) of verified clips whose grace period is over and no hold protects."""
        cutoff = to_iso((now or utc_now()) - grace)
        with self.writer.read() as db:
            return [
                tuple(r)
                for r in db.execute(
                    f"""SELECT clip_id, local_path FROM clips c
                   WHERE state = 'verified' AND local_path IS NOT NULL AND verified_at <= ?
                     AND {not_held("c.clip_id")}
                     AND NOT EXISTS (SELECT 1 FROM clip_rechecks r WHERE r.clip_id = c.clip_id)
                   ORDER BY verified_at LIMIT ?""",
                    [cutoff, limit],
                ).fetchall()
            ]

    def mark_local_deleted(self, clip_id: str) -> None:
        """The copy is gone: its wrapped data key goes with it, so no left-over block of it can be read."""
        with self.writer.write() as db:
            db.execute(
                """UPDATE clips SET local_path = NULL, local_deleted_at = ?, wrapped_key = NULL, wrapped_by = NULL
                   WHERE clip_id = ? AND state = 'verified'""",
                [to_iso(utc_now()), clip_id],
            )

    # -- station keys (station/keys.py) ----------------------------------------------------

    def wrapping_key_ids(self) -> set[str]:
        """The station keys some clip's data key is wrapped by (checked at start-up)."""
        with self.writer.read() as db:
            return {
                r[0]
                for r in db.execute(
                    "SELECT DISTINCT wrapped_by FROM clips WHERE wrapped_key IS NOT NULL AND wrapped_by IS NOT NULL"
                )
            }

    def wrapping_key_counts(self) -> dict[str, int]:
        with self.writer.read() as db:
            return dict(
                db.execute(
                    "SELECT wrapped_by, COUNT(*) FROM clips WHERE wrapped_key IS NOT NULL GROUP BY wrapped_by"
                ).fetchall()
            )

    def plain_local_copies(self) -> int:
        """Clips stored plain before encryption at rest, whose local copy is still here."""
        with self.writer.read() as db:
            return db.execute(
                "SELECT COUNT(*) FROM clips WHERE wrapped_key IS NULL AND local_path IS NOT NULL"
            ).fetchone()[0]

    def wrapped_elsewhere(self, key_id: str, limit: int) -> list[tuple[str, str, bytes]]:
        """(clip_id, wrapped_by, wrapped_key) of up to ``limit`` clips wrapped by another key than ``key_id``."""
        with self.writer.read() as db:
            return [
                (r[0], r[1], r[2])
                for r in db.execute(
                    """SELECT clip_id, wrapped_by, wrapped_key FROM clips
                       WHERE wrapped_key IS NOT NULL AND wrapped_by != ? LIMIT ?""",
                    [key_id, limit],
                ).fetchall()
            ]

    def rewrap(self, rows: list[tuple[str, str, str, bytes]]) -> int:
        """(clip_id, old key id, new key id, new wrapped key) in one transaction; a row whose key
        changed meanwhile (purged) is left as it is. Returns the rows changed."""
        with self.writer.write() as db:
            return sum(
                db.execute(
                    """UPDATE clips SET wrapped_by = ?, wrapped_key = ?
                       WHERE clip_id = ? AND wrapped_by = ? AND wrapped_key IS NOT NULL""",
                    [new_id, wrapped, clip_id, old_id],
                ).rowcount
                for clip_id, old_id, new_id, wrapped in rows
            )

    # -- status ----------------------------------------------------------------------------

    def backlog(self) -> Backlog:
        """What this station still holds, sent with every event batch: index searches only (no
        count of every clip by state, as ``summary`` makes for a person asking)."""
        with self.writer.read() as db:
            pending_clips, pending_bytes, oldest = db.execute(_PENDING_SQL).fetchone()
            failed = db.execute("SELECT COUNT(*) FROM clips WHERE state = 'failed'").fetchone()[0]
            folders = db.execute("SELECT COUNT(*) FROM bad_folders").fetchone()[0]
            out = self.checkouts.open_count()
        return Backlog(
            pending_clips=pending_clips,
            pending_bytes=pending_bytes,
            oldest_pending_recorded_at=from_iso(oldest) if oldest else None,
            failed_clips=failed,
            failed_folders=folders,
            checked_out=out,
        )

    def summary(self) -> dict:
        """Counts and lists for ``fleet station status``; built from the database alone."""
        with self.writer.read() as db:
            by_state = dict(db.execute("SELECT state, COUNT(*) FROM clips GROUP BY state").fetchall())
            pending_clips, pending_bytes, oldest = db.execute(_PENDING_SQL).fetchone()
            local_copies, local_bytes = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM clips WHERE local_path IS NOT NULL"
            ).fetchone()
            folders = [
                FailedFolder(folder=r[0], reason=r[1], first_seen_at=from_iso(r[2]), last_seen_at=from_iso(r[3]))
                for r in db.execute(
                    "SELECT folder, reason, first_seen_at, last_seen_at FROM bad_folders ORDER BY folder"
                ).fetchall()
            ]
            transfers = {
                state: [
                    self._transfer(r)
                    for r in db.execute(
                        """SELECT clip_id, state, size, evidential, recorded_at, attempts, next_attempt_at,
                               last_error, uploaded_bytes
                        FROM clips WHERE state = ? ORDER BY recorded_at LIMIT 100""",
                        [state],
                    ).fetchall()
                ]
                for state in ("failed", "waiting")
            }
            last = meta.get(db, LAST_SYNC_OK)
        return {
            "clips_by_state": by_state,
            "pending_clips": pending_clips,
            "pending_bytes": pending_bytes,
            "oldest_pending_recorded_at": from_iso(oldest) if oldest else None,
            "verified_clips": by_state.get("verified", 0),
            "failed_folders": folders,
            "failed_clips": transfers["failed"],
            "waiting_clips": transfers["waiting"],
            "last_sync_ok_at": from_iso(last) if last is not None else None,
            "local_copies": local_copies,
            "local_bytes": local_bytes,
        }

    def transfers(self, clip_ids: Iterable[str] | None = None) -> list[ClipTransfer]:
        with self.writer.read() as db:
            sql = """SELECT clip_id, state, size, evidential, recorded_at, attempts, next_attempt_at,
                            last_error, uploaded_bytes FROM clips"""
            rows = db.execute(sql + " ORDER BY recorded_at").fetchall()
        wanted = set(clip_ids) if clip_ids is not None else None
        return [self._transfer(r) for r in rows if wanted is None or r[0] in wanted]

    @staticmethod
    def _transfer(r) -> ClipTransfer:
        return ClipTransfer(
            clip_id=r[0],
            state=r[1],
            size=r[2],
            evidential=bool(r[3]),
            recorded_at=from_iso(r[4]),
            attempts=r[5],
            next_attempt_at=from_iso(r[6]) if r[6] else None,
            last_error=r[7],
            uploaded_bytes=r[8],
        )
