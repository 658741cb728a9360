"""Devices: the registry of every camera, its lifecycle, where it is, who holds it, its battery.

Telemetry fields are kept up to date by station events (central.events.projection); registry
fields (lifecycle, borough, home station, assignment mode) by people, validated by
``central.registry.lifecycle`` and recorded in the device's history and the audit trail. Registry
changes go down the changes feed to the stations of the borough concerned.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Response, get, post
from litestar.params import FromQuery, JSONBody, PathParameter, QueryParameter

from central.access.auth import Caller, station_or_user_with, user_with
from central.access.scope import FORCE_WIDE, LISTS, Scoped, in_path, touches
from central.core.csvhttp import CSV, IMPORT_ERRORS, csv_body, csv_response
from central.core.database import Database, Dialect
from central.core.openapi import errors
from central.core.providers import Injected
from central.evidence import audit
from central.evidence.audit import AuditRecord
from central.firmware import deployments, settings_history
from central.registry import lifecycle
from central.registry.models import ModelName
from fleet import csvio
from fleet.clock import from_iso, to_iso, utc_now
from fleet.errors import BadRequest, NotFound
from fleet.events import AssignmentMode, DeviceEntry
from fleet.protocol import BoroughName, Serial

DeviceFlag = Literal["short_shift", "over_temp", "capacity_drop", "stale", "replace_soon", "lost"]
REPLACE_SOON_DAYS = 90
SerialPath = Annotated[str, PathParameter(min_length=1, max_length=64, description="the camera's serial")]


class DeviceSummary(msgspec.Struct, kw_only=True):
    serial: str
    model: str
    firmware: str
    lifecycle: str
    borough: str | None
    home_station: str | None
    assignment_mode: str | None
    holder: str | None = None
    """The officer holding it now (personal issue or pool checkout)."""
    holder_mode: str | None = None
    last_docked_at: datetime | None = None
    last_station: str | None = None
    last_upload_at: datetime | None = None
    battery_soh_pct: float | None = None
    battery_level_pct: float | None = None
    battery_temp_c: float | None = None
    battery_cycles: int | None = None
    replace_by: datetime | None = None
    flags: list[str] = []


class DevicePage(msgspec.Struct, kw_only=True):
    items: list[DeviceSummary]
    next_cursor: str | None = None
    total: int | None = None


class AssignmentInfo(msgspec.Struct, kw_only=True):
    id: int
    device_serial: str
    officer_id: str
    mode: str
    started_at: datetime
    ended_at: datetime | None
    station_id: str | None
    started_by: str
    ended_by: str | None
    end_reason: str | None


class LifecycleChange(msgspec.Struct, kw_only=True):
    at: datetime
    actor: str
    place: str | None
    from_state: str | None
    to_state: str
    reason: str


class BatteryPoint(msgspec.Struct, kw_only=True):
    at: datetime
    soh_pct: float | None
    cycle_count: int | None
    temperature_c: float | None
    level_pct: float | None
    station_id: str | None


class FirmwareSeen(msgspec.Struct, kw_only=True):
    """A firmware version a camera reported at a docking, when central first heard it there."""

    at: datetime
    firmware: str
    station_id: str | None


class DeviceDetail(msgspec.Struct, kw_only=True):
    device: DeviceSummary
    telemetry: dict[str, Any] | None
    assignments: list[AssignmentInfo]
    lifecycle_history: list[LifecycleChange]
    battery: list[BatteryPoint]
    audit: list[AuditRecord]
    firmware_history: list[FirmwareSeen] = []
    """The firmware versions it reported over time, oldest first (a row each time it changed)."""


class DeviceRegistration(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    serial: Serial
    model: ModelName = ""
    borough: BoroughName | None = None
    home_station: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    assignment_mode: AssignmentMode | None = None


class RegistrationResult(msgspec.Struct, kw_only=True):
    created: list[str]
    already_registered: list[str]


class LifecycleRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    state: lifecycle.Lifecycle
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    borough: BoroughName | None = None
    home_station: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None


def summary_sql(dialect: Dialect) -> str:
    """One row per camera; its holder is its latest open assignment (two open ones are a conflict, listed)."""
    return f"""
    SELECT d.serial, d.model, d.firmware, d.lifecycle, d.borough, d.home_station, d.assignment_mode,
           a.officer_id, a.mode, d.last_docked_at, d.last_station, d.last_upload_at, d.battery_soh, d.battery_level,
           d.battery_temp_c, d.battery_cycles, d.replace_by, d.flag_short_shift, d.flag_over_temp,
           d.flag_capacity_drop, d.flag_stale
    FROM devices d
    LEFT JOIN assignments a ON a.id = (SELECT id FROM assignments {dialect.indexed_by("assignments_open")}
                                       WHERE device_serial = d.serial AND ended_at IS NULL
                                       ORDER BY started_at DESC LIMIT 1)
"""


def _summary(r, now: datetime) -> DeviceSummary:
    replace_by = from_iso(r[16]) if r[16] else None
    flags = [
        name
        for name, on in (("short_shift", r[17]), ("over_temp", r[18]), ("capacity_drop", r[19]), ("stale", r[20]))
        if on
    ]
    if replace_by is not None and (replace_by - now).days <= REPLACE_SOON_DAYS:
        flags.append("replace_soon")
    if r[3] == "lost":
        flags.append("lost")
    return DeviceSummary(
        serial=r[0],
        model=r[1],
        firmware=r[2],
        lifecycle=r[3],
        borough=r[4],
        home_station=r[5],
        assignment_mode=r[6],
        holder=r[7],
        holder_mode=r[8],
        last_docked_at=from_iso(r[9]) if r[9] else None,
        last_station=r[10],
        last_upload_at=from_iso(r[11]) if r[11] else None,
        battery_soh_pct=r[12],
        battery_level_pct=r[13],
        battery_temp_c=r[14],
        battery_cycles=r[15],
        replace_by=replace_by,
        flags=flags,
    )


FLAG_SQL: dict[str, Callable[[Dialect], str]] = {
    "short_shift": lambda dialect: dialect.flag_set("d.flag_short_shift"),
    "over_temp": lambda dialect: dialect.flag_set("d.flag_over_temp"),
    "capacity_drop": lambda dialect: dialect.flag_set("d.flag_capacity_drop"),
    "stale": lambda dialect: dialect.flag_set("d.flag_stale"),
    "lost": lambda dialect: "d.lifecycle = 'lost'",
    "replace_soon": lambda dialect: "d.replace_by IS NOT NULL AND d.replace_by <= :replace_soon",
}
"""Each alert flag as a condition on ``devices d``, in the connection's dialect."""


MONTH = r"^[0-9]{4}-(0[1-9]|1[0-2])$"
"""A calendar month, as a browser's month field sends it (2026-12); ASCII digits only (``\\d`` takes
any script's)."""
ReplaceBy = Annotated[
    str | None,
    QueryParameter(
        pattern=MONTH,
        description="only cameras due for replacement by the end of this month (YYYY-MM), those overdue included",
    ),
]


def month_after(month: str) -> datetime:
    """The first moment (UTC) after the month ``YYYY-MM``: what is due by its end is due before this."""
    if not re.fullmatch(MONTH, month):
        raise BadRequest(f"replace by: {month!r} is not a month (YYYY-MM)")
    year, number = int(month[:4]), int(month[5:])
    if not 1 <= year < 9999:  # no year 0, and the month after December 9999 is past what a date holds
        raise BadRequest(f"replace by: {month!r} is not a month (YYYY-MM) of the years 0001 to 9998")
    return datetime(year + number // 12, number % 12 + 1, 1, tzinfo=UTC)


def _flag_params(now: datetime) -> dict[str, Any]:
    return {"replace_soon": to_iso(now + timedelta(days=REPLACE_SOON_DAYS))}


def registered_to(db, serials: Iterable[str]) -> dict[str, str]:
    """{serial: borough} of these cameras that are registered to a borough."""
    return dict(
        db.execute(
            f"SELECT serial, borough FROM devices WHERE {db.dialect.any_of('serial')} AND borough IS NOT NULL",
            [db.dialect.many(dict.fromkeys(serials))],
        ).fetchall()
    )


def record_upload(db, serial: str, at: str, *, station: bool, borough: str | None) -> None:
    """Central verified a clip of this camera at ``at`` (its own clock): the camera's last upload,
    never moved back (a station's report of the same upload may arrive before or after). A
    station's upload (of ``borough``) moves only a camera of its borough or of none: its clip of
    another borough's camera is kept, but says nothing about that borough's fleet, as its
    ``clip_ingested`` claim would be refused."""
    latest = db.dialect.greatest("COALESCE(last_upload_at, '')", "?")
    db.execute(
        f"UPDATE devices SET last_upload_at = {latest} WHERE serial = ? AND (? = 0 OR borough IS NULL OR borough = ?)",
        [at, serial, int(station), borough],
    )


def record_uploads(db, uploads: Sequence[dict]) -> None:
    """Stations report clips uploaded ({clip, at}, station clock): each one's camera (as attributed)
    was last uploaded from at ``at`` or later; never moved back (``record_upload`` has central's
    own time already, and the same report may arrive twice). One statement for a run: each
    camera's latest of it."""
    if not uploads:
        return
    latest = db.dialect.greatest("COALESCE(last_upload_at, '')", "u.at")
    db.execute(
        f"""UPDATE devices SET last_upload_at = {latest}
           FROM (SELECT a.device_serial AS serial, MAX(v.at) AS at
                 FROM {db.dialect.rows_of("clip TEXT, at TEXT")} JOIN attributions a ON a.clip_id = v.clip
                 GROUP BY a.device_serial) AS u
           WHERE devices.serial = u.serial""",
        [db.dialect.rows(uploads)],
    )


def entries_of_borough(db, borough: str) -> list[DeviceEntry]:
    """A borough's cameras, as its stations mirror them."""
    return [
        DeviceEntry(serial=r[0], model=r[1], lifecycle=r[2], borough=r[3], home_station=r[4], assignment_mode=r[5])
        for r in db.execute(
            "SELECT serial, model, lifecycle, borough, home_station, assignment_mode FROM devices "
            "WHERE borough = ? ORDER BY serial",
            [borough],
        )
    ]


class DeviceService:
    def __init__(self, writer: Database, changes) -> None:
        self.writer = writer
        self.changes = changes

    def page(
        self,
        *,
        borough: str | None = None,
        lifecycle_state: str | None = None,
        flag: str | None = None,
        station: str | None = None,
        q: str | None = None,
        replace_by: str | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> DevicePage:
        now = utc_now()
        sql, params = self._filtered(now, borough, lifecycle_state, flag, station, q, replace_by, after)
        with self.writer.read() as db:
            rows = db.execute(sql + " ORDER BY d.serial LIMIT :limit", {**params, "limit": limit + 1}).fetchall()
        more = len(rows) > limit
        items = [_summary(r, now) for r in rows[:limit]]
        return DevicePage(items=items, next_cursor=items[-1].serial if more else None)

    def matching(
        self,
        *,
        borough: str | None = None,
        lifecycle_state: str | None = None,
        flag: str | None = None,
        station: str | None = None,
        q: str | None = None,
        replace_by: str | None = None,
    ) -> list[DeviceSummary]:
        """Every camera the filters of ``page`` match, by serial (an export of what the page lists)."""
        now = utc_now()
        sql, params = self._filtered(now, borough, lifecycle_state, flag, station, q, replace_by, None)
        with self.writer.read() as db:
            return [_summary(r, now) for r in db.execute(sql + " ORDER BY d.serial", params)]

    def _filtered(
        self,
        now: datetime,
        borough: str | None,
        lifecycle_state: str | None,
        flag: str | None,
        station: str | None,
        q: str | None,
        replace_by: str | None,
        after: str | None,
    ) -> tuple[str, dict[str, Any]]:
        where, params = [], _flag_params(now)
        for column, value in (("d.borough", borough), ("d.lifecycle", lifecycle_state), ("d.last_station", station)):
            if value is not None:
                where.append(f"{column} = :{column[2:]}")
                params[column[2:]] = value
        if flag is not None:
            where.append(FLAG_SQL[flag](self.writer.dialect))
        if q:  # either case, as SQLite's LIKE matches (PostgreSQL's is case-sensitive)
            where.append("(lower(d.serial) LIKE lower(:q) OR lower(a.officer_id) LIKE lower(:q))")
            params["q"] = f"%{q}%"
        if replace_by:
            where.append("d.replace_by IS NOT NULL AND d.replace_by < :replace_before")
            params["replace_before"] = to_iso(month_after(replace_by))
        if after:
            where.append("d.serial > :after")
            params["after"] = after
        return summary_sql(self.writer.dialect) + (" WHERE " + " AND ".join(where) if where else ""), params

    def flag_counts(self, borough: str | None = None) -> dict[str, int]:
        """How many cameras each alert flag marks now (the overview's alert cards), of one borough or all."""
        params = {**_flag_params(utc_now()), "borough": borough}
        only = " AND d.borough = :borough" if borough is not None else ""
        with self.writer.read() as db:
            return {
                flag: db.execute(f"SELECT count(*) FROM devices d WHERE {sql(db.dialect)}{only}", params).fetchone()[0]
                for flag, sql in FLAG_SQL.items()
            }

    def all(self, borough: str | None = None) -> list[DeviceSummary]:
        now = utc_now()
        sql = summary_sql(self.writer.dialect) + (" WHERE d.borough = ?" if borough else "") + " ORDER BY d.serial"
        with self.writer.read() as db:
            return [_summary(r, now) for r in db.execute(sql, [borough] if borough else [])]

    def summary(self, serial: str) -> DeviceSummary:
        with self.writer.read() as db:
            row = db.execute(summary_sql(db.dialect) + " WHERE d.serial = ?", [serial]).fetchone()
        if row is None:
            raise NotFound(f"no camera {serial} in the registry")
        return _summary(row, utc_now())

    def detail(self, serial: str) -> DeviceDetail:
        device = self.summary(serial)
        with self.writer.read() as db:
            telemetry = db.execute("SELECT telemetry FROM devices WHERE serial = ?", [serial]).fetchone()[0]
            assignments = [
                _assignment(r)
                for r in db.execute(
                    f"SELECT {ASSIGNMENT_COLUMNS} FROM assignments WHERE device_serial = ? "
                    "ORDER BY started_at DESC, id DESC LIMIT 200",
                    [serial],
                )
            ]
            history = [
                LifecycleChange(at=from_iso(r[0]), actor=r[1], place=r[2], from_state=r[3], to_state=r[4], reason=r[5])
                for r in db.execute(
                    "SELECT at, actor, place, from_state, to_state, reason FROM device_history WHERE serial = ? "
                    "ORDER BY id DESC LIMIT 200",
                    [serial],
                )
            ]
            readings = [
                BatteryPoint(
                    at=from_iso(r[0]),
                    soh_pct=r[1],
                    cycle_count=r[2],
                    temperature_c=r[3],
                    level_pct=r[4],
                    station_id=r[5],
                )
                for r in db.execute(
                    "SELECT at, soh_pct, cycle_count, temperature_c, level_pct, station_id FROM battery_readings "
                    "WHERE serial = ? ORDER BY at DESC LIMIT 365",
                    [serial],
                )
            ]
            trail = audit.records_for(db, "device", serial)
            firmware = [
                FirmwareSeen(at=from_iso(r[0]), firmware=r[1], station_id=r[2])
                for r in db.execute(
                    "SELECT at, firmware, station_id FROM firmware_seen WHERE serial = ? ORDER BY at DESC LIMIT 200",
                    [serial],
                )
            ]
        return DeviceDetail(
            device=device,
            telemetry=json.loads(telemetry) if telemetry else None,
            assignments=assignments,
            lifecycle_history=history,
            battery=readings[::-1],
            audit=trail,
            firmware_history=_changes(firmware[::-1]),
        )

    def register(self, devices: list[DeviceRegistration], actor: str) -> RegistrationResult:
        now = to_iso(utc_now())
        existing: list[str] = []
        # In bulk (a delivery is thousands of cameras): which are known, then one statement each.
        with self.writer.write() as db:
            known = {
                r[0]
                for r in db.execute(
                    f"SELECT serial FROM devices WHERE {db.dialect.any_of('serial')}",
                    [db.dialect.many(d.serial for d in devices)],
                )
            }
            new: dict[str, DeviceRegistration] = {}
            for d in devices:
                if d.serial in known or d.serial in new:
                    existing.append(d.serial)
                else:
                    new[d.serial] = d
            created = list(new)
            state_of = {serial: "allocated" if d.borough else "in_stock" for serial, d in new.items()}
            db.executemany(
                """INSERT INTO devices (serial, model, lifecycle, borough, home_station, assignment_mode,
                       registered_by, registered_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                [
                    (d.serial, d.model, state_of[d.serial], d.borough, d.home_station, d.assignment_mode, actor, now)
                    for d in new.values()
                ],
            )
            db.executemany(
                "INSERT INTO device_history (serial, at, actor, place, from_state, to_state, reason) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(serial, now, actor, "central", None, state_of[serial], "registered") for serial in new],
            )
            settings_history.observe(db, new, "registered", actor, now)
            audit.record_many(
                db,
                [
                    dict(
                        actor=actor,
                        action="register",
                        object_type="device",
                        object_id=d.serial,
                        detail=f"{state_of[d.serial]}, borough {d.borough or '-'}",
                    )
                    for d in new.values()
                ],
            )
            self.changes.emit_many(
                db,
                [
                    (
                        DeviceEntry(
                            serial=d.serial,
                            model=d.model,
                            lifecycle=state_of[d.serial],
                            borough=d.borough,
                            home_station=d.home_station,
                            assignment_mode=d.assignment_mode,
                        ),
                        (d.borough,),
                    )
                    for d in new.values()
                    if d.borough
                ],
            )
        return RegistrationResult(created=created, already_registered=existing)

    def change_lifecycle(self, serial: str, request: LifecycleRequest, actor: str) -> DeviceSummary:
        with self.writer.write() as db:
            row = db.execute(
                "SELECT lifecycle, borough, home_station, model, assignment_mode FROM devices WHERE serial = ?",
                [serial],
            ).fetchone()
            if row is None:
                raise NotFound(f"no camera {serial} in the registry")
            current, borough, home, model, mode = row
            target_borough = request.borough or borough
            holder = db.execute(
                "SELECT officer_id, mode FROM assignments WHERE device_serial = ? AND ended_at IS NULL", [serial]
            ).fetchone()
            lifecycle.check_transition(
                current, request.state, borough=target_borough, has_open_assignment=holder is not None
            )
            if request.state == "in_stock":
                target_borough, home_station = None, None
            else:
                home_station = request.home_station or home
            now = utc_now()
            db.execute(
                "UPDATE devices SET lifecycle = ?, borough = ?, home_station = ? WHERE serial = ?",
                [request.state, target_borough, home_station, serial],
            )
            db.execute(
                "INSERT INTO device_history (serial, at, actor, place, from_state, to_state, reason) "
                "VALUES (?, ?, ?, 'central', ?, ?, ?)",
                [serial, to_iso(now), actor, current, request.state, request.reason],
            )
            if request.state == "lost" and holder is not None:
                audit.record(
                    db,
                    actor=actor,
                    action="lost-while-held",
                    object_type="device",
                    object_id=serial,
                    detail=f"held by {holder[0]} ({holder[1]})",
                )
            audit.record(
                db,
                actor=actor,
                action="lifecycle",
                object_type="device",
                object_id=serial,
                detail=f"{current} → {request.state}: {request.reason}",
            )
            entry = DeviceEntry(
                serial=serial,
                model=model,
                lifecycle=request.state,
                borough=target_borough,
                home_station=home_station,
                assignment_mode=mode,
            )
            self.changes.emit(db, entry, borough, target_borough)
            # Retired, lost or in repair: out of its deployments now, not when their rules next run.
            deployments.camera_left(db, self.changes, serial, request.state, actor)
            if target_borough != borough:
                settings_history.observe(
                    db, [serial], f"moved to borough {target_borough or '(stores)'}", actor, to_iso(now)
                )
        return self.summary(serial)


def _changes(seen: list[FirmwareSeen]) -> list[FirmwareSeen]:
    """Each version from when it was first reported: a docking reported late (by the camera's time)
    may repeat the version before it, which changed nothing."""
    kept: list[FirmwareSeen] = []
    for s in seen:
        if not kept or kept[-1].firmware != s.firmware:
            kept.append(s)
    return kept


ASSIGNMENT_COLUMNS = (
    "id, device_serial, officer_id, mode, started_at, ended_at, station_id, started_by, ended_by, end_reason"
)


def _assignment(r) -> AssignmentInfo:
    return AssignmentInfo(
        id=r[0],
        device_serial=r[1],
        officer_id=r[2],
        mode=r[3],
        started_at=from_iso(r[4]),
        ended_at=from_iso(r[5]) if r[5] else None,
        station_id=r[6],
        started_by=r[7],
        ended_by=r[8],
        end_reason=r[9],
    )


class DeviceController(Controller):
    path = "/api/v1/devices"
    tags = ["devices"]

    @get(
        "/",
        summary="Cameras, by serial, filtered; keyset-paginated",
        guards=[station_or_user_with("viewer")],
        scope=LISTS,
        sync_to_thread=True,
    )
    def list_devices(
        self,
        within: Scoped,
        devices: Injected[DeviceService],
        borough: FromQuery[str | None] = None,
        lifecycle_state: Annotated[lifecycle.Lifecycle | None, QueryParameter(name="lifecycle")] = None,
        flag: FromQuery[DeviceFlag | None] = None,
        station: Annotated[str | None, QueryParameter(description="where it last docked")] = None,
        q: Annotated[str | None, QueryParameter(max_length=64, description="serial or holder contains")] = None,
        replace_by: ReplaceBy = None,
        cursor: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> DevicePage:
        return devices.page(
            borough=within.narrow(borough),
            lifecycle_state=lifecycle_state,
            flag=flag,
            station=station,
            q=q,
            replace_by=replace_by,
            after=cursor,
            limit=limit,
        )

    @get(
        "/export.csv",
        summary="The cameras the list's filters match (every camera without one) as CSV, for spreadsheets",
        media_type=CSV,
        guards=[station_or_user_with("viewer")],
        scope=LISTS,
        sync_to_thread=True,
    )
    def export_csv(
        self,
        within: Scoped,
        devices: Injected[DeviceService],
        borough: FromQuery[str | None] = None,
        lifecycle_state: Annotated[lifecycle.Lifecycle | None, QueryParameter(name="lifecycle")] = None,
        flag: FromQuery[DeviceFlag | None] = None,
        station: Annotated[str | None, QueryParameter(description="where it last docked")] = None,
        q: Annotated[str | None, QueryParameter(max_length=64, description="serial or holder contains")] = None,
        replace_by: ReplaceBy = None,
    ) -> Response:
        found = devices.matching(
            borough=within.narrow(borough),
            lifecycle_state=lifecycle_state,
            flag=flag,
            station=station,
            q=q,
            replace_by=replace_by,
        )
        return csv_response(found, DeviceSummary, "devices.csv")

    @post(
        "/import.csv",
        status_code=201,
        summary="Register cameras from CSV (serial, model, borough, home_station, "
        "assignment_mode); nothing is registered unless every row is valid",
        guards=[user_with("fleet_manager")],
        responses=IMPORT_ERRORS,
        scope=FORCE_WIDE,
        dependencies=csv_body("cameras"),
        sync_to_thread=True,
    )
    def import_csv(self, principal: Caller, csv: Injected[str], devices: Injected[DeviceService]) -> RegistrationResult:
        return devices.register(csvio.read_csv(csv, kind=DeviceRegistration, max_rows=50_000), principal.name)

    @get(
        "/{serial:str}",
        summary="One camera with its assignment, lifecycle, battery and audit history",
        guards=[station_or_user_with("viewer")],
        scope=touches(in_path("device", "serial")),
        sync_to_thread=True,
    )
    def get_device(self, principal: Caller, devices: Injected[DeviceService], serial: SerialPath) -> DeviceDetail:
        return devices.detail(serial)

    @post(
        "/",
        status_code=201,
        summary="Register cameras (new ones start in stock, or allocated to a borough)",
        guards=[user_with("fleet_manager")],
        scope=FORCE_WIDE,
        sync_to_thread=True,
    )
    def register(
        self, principal: Caller, devices: Injected[DeviceService], data: JSONBody[list[DeviceRegistration]]
    ) -> RegistrationResult:
        if len(data) > 50_000:
            raise BadRequest("register at most 50,000 cameras per request")
        return devices.register(data, principal.name)

    @post(
        "/{serial:str}/lifecycle",
        status_code=200,
        summary="Move a camera through its lifecycle (validated)",
        guards=[user_with("fleet_manager")],
        responses=errors(409),
        scope=FORCE_WIDE,
        sync_to_thread=True,
    )
    def set_lifecycle(
        self, principal: Caller, devices: Injected[DeviceService], serial: SerialPath, data: JSONBody[LifecycleRequest]
    ) -> DeviceSummary:
        return devices.change_lifecycle(serial, data, principal.name)
