"""What a docking tells the registry: the camera's telemetry and battery, that it exists, that it is in use.

A camera first seen docking is registered in the station's borough (offline-first roll-out
keeps working); one that docks with clips is in service, and a lost one is found. Telemetry
is kept from the latest docking by the camera's time, whatever order dockings are reported
in. Run inside the projection's transaction (``central.events.projection``), a run of
dockings at a time (``executemany``: tens of thousands of events a second on one core).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

from central.evidence import audit
from central.firmware import settings_history
from fleet.events import DeviceEntry


class Docking(TypedDict):
    """One docking, as ``record``'s statement takes its parameters."""

    serial: str
    model: str
    firmware: str
    borough: str
    station: str
    by: str
    now: str
    docked_at: str
    clips: int
    telemetry: str
    soh: float | None
    cycles: int | None
    temp: float | None
    level: float | None
    short: int
    hot: int
    drop: float
    """The capacity-drop threshold (``battery.drop_threshold``)."""


DOCKING_COLUMNS = (
    "serial TEXT, model TEXT, firmware TEXT, borough TEXT, station TEXT, by TEXT, now TEXT, docked_at TEXT, "
    "clips BIGINT, telemetry TEXT, soh DOUBLE PRECISION, cycles BIGINT, temp DOUBLE PRECISION, "
    "level DOUBLE PRECISION, short BIGINT, hot BIGINT"
)
"""``Docking``'s fields as ``rows_of`` reads them (``drop`` is one value for the run)."""


SEEN = (
    "INSERT INTO firmware_seen (serial, at, firmware, station_id) "
    "SELECT v.serial, v.docked_at, v.firmware, v.station "
    "FROM {rows} LEFT JOIN devices d ON d.serial = v.serial "
    "WHERE v.firmware <> '' AND (d.firmware IS NULL OR d.firmware <> v.firmware) ON CONFLICT DO NOTHING"
)
"""A docking that reports another firmware than central holds for the camera (or a camera's first):
kept before the docking's upsert replaces it, so a camera's versions over time are a row each."""


def _layers(dockings: Sequence[Docking]) -> list[list[Docking]]:
    """The dockings in order, cut where a camera comes again (a run has one docking a camera,
    ``projection.in_runs``, so mostly one layer): each layer meets a camera once."""
    layers: list[list[Docking]] = [[]]
    seen: set[str] = set()
    for d in dockings:
        if d["serial"] in seen or (layers[-1] and d["drop"] != layers[-1][0]["drop"]):
            layers.append([])
            seen.clear()
        layers[-1].append(d)
        seen.add(d["serial"])
    return [layer for layer in layers if layer]


def record(db, dockings: Sequence[Docking], readings: Sequence[tuple]) -> list[str]:
    """A run of dockings and their battery readings; the cameras first seen here, in run order."""
    serials = list(dict.fromkeys(d["serial"] for d in dockings))
    known = dict(
        db.execute(
            f"SELECT serial, model = '' OR borough IS NULL FROM devices WHERE {db.dialect.any_of('serial')}",
            [db.dialect.many(serials)],
        ).fetchall()
    )
    latest = db.dialect.greatest("COALESCE(devices.last_docked_at, '')", "excluded.last_docked_at")
    upsert = f"""INSERT INTO devices (serial, model, firmware, lifecycle, borough, home_station, registered_by,
               registered_at, last_docked_at, last_station, telemetry, battery_soh, battery_cycles,
               battery_temp_c, battery_level, flag_short_shift, flag_over_temp, battery_dirty)
           SELECT v.serial, v.model, v.firmware, CASE WHEN v.clips > 0 THEN 'in_service' ELSE 'issued' END,
               v.borough, v.station, v.by, v.now, v.docked_at, v.station, v.telemetry, v.soh, v.cycles, v.temp,
               v.level, v.short, v.hot, 1
           FROM {db.dialect.rows_of(DOCKING_COLUMNS, ":dockings")} WHERE true
           ON CONFLICT (serial) DO UPDATE SET
               -- the registry's model stands once known: a station relabelling a camera would take it out
               -- of its model's withdrawal (handed out again) and its model's deployments and release keys
               model = CASE WHEN devices.model = '' THEN excluded.model ELSE devices.model END,
               firmware = CASE WHEN excluded.firmware != '' THEN excluded.firmware ELSE devices.firmware END,
               home_station = COALESCE(devices.home_station, excluded.home_station),
               borough = COALESCE(devices.borough, excluded.borough),
               flag_capacity_drop = CASE
                   WHEN excluded.last_docked_at < COALESCE(devices.last_docked_at, '') THEN devices.flag_capacity_drop
                   WHEN devices.battery_soh - excluded.battery_soh >= :drop THEN 1
                   WHEN excluded.battery_soh - devices.battery_soh >= :drop THEN 0  -- a new battery
                   ELSE devices.flag_capacity_drop END,
               telemetry = CASE WHEN excluded.last_docked_at >= COALESCE(devices.last_docked_at, '')
                   THEN excluded.telemetry ELSE devices.telemetry END,
               battery_soh = CASE WHEN excluded.last_docked_at >= COALESCE(devices.last_docked_at, '')
                   THEN COALESCE(excluded.battery_soh, devices.battery_soh) ELSE devices.battery_soh END,
               battery_cycles = CASE WHEN excluded.last_docked_at >= COALESCE(devices.last_docked_at, '')
                   THEN COALESCE(excluded.battery_cycles, devices.battery_cycles) ELSE devices.battery_cycles END,
               battery_temp_c = CASE WHEN excluded.last_docked_at >= COALESCE(devices.last_docked_at, '')
                   THEN excluded.battery_temp_c ELSE devices.battery_temp_c END,
               battery_level = CASE WHEN excluded.last_docked_at >= COALESCE(devices.last_docked_at, '')
                   THEN excluded.battery_level ELSE devices.battery_level END,
               flag_short_shift = CASE WHEN excluded.last_docked_at >= COALESCE(devices.last_docked_at, '')
                   THEN excluded.flag_short_shift ELSE devices.flag_short_shift END,
               flag_over_temp = CASE WHEN excluded.last_docked_at >= COALESCE(devices.last_docked_at, '')
                   THEN excluded.flag_over_temp ELSE devices.flag_over_temp END,
               flag_stale = 0,
               battery_dirty = 1,
               last_station = CASE WHEN excluded.last_docked_at >= COALESCE(devices.last_docked_at, '')
                   THEN excluded.last_station ELSE devices.last_station END,
               last_docked_at = {latest}"""
    for layer in _layers(dockings):  # one statement may not meet a camera twice
        db.execute(
            SEEN.format(rows=db.dialect.rows_of("serial TEXT, firmware TEXT, docked_at TEXT, station TEXT")),
            [db.dialect.rows({k: d[k] for k in ("serial", "firmware", "docked_at", "station")} for d in layer)],
        )
        db.execute(upsert, {"dockings": db.dialect.rows(layer), "drop": layer[0]["drop"]})
    if readings:
        db.executemany(
            "INSERT INTO battery_readings (serial, at, station_id, soh_pct, cycle_count, "
            "temperature_c, level_pct, full_mah, design_mah) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            readings,
        )
    first = [serial for serial in serials if serial not in known]
    if first:
        settings_history.observe(db, first, "first seen docking", "central", dockings[0]["now"])
    # A camera registered without its model or borough takes them from its first docking: its profile changes.
    if filled := [serial for serial, unknown in known.items() if unknown]:
        settings_history.observe(db, filled, "first docking", "central", dockings[0]["now"])
    return first


def put_in_service(db, serials: Sequence[str]) -> list[tuple[str, str]]:
    """These cameras docked with clips: in service now, a lost one found. (serial, state before)
    of those whose state changed (one query for a run: most cameras are in service already)."""
    changed = db.execute(
        f"SELECT serial, lifecycle FROM devices WHERE {db.dialect.any_of('serial')} "
        "AND lifecycle IN ('in_stock', 'allocated', 'issued', 'lost') ORDER BY serial",
        [db.dialect.many(serials)],
    ).fetchall()
    if changed:
        db.execute(
            f"UPDATE devices SET lifecycle = 'in_service' WHERE {db.dialect.any_of('serial')}",
            [db.dialect.many(serial for serial, _ in changed)],
        )
    return changed


Change = tuple[str, str | None, str, str]
"""(serial, state before or None for a camera first seen, reason, station docked at) of what a
docking did to a camera."""


def record_changes(db, changes, done: Sequence[Change], now: str) -> None:
    """Record what a run of dockings did to the registry (history and audit, as a person's change
    is) and tell the stations of each camera's borough (a found camera is usable again): a few
    statements for the whole run, the records in the order of ``done``."""
    if not done:
        return
    rows = {
        r[0]: r[1:]
        for r in db.execute(
            "SELECT serial, model, lifecycle, borough, home_station, assignment_mode FROM devices "
            f"WHERE {db.dialect.any_of('serial')}",
            [db.dialect.many(dict.fromkeys(serial for serial, _, _, _ in done))],
        )
    }
    db.executemany(
        "INSERT INTO device_history (serial, at, actor, place, from_state, to_state, reason) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (serial, now, f"dock:{station}", station, before, rows[serial][1], reason)
            for serial, before, reason, station in done
        ],
    )
    audit.record_many(
        db,
        [
            dict(
                actor=f"dock:{station}",
                place=station,
                action="register" if before is None else "lifecycle",
                object_type="device",
                object_id=serial,
                detail=f"{rows[serial][1]}, borough {rows[serial][2] or '-'}: {reason}"
                if before is None
                else f"{before} → {rows[serial][1]}: {reason}",
            )
            for serial, before, reason, station in done
        ],
    )
    changes.emit_many(
        db,
        [
            (
                DeviceEntry(
                    serial=serial,
                    model=model,
                    lifecycle=state,
                    borough=borough,
                    home_station=home,
                    assignment_mode=mode,
                ),
                (borough,),
            )
            for serial, _, _, _ in done
            for model, state, borough, home, mode in [rows[serial]]
            if borough
        ],
    )
