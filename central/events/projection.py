"""Fleet state derived from station events: devices, battery readings, pool checkouts, attribution.

Events are applied in each station's seq order by the projection worker
(``central.events.log``), after they are acknowledged: "acknowledged" means durably stored;
applying follows, tracked per station by ``applied_seq``. Consecutive events of one kind are
applied together (``executemany``), statement by statement, which keeps their order where
it matters (one device's readings, one device's checkouts) and is what makes tens of
thousands of events a second possible on one core.

Times: ``at`` is the station's clock. It orders nothing here except what it must: a pool
checkout is an interval of station time, and a clip belongs to whoever held the camera at
its ``recorded_at`` (the camera's clock). Late events (a station back after an outage)
re-attribute the clips their interval covers; clips a supervisor attributed by hand stay.
"""

from __future__ import annotations

import itertools
import json
from datetime import timedelta
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from central.registry import battery
from fleet.clock import to_iso, utc_now
from fleet.config import FleetSettings
from fleet.events import (
    BadFolder, CameraDocked, CheckedIn, CheckedOut, ClipIngested, ClipVerified, DeviceEntry, Event,
)
from central.evidence import audit
from central.events import claims
from central.registry import stations
from central.evidence.retention import announce_holds, announce_reattributed

_encoder = msgspec.json.Encoder()
ACTIVE_AT = """FROM (SELECT officer_id, id, ended_at FROM assignments WHERE device_serial = :serial
                     AND started_at <= :at ORDER BY started_at DESC, id DESC LIMIT 1)
               WHERE ended_at IS NULL OR ended_at > :at"""
"""The holder at a moment: the camera's latest assignment begun by then, if it had not ended.
(One index probe, however long the camera's history.)"""
_PAIR_COLUMNS = """id, device_serial, officer_id, started_at, station_id,
    COALESCE((SELECT borough FROM stations WHERE station_id = a.station_id),
             (SELECT borough FROM devices WHERE serial = a.device_serial))"""
"""An assignment as a conflict describes it: (id, camera, officer, start, station, borough)."""


@dataclass(frozen=True)
class Applied:
    seq: int
    at: str
    """The station's clock, RFC 3339 UTC."""
    event: Event
    sent_at: str | None = None
    """The station's clock when it sent the event's batch (None: stored before central kept it)."""


def health_policy(fleet: FleetSettings) -> battery.HealthPolicy:
    return battery.HealthPolicy(replace_below_soh_pct=fleet.replace_below_soh_pct, shift_hours=fleet.shift_hours,
                                rated_runtime_hours=fleet.rated_runtime_hours,
                                over_temperature_c=fleet.over_temperature_c, sudden_drop_pct=fleet.sudden_drop_pct)


def reattribute(db, changes, serial: str, start: str, end: str | None = None) -> None:
    """Recompute the owner of this camera's clips recorded in [start, end), except hand-resolved ones,
    and tell the stations about those an officer hold now covers (or no longer does)."""
    clips = [r[0] for r in db.execute(
        f"""UPDATE attributions SET
                officer_id = (SELECT officer_id {ACTIVE_AT.replace(':at', 'attributions.recorded_at')}),
                assignment_id = (SELECT id {ACTIVE_AT.replace(':at', 'attributions.recorded_at')})
            WHERE device_serial = :serial AND recorded_at >= :start AND (:end IS NULL OR recorded_at < :end)
              AND resolved_by IS NULL RETURNING clip_id""",
        {"serial": serial, "start": start, "end": end})]
    announce_reattributed(db, changes, clips)


class Projector:
    def __init__(self, fleet: FleetSettings, changes=None) -> None:
        self.fleet = fleet
        self.changes = changes
        """The changes feed, for the registry changes events cause (a lost camera docking)."""
        self.policy = health_policy(fleet)

    def apply(self, db, station_id: str, borough: str, events: Sequence[Applied]) -> None:
        """Apply a station's events in seq order; what the station may not claim is refused (``central.events.claims``).

        Each run of one kind is judged after the runs before it are applied: a camera first seen
        docking is registered before the checkout that names it is judged."""
        clock = claims.StationClock(stations.latest_at(db, station_id),
                                    timedelta(minutes=self.fleet.event_clock_tolerance_minutes))
        for kind, group in itertools.groupby(events, key=lambda a: type(a.event)):
            run = self._admissions[kind](self, db, station_id, borough, clock, list(group))
            handler = self._handlers[kind]
            if run and handler is not None:
                handler(self, db, station_id, borough, run)
        stations.set_latest_at(db, station_id, clock.latest)

    def _admit_dockings(self, db, station_id: str, borough: str, clock, run: list[Applied]) -> list[Applied]:
        return self._dated(db, station_id, clock, claims.admit_dockings(db, station_id, borough, run))

    def _admit_pool_events(self, db, station_id: str, borough: str, clock, run: list[Applied]) -> list[Applied]:
        tag = type(run[0].event).__struct_config__.tag
        return self._dated(db, station_id, clock, claims.admit_pool_events(
            db, station_id, borough, run, tag, self.fleet.assignment_mode))

    def _admit_ingests(self, db, station_id: str, borough: str, clock, run: list[Applied]) -> list[Applied]:
        return run  # judged by ``_ingested`` with the uploads, which it needs too (``claims.admit_ingests``)

    def _admit_verified(self, db, station_id: str, borough: str, clock, run: list[Applied]) -> list[Applied]:
        return claims.admit_verified(db, station_id, run)

    def _admit_own_dock(self, db, station_id: str, borough: str, clock, run: list[Applied]) -> list[Applied]:
        return run  # a folder of its own dock it could not read: about the station itself, and applied to nothing

    @staticmethod
    def _dated(db, station_id: str, clock: claims.StationClock, run: list[Applied]) -> list[Applied]:
        """The events of a run whose station time is believable; the others are refused."""
        accepted, refused = [], []
        for a in run:
            reason = clock.judge(a)
            if reason is None:
                accepted.append(a)
                continue
            refused.append((a.seq, a.event.__struct_config__.tag, claims.subject_of(a.event), f"clock: {reason}", a.at))
        claims.refuse(db, station_id, refused)
        return accepted

    # -- docking: telemetry, battery, lifecycle, the end of a pool checkout -----------------

    def _docked(self, db, station_id: str, borough: str, run: list[Applied]) -> None:
        now = to_iso(utc_now())
        rows, readings = [], []
        for a in run:
            e: CameraDocked = a.event
            b = e.device.battery
            # The camera's clock may be wrong; it cannot have docked after the station saw it docked.
            docked_at = min(to_iso(e.device.docked_at), a.at) if e.device.docked_at else a.at
            soh = battery.state_of_health(b.full_charge_mah, b.design_mah) if b else None
            rows.append({
                "serial": e.device.serial, "model": e.device.model, "firmware": e.device.firmware,
                "borough": borough, "station": station_id, "by": f"dock:{station_id}", "now": now,
                "docked_at": docked_at, "clips": e.clip_count,
                "telemetry": _encoder.encode(e.device).decode(), "soh": soh,
                "cycles": b.cycle_count if b else None, "temp": b.temperature_c if b else None,
                "level": b.level_pct if b else None,
                "short": int(soh is not None and battery.will_not_last_shift(soh, self.policy)),
                "hot": int(b is not None and battery.over_temperature(b.temperature_c, self.policy)),
                "drop": battery.drop_threshold(self.policy),
            })
            if b is not None:
                readings.append((e.device.serial, docked_at, station_id, soh, b.cycle_count, b.temperature_c,
                                 b.level_pct, b.full_charge_mah, b.design_mah))
        serials = list(dict.fromkeys(r["serial"] for r in rows))
        run_serials = json.dumps(serials)
        known = {serial for (serial,) in db.execute(
            "SELECT serial FROM devices WHERE serial IN (SELECT value FROM json_each(?))", [run_serials])}
        db.conn.executemany(
            """INSERT INTO devices (serial, model, firmware, lifecycle, borough, home_station, registered_by,
                   registered_at, last_docked_at, last_station, telemetry, battery_soh, battery_cycles,
                   battery_temp_c, battery_level, flag_short_shift, flag_over_temp, battery_dirty)
               VALUES (:serial, :model, :firmware, CASE WHEN :clips > 0 THEN 'in_service' ELSE 'issued' END,
                   :borough, :station, :by, :now, :docked_at, :station, :telemetry, :soh, :cycles, :temp, :level,
                   :short, :hot, 1)
               ON CONFLICT (serial) DO UPDATE SET
                   model = CASE WHEN excluded.model != '' THEN excluded.model ELSE model END,
                   firmware = CASE WHEN excluded.firmware != '' THEN excluded.firmware ELSE firmware END,
                   home_station = COALESCE(home_station, excluded.home_station),
                   borough = COALESCE(borough, excluded.borough),
                   flag_capacity_drop = CASE
                       WHEN excluded.last_docked_at < COALESCE(last_docked_at, '') THEN flag_capacity_drop
                       WHEN battery_soh - excluded.battery_soh >= :drop THEN 1
                       WHEN excluded.battery_soh - battery_soh >= :drop THEN 0  -- a new battery
                       ELSE flag_capacity_drop END,
                   telemetry = CASE WHEN excluded.last_docked_at >= COALESCE(last_docked_at, '')
                       THEN excluded.telemetry ELSE telemetry END,
                   battery_soh = CASE WHEN excluded.last_docked_at >= COALESCE(last_docked_at, '')
                       THEN COALESCE(excluded.battery_soh, battery_soh) ELSE battery_soh END,
                   battery_cycles = CASE WHEN excluded.last_docked_at >= COALESCE(last_docked_at, '')
                       THEN COALESCE(excluded.battery_cycles, battery_cycles) ELSE battery_cycles END,
                   battery_temp_c = CASE WHEN excluded.last_docked_at >= COALESCE(last_docked_at, '')
                       THEN excluded.battery_temp_c ELSE battery_temp_c END,
                   battery_level = CASE WHEN excluded.last_docked_at >= COALESCE(last_docked_at, '')
                       THEN excluded.battery_level ELSE battery_level END,
                   flag_short_shift = CASE WHEN excluded.last_docked_at >= COALESCE(last_docked_at, '')
                       THEN excluded.flag_short_shift ELSE flag_short_shift END,
                   flag_over_temp = CASE WHEN excluded.last_docked_at >= COALESCE(last_docked_at, '')
                       THEN excluded.flag_over_temp ELSE flag_over_temp END,
                   flag_stale = 0,
                   battery_dirty = 1,
                   last_station = CASE WHEN excluded.last_docked_at >= COALESCE(last_docked_at, '')
                       THEN excluded.last_station ELSE last_station END,
                   last_docked_at = MAX(COALESCE(last_docked_at, ''), excluded.last_docked_at)""",
            rows)
        if readings:
            db.conn.executemany("INSERT INTO battery_readings (serial, at, station_id, soh_pct, cycle_count, "
                                "temperature_c, level_pct, full_mah, design_mah) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                readings)
        for serial in serials:  # first seen here: registered in the station's borough
            if serial not in known:
                self._registry_change(db, station_id, serial, None, "first seen docked", now)
        # A camera that docks with clips is in service; a lost one that docks is found. (One
        # query for the run, not one per docking: most cameras are in service already.)
        with_clips = list(dict.fromkeys(r["serial"] for r in rows if r["clips"]))
        for serial, before in db.execute(
                "SELECT serial, lifecycle FROM devices WHERE serial IN (SELECT value FROM json_each(?)) "
                "AND lifecycle IN ('in_stock', 'allocated', 'issued', 'lost') ORDER BY serial",
                [json.dumps(with_clips)]).fetchall():
            db.execute("UPDATE devices SET lifecycle = 'in_service' WHERE serial = ?", [serial])
            reason = "found: docked with clips" if before == "lost" else "docked with clips"
            self._registry_change(db, station_id, serial, before, reason, now)
        # Docking ends a pool checkout made before it (at this or another station), or one whose
        # end central had from a later docking or check-in (this docking was reported late):
        # either way the camera was back by then. Only the run's cameras held at or after the
        # run's earliest docking are looked at one by one.
        held_serials = {serial for (serial,) in db.execute(
            "SELECT device_serial FROM assignments WHERE device_serial IN (SELECT value FROM json_each(?)) "
            "AND mode = 'pool' AND (ended_at IS NULL OR ended_at > ?)",
            [run_serials, min(r["docked_at"] for r in rows)])}
        for r in rows:
            if r["serial"] not in held_serials:
                continue
            closed = db.execute(
                """UPDATE assignments SET ended_at = :docked_at, ended_by = :by, end_reason = 'docked'
                   WHERE device_serial = :serial AND mode = 'pool' AND started_at < :docked_at
                     AND (ended_at IS NULL OR ended_at > :docked_at)
                   RETURNING id, officer_id""", r).fetchall()
            for assignment_id, officer_id in closed:
                audit.record(db, actor=r["by"], place=station_id, action="check-in", object_type="device",
                             object_id=r["serial"], detail=f"officer {officer_id}: docked")
                self._find_conflicts(db, assignment_id)
            if closed:
                reattribute(db, self.changes, r["serial"], r["docked_at"])

    def _registry_change(self, db, station_id: str, serial: str, from_state: str | None, reason: str,
                         now: str) -> None:
        """Record what a docking did to the registry (history and audit, as a person's change is)
        and tell the stations of the camera's borough (a found camera is usable again)."""
        model, state, borough, home, mode = db.execute(
            "SELECT model, lifecycle, borough, home_station, assignment_mode FROM devices WHERE serial = ?",
            [serial]).fetchone()
        actor = f"dock:{station_id}"
        db.execute("INSERT INTO device_history (serial, at, actor, place, from_state, to_state, reason) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?)", [serial, now, actor, station_id, from_state, state, reason])
        if from_state is None:
            audit.record(db, actor=actor, place=station_id, action="register", object_type="device",
                         object_id=serial, detail=f"{state}, borough {borough or '-'}: {reason}")
        else:
            audit.record(db, actor=actor, place=station_id, action="lifecycle", object_type="device",
                         object_id=serial, detail=f"{from_state} → {state}: {reason}")
        if self.changes is not None and borough:
            self.changes.emit(db, DeviceEntry(serial=serial, model=model, lifecycle=state, borough=borough,
                                              home_station=home, assignment_mode=mode), borough)

    # -- clips: attribution to the officer holding the camera at recorded_at -------------------

    def _ingested(self, db, station_id: str, borough: str, run: list[Applied]) -> None:
        run, upload_verified = claims.admit_ingests(db, station_id, borough, run)
        rows = [{"clip": a.event.clip_id, "serial": a.event.device_serial, "at": to_iso(a.event.recorded_at),
                 "station": station_id} for a in run]
        db.conn.executemany(
            f"""INSERT INTO attributions (clip_id, device_serial, recorded_at, station_id, officer_id, assignment_id)
                VALUES (:clip, :serial, :at, :station, (SELECT officer_id {ACTIVE_AT}), (SELECT id {ACTIVE_AT}))
                ON CONFLICT (clip_id) DO NOTHING""", rows)
        db.conn.executemany("UPDATE devices SET last_clip_at = MAX(COALESCE(last_clip_at, ''), :at) "
                            "WHERE serial = :serial", rows)
        # Chain of custody, first link, once the verified upload agrees (the others wait for it).
        if upload_verified:
            audit.record_many(db, [claims.ingest_record(station_id, a.event.clip_id, a.event.device_serial, a.event.size,
                                                        a.event.sha256, a.at) for a in upload_verified])
        # An officer hold placed before these clips reached central covers them already.
        if self.changes is not None:
            announce_holds(db, self.changes, [r["clip"] for r in rows], held_only=True)

    def _verified(self, db, station_id: str, borough: str, run: list[Applied]) -> None:
        db.conn.executemany(
            """UPDATE devices SET last_upload_at = MAX(COALESCE(last_upload_at, ''), :at)
               WHERE serial = (SELECT device_serial FROM attributions WHERE clip_id = :clip)""",
            [{"at": a.at, "clip": a.event.clip_id} for a in run])

    # -- pool checkouts: intervals of station time; conflicts listed, never dropped ------------

    def _checked_out(self, db, station_id: str, borough: str, run: list[Applied]) -> None:
        for a in run:
            e: CheckedOut = a.event
            actor = f"{e.by or 'desk'}@{station_id}"
            assignment_id = db.execute(
                "INSERT INTO assignments (device_serial, officer_id, mode, started_at, station_id, started_by) "
                "VALUES (?, ?, 'pool', ?, ?, ?)", [e.device_serial, e.officer_id, a.at, station_id, actor]).lastrowid
            audit.record(db, actor=actor, place=station_id, action="check-out", object_type="device",
                         object_id=e.device_serial,
                         detail=f"officer {e.officer_id}, battery {e.battery_pct}%, station time {a.at}")
            # Reported late (the station was offline)? A docking central already knows ended it.
            docked = db.execute("SELECT MIN(at) FROM battery_readings WHERE serial = ? AND at > ?",
                                [e.device_serial, a.at]).fetchone()[0]
            if docked is not None:
                db.execute("UPDATE assignments SET ended_at = ?, ended_by = 'dock', end_reason = 'docked' "
                           "WHERE id = ?", [docked, assignment_id])
            self._find_conflicts(db, assignment_id)
            reattribute(db, self.changes, e.device_serial, a.at)

    def _checked_in(self, db, station_id: str, borough: str, run: list[Applied]) -> None:
        for a in run:
            e: CheckedIn = a.event
            actor = f"{e.by or 'desk'}@{station_id}"
            closed = [(assignment_id, None) for (assignment_id,) in db.execute(
                """UPDATE assignments SET ended_at = ?, ended_by = ?, end_reason = ?
                   WHERE device_serial = ? AND officer_id = ? AND mode = 'pool' AND ended_at IS NULL
                     AND started_at <= ?
                   RETURNING id""", [a.at, actor, e.reason, e.device_serial, e.officer_id, a.at])]
            if not closed:
                # Reported late: a docking or check-in seen first closed it, but later than this
                # check-in. The camera was back at the earliest of them.
                closed = db.execute(
                    """SELECT id, ended_at FROM assignments WHERE device_serial = ? AND officer_id = ?
                         AND mode = 'pool' AND started_at <= ? AND ended_at > ?
                       ORDER BY started_at DESC, id DESC LIMIT 1""",
                    [e.device_serial, e.officer_id, a.at, a.at]).fetchall()
                for assignment_id, _ in closed:
                    db.execute("UPDATE assignments SET ended_at = ?, ended_by = ?, end_reason = ? WHERE id = ?",
                               [a.at, actor, e.reason, assignment_id])
            for assignment_id, docked_end in closed:  # none: closed at or before this time already
                late = f" (reported after a docking at {docked_end} had closed it)" if docked_end else ""
                audit.record(db, actor=actor, place=station_id, action="check-in", object_type="device",
                             object_id=e.device_serial, detail=f"officer {e.officer_id}: {e.reason}{late}")
                self._find_conflicts(db, assignment_id)
                reattribute(db, self.changes, e.device_serial, a.at, docked_end)

    def _find_conflicts(self, db, assignment_id: int) -> None:
        """List overlaps with this assignment: one officer with two cameras, one camera with two officers;
        withdraw listed ones it no longer overlaps (its interval shrank).

        Judged on intervals of station time, [start, end), an open one reaching to the end of
        time (nothing says it ended), and described the same way whichever of the pair was
        reported first: the same facts give the same list, whatever order stations report in.
        Resolved conflicts stay as they were resolved.
        """
        device, officer, start, end = db.execute(
            "SELECT device_serial, officer_id, started_at, ended_at FROM assignments WHERE id = ?",
            [assignment_id]).fetchone()
        overlapping = {r[0]: r for r in db.execute(
            f"""SELECT {_PAIR_COLUMNS} FROM assignments a
                WHERE id != :id AND (officer_id = :officer OR device_serial = :device)
                  AND NOT (officer_id = :officer AND device_serial = :device)
                  AND (:end IS NULL OR started_at < :end) AND (ended_at IS NULL OR ended_at > :start)""",
            {"id": assignment_id, "officer": officer, "device": device, "start": start, "end": end})}
        for conflict_id, a, b in db.execute(
                "SELECT id, assignment_a, assignment_b FROM conflicts WHERE resolved_at IS NULL "
                "AND (assignment_a = :id OR assignment_b = :id)", {"id": assignment_id}).fetchall():
            if (b if a == assignment_id else a) not in overlapping:
                db.execute("DELETE FROM conflicts WHERE id = ?", [conflict_id])
        if not overlapping:
            return
        this = db.execute(f"SELECT {_PAIR_COLUMNS} FROM assignments a WHERE id = ?", [assignment_id]).fetchone()
        for other in overlapping.values():
            # The earlier of the pair first (by station time, then place, camera, officer), not the later reported.
            first, second = sorted((this, other), key=lambda r: (r[3], r[4] or "", r[1], r[2], r[0]))
            if first[2] == second[2]:
                kind, serial, officer_id, detail = "officer_two_cameras", first[1], first[2], (
                    f"officer {first[2]} held {first[1]} (from {first[4] or 'personal issue'}, {first[3]}) and "
                    f"{second[1]} (from {second[4] or 'personal issue'}, {second[3]}) at once")
            else:
                kind, serial, officer_id, detail = "camera_two_officers", first[1], first[2], (
                    f"{first[1]} was held by {first[2]} (from {first[4] or 'personal issue'}, {first[3]}) and by "
                    f"{second[2]} (from {second[4] or 'personal issue'}, {second[3]}) at once")
            db.execute("INSERT INTO conflicts (kind, borough, device_serial, officer_id, detail, detected_at, "
                       "assignment_a, assignment_b) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                       [kind, first[5] or second[5], serial, officer_id, detail, to_iso(utc_now()),
                        min(this[0], other[0]), max(this[0], other[0])])

    _handlers = {
        CameraDocked: _docked, ClipIngested: _ingested, ClipVerified: _verified,
        CheckedOut: _checked_out, CheckedIn: _checked_in, BadFolder: None,
    }
    _admissions = {
        CameraDocked: _admit_dockings, ClipIngested: _admit_ingests, ClipVerified: _admit_verified,
        CheckedOut: _admit_pool_events, CheckedIn: _admit_pool_events, BadFolder: _admit_own_dock,
    }
    """What a station may claim, by event kind (``central.events.claims``): a kind with no rule here is
    never applied (``tests/central/events/test_claims.py`` fails for one)."""

