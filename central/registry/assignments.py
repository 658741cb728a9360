"""Assignments: personal issue by a supervisor or planner; pool checkouts arrive as station events.

Also what only central can see after offline periods: conflicts (one officer with two
cameras, one camera with two officers) listed for a supervisor, and clips with no holder
("unattributed") that a supervisor attributes by hand. Every change is audited.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Protocol

import msgspec
from litestar import Controller, Response, get, post
from litestar.params import FromQuery, JSONBody, PathParameter, QueryParameter

from central.access.auth import Caller, station_or_user_with, user_with
from central.access.scope import LISTS, Scoped, in_json, in_path, touches
from central.core.csvhttp import CSV, csv_response
from central.core.database import Database
from central.core.openapi import errors
from central.core.pagination import CURSOR_HELP, cursor_id, decode_cursor, decode_time_cursor, page_response
from central.core.providers import Injected
from central.evidence import audit, clip_records
from central.evidence.holds import announce_reattributed
from central.firmware import settings_history
from central.registry import attribution
from central.registry.devices import ASSIGNMENT_COLUMNS, AssignmentInfo, _assignment
from central.registry.models import refuse_if_withdrawn
from fleet.clock import from_iso, to_iso, utc_now
from fleet.config import CentralSettings
from fleet.errors import Conflict, NotFound
from fleet.events import OfficerId, PersonalIssue
from fleet.protocol import Serial

UNISSUABLE = ("repair", "lost", "retired")


def open_conflicts_count(db, borough: str | None = None) -> int:
    """Assignment conflicts not yet resolved, of one borough or all. Inside the caller's read."""
    return db.execute(
        "SELECT count(*) FROM conflicts WHERE resolved_at IS NULL"
        + (" AND borough = ?" if borough is not None else ""),
        [borough] if borough is not None else [],
    ).fetchone()[0]


class IssueRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    device_serial: Serial
    officer_id: OfficerId
    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""


class EndRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class ConflictInfo(msgspec.Struct, kw_only=True):
    id: int
    kind: str
    borough: str | None
    device_serial: str | None
    officer_id: str | None
    detail: str
    detected_at: datetime
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    resolution: str | None = None


class ResolveRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    resolution: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class Attribution(msgspec.Struct, kw_only=True):
    clip_id: str
    device_serial: str
    recorded_at: datetime
    station_id: str | None
    officer_id: str | None
    resolved_by: str | None = None


class AttributeRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    officer_id: OfficerId
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class Allocation(Protocol):
    """A camera handed out in bulk (a roll-out proposal's item); read, never written."""

    @property
    def device_serial(self) -> str: ...
    @property
    def borough(self) -> str: ...
    @property
    def mode(self) -> str:
        """Personal: issued to ``officer_id``; pool: allocated to ``station_id``."""
        ...

    @property
    def officer_id(self) -> str | None: ...
    @property
    def station_id(self) -> str | None: ...


def allocate(db, items: Sequence[Allocation], actor: str, now: str, why: str) -> dict[str, str]:
    """Hand out many cameras at once (checked by the caller): personal issues open their
    assignments, pool cameras join their station's pool; each change of state goes in the
    camera's history, ``why`` first. {serial: model} of the cameras handed out."""
    serials = db.dialect.many(i.device_serial for i in items)
    models = dict(
        db.execute(f"SELECT serial, model FROM devices WHERE {db.dialect.any_of('serial')}", [serials]).fetchall()
    )
    previous = dict(
        db.execute(f"SELECT serial, lifecycle FROM devices WHERE {db.dialect.any_of('serial')}", [serials]).fetchall()
    )
    personal = [i for i in items if i.mode == "personal"]
    pool = [i for i in items if i.mode == "pool"]
    db.executemany(
        "INSERT INTO assignments (device_serial, officer_id, mode, started_at, started_by) "
        "VALUES (?, ?, 'personal', ?, ?)",
        [(i.device_serial, i.officer_id, now, actor) for i in personal],
    )
    db.executemany(
        "UPDATE devices SET lifecycle = 'issued', borough = ?, assignment_mode = 'personal' WHERE serial = ?",
        [(i.borough, i.device_serial) for i in personal],
    )
    db.executemany(
        "UPDATE devices SET lifecycle = 'allocated', borough = ?, home_station = ?, assignment_mode = 'pool' "
        "WHERE serial = ?",
        [(i.borough, i.station_id, i.device_serial) for i in pool],
    )
    db.executemany(
        "INSERT INTO device_history (serial, at, actor, place, from_state, to_state, reason) "
        "VALUES (?, ?, ?, 'central', ?, ?, ?)",
        [
            (
                i.device_serial,
                now,
                actor,
                previous[i.device_serial],
                "issued" if i.mode == "personal" else "allocated",
                f"{why}: " + (f"issued to {i.officer_id}" if i.mode == "personal" else f"pool at {i.station_id}"),
            )
            for i in items
            if previous[i.device_serial] != ("issued" if i.mode == "personal" else "allocated")
        ],
    )
    settings_history.observe(db, (i.device_serial for i in items), f"handed out: {why}", actor, now)
    return models


def personal_issues_of_borough(db, borough: str) -> list[PersonalIssue]:
    """The cameras issued personally to a borough's officers now, as its stations mirror them."""
    return [
        PersonalIssue(device_serial=r[0], officer_id=r[1], since=from_iso(r[2]))
        for r in db.execute(
            """SELECT a.device_serial, a.officer_id, a.started_at FROM assignments a
           JOIN officers o ON o.officer_id = a.officer_id
           WHERE a.mode = 'personal' AND a.ended_at IS NULL AND o.borough = ?
           ORDER BY a.device_serial""",
            [borough],
        )
    ]


class AssignmentService:
    def __init__(self, writer: Database, changes) -> None:
        self.writer = writer
        self.changes = changes

    def issue(self, request: IssueRequest, actor: str, mode_for) -> AssignmentInfo:
        """Issue a camera personally; ``mode_for(borough)`` is the borough's policy."""
        now = to_iso(utc_now())
        with self.writer.write() as db:
            device = db.execute(
                "SELECT lifecycle, borough, assignment_mode, model FROM devices WHERE serial = ?",
                [request.device_serial],
            ).fetchone()
            if device is None:
                raise NotFound(f"no camera {request.device_serial} in the registry")
            officer = db.execute(
                "SELECT borough, active FROM officers WHERE officer_id = ?", [request.officer_id]
            ).fetchone()
            if officer is None:
                raise NotFound(f"no officer {request.officer_id}")
            lifecycle, borough, mode, model = device
            if lifecycle in UNISSUABLE:
                raise Conflict(f"camera {request.device_serial} is {lifecycle}; it cannot be issued")
            refuse_if_withdrawn(db, request.device_serial, model, "issued")
            if not officer[1]:
                raise Conflict(f"officer {request.officer_id} is inactive")
            if (mode or mode_for(borough or officer[0])) == "pool":
                raise Conflict(
                    f"camera {request.device_serial} is a pool camera ({borough or officer[0]}'s policy); "
                    "set its assignment_mode to personal to issue it"
                )
            held = db.execute(
                "SELECT officer_id, mode FROM assignments WHERE device_serial = ? AND ended_at IS NULL",
                [request.device_serial],
            ).fetchone()
            if held:
                raise Conflict(f"camera {request.device_serial} is held by {held[0]} ({held[1]}); end that first")
            holding = db.execute(
                "SELECT device_serial FROM assignments WHERE officer_id = ? AND ended_at IS NULL", [request.officer_id]
            ).fetchone()
            if holding:
                raise Conflict(f"officer {request.officer_id} already holds camera {holding[0]}; one per officer")
            assignment_id = db.execute(
                "INSERT INTO assignments (device_serial, officer_id, mode, started_at, started_by) "
                "VALUES (?, ?, 'personal', ?, ?) RETURNING id",
                [request.device_serial, request.officer_id, now, actor],
            ).fetchone()[0]
            if lifecycle in ("in_stock", "allocated"):
                db.execute(
                    "UPDATE devices SET lifecycle = 'issued', borough = COALESCE(borough, ?) WHERE serial = ?",
                    [officer[0], request.device_serial],
                )
                db.execute(
                    "INSERT INTO device_history (serial, at, actor, place, from_state, to_state, reason) "
                    "VALUES (?, ?, ?, 'central', ?, 'issued', ?)",
                    [request.device_serial, now, actor, lifecycle, f"issued to {request.officer_id}"],
                )
            audit.record(
                db,
                actor=actor,
                action="assign",
                object_type="device",
                object_id=request.device_serial,
                detail=f"personal issue to {request.officer_id}. {request.reason}".strip(),
            )
            announce_reattributed(db, self.changes, attribution.reattribute(db, request.device_serial, now))
            settings_history.observe(db, [request.device_serial], f"issued to {request.officer_id}", actor, now)
            self.changes.emit(
                db,
                PersonalIssue(device_serial=request.device_serial, officer_id=request.officer_id, since=from_iso(now)),
                officer[0],
                borough,
            )
            row = db.execute(f"SELECT {ASSIGNMENT_COLUMNS} FROM assignments WHERE id = ?", [assignment_id]).fetchone()
        return _assignment(row)

    def end(self, serial: str, reason: str, actor: str) -> AssignmentInfo:
        now = to_iso(utc_now())
        with self.writer.write() as db:
            row = db.execute(
                f"SELECT {ASSIGNMENT_COLUMNS} FROM assignments WHERE device_serial = ? AND ended_at IS NULL", [serial]
            ).fetchone()
            if row is None:
                raise NotFound(f"camera {serial} is not assigned to anyone")
            db.execute(
                "UPDATE assignments SET ended_at = ?, ended_by = ?, end_reason = ? WHERE id = ?",
                [now, actor, reason, row[0]],
            )
            audit.record(
                db,
                actor=actor,
                action="unassign",
                object_type="device",
                object_id=serial,
                detail=f"{row[3]} assignment to {row[2]} ended: {reason}",
            )
            announce_reattributed(db, self.changes, attribution.reattribute(db, serial, now))
            if row[3] == "personal":
                settings_history.observe(db, [serial], f"issue to {row[2]} ended: {reason}", actor, now)
                boroughs = db.execute(
                    "SELECT (SELECT borough FROM officers WHERE officer_id = ?), "
                    "(SELECT borough FROM devices WHERE serial = ?)",
                    [row[2], serial],
                ).fetchone()
                self.changes.emit(
                    db, PersonalIssue(device_serial=serial, officer_id=None, since=from_iso(now)), *boroughs
                )
            row = db.execute(f"SELECT {ASSIGNMENT_COLUMNS} FROM assignments WHERE id = ?", [row[0]]).fetchone()
        return _assignment(row)

    def find(
        self,
        *,
        officer_id: str | None,
        device_serial: str | None,
        borough: str | None,
        active: bool | None,
        limit: int,
        before: tuple[str, str] | None = None,
    ) -> list[AssignmentInfo]:
        """Newest first; ``before`` is the (started_at, id) keyset of the last row of the previous page."""
        where, params = [], []
        if before is not None:
            where.append("(a.started_at, a.id) < (?, ?)")
            params.extend([before[0], cursor_id(before[1])])
        if officer_id:
            where.append("a.officer_id = ?")
            params.append(officer_id)
        if device_serial:
            where.append("a.device_serial = ?")
            params.append(device_serial)
        if borough:
            where.append("o.borough = ?")
            params.append(borough)
        if active is not None:
            where.append("a.ended_at IS NULL" if active else "a.ended_at IS NOT NULL")
        columns = ", ".join(f"a.{c.strip()}" for c in ASSIGNMENT_COLUMNS.split(","))
        sql = (
            f"SELECT {columns} FROM assignments a LEFT JOIN officers o ON o.officer_id = a.officer_id"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY a.started_at DESC, a.id DESC LIMIT ?"
        )
        with self.writer.read() as db:
            return [_assignment(r) for r in db.execute(sql, [*params, limit])]

    def conflicts(
        self, borough: str | None, open_only: bool, limit: int = 1000, before: int | None = None
    ) -> list[ConflictInfo]:
        """Newest first; ``before`` is the id of the last row of the previous page."""
        where = [
            w
            for w, on in (
                ("borough = ?", borough is not None),
                ("resolved_at IS NULL", open_only),
                ("id < ?", before is not None),
            )
            if on
        ]
        params = [p for p in (borough, before) if p is not None]
        sql = (
            "SELECT id, kind, borough, device_serial, officer_id, detail, detected_at, resolved_at, resolved_by, "
            "resolution FROM conflicts"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY id DESC LIMIT ?"
        )
        with self.writer.read() as db:
            rows = db.execute(sql, [*params, limit]).fetchall()
        return [
            ConflictInfo(
                id=r[0],
                kind=r[1],
                borough=r[2],
                device_serial=r[3],
                officer_id=r[4],
                detail=r[5],
                detected_at=from_iso(r[6]),
                resolved_at=from_iso(r[7]) if r[7] else None,
                resolved_by=r[8],
                resolution=r[9],
            )
            for r in rows
        ]

    def resolve_conflict(self, conflict_id: int, resolution: str, actor: str) -> ConflictInfo:
        with self.writer.write() as db:
            row = db.execute("SELECT resolved_at, borough FROM conflicts WHERE id = ?", [conflict_id]).fetchone()
            if row is None:
                raise NotFound(f"no conflict {conflict_id}")
            if row[0] is not None:
                raise Conflict(f"conflict {conflict_id} was already resolved")
            db.execute(
                "UPDATE conflicts SET resolved_at = ?, resolved_by = ?, resolution = ? WHERE id = ?",
                [to_iso(utc_now()), actor, resolution, conflict_id],
            )
            audit.record(
                db,
                actor=actor,
                action="resolve-conflict",
                object_type="conflict",
                object_id=str(conflict_id),
                detail=resolution,
            )
        return self.conflict(conflict_id)

    def conflict(self, conflict_id: int) -> ConflictInfo:
        with self.writer.read() as db:
            r = db.execute(
                "SELECT id, kind, borough, device_serial, officer_id, detail, detected_at, resolved_at, "
                "resolved_by, resolution FROM conflicts WHERE id = ?",
                [conflict_id],
            ).fetchone()
        return ConflictInfo(
            id=r[0],
            kind=r[1],
            borough=r[2],
            device_serial=r[3],
            officer_id=r[4],
            detail=r[5],
            detected_at=from_iso(r[6]),
            resolved_at=from_iso(r[7]) if r[7] else None,
            resolved_by=r[8],
            resolution=r[9],
        )

    def unattributed(self, borough: str | None, limit: int, after: tuple[str, str] | None = None) -> list[Attribution]:
        """Oldest first; ``after`` is the (recorded_at, clip_id) keyset of the previous page's last row."""
        sql = (
            """SELECT a.clip_id, a.device_serial, a.recorded_at, a.station_id, a.officer_id, a.resolved_by
                 FROM attributions a LEFT JOIN devices d ON d.serial = a.device_serial
                 WHERE a.officer_id IS NULL"""
            + (" AND d.borough = ?" if borough else "")
            + (" AND (a.recorded_at, a.clip_id) > (?, ?)" if after else "")
            + " ORDER BY a.recorded_at, a.clip_id LIMIT ?"
        )
        params = [*([borough] if borough else []), *(after or ()), limit]
        with self.writer.read() as db:
            rows = db.execute(sql, params).fetchall()
        return [_attribution(r) for r in rows]

    def attribution(self, clip_id: str) -> Attribution:
        with self.writer.read() as db:
            found = _attribution_of(db, clip_id)
        if found is None:
            raise NotFound(f"no clip {clip_id} has been reported by a station")
        return found

    def attribute(self, clip_id: str, request: AttributeRequest, actor: str) -> Attribution:
        """A supervisor's attribution. A verified clip no station's report attributed (a person's
        upload, reports refused) is attributed here too: it had no way into anyone's queue."""
        with self.writer.write() as db:
            before = _attribution_of(db, clip_id)
            verified = clip_records.camera_and_time(db, clip_id) if before is None else None
            if before is None and verified is None:
                raise NotFound(f"no clip {clip_id} has been reported by a station or verified at central")
            if db.execute("SELECT 1 FROM officers WHERE officer_id = ?", [request.officer_id]).fetchone() is None:
                raise NotFound(f"no officer {request.officer_id}")
            now = to_iso(utc_now())
            if verified is not None:
                attribution.by_hand_first(db, clip_id, *verified, request.officer_id, actor, now)
            else:
                attribution.by_hand(db, clip_id, request.officer_id, actor, now)
            audit.record(
                db,
                actor=actor,
                action="attribute",
                object_type="clip",
                object_id=clip_id,
                detail=f"{(before and before.officer_id) or 'unattributed'} → {request.officer_id}: {request.reason}",
            )
            announce_reattributed(db, self.changes, [clip_id])
        return self.attribution(clip_id)


def _attribution_of(db, clip_id: str) -> Attribution | None:
    row = db.execute(
        "SELECT clip_id, device_serial, recorded_at, station_id, officer_id, resolved_by FROM attributions "
        "WHERE clip_id = ?",
        [clip_id],
    ).fetchone()
    return _attribution(row) if row else None


def _attribution(r) -> Attribution:
    return Attribution(
        clip_id=r[0], device_serial=r[1], recorded_at=from_iso(r[2]), station_id=r[3], officer_id=r[4], resolved_by=r[5]
    )


class AssignmentController(Controller):
    path = "/api/v1"
    tags = ["assignments"]

    @get(
        "/assignments",
        summary="Assignments (personal issue and pool checkouts), newest first",
        guards=[station_or_user_with("viewer")],
        scope=LISTS,
        sync_to_thread=True,
    )
    def list_assignments(
        self,
        within: Scoped,
        assignments: Injected[AssignmentService],
        officer_id: FromQuery[str | None] = None,
        device_serial: FromQuery[str | None] = None,
        borough: FromQuery[str | None] = None,
        active: FromQuery[bool | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
        cursor: Annotated[str | None, QueryParameter(max_length=200, description=CURSOR_HELP)] = None,
    ) -> Response[list[AssignmentInfo]]:
        rows = assignments.find(
            officer_id=officer_id,
            device_serial=device_serial,
            borough=within.narrow(borough),
            active=active,
            limit=limit + 1,
            before=decode_time_cursor(cursor) if cursor else None,
        )
        return page_response(rows, limit, lambda a: (to_iso(a.started_at), a.id))

    @get(
        "/assignments/export.csv",
        summary="Assignments as CSV (newest first), for spreadsheets",
        media_type=CSV,
        guards=[station_or_user_with("viewer")],
        scope=LISTS,
        sync_to_thread=True,
    )
    def export_csv(
        self,
        within: Scoped,
        assignments: Injected[AssignmentService],
        borough: FromQuery[str | None] = None,
        active: FromQuery[bool | None] = None,
    ) -> Response:
        rows = assignments.find(
            officer_id=None, device_serial=None, borough=within.narrow(borough), active=active, limit=1_000_000
        )
        return csv_response(rows, AssignmentInfo, "assignments.csv")

    @post(
        "/assignments",
        status_code=201,
        summary="Issue a camera personally to an officer",
        guards=[user_with("supervisor")],
        responses=errors(404, 409),
        scope=touches(in_json("device", "device_serial"), in_json("officer", "officer_id")),
        sync_to_thread=True,
    )
    def issue(
        self,
        principal: Caller,
        assignments: Injected[AssignmentService],
        settings: Injected[CentralSettings],
        data: JSONBody[IssueRequest],
    ) -> AssignmentInfo:
        return assignments.issue(data, principal.name, settings.fleet.assignment_mode)

    @post(
        "/assignments/{device_serial:str}/end",
        status_code=200,
        summary="End a camera's current assignment",
        guards=[user_with("supervisor")],
        scope=touches(in_path("device", "device_serial")),
        sync_to_thread=True,
    )
    def end(
        self,
        principal: Caller,
        assignments: Injected[AssignmentService],
        device_serial: Annotated[str, PathParameter(max_length=64)],
        data: JSONBody[EndRequest],
    ) -> AssignmentInfo:
        return assignments.end(device_serial, data.reason, principal.name)

    @get(
        "/conflicts",
        summary="Conflicts found after offline periods, for a supervisor",
        guards=[user_with("supervisor")],
        scope=LISTS,
        sync_to_thread=True,
    )
    def conflicts(
        self,
        within: Scoped,
        assignments: Injected[AssignmentService],
        borough: FromQuery[str | None] = None,
        open_only: Annotated[bool, QueryParameter(name="open")] = True,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 1000,
        cursor: Annotated[str | None, QueryParameter(max_length=200, description=CURSOR_HELP)] = None,
    ) -> Response[list[ConflictInfo]]:
        before = cursor_id(decode_cursor(cursor, 1)[0]) if cursor else None
        rows = assignments.conflicts(within.narrow(borough), open_only, limit + 1, before)
        return page_response(rows, limit, lambda c: (c.id,))

    @post(
        "/conflicts/{conflict_id:int}/resolve",
        status_code=200,
        summary="Record how a conflict was resolved",
        guards=[user_with("supervisor")],
        responses=errors(409),
        scope=touches(in_path("conflict", "conflict_id")),
        sync_to_thread=True,
    )
    def resolve(
        self,
        principal: Caller,
        assignments: Injected[AssignmentService],
        conflict_id: Annotated[int, PathParameter(ge=1, le=2**62)],
        data: JSONBody[ResolveRequest],
    ) -> ConflictInfo:
        return assignments.resolve_conflict(conflict_id, data.resolution, principal.name)

    @get(
        "/unattributed",
        summary="Clips recorded when no officer held the camera",
        guards=[user_with("supervisor")],
        scope=LISTS,
        sync_to_thread=True,
    )
    def unattributed(
        self,
        within: Scoped,
        assignments: Injected[AssignmentService],
        borough: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
        cursor: Annotated[str | None, QueryParameter(max_length=200, description=CURSOR_HELP)] = None,
    ) -> Response[list[Attribution]]:
        rows = assignments.unattributed(
            within.narrow(borough), limit + 1, decode_time_cursor(cursor) if cursor else None
        )
        return page_response(rows, limit, lambda a: (to_iso(a.recorded_at), a.clip_id))

    @get(
        "/clips/{clip_id:str}/attribution",
        summary="Whose clip this is (the holder at recorded_at)",
        guards=[user_with("supervisor")],
        scope=touches(in_path("clip", "clip_id")),
        sync_to_thread=True,
    )
    def get_attribution(
        self,
        principal: Caller,
        assignments: Injected[AssignmentService],
        clip_id: Annotated[str, PathParameter(max_length=64)],
    ) -> Attribution:
        return assignments.attribution(clip_id)

    @post(
        "/clips/{clip_id:str}/attribution",
        status_code=200,
        summary="Attribute a clip by hand (audited)",
        guards=[user_with("supervisor")],
        scope=touches(in_path("clip", "clip_id"), in_json("officer", "officer_id")),
        sync_to_thread=True,
    )
    def attribute(
        self,
        principal: Caller,
        assignments: Injected[AssignmentService],
        clip_id: Annotated[str, PathParameter(max_length=64)],
        data: JSONBody[AttributeRequest],
    ) -> Attribution:
        return assignments.attribute(clip_id, data, principal.name)
