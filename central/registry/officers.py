"""Officers: id (shoulder/warrant number), borough, team, role; minimal personal data.

Imported and exported as CSV (planners work in spreadsheets) or JSON; every change is
audited and sent down the changes feed to the officer's borough (and the old borough when
an officer moves, so its stations stop offering them).
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated

import msgspec
from litestar import Controller, Response, get, post
from litestar.params import FromQuery, JSONBody, PathParameter, QueryParameter

from central.access.auth import Caller, station_or_user_with, user_with
from central.access.scope import FORCE_WIDE, LISTS, Scoped, in_json, in_path, touches
from central.core.csvhttp import CSV, IMPORT_ERRORS, csv_body, csv_response
from central.core.database import Database
from central.core.providers import Injected
from central.evidence import audit
from central.firmware import settings_history
from central.registry.devices import ASSIGNMENT_COLUMNS, AssignmentInfo, _assignment
from fleet import csvio
from fleet.clock import to_iso, utc_now
from fleet.errors import BadRequest, NotFound
from fleet.events import Officer, OfficerRole
from fleet.protocol import UNPRINTABLE, BoroughName, readable

MAX_IMPORT = 200_000
OfficerPath = Annotated[str, PathParameter(min_length=1, max_length=32, description="shoulder or warrant number")]


class OfficerRow(msgspec.Struct, kw_only=True):
    """One row of the officers CSV (the same columns as ``Officer``)."""

    officer_id: str
    borough: str
    team: str = ""
    role: OfficerRole = "other"
    name: str = ""
    active: bool = True


class OfficerPage(msgspec.Struct, kw_only=True):
    items: list[Officer]
    next_cursor: str | None = None


class OfficerDetail(msgspec.Struct, kw_only=True):
    officer: Officer
    holding: list[AssignmentInfo]
    history: list[AssignmentInfo]


class ImportResult(msgspec.Struct, kw_only=True):
    created: int
    updated: int
    unchanged: int


def _officer(r) -> Officer:
    return Officer(officer_id=r[0], borough=r[1], team=r[2], role=r[3], name=r[4], active=bool(r[5]))


def exists(db, officer_id: str) -> bool:
    return db.execute("SELECT 1 FROM officers WHERE officer_id = ?", [officer_id]).fetchone() is not None


def of_borough(db, borough: str) -> list[Officer]:
    """A borough's officers, as its stations mirror them."""
    return [
        _officer(r)
        for r in db.execute(
            "SELECT officer_id, borough, team, role, name, active FROM officers WHERE borough = ? ORDER BY officer_id",
            [borough],
        )
    ]


class OfficerService:
    def __init__(self, writer: Database, changes) -> None:
        self.writer = writer
        self.changes = changes

    def upsert(self, officers: list[Officer], actor: str) -> ImportResult:
        counts = Counter(o.officer_id for o in officers)
        dupes = sorted(i for i, n in counts.items() if n > 1)
        if dupes:
            raise BadRequest(
                f"officer ids appear more than once: {', '.join(dupes[:5])}"
                + (f" and {len(dupes) - 5} more" if len(dupes) > 5 else "")
            )
        _check_printable(officers)
        now = to_iso(utc_now())
        # In bulk: one read of who is known, one statement of rows, one of audit records (an import
        # is thousands of officers, and on PostgreSQL every statement is a round trip).
        with self.writer.write() as db:
            known = {
                r[0]: _officer(r)
                for r in db.execute(
                    "SELECT officer_id, borough, team, role, name, active FROM officers "
                    f"WHERE {db.dialect.any_of('officer_id')}",
                    [db.dialect.many(o.officer_id for o in officers)],
                )
            }
            changed = [o for o in officers if known.get(o.officer_id) != o]
            unchanged = len(officers) - len(changed)
            db.executemany(
                """INSERT INTO officers (officer_id, borough, team, role, name, active, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (officer_id) DO UPDATE SET borough = excluded.borough, team = excluded.team,
                       role = excluded.role, name = excluded.name, active = excluded.active,
                       updated_at = excluded.updated_at""",
                [[o.officer_id, o.borough, o.team, o.role, o.name, int(o.active), now] for o in changed],
            )
            self.changes.emit_many(
                db, [(o, (o.borough, b.borough if (b := known.get(o.officer_id)) else None)) for o in changed]
            )
            records = []
            for o in changed:
                before = known.get(o.officer_id)
                old_borough = before.borough if before else None
                records.append(
                    dict(
                        actor=actor,
                        action="officer-update" if before else "officer-create",
                        object_type="officer",
                        object_id=o.officer_id,
                        detail=f"{o.borough}/{o.team}/{o.role}"
                        + (f" (was {old_borough})" if old_borough not in (None, o.borough) else ""),
                    )
                )
            audit.record_many(db, records)
            # An officer's new role changes the settings of the cameras issued to them personally.
            recast = [o.officer_id for o in changed if (b := known.get(o.officer_id)) and b.role != o.role]
            if recast:
                settings_history.observe(
                    db,
                    (
                        r[0]
                        for r in db.execute(
                            "SELECT device_serial FROM assignments WHERE ended_at IS NULL AND mode = 'personal' "
                            f"AND {db.dialect.any_of('officer_id')}",
                            [db.dialect.many(recast)],
                        )
                    ),
                    "its holder's role changed",
                    actor,
                    now,
                )
            updated = sum(1 for o in changed if o.officer_id in known)
            created = len(changed) - updated
        return ImportResult(created=created, updated=updated, unchanged=unchanged)

    def page(
        self, *, borough: str | None, role: str | None, team: str | None, q: str | None, after: str | None, limit: int
    ) -> OfficerPage:
        where, params = [], []
        for column, value in (("borough", borough), ("role", role), ("team", team)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if q:  # either case, as SQLite's LIKE matches (PostgreSQL's is case-sensitive)
            where.append("(lower(officer_id) LIKE lower(?) OR lower(name) LIKE lower(?))")
            params += [f"%{q}%", f"%{q}%"]
        if after:
            where.append("officer_id > ?")
            params.append(after)
        sql = (
            "SELECT officer_id, borough, team, role, name, active FROM officers"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY officer_id LIMIT ?"
        )
        with self.writer.read() as db:
            rows = db.execute(sql, [*params, limit + 1]).fetchall()
        items = [_officer(r) for r in rows[:limit]]
        return OfficerPage(items=items, next_cursor=items[-1].officer_id if len(rows) > limit else None)

    def all(self, borough: str | None = None) -> list[Officer]:
        with self.writer.read() as db:
            sql = "SELECT officer_id, borough, team, role, name, active FROM officers"
            rows = db.execute(
                sql + (" WHERE borough = ?" if borough else "") + " ORDER BY officer_id", [borough] if borough else []
            ).fetchall()
        return [_officer(r) for r in rows]

    def detail(self, officer_id: str) -> OfficerDetail:
        with self.writer.read() as db:
            row = db.execute(
                "SELECT officer_id, borough, team, role, name, active FROM officers WHERE officer_id = ?", [officer_id]
            ).fetchone()
            if row is None:
                raise NotFound(f"no officer {officer_id}")
            history = [
                _assignment(r)
                for r in db.execute(
                    f"SELECT {ASSIGNMENT_COLUMNS} FROM assignments WHERE officer_id = ? "
                    "ORDER BY started_at DESC, id DESC LIMIT 200",
                    [officer_id],
                )
            ]
        return OfficerDetail(officer=_officer(row), holding=[a for a in history if a.ended_at is None], history=history)


def _check_printable(officers: list[Officer]) -> None:
    """Refuse an import whose borough is not a printable name, or whose team or name holds a line
    break, control or invisible character: what central keeps it shows on pages, in exports and in
    digests, and sends to stations. (Checked here, not in the ``Officer`` wire type: stations decode
    officers central stored before this check, and must not stop at one.)"""
    for o in officers:
        try:
            msgspec.convert(o.borough, BoroughName)
        except msgspec.ValidationError as exc:
            raise BadRequest(f"officer {o.officer_id}: borough {o.borough!r}: {readable(str(exc))}") from None
        for field, value in (("team", o.team), ("name", o.name)):
            if UNPRINTABLE.search(value):
                raise BadRequest(
                    f"officer {o.officer_id}: {field} {value!r} holds a line break, control or invisible character"
                )


def officers_from_csv(text: str) -> list[Officer]:
    rows = csvio.read_csv(text, OfficerRow, max_rows=MAX_IMPORT)
    try:
        return [msgspec.convert(msgspec.structs.asdict(r), Officer) for r in rows]
    except msgspec.ValidationError as exc:
        raise BadRequest(f"officers CSV: {exc}") from None


class OfficerController(Controller):
    path = "/api/v1/officers"
    tags = ["officers"]

    @get(
        "/",
        summary="Officers, by id, filtered; keyset-paginated",
        guards=[station_or_user_with("viewer")],
        scope=LISTS,
        sync_to_thread=True,
    )
    def list_officers(
        self,
        within: Scoped,
        officers: Injected[OfficerService],
        borough: FromQuery[str | None] = None,
        role: FromQuery[OfficerRole | None] = None,
        team: FromQuery[str | None] = None,
        q: Annotated[str | None, QueryParameter(max_length=64)] = None,
        cursor: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> OfficerPage:
        return officers.page(borough=within.narrow(borough), role=role, team=team, q=q, after=cursor, limit=limit)

    @get(
        "/export.csv",
        summary="Every officer (or one borough's) as CSV",
        media_type=CSV,
        guards=[station_or_user_with("viewer")],
        scope=LISTS,
        sync_to_thread=True,
    )
    def export_csv(
        self, within: Scoped, officers: Injected[OfficerService], borough: FromQuery[str | None] = None
    ) -> Response:
        rows = officers.all(within.narrow(borough))
        return csv_response((OfficerRow(**msgspec.structs.asdict(o)) for o in rows), OfficerRow, "officers.csv")

    @get(
        "/{officer_id:str}",
        summary="One officer with the camera they hold and their assignment history",
        guards=[station_or_user_with("viewer")],
        scope=touches(in_path("officer", "officer_id")),
        sync_to_thread=True,
    )
    def get_officer(
        self, principal: Caller, officers: Injected[OfficerService], officer_id: OfficerPath
    ) -> OfficerDetail:
        return officers.detail(officer_id)

    @post(
        "/",
        status_code=200,
        summary="Create or update officers (JSON list)",
        description="A supervisor for one borough creates and edits that borough's officers only (an officer "
        "of theirs cannot be moved to another borough either).",
        guards=[user_with("supervisor")],
        scope=touches(in_json("officer", "*.officer_id"), in_json("borough", "*.borough")),
        sync_to_thread=True,
    )
    def upsert(
        self, principal: Caller, officers: Injected[OfficerService], data: JSONBody[list[Officer]]
    ) -> ImportResult:
        if len(data) > MAX_IMPORT:
            raise BadRequest(f"at most {MAX_IMPORT} officers per request")
        return officers.upsert(data, principal.name)

    @post(
        "/import.csv",
        status_code=200,
        summary="Create or update officers from CSV",
        description="Columns: officer_id, borough, team, role, name, active (header row required). "
        "Errors name the line; nothing is imported unless every row is valid.",
        guards=[user_with("supervisor")],
        responses=IMPORT_ERRORS,
        scope=FORCE_WIDE,
        dependencies=csv_body("officers"),
        sync_to_thread=True,
    )
    def import_csv(self, principal: Caller, csv: Injected[str], officers: Injected[OfficerService]) -> ImportResult:
        return officers.upsert(officers_from_csv(csv), principal.name)
