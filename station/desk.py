"""The station desk: pool cameras checked out to officers for a shift, and checked back in.

It decides from the station's own database alone, so it works while central is down: the
officers and registry entries mirrored from the feed, the dockings seen here, and the open
checkouts. Each checkout or check-in and its outbox event commit in one transaction.
Conflicts only central can see (the same officer checked out at two stations while offline)
are found there, from the events, and listed for a supervisor.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import msgspec

from fleet.clock import from_iso, to_iso, utc_now
from fleet.errors import BadRequest, Conflict, NotFound
from fleet.events import CheckedIn, CheckedOut, OfficerId, StationPolicy
from fleet.protocol import Serial
from station import outbox
from station.mirror import Mirror
from station.store import StationStore

UNAVAILABLE = {"repair": "in repair", "lost": "reported lost", "retired": "retired", "in_stock": "still in stock"}


@dataclass(frozen=True)
class Checkout:
    device_serial: str
    officer_id: str
    out_at: datetime
    battery_pct: float | None
    out_by: str
    in_at: datetime | None = None
    in_reason: str | None = None


@dataclass(frozen=True)
class Charge:
    """What the desk knows of a docked camera's charge: the dock's reading, then charging since."""

    level_at_dock: float | None
    docked_at: datetime
    estimated_pct: float | None
    docking_id: int
    """The docking's row here: dockings and checkouts are ordered by row ids, never by the clock."""


def estimate_charge(level_at_dock: float | None, docked_at: datetime, now: datetime, policy: StationPolicy) -> float | None:
    """The dock reports the level when docked; a dock charges empty → full in ``recharge_hours``."""
    if level_at_dock is None:
        return None
    hours = max(0.0, (now - docked_at).total_seconds() / 3600)
    return min(100.0, level_at_dock + hours * 100.0 / policy.recharge_hours)


def _valid(kind, value: str, what: str) -> str:
    """The id as typed at the desk, trimmed and checked like central will check it."""
    try:
        return msgspec.convert(value.strip(), kind)
    except msgspec.ValidationError:
        raise BadRequest(f"{value.strip()!r} is not a valid {what}") from None


class Desk:
    def __init__(self, store: StationStore, mirror: Mirror, station_id: str, borough: str | None = None, *,
                 on_event=None) -> None:
        self.store = store
        self.mirror = mirror
        self.station_id = station_id
        self.borough = borough
        self.on_event = on_event or (lambda: None)

    def policy(self) -> StationPolicy:
        return self.mirror.policy() or StationPolicy()

    def charge(self, serial: str, now: datetime | None = None) -> Charge | None:
        """The camera's charge from its last docking here, unless it was checked out from that docking."""
        now = now or utc_now()
        with self.store.writer.read() as db:
            dock = db.execute("SELECT id, ingested_at, device_json FROM dockings WHERE device_serial = ? "
                              "ORDER BY id DESC LIMIT 1", [serial]).fetchone()
            last_out = db.execute("SELECT MAX(docking_id) FROM checkouts WHERE device_serial = ?",
                                  [serial]).fetchone()[0]
        if dock is None or (last_out is not None and last_out >= dock[0]):
            return None
        docking_id, ingested_at, device_json = dock
        try:
            level = (json.loads(device_json).get("battery") or {}).get("level_pct")
        except ValueError:
            level = None
        docked_at = from_iso(ingested_at)
        return Charge(level, docked_at, estimate_charge(level, docked_at, now, self.policy()), docking_id)

    def checkout(self, serial: str, officer_id: str, *, by: str, now: datetime | None = None) -> Checkout:
        """Hand a pool camera to an officer, or refuse with the reason (409)."""
        now = now or utc_now()
        serial, officer_id = _valid(Serial, serial, "camera serial"), _valid(OfficerId, officer_id, "officer id")
        policy = self.policy()
        officer = self.mirror.officer(officer_id)
        if officer is None:
            raise NotFound(f"officer {officer_id} is not on this station's list (synced from central); "
                           "check the number, or wait for the next sync if they were added today")
        if not officer.active:
            raise Conflict(f"officer {officer_id} is marked inactive")
        if self.borough is not None and officer.borough != self.borough:
            raise Conflict(f"officer {officer_id} now belongs to {officer.borough}, not {self.borough}")
        device = self.mirror.device(serial)
        if device is not None and device.lifecycle in UNAVAILABLE:
            raise Conflict(f"camera {serial} is {UNAVAILABLE[device.lifecycle]}; it cannot be checked out")
        mode = (device.assignment_mode if device and device.assignment_mode else policy.assignment_mode)
        with self.store.writer.write() as db:
            issued = db.execute("SELECT officer_id FROM personal_issues WHERE device_serial = ?", [serial]).fetchone()
            if issued:
                raise Conflict(f"camera {serial} is personally issued to officer {issued[0]}, not a pool camera")
            if mode == "personal":
                raise Conflict(f"camera {serial} is for personal issue (not pool); a supervisor assigns it at central")
            own = db.execute("SELECT device_serial FROM personal_issues WHERE officer_id = ?", [officer_id]).fetchone()
            if own:
                raise Conflict(f"officer {officer_id} has personal-issue camera {own[0]}; one camera per officer")
            held = db.execute("SELECT officer_id FROM checkouts WHERE device_serial = ? AND in_at IS NULL",
                              [serial]).fetchone()
            if held:
                raise Conflict(f"camera {serial} is already checked out to officer {held[0]}")
            holding = db.execute("SELECT device_serial FROM checkouts WHERE officer_id = ? AND in_at IS NULL",
                                 [officer_id]).fetchone()
            if holding:
                raise Conflict(f"officer {officer_id} already has camera {holding[0]} checked out; check it in first")
            charge = self.charge(serial, now)
            if charge is None:
                raise Conflict(f"camera {serial} has not been docked here since it was last out: dock it first, "
                               "so its clips are taken off and its charge is known")
            if charge.estimated_pct is None or charge.estimated_pct < policy.min_checkout_pct:
                known = "unknown" if charge.estimated_pct is None else f"about {charge.estimated_pct:.0f}%"
                raise Conflict(f"camera {serial} is charged to {known}; pool checkouts need at least "
                               f"{policy.min_checkout_pct:.0f}%")
            db.execute("INSERT INTO checkouts (device_serial, officer_id, out_at, battery_pct, out_by, docking_id) "
                       "VALUES (?, ?, ?, ?, ?, ?)",
                       [serial, officer_id, to_iso(now), charge.estimated_pct, by, charge.docking_id])
            outbox.append(db, [CheckedOut(device_serial=serial, officer_id=officer_id,
                                          battery_pct=round(charge.estimated_pct, 1), by=by)], at=now)
        self.on_event()
        return Checkout(serial, officer_id, now, charge.estimated_pct, by)

    def checkin(self, serial: str, *, by: str, now: datetime | None = None) -> Checkout:
        """Take a camera back by hand (docking it checks it in by itself)."""
        now = now or utc_now()
        serial = _valid(Serial, serial, "camera serial")
        with self.store.writer.write() as db:
            row = db.execute("SELECT officer_id FROM checkouts WHERE device_serial = ? AND in_at IS NULL",
                             [serial]).fetchone()
            if row is None:
                raise NotFound(f"camera {serial} is not checked out at this station")
            db.execute("UPDATE checkouts SET in_at = ?, in_reason = 'manual', in_by = ? "
                       "WHERE device_serial = ? AND in_at IS NULL", [to_iso(now), by, serial])
            outbox.append(db, [CheckedIn(device_serial=serial, officer_id=row[0], reason="manual", by=by)], at=now)
        self.on_event()
        return self.history(serial, limit=1)[0]

    def open_checkouts(self) -> list[Checkout]:
        return self._select("WHERE in_at IS NULL ORDER BY out_at", [])

    def history(self, serial: str | None = None, limit: int = 100) -> list[Checkout]:
        where, params = ("WHERE device_serial = ?", [serial]) if serial else ("", [])
        return self._select(f"{where} ORDER BY id DESC LIMIT ?", [*params, limit])

    def _select(self, tail: str, params: list) -> list[Checkout]:
        with self.store.writer.read() as db:
            rows = db.execute("SELECT device_serial, officer_id, out_at, battery_pct, out_by, in_at, in_reason "
                              f"FROM checkouts {tail}", params).fetchall()
        return [Checkout(r[0], r[1], from_iso(r[2]), r[3], r[4], from_iso(r[5]) if r[5] else None, r[6])
                for r in rows]
