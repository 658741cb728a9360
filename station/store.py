"""The station's one store: its SQLite queue of clips, dockings and bad folders.

Transfer states of a clip::

    queued ──▶ uploading ──▶ verified ──(grace period)──▶ local copy deleted
       ▲           │
       └─ waiting ◀┘ (transient failure: attempts, next_attempt_at, last_error persisted)
                   └──▶ failed (permanent refusal, with reason; `fleet station retry` requeues)
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from fleet import sqlite
from fleet.clock import from_iso, to_iso, utc_now
from fleet.errors import FleetError
from fleet.events import Backlog, BadFolder, CameraDocked, CheckedIn, ClipIngested, ClipVerified
from fleet.protocol import ClipTransfer, DeviceInfo, FailedFolder
from station import outbox

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
]

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


@dataclass(frozen=True)
class KnownClip:
    clip_id: str
    sha256: str
    size: int


_CLIP_COLUMNS = ("clip_id", "sha256", "size", "device_serial", "recorded_at", "filename", "duration_s", "pre_record_s",
                 "tags", "evidential", "dock_folder", "ingested_at", "local_path", "chunk_bytes", "chunk_algorithm",
                 "chunk_checksums")
_INSERT_CLIP = (f"INSERT OR IGNORE INTO clips ({', '.join(_CLIP_COLUMNS)}) "
                f"VALUES ({', '.join(':' + c for c in _CLIP_COLUMNS)})")

_PENDING_SQL = """SELECT COUNT(*), COALESCE(SUM(size), 0), MIN(recorded_at) FROM clips
                  WHERE state IN ('queued', 'uploading', 'waiting')"""
"""What is still to upload: count, bytes and the oldest recording (status and every event batch)."""


PROBE_WAIT_S = 0.2
"""How long the write probe waits for another process's write lock (held: the file is writable)."""


class _RolledBack(Exception):
    """Ends a probing write without committing it."""


class StationStore:
    """All reads and writes of the station database; one instance per process."""

    def __init__(self, data_dir: str | Path, *, read_only: bool = False) -> None:
        """``read_only``: open an existing database for reads only (see ``for_reading``)."""
        self.data_dir = Path(data_dir)
        self.clips_dir = self.data_dir / "clips"
        self.tmp_dir = self.data_dir / "tmp"
        self.path = self.data_dir / "station.db"
        if read_only:
            self.db = sqlite.open_read_only(self.path)
        else:
            for folder in (self.data_dir, self.clips_dir, self.tmp_dir):
                folder.mkdir(parents=True, exist_ok=True)
            self.db = sqlite.open_database(self.path)
        try:
            if not read_only:
                sqlite.migrate(self.db, MIGRATIONS)
            elif (version := sqlite.check_version(self.db, MIGRATIONS)) < len(MIGRATIONS):
                raise FleetError(f"station database {self.path} is at schema v{version}, this program reads "
                                 f"v{len(MIGRATIONS)}; `fleet station run` upgrades it once it can be written")
        except BaseException:
            self.db.conn.close()
            raise
        self.writer = self._writer = sqlite.Writer(self.db)

    @classmethod
    def for_reading(cls, data_dir: str | Path) -> StationStore:
        """The store as it is, for a command that only reads (``fleet station status``): opened
        read-only when it cannot be opened for writing, so the status can still say why."""
        try:
            return cls(data_dir)
        except (sqlite3.Error, OSError):
            return cls(data_dir, read_only=True)

    @classmethod
    def for_writing(cls, data_dir: str | Path) -> StationStore:
        """The store for a process or command that writes. A database that can never be written as
        it is (a read-only file or file system) is one clear error here, not a failure at each
        write; a full disk or failing I/O is not: it may pass (purging verified copies makes
        room), and the running station says so once a minute until it does."""
        path = Path(data_dir) / "station.db"
        try:
            store = cls(data_dir)
        except (sqlite3.Error, OSError) as exc:
            raise FleetError(f"station database cannot be written: {sqlite.unwritable_reason(path, exc)}") from None
        try:
            store.probe_write()
        except sqlite3.Error as exc:
            if sqlite.is_read_only(exc):
                store.close()
                raise FleetError(f"station database cannot be written: {sqlite.unwritable_reason(path, exc)}") \
                    from None
        return store

    def close(self) -> None:
        """Close once no thread is inside a read or write (closing under a running query crashes SQLite)."""
        with self._writer.read():
            self.db.conn.close()

    # -- ingest ----------------------------------------------------------------------------

    def known_clips(self, clip_ids: Iterable[str]) -> dict[str, KnownClip]:
        ids = list(clip_ids)
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        with self._writer.read() as db:
            rows = db.execute(f"SELECT clip_id, sha256, size FROM clips WHERE clip_id IN ({marks})", ids)
            return {r[0]: KnownClip(*r) for r in rows.fetchall()}

    def record_ingest(self, folder: str, device: DeviceInfo, device_json: str, clips: list[NewClip]) -> None:
        """Record a docking and its clips in one durable transaction (the ingest commit point)."""
        now = to_iso(utc_now())
        rows = [
            {
                "clip_id": c.clip_id, "sha256": c.sha256, "size": c.size, "device_serial": c.device_serial,
                "recorded_at": to_iso(c.recorded_at), "filename": c.filename, "duration_s": c.duration_s,
                "pre_record_s": c.pre_record_s, "tags": json.dumps(c.tags), "evidential": int(c.evidential),
                "dock_folder": folder, "ingested_at": now, "local_path": c.local_path,
                "chunk_bytes": c.chunk_bytes, "chunk_algorithm": c.chunk_algorithm,
                "chunk_checksums": json.dumps(c.chunk_checksums) if c.chunk_checksums is not None else None,
            }
            for c in clips
        ]
        with self._writer.write() as db:
            known = set(self.known_clips(c.clip_id for c in clips))
            if rows:  # plain SQL: sqlite-utils' insert_all re-reads the schema on every call (a third of an ingest)
                db.conn.executemany(_INSERT_CLIP, rows)
            if db.execute("SELECT 1 FROM dockings WHERE folder = ? LIMIT 1", [folder]).fetchone():
                # Recorded before a crash that came before INGESTED.json: the redo adds nothing.
                outbox.append(db, self._ingested_events([c for c in clips if c.clip_id not in known]))
                db.execute("DELETE FROM bad_folders WHERE folder = ?", [folder])
                return
            events: list = [CameraDocked(device=device, folder=folder, clip_count=len(clips))]
            events += self._ingested_events([c for c in clips if c.clip_id not in known])
            checkout = db.execute("SELECT officer_id FROM checkouts WHERE device_serial = ? AND in_at IS NULL",
                                  [device.serial]).fetchone()
            if checkout:  # docking ends a pool checkout
                db.execute("UPDATE checkouts SET in_at = ?, in_reason = 'docked', in_by = 'dock' "
                           "WHERE device_serial = ? AND in_at IS NULL", [now, device.serial])
                events.append(CheckedIn(device_serial=device.serial, officer_id=checkout[0], reason="docked",
                                        by="dock"))
            outbox.append(db, events)
            db.execute("INSERT INTO dockings (folder, device_serial, docked_at, ingested_at, clip_count, device_json) "
                       "VALUES (?, ?, ?, ?, ?, ?)",
                       [folder, device.serial, to_iso(device.docked_at) if device.docked_at else None, now,
                        len(clips), device_json])
            db.execute("DELETE FROM bad_folders WHERE folder = ?", [folder])

    @staticmethod
    def _ingested_events(clips: list[NewClip]) -> list:
        return [ClipIngested(clip_id=c.clip_id, device_serial=c.device_serial, recorded_at=c.recorded_at, size=c.size,
                             sha256=c.sha256, evidential=c.evidential, tags=c.tags, duration_s=c.duration_s)
                for c in clips]

    def record_bad_folder(self, folder: str, reason: str, signature: str, transient: bool) -> None:
        now = to_iso(utc_now())
        with self._writer.write() as db:
            before = db.execute("SELECT reason FROM bad_folders WHERE folder = ?", [folder]).fetchone()
            if before is None or before[0] != reason:  # report each new problem once, not each rescan
                outbox.append(db, [BadFolder(folder=folder, reason=reason)])
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
        with self._writer.read() as db:
            rows = db.execute("SELECT folder, signature, transient, last_seen_at FROM bad_folders").fetchall()
        return {r[0]: (r[1], bool(r[2]), from_iso(r[3])) for r in rows}

    def retry_transient_folders(self) -> int:
        """Let the next scan retry folders that failed for a passing reason (such as a full disk) at once."""
        with self._writer.write() as db:
            return db.execute("UPDATE bad_folders SET last_seen_at = ? WHERE transient = 1",
                              [to_iso(datetime.min.replace(tzinfo=timezone.utc))]).rowcount

    def forget_bad_folders(self, keep: set[str]) -> None:
        """Drop reports of folders that are no longer docked (every scan asks: no write unless one went)."""
        with self._writer.read() as db:
            gone = [(folder,) for (folder,) in db.execute("SELECT folder FROM bad_folders") if folder not in keep]
        if gone:
            with self._writer.write() as db:
                db.conn.executemany("DELETE FROM bad_folders WHERE folder = ?", gone)

    # -- sync ------------------------------------------------------------------------------

    def recover_interrupted(self) -> int:
        """At start-up: clips left 'uploading' by a crash go back to the queue, attempts kept."""
        with self._writer.write() as db:
            return db.execute("UPDATE clips SET state = 'queued' WHERE state = 'uploading'").rowcount

    def claim_due(self, limit: int, now: datetime | None = None) -> list[QueuedClip]:
        """Mark up to ``limit`` due clips 'uploading' and return them, evidential first."""
        now_iso = to_iso(now or utc_now())
        with self._writer.write() as db:
            rows = db.execute(
                """SELECT clip_id, sha256, size, device_serial, recorded_at, filename, duration_s, tags,
                          evidential, local_path, attempts, upload_url, chunk_bytes, chunk_algorithm,
                          chunk_checksums, last_error
                   FROM clips
                   WHERE state IN ('queued', 'waiting') AND (next_attempt_at IS NULL OR next_attempt_at <= ?)
                   ORDER BY evidential DESC, recorded_at, clip_id
                   LIMIT ?""",
                [now_iso, limit],
            ).fetchall()
            claimed = [
                QueuedClip(r[0], r[1], r[2], r[3], from_iso(r[4]), r[5], r[6], json.loads(r[7]), bool(r[8]),
                           r[9], r[10], r[11], r[12], r[13], json.loads(r[14]) if r[14] else None, r[15])
                for r in rows
            ]
            db.conn.executemany(
                "UPDATE clips SET state = 'uploading' WHERE clip_id = ?", [(c.clip_id,) for c in claimed]
            )
        return claimed

    def set_upload_url(self, clip_id: str, url: str | None) -> None:
        with self._writer.write() as db:
            db.execute("UPDATE clips SET upload_url = ? WHERE clip_id = ?", [url, clip_id])

    def set_progress(self, clip_id: str, uploaded_bytes: int) -> None:
        with self._writer.write() as db:
            db.execute("UPDATE clips SET uploaded_bytes = ? WHERE clip_id = ?", [uploaded_bytes, clip_id])

    def mark_verified(self, clip_id: str) -> None:
        now = to_iso(utc_now())
        with self._writer.write() as db:
            changed = db.execute(
                """UPDATE clips SET state = 'verified', verified_at = ?, uploaded_bytes = size,
                       last_error = NULL, next_attempt_at = NULL, attempts = attempts + 1
                   WHERE clip_id = ? AND state != 'verified'""",
                [now, clip_id],
            ).rowcount
            if changed:
                outbox.append(db, [ClipVerified(clip_id=clip_id)])
            self._set_meta(db, "last_sync_ok_at", now)

    def mark_waiting(self, clip_id: str, error: str, next_attempt_at: datetime) -> None:
        with self._writer.write() as db:
            db.execute(
                """UPDATE clips SET state = 'waiting', attempts = attempts + 1, last_error = ?,
                       next_attempt_at = ? WHERE clip_id = ?""",
                [error, to_iso(next_attempt_at), clip_id],
            )

    def mark_failed(self, clip_id: str, reason: str) -> None:
        with self._writer.write() as db:
            db.execute(
                """UPDATE clips SET state = 'failed', attempts = attempts + 1, last_error = ?,
                       next_attempt_at = NULL WHERE clip_id = ?""",
                [reason, clip_id],
            )

    def release(self, clip_ids: Iterable[str]) -> None:
        """Return claimed clips to the queue untried (shutdown before their turn)."""
        with self._writer.write() as db:
            db.conn.executemany(
                "UPDATE clips SET state = 'queued' WHERE clip_id = ? AND state = 'uploading'",
                [(c,) for c in clip_ids],
            )

    def requeue_failed(self) -> int:
        """Operator action after fixing the cause (a token, a limit): failed clips go back in line."""
        with self._writer.write() as db:
            return db.execute(
                "UPDATE clips SET state = 'queued', next_attempt_at = NULL WHERE state = 'failed'"
            ).rowcount

    def note_contact(self) -> None:
        """Central answered: remember when, for the status page."""
        with self._writer.write() as db:
            self._set_meta(db, "last_sync_ok_at", to_iso(utc_now()))

    def next_attempt_at(self) -> datetime | None:
        with self._writer.read() as db:
            row = db.execute(
                "SELECT MIN(next_attempt_at) FROM clips WHERE state = 'waiting'"
            ).fetchone()
        return from_iso(row[0]) if row and row[0] else None

    # -- local copies ----------------------------------------------------------------------

    def purgeable(self, grace: timedelta, now: datetime | None = None, limit: int = 500) -> list[tuple[str, str]]:
        """(clip_id, local_path) of verified clips whose grace period is over and no hold protects."""
        cutoff = to_iso((now or utc_now()) - grace)
        with self._writer.read() as db:
            return [tuple(r) for r in db.execute(
                """SELECT clip_id, local_path FROM clips c
                   WHERE state = 'verified' AND local_path IS NOT NULL AND verified_at <= ?
                     AND NOT EXISTS (SELECT 1 FROM held_clips h WHERE h.clip_id = c.clip_id)
                   ORDER BY verified_at LIMIT ?""",
                [cutoff, limit],
            ).fetchall()]

    def mark_local_deleted(self, clip_id: str) -> None:
        with self._writer.write() as db:
            db.execute(
                "UPDATE clips SET local_path = NULL, local_deleted_at = ? WHERE clip_id = ? AND state = 'verified'",
                [to_iso(utc_now()), clip_id],
            )

    def local_path(self, relative: str) -> Path:
        return self.data_dir / relative

    # -- status ----------------------------------------------------------------------------

    def backlog(self) -> Backlog:
        """What this station still holds, sent with every event batch: index searches only (no
        count of every clip by state, as ``summary`` makes for a person asking)."""
        with self._writer.read() as db:
            pending_clips, pending_bytes, oldest = db.execute(_PENDING_SQL).fetchone()
            failed = db.execute("SELECT COUNT(*) FROM clips WHERE state = 'failed'").fetchone()[0]
            folders = db.execute("SELECT COUNT(*) FROM bad_folders").fetchone()[0]
            out = db.execute("SELECT COUNT(*) FROM checkouts WHERE in_at IS NULL").fetchone()[0]
        return Backlog(pending_clips=pending_clips, pending_bytes=pending_bytes,
                       oldest_pending_recorded_at=from_iso(oldest) if oldest else None, failed_clips=failed,
                       failed_folders=folders, checked_out=out)

    def summary(self) -> dict:
        """Counts and lists for ``fleet station status``; built from the database alone."""
        with self._writer.read() as db:
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
                state: [self._transfer(r) for r in db.execute(
                    """SELECT clip_id, state, size, evidential, recorded_at, attempts, next_attempt_at,
                               last_error, uploaded_bytes
                        FROM clips WHERE state = ? ORDER BY recorded_at LIMIT 100""",
                    [state],
                ).fetchall()]
                for state in ("failed", "waiting")
            }
            last = db.execute("SELECT value FROM meta WHERE key = 'last_sync_ok_at'").fetchone()
        return {
            "clips_by_state": by_state,
            "pending_clips": pending_clips,
            "pending_bytes": pending_bytes,
            "oldest_pending_recorded_at": from_iso(oldest) if oldest else None,
            "verified_clips": by_state.get("verified", 0),
            "failed_folders": folders,
            "failed_clips": transfers["failed"],
            "waiting_clips": transfers["waiting"],
            "last_sync_ok_at": from_iso(last[0]) if last else None,
            "local_copies": local_copies,
            "local_bytes": local_bytes,
        }

    def write_problem(self) -> str | None:
        """Why the database cannot take a write now, or None."""
        try:
            self.probe_write()
        except sqlite3.Error as exc:
            return f"station database cannot be written: {sqlite.unwritable_reason(self.path, exc)}"
        return None

    def probe_write(self) -> None:
        """Raise what a write would meet now; the probe's write is rolled back.

        Another process holding the write lock (the running station) proves the file can be
        written, so the probe waits for it only briefly, never the 30 s busy timeout."""
        try:
            with self._writer.write(wait_s=PROBE_WAIT_S) as db:
                self._set_meta(db, "write_probe", to_iso(utc_now()))
                raise _RolledBack
        except _RolledBack:
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):  # busy with another writer: it can be written
                raise

    def transfers(self, clip_ids: Iterable[str] | None = None) -> list[ClipTransfer]:
        with self._writer.read() as db:
            sql = """SELECT clip_id, state, size, evidential, recorded_at, attempts, next_attempt_at,
                            last_error, uploaded_bytes FROM clips"""
            rows = db.execute(sql + " ORDER BY recorded_at").fetchall()
        wanted = set(clip_ids) if clip_ids is not None else None
        return [self._transfer(r) for r in rows if wanted is None or r[0] in wanted]

    @staticmethod
    def _transfer(r) -> ClipTransfer:
        return ClipTransfer(
            clip_id=r[0], state=r[1], size=r[2], evidential=bool(r[3]), recorded_at=from_iso(r[4]),
            attempts=r[5], next_attempt_at=from_iso(r[6]) if r[6] else None, last_error=r[7],
            uploaded_bytes=r[8],
        )

    @staticmethod
    def _set_meta(db, key: str, value: str) -> None:
        db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [key, value],
        )
