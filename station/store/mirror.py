"""The station's mirror of central's registry for its borough, kept by the changes feed.

A page of changes and the new cursor are applied in one transaction, so a crash leaves the
mirror at one cursor or the next, never between. A full snapshot replaces the mirror the
same way (after central said our cursor is older than its history). The desk reads it to
decide checkouts, and the purge of verified copies skips the clips on hold (``not_held``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

import msgspec

from fleet.clock import to_iso
from fleet.events import (
    CameraUpdate,
    ChangeItem,
    ClipHold,
    DeviceEntry,
    Officer,
    PersonalIssue,
    Snapshot,
    StationPolicy,
)
from fleet.sqlite import Writer
from station.store import meta, updates

POLICY_KEY = "station_policy"
CURSOR_KEY = "feed_cursor"


def not_held(clip_id: str) -> str:
    """An SQL condition: no hold protects the clip whose id is in column ``clip_id``. A condition
    rather than a list, so the purge's one query limits itself to the copies it may delete."""
    return f"NOT EXISTS (SELECT 1 FROM held_clips h WHERE h.clip_id = {clip_id})"


def held(clip_id: str) -> str:
    """An SQL condition: a hold protects the clip (the upload window lets it through)."""
    return f"EXISTS (SELECT 1 FROM held_clips h WHERE h.clip_id = {clip_id})"


def _put(db: sqlite3.Connection, item: ChangeItem) -> None:
    match item:
        case Officer():
            db.execute(
                """INSERT INTO officers (officer_id, borough, team, role, name, active) VALUES (?, ?, ?, ?, ?, ?)
                   ON CONFLICT (officer_id) DO UPDATE SET borough = excluded.borough, team = excluded.team,
                       role = excluded.role, name = excluded.name, active = excluded.active""",
                [item.officer_id, item.borough, item.team, item.role, item.name, int(item.active)],
            )
        case DeviceEntry():
            db.execute(
                """INSERT INTO devices (serial, model, lifecycle, borough, home_station, assignment_mode)
                   VALUES (?, ?, ?, ?, ?, ?)
                   ON CONFLICT (serial) DO UPDATE SET model = excluded.model, lifecycle = excluded.lifecycle,
                       borough = excluded.borough, home_station = excluded.home_station,
                       assignment_mode = excluded.assignment_mode""",
                [item.serial, item.model, item.lifecycle, item.borough, item.home_station, item.assignment_mode],
            )
        case PersonalIssue(officer_id=None):
            db.execute("DELETE FROM personal_issues WHERE device_serial = ?", [item.device_serial])
        case PersonalIssue():
            db.execute(
                """INSERT INTO personal_issues (device_serial, officer_id, since) VALUES (?, ?, ?)
                   ON CONFLICT (device_serial) DO UPDATE SET officer_id = excluded.officer_id,
                       since = excluded.since""",
                [item.device_serial, item.officer_id, to_iso(item.since)],
            )
        case StationPolicy():
            meta.put(db, POLICY_KEY, msgspec.json.encode(item).decode())
        case ClipHold(held=True):
            db.execute("INSERT INTO held_clips (clip_id) VALUES (?) ON CONFLICT DO NOTHING", [item.clip_id])
        case ClipHold():
            db.execute("DELETE FROM held_clips WHERE clip_id = ?", [item.clip_id])
        case CameraUpdate():
            updates.put_offer(db, item)  # its table's owner


class Mirror:
    """Every read and write of ``officers``, ``devices``, ``personal_issues`` and ``held_clips``; the
    feed's offers go to ``camera_updates`` through its owner (``station.store.updates``), in the
    same transaction as the cursor."""

    def __init__(self, writer: Writer) -> None:
        self.writer = writer

    def cursor(self) -> int:
        with self.writer.read() as db:
            value = meta.get(db, CURSOR_KEY)
        return int(value) if value is not None else 0

    def apply(self, items: Iterable[ChangeItem], cursor: int) -> None:
        """Apply changes and move the cursor, together."""
        with self.writer.write() as db:
            for item in items:
                _put(db, item)
            meta.put(db, CURSOR_KEY, str(cursor))

    def replace(self, snapshot: Snapshot) -> None:
        """Reload everything from a snapshot (our cursor was older than central's history)."""
        with self.writer.write() as db:
            for table in ("officers", "devices", "personal_issues", "held_clips"):
                db.execute(f"DELETE FROM {table}")
            holds = [ClipHold(clip_id=clip_id) for clip_id in snapshot.held_clips]
            items: list[ChangeItem] = [
                *snapshot.officers,
                *snapshot.devices,
                *snapshot.personal_issues,
                snapshot.policy,
                *holds,
            ]
            for item in items:
                _put(db, item)
            updates.replace_offers(db, snapshot.camera_updates)
            meta.put(db, CURSOR_KEY, str(snapshot.cursor))

    def policy(self) -> StationPolicy | None:
        with self.writer.read() as db:
            value = meta.get(db, POLICY_KEY)
        return msgspec.json.decode(value, type=StationPolicy) if value is not None else None

    def officer(self, officer_id: str) -> Officer | None:
        with self.writer.read() as db:
            row = db.execute(
                "SELECT officer_id, borough, team, role, name, active FROM officers WHERE officer_id = ?", [officer_id]
            ).fetchone()
        return (
            Officer(officer_id=row[0], borough=row[1], team=row[2], role=row[3], name=row[4], active=bool(row[5]))
            if row
            else None
        )

    def device(self, serial: str) -> DeviceEntry | None:
        with self.writer.read() as db:
            row = db.execute(
                "SELECT serial, model, lifecycle, borough, home_station, assignment_mode FROM devices WHERE serial = ?",
                [serial],
            ).fetchone()
        return (
            DeviceEntry(
                serial=row[0],
                model=row[1],
                lifecycle=row[2],
                borough=row[3],
                home_station=row[4],
                assignment_mode=row[5],
            )
            if row
            else None
        )

    def issued_to(self, serial: str) -> str | None:
        """The officer a camera is personally issued to, if it is."""
        with self.writer.read() as db:
            row = db.execute("SELECT officer_id FROM personal_issues WHERE device_serial = ?", [serial]).fetchone()
        return row[0] if row else None

    def personal_camera(self, officer_id: str) -> str | None:
        """The camera personally issued to an officer, if any."""
        with self.writer.read() as db:
            row = db.execute("SELECT device_serial FROM personal_issues WHERE officer_id = ?", [officer_id]).fetchone()
        return row[0] if row else None

    def counts(self) -> dict[str, int]:
        with self.writer.read() as db:
            return {
                table: db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                for table in ("officers", "devices", "personal_issues")
            }
