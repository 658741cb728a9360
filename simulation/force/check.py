"""What reached central, against what the cameras docked: every clip and every docking's telemetry.

Clips are read through the admin API (``GET /api/v1/clips``, every page) and a sample of
their bytes through ``/content``; telemetry and the fleet state derived from it are read
from central's database (SQLite's file, read-only, or PostgreSQL), once central has applied
every event it acknowledged.
Each docked clip is **ok**, **lost** (not verified at central), **duplicated** (listed more
than once) or **corrupted** (another SHA-256, size, camera, recording time or station);
each docking's ``camera_docked`` event is ok, lost, duplicated (stored twice) or corrupted
(other telemetry than the camera wrote). Clips or dockings central has that no camera
docked are counted as unexpected.
"""

from __future__ import annotations

import hashlib
import random
import sqlite3
import time
from collections import defaultdict
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import msgspec
import psycopg

from fleet import sqlite
from fleet.clock import from_iso
from fleet.events import CameraDocked
from simulation.force.run import DockRecord
from simulation.force.usage import Station
from simulation.local_cluster import all_clips


@dataclass
class Verdicts:
    ok: int = 0
    lost: int = 0
    duplicated: int = 0
    corrupted: int = 0
    unexpected: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def bad(self) -> int:
        return self.lost + self.duplicated + self.corrupted + self.unexpected

    def note(self, kind: str, what: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        if len(self.examples) < 10:
            self.examples.append(f"{kind}: {what}")


@dataclass
class Check:
    clips: Verdicts
    telemetry: Verdicts
    clip_latency_s: dict[str, list[float]]
    """Dock → verified at central (wall), for every clip and for those docked outside the outage."""
    event_latency_s: list[float]
    """Dock → telemetry stored at central (wall)."""
    verified_at: list[float]
    received_at: list[float]
    """Epoch seconds of every verification and every event stored at central (for throughput)."""
    events_by_kind: dict[str, int]
    devices_tracked: int
    devices_docked: int
    devices_current: int
    """Cameras whose registry entry at central shows their last docking (the projection is up to date)."""
    battery_readings: int
    bytes_checked: int
    bytes_mismatched: int


def wait_until_applied(db: Path | str, timeout: float) -> bool:
    """Central applies acknowledged events in the background: wait until it has applied them all."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with _read_only(db) as conn:
            behind = _count(conn, "SELECT COUNT(*) FROM stations WHERE applied_seq < acked_seq")
        if not behind:
            return True
        time.sleep(0.5)
    return False


def check(
    records: list[DockRecord],
    stations: list[Station],
    admin: httpx.Client,
    db: Path | str,
    spot_checks: int = 100,
    seed: int = 0,
) -> Check:
    clips, clip_latency, verified_at = _check_clips(records, stations, admin)
    telemetry, event_latency, received_at, kinds = _check_telemetry(records, stations, db)
    docked = {r.serial: r for r in sorted(records, key=lambda r: r.docked_at)}  # each camera's last docking
    with _read_only(db) as conn:
        central = dict(conn.execute("SELECT serial, last_docked_at FROM devices").fetchall())
        readings = _count(conn, "SELECT COUNT(*) FROM battery_readings")
    current = sum(1 for serial, r in docked.items() if central.get(serial) and from_iso(central[serial]) == r.docked_at)
    checked, mismatched = _spot_check_bytes(records, admin, spot_checks, seed)
    return Check(
        clips=clips,
        telemetry=telemetry,
        clip_latency_s=clip_latency,
        event_latency_s=event_latency,
        verified_at=verified_at,
        received_at=received_at,
        events_by_kind=kinds,
        devices_tracked=len(central),
        devices_docked=len(docked),
        devices_current=current,
        battery_readings=readings,
        bytes_checked=checked,
        bytes_mismatched=mismatched,
    )


def _check_clips(records, stations, admin):
    listed: dict[str, list[dict]] = defaultdict(list)
    for item in all_clips(admin):
        listed[item["clip_id"]].append(item)
    verdicts = Verdicts()
    latency: dict[str, list[float]] = {"all": [], "outside_outage": []}
    verified_at = []
    expected = set()
    for record in records:
        station = stations[record.station].station_id
        for clip_id, sha256, size in record.clips:
            expected.add(clip_id)
            found = listed.get(clip_id, [])
            if not found or found[0]["state"] != "verified":
                verdicts.note("lost", f"clip {clip_id} docked at {station} is not verified at central")
                continue
            if len(found) > 1:
                verdicts.note("duplicated", f"clip {clip_id} is listed {len(found)} times")
                continue
            c = found[0]
            if (c["sha256"], c["size"], c["device_serial"], c["station_id"]) != (sha256, size, record.serial, station):
                verdicts.note(
                    "corrupted",
                    f"clip {clip_id}: central has sha256 {c['sha256'][:12]}… {c['size']} B "
                    f"from {c['device_serial']} at {c['station_id']}; docked {sha256[:12]}… "
                    f"{size} B from {record.serial} at {station}",
                )
                continue
            verdicts.ok += 1
            done = from_iso(c["verified_at"]).timestamp()
            verified_at.append(done)
            latency["all"].append(done - record.wall_docked)
            if not record.in_outage:
                latency["outside_outage"].append(done - record.wall_docked)
    for clip_id in listed.keys() - expected:
        verdicts.note("unexpected", f"clip {clip_id} is at central but no camera docked it")
    return verdicts, latency, verified_at


_docked = msgspec.json.Decoder(CameraDocked)


def _check_telemetry(records, stations, db):
    with _read_only(db) as conn:
        kinds = dict(conn.execute("SELECT kind, COUNT(*) FROM events GROUP BY kind").fetchall())
        rows = conn.execute("SELECT station_id, received_at, body FROM events WHERE kind = 'camera_docked'").fetchall()
    stored: dict[tuple[str, str], list[tuple[str, str, CameraDocked]]] = defaultdict(list)
    for station_id, received, body in rows:
        event = _docked.decode(body)
        stored[(event.device.serial, event.folder)].append((station_id, received, event))
    verdicts = Verdicts()
    latency, received_at = [], [from_iso(r[1]).timestamp() for r in rows]
    expected = set()
    for record in records:
        key = (record.serial, record.folder.name)
        expected.add(key)
        found = stored.get(key, [])
        station = stations[record.station].station_id
        if not found:
            verdicts.note("lost", f"docking of {record.serial} at {station} ({record.folder.name}) is not at central")
            continue
        if len(found) > 1:
            verdicts.note("duplicated", f"docking {record.folder.name} is stored {len(found)} times")
            continue
        station_id, received, event = found[0]
        device = event.device
        if (station_id, device.docked_at, device.battery, event.clip_count) != (
            station,
            record.docked_at,
            record.battery,
            len(record.clips),
        ):
            verdicts.note(
                "corrupted",
                f"docking {record.folder.name}: central has {station_id}, "
                f"{device.docked_at}, {device.battery}, {event.clip_count} clips",
            )
            continue
        verdicts.ok += 1
        latency.append(from_iso(received).timestamp() - record.wall_docked)
    for key in stored.keys() - expected:
        verdicts.note("unexpected", f"docking {key[1]} of {key[0]} is at central but no camera docked it")
    return verdicts, latency, received_at, kinds


def _spot_check_bytes(records, admin, count: int, seed: int) -> tuple[int, int]:
    """Download a sample of clips and hash them: the bytes central serves are the camera's."""
    clips = [c for r in records for c in r.clips]
    sample = random.Random(seed).sample(clips, min(count, len(clips)))
    mismatched = 0
    for clip_id, sha256, _ in sample:
        response = admin.get(f"/api/v1/clips/{clip_id}/content")
        if response.status_code != 200 or hashlib.sha256(response.content).hexdigest() != sha256:
            mismatched += 1
    return len(sample), mismatched


def _count(conn, sql: str) -> int:
    row = conn.execute(sql).fetchone()
    return int(row[0]) if row else 0


def _read_only(db: Path | str) -> closing[sqlite3.Connection] | psycopg.Connection:
    """Central's database for reading while it may still be serving: the SQLite file read-only,
    or a connection of its own to PostgreSQL (``db`` its URL; the queries here take no parameters,
    so they read the same on both)."""
    if isinstance(db, str):
        return psycopg.connect(db, autocommit=True, application_name="fleet-simulate-check")
    return closing(sqlite.open_read_only(db))


def counts(verdicts: Verdicts) -> dict:
    return {
        "ok": verdicts.ok,
        "lost": verdicts.lost,
        "duplicated": verdicts.duplicated,
        "corrupted": verdicts.corrupted,
        "unexpected": verdicts.unexpected,
        "examples": verdicts.examples,
    }
