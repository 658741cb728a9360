"""Deployments at this station (docs/firmware.md): central's offers to its cameras, the artifacts
they need, what the dock handed over and what the cameras reported.

    camera_updates       at most one offer per camera, from the changes feed (applied with its cursor)
    firmware_artifacts   artifacts downloaded into ``<data_dir>/firmware/``: verified, or failing and why
    update_handovers     an update written into a docked camera's folder (one per folder and attempt)
    update_results       what cameras reported, once per (camera, deployment, attempt)

``meta`` key ``updates_version`` counts changes to what the dock decides on, so the dock pass looks
again at a folder it had settled only when what it decided on moved: a camera's offer or report
stamps that camera's offer (``camera_updates.moved``); an artifact verified or dropped, or a
snapshot of every offer, stamps them all (``meta`` key ``updates_all_moved``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec

from fleet.clock import from_iso, to_iso, utc_now
from fleet.events import CameraUpdate, CameraUpdateOffered, CameraUpdateRelease, CameraUpdateResult
from fleet.sqlite import Writer
from station.store import meta
from station.store.outbox import Outbox

VERSION_KEY = "updates_version"
ALL_MOVED_KEY = "updates_all_moved"
_offer_decoder = msgspec.json.Decoder(CameraUpdate)


@dataclass(frozen=True)
class Artifact:
    """A row of ``firmware_artifacts``."""

    sha256: str
    release_id: int
    size: int
    state: str
    """``verified`` (the file is kept under its hash) or ``failed`` (nothing kept but a resumable part)."""
    verified_at: datetime | None
    failures: int
    next_attempt_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    unused_since: datetime | None


@dataclass(frozen=True)
class Result:
    ok: bool
    error: str | None
    version: str


def put_offer(db: sqlite3.Connection, item: CameraUpdate) -> None:
    """Apply one ``camera_update`` inside the feed's transaction: a newer deployment's item replaces an
    older one's for the camera; an older deployment's (active or not) never touches a newer one's."""
    row = db.execute("SELECT deployment_id FROM camera_updates WHERE serial = ?", [item.serial]).fetchone()
    if row is not None and row[0] > item.deployment_id:
        return
    if not item.active:
        db.execute("DELETE FROM camera_updates WHERE serial = ?", [item.serial])
    else:
        db.execute(
            """INSERT INTO camera_updates (serial, deployment_id, sha256, body, received_at) VALUES (?, ?, ?, ?, ?)
               ON CONFLICT (serial) DO UPDATE SET deployment_id = excluded.deployment_id, sha256 = excluded.sha256,
                   body = excluded.body, received_at = excluded.received_at, waiting = NULL""",
            [
                item.serial,
                item.deployment_id,
                item.release.sha256 if item.release else None,
                msgspec.json.encode(item).decode(),
                to_iso(utc_now()),
            ],
        )
    _moved(db, item.serial)  # a withdrawn offer's row is gone: its absence is the change


def replace_offers(db: sqlite3.Connection, items: Iterable[CameraUpdate]) -> None:
    """A snapshot's offers replace every offer held (inside the snapshot's transaction)."""
    db.execute("DELETE FROM camera_updates")
    for item in sorted(items, key=lambda i: i.deployment_id):
        put_offer(db, item)
    _moved(db)


def _moved(db: sqlite3.Connection, serial: str | None = None) -> None:
    """What the dock decides on moved: this camera's offer or report, or (no serial) anything."""
    version = int(meta.get(db, VERSION_KEY) or 0) + 1
    meta.put(db, VERSION_KEY, str(version))
    if serial is None:
        meta.put(db, ALL_MOVED_KEY, str(version))
    else:
        db.execute("UPDATE camera_updates SET moved = ? WHERE serial = ?", [version, serial])


@dataclass(frozen=True)
class Marks:
    """When what the dock decides on last moved: everything, and each camera's offer (a camera
    without one is absent)."""

    all_moved: int
    offers: dict[str, int]

    def of(self, serial: str | None) -> tuple[int, int | None]:
        """The marks a folder of this camera was settled with: it is looked at again once either moves."""
        return self.all_moved, self.offers.get(serial) if serial is not None else None


def _artifact(r) -> Artifact:
    return Artifact(
        sha256=r[0],
        release_id=r[1],
        size=r[2],
        state=r[3],
        verified_at=from_iso(r[4]) if r[4] else None,
        failures=r[5],
        next_attempt_at=from_iso(r[6]) if r[6] else None,
        last_error=r[7],
        last_error_at=from_iso(r[8]) if r[8] else None,
        unused_since=from_iso(r[9]) if r[9] else None,
    )


_ARTIFACT_COLUMNS = (
    "sha256, release_id, size, state, verified_at, failures, next_attempt_at, last_error, last_error_at, unused_since"
)


class Updates:
    """Every read and write of the deployment tables."""

    def __init__(self, writer: Writer, outbox: Outbox) -> None:
        self.writer = writer
        self.outbox = outbox

    def marks(self) -> Marks:
        with self.writer.read() as db:
            return Marks(
                all_moved=int(meta.get(db, ALL_MOVED_KEY) or 0),
                offers=dict(db.execute("SELECT serial, moved FROM camera_updates").fetchall()),
            )

    # -- offers ------------------------------------------------------------------------------

    def offer(self, serial: str) -> CameraUpdate | None:
        with self.writer.read() as db:
            row = db.execute("SELECT body FROM camera_updates WHERE serial = ?", [serial]).fetchone()
        return _offer_decoder.decode(row[0]) if row else None

    def offers(self) -> list[tuple[CameraUpdate, str | None]]:
        """Every offer held, with why it has not been handed over (None: not decided yet)."""
        with self.writer.read() as db:
            rows = db.execute("SELECT body, waiting FROM camera_updates ORDER BY serial").fetchall()
        return [(_offer_decoder.decode(r[0]), r[1]) for r in rows]

    def set_waiting(self, serial: str, deployment_id: int, why: str | None) -> None:
        """Why the camera's offer waits (shown by ``fleet station status``); written only when it changed."""
        with self.writer.write() as db:
            db.execute(
                "UPDATE camera_updates SET waiting = ? WHERE serial = ? AND deployment_id = ? AND waiting IS NOT ?",
                [why, serial, deployment_id, why],
            )

    def wanted_releases(self) -> list[CameraUpdateRelease]:
        """One release per artifact some offer names (the newest offer's word on it)."""
        with self.writer.read() as db:  # SQLite: MAX() picks the row its other columns come from
            rows = db.execute(
                "SELECT body, MAX(deployment_id) FROM camera_updates WHERE sha256 IS NOT NULL GROUP BY sha256"
            ).fetchall()
        decoded = (_offer_decoder.decode(body).release for body, _ in rows)  # one an artifact, not one a camera
        return [release for release in decoded if release is not None]

    # -- artifacts ---------------------------------------------------------------------------

    def artifact(self, sha256: str) -> Artifact | None:
        with self.writer.read() as db:
            row = db.execute(
                f"SELECT {_ARTIFACT_COLUMNS} FROM firmware_artifacts WHERE sha256 = ?", [sha256]
            ).fetchone()
        return _artifact(row) if row else None

    def artifacts(self) -> list[Artifact]:
        with self.writer.read() as db:
            rows = db.execute(f"SELECT {_ARTIFACT_COLUMNS} FROM firmware_artifacts ORDER BY sha256").fetchall()
        return [_artifact(r) for r in rows]

    def artifact_verified(self, release: CameraUpdateRelease, at: datetime | None = None) -> None:
        with self.writer.write() as db:
            db.execute(
                """INSERT INTO firmware_artifacts (sha256, release_id, size, state, verified_at)
                   VALUES (?, ?, ?, 'verified', ?)
                   ON CONFLICT (sha256) DO UPDATE SET state = 'verified', verified_at = excluded.verified_at,
                       release_id = excluded.release_id, next_attempt_at = NULL""",
                [release.sha256, release.id, release.size, to_iso(at or utc_now())],
            )
            _moved(db)

    def artifact_failed(self, release: CameraUpdateRelease, error: str, retry_in_s: float) -> int:
        """Record a failed download or check; returns the failures so far (for the backoff)."""
        now = utc_now()
        with self.writer.write() as db:
            db.execute(
                """INSERT INTO firmware_artifacts (sha256, release_id, size, state, failures, next_attempt_at,
                       last_error, last_error_at)
                   VALUES (?, ?, ?, 'failed', 1, ?, ?, ?)
                   ON CONFLICT (sha256) DO UPDATE SET state = 'failed', failures = failures + 1,
                       next_attempt_at = excluded.next_attempt_at, last_error = excluded.last_error,
                       last_error_at = excluded.last_error_at, verified_at = NULL""",
                [
                    release.sha256,
                    release.id,
                    release.size,
                    to_iso(now + timedelta(seconds=retry_in_s)),
                    error[:500],
                    to_iso(now),
                ],
            )
            _moved(db)
            return db.execute("SELECT failures FROM firmware_artifacts WHERE sha256 = ?", [release.sha256]).fetchone()[
                0
            ]

    def unused_artifacts(self, older_than: timedelta, now: datetime | None = None) -> list[str]:
        """Mark artifacts no offer names (and clear the mark of those named again); return those
        unnamed for longer than ``older_than``, to delete."""
        now = now or utc_now()
        with self.writer.write() as db:
            named = "EXISTS (SELECT 1 FROM camera_updates o WHERE o.sha256 = firmware_artifacts.sha256)"
            db.execute(f"UPDATE firmware_artifacts SET unused_since = NULL WHERE unused_since IS NOT NULL AND {named}")
            db.execute(
                f"UPDATE firmware_artifacts SET unused_since = ? WHERE unused_since IS NULL AND NOT {named}",
                [to_iso(now)],
            )
            return [
                r[0]
                for r in db.execute(
                    "SELECT sha256 FROM firmware_artifacts WHERE unused_since < ?", [to_iso(now - older_than)]
                )
            ]

    def forget_artifact(self, sha256: str) -> None:
        with self.writer.write() as db:
            db.execute("DELETE FROM firmware_artifacts WHERE sha256 = ?", [sha256])
            _moved(db)

    # -- the dock ----------------------------------------------------------------------------

    def handed_over(self, folder: str, docking: str, deployment_id: int, attempt: int) -> bool:
        """Whether this docking (``docking_of``) in this folder was handed this update already."""
        with self.writer.read() as db:
            return (
                db.execute(
                    "SELECT 1 FROM update_handovers "
                    "WHERE folder = ? AND deployment_id = ? AND attempt = ? AND docking = ?",
                    [folder, deployment_id, attempt, docking],
                ).fetchone()
                is not None
            )

    def record_handover(self, folder: str, docking: str, offer: CameraUpdate, at: datetime | None = None) -> bool:
        """The update is in the folder (manifest written): record it and its event, in one transaction,
        once per docking (a hand-over of an earlier docking in the same folder name is replaced).
        True when it was new."""
        at = at or utc_now()
        with self.writer.write() as db:
            added = db.execute(
                """INSERT INTO update_handovers (folder, serial, deployment_id, attempt, at, docking)
                   VALUES (?, ?, ?, ?, ?, ?)
                   ON CONFLICT (folder, deployment_id, attempt) DO UPDATE SET serial = excluded.serial,
                       at = excluded.at, docking = excluded.docking WHERE docking IS NOT excluded.docking""",
                [folder, offer.serial, offer.deployment_id, offer.attempt, to_iso(at), docking],
            ).rowcount
            db.execute(
                "UPDATE camera_updates SET waiting = ? WHERE serial = ?",
                [f"handed over in {folder}: waiting for the camera's report at its next dock", offer.serial],
            )
            if added:
                self.outbox.append(
                    [
                        CameraUpdateOffered(
                            serial=offer.serial, deployment_id=offer.deployment_id, attempt=offer.attempt, at=at
                        )
                    ],
                    at,
                )
        return bool(added)

    def forget_handovers(self, folder: str) -> None:
        """The update was taken out of the folder: a later hand-over there is a new one."""
        with self.writer.write() as db:
            db.execute("DELETE FROM update_handovers WHERE folder = ?", [folder])

    def result(self, serial: str, deployment_id: int, attempt: int) -> Result | None:
        with self.writer.read() as db:
            row = db.execute(
                "SELECT ok, error, version FROM update_results WHERE serial = ? AND deployment_id = ? AND attempt = ?",
                [serial, deployment_id, attempt],
            ).fetchone()
        return Result(ok=bool(row[0]), error=row[1], version=row[2]) if row else None

    def record_result(self, folder: str, event: CameraUpdateResult) -> bool:
        """A camera's report, with its event, once per (camera, deployment, attempt): a folder ingested
        again, or the same report at a later dock, sends nothing. True when it was new."""
        with self.writer.write() as db:
            added = db.execute(
                "INSERT INTO update_results (serial, deployment_id, attempt, ok, version, error, folder, at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [
                    event.serial,
                    event.deployment_id,
                    event.attempt,
                    int(event.ok),
                    event.version,
                    event.error,
                    folder,
                    to_iso(event.at or utc_now()),  # the station always sets it
                ],
            ).rowcount
            if added:
                self.outbox.append([event], event.at)
                _moved(db, event.serial)
        return bool(added)
