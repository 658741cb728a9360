"""Pool checkouts: intervals of station time, opened and closed by what stations report.

A checkout opens an assignment at the station's time; a check-in, or the camera docking,
closes it. Stations report late (a station back after an outage), so a checkout may arrive
after the docking that ended it, and a check-in after a docking that closed it later than
it says: the camera was back at the earliest of them. Overlaps (one officer with two
cameras, one camera with two officers) are listed as conflicts, never dropped.

SQL only, run inside the projection's transaction (``central.events.projection``), which
audits each step and re-attributes the clips an interval covers.
"""

from __future__ import annotations

from collections.abc import Iterable

from fleet.clock import to_iso, utc_now

_PAIR_COLUMNS = """id, device_serial, officer_id, started_at, station_id,
    COALESCE((SELECT borough FROM stations WHERE station_id = a.station_id),
             (SELECT borough FROM devices WHERE serial = a.device_serial))"""
"""An assignment as a conflict describes it: (id, camera, officer, start, station, borough)."""


def standing(db, serials: Iterable[str]) -> dict[str, tuple[str | None, str | None, str | None]]:
    """{serial: (borough, assignment mode, officer it is personally issued to)} of these cameras,
    where the registry has them: what a station's checkout or check-in is judged against."""
    return {
        r[0]: r[1:]
        for r in db.execute(
            f"""SELECT d.serial, d.borough, d.assignment_mode,
                  (SELECT officer_id FROM assignments {db.dialect.indexed_by("assignments_open")}
                   WHERE device_serial = d.serial AND ended_at IS NULL AND mode = 'personal')
           FROM devices d WHERE {db.dialect.any_of("d.serial")}""",
            [db.dialect.many(dict.fromkeys(serials))],
        )
    }


def check_out(db, serial: str, officer_id: str, at: str, station_id: str, actor: str) -> int:
    """Open a checkout at ``at``; closed at once by a later docking central already knows of
    (it was reported late). The assignment's id."""
    assignment_id = db.execute(
        "INSERT INTO assignments (device_serial, officer_id, mode, started_at, station_id, started_by) "
        "VALUES (?, ?, 'pool', ?, ?, ?) RETURNING id",
        [serial, officer_id, at, station_id, actor],
    ).fetchone()[0]
    docked = db.execute("SELECT MIN(at) FROM battery_readings WHERE serial = ? AND at > ?", [serial, at]).fetchone()[0]
    if docked is not None:
        db.execute(
            "UPDATE assignments SET ended_at = ?, ended_by = 'dock', end_reason = 'docked' WHERE id = ?",
            [docked, assignment_id],
        )
    return assignment_id


def check_in(db, serial: str, officer_id: str, at: str, actor: str, reason: str) -> list[tuple[int, str | None]]:
    """Close the officer's checkout of this camera at ``at``: (assignment, the end a docking had
    given it, if this check-in came after it) of each closed; none if closed at or before ``at``."""
    closed: list[tuple[int, str | None]] = [
        (assignment_id, None)
        for (assignment_id,) in db.execute(
            """UPDATE assignments SET ended_at = ?, ended_by = ?, end_reason = ?
           WHERE device_serial = ? AND officer_id = ? AND mode = 'pool' AND ended_at IS NULL
             AND started_at <= ?
           RETURNING id""",
            [at, actor, reason, serial, officer_id, at],
        )
    ]
    if not closed:
        # Reported late: a docking or check-in seen first closed it, but later than this
        # check-in. The camera was back at the earliest of them.
        closed = db.execute(
            """SELECT id, ended_at FROM assignments WHERE device_serial = ? AND officer_id = ?
                 AND mode = 'pool' AND started_at <= ? AND ended_at > ?
               ORDER BY started_at DESC, id DESC LIMIT 1""",
            [serial, officer_id, at, at],
        ).fetchall()
        for assignment_id, _ in closed:
            db.execute(
                "UPDATE assignments SET ended_at = ?, ended_by = ?, end_reason = ? WHERE id = ?",
                [at, actor, reason, assignment_id],
            )
    return closed


def held_after(db, serials: Iterable[str], since: str) -> set[str]:
    """Those of these cameras in a pool checkout open at or after ``since`` (a docking may end it)."""
    return {
        serial
        for (serial,) in db.execute(
            f"SELECT device_serial FROM assignments WHERE {db.dialect.any_of('device_serial')} "
            "AND mode = 'pool' AND (ended_at IS NULL OR ended_at > ?)",
            [db.dialect.many(serials), since],
        )
    }


def close_at_docking(db, serial: str, docked_at: str, by: str) -> list[tuple[int, str]]:
    """Docking ends a pool checkout made before it (at this or another station), or one whose end
    central had from a later docking or check-in (this docking was reported late): either way
    the camera was back by then. (assignment, officer) of each closed."""
    return db.execute(
        """UPDATE assignments SET ended_at = :docked_at, ended_by = :by, end_reason = 'docked'
           WHERE device_serial = :serial AND mode = 'pool' AND started_at < :docked_at
             AND (ended_at IS NULL OR ended_at > :docked_at)
           RETURNING id, officer_id""",
        {"serial": serial, "docked_at": docked_at, "by": by},
    ).fetchall()


def find_conflicts(db, assignment_id: int) -> None:
    """List overlaps with this assignment: one officer with two cameras, one camera with two officers;
    withdraw listed ones it no longer overlaps (its interval shrank).

    Judged on intervals of station time, [start, end), an open one reaching to the end of
    time (nothing says it ended), and described the same way whichever of the pair was
    reported first: the same facts give the same list, whatever order stations report in.
    Resolved conflicts stay as they were resolved.
    """
    device, officer, start, end = db.execute(
        "SELECT device_serial, officer_id, started_at, ended_at FROM assignments WHERE id = ?", [assignment_id]
    ).fetchone()
    overlapping = {
        r[0]: r
        for r in db.execute(
            f"""SELECT {_PAIR_COLUMNS} FROM assignments a
            WHERE id != :id AND (officer_id = :officer OR device_serial = :device)
              AND NOT (officer_id = :officer AND device_serial = :device)
              AND (CAST(:end AS TEXT) IS NULL OR started_at < :end) AND (ended_at IS NULL OR ended_at > :start)""",
            {"id": assignment_id, "officer": officer, "device": device, "start": start, "end": end},
        )
    }
    for conflict_id, a, b in db.execute(
        "SELECT id, assignment_a, assignment_b FROM conflicts WHERE resolved_at IS NULL "
        "AND (assignment_a = :id OR assignment_b = :id)",
        {"id": assignment_id},
    ).fetchall():
        if (b if a == assignment_id else a) not in overlapping:
            db.execute("DELETE FROM conflicts WHERE id = ?", [conflict_id])
    if not overlapping:
        return
    this = db.execute(f"SELECT {_PAIR_COLUMNS} FROM assignments a WHERE id = ?", [assignment_id]).fetchone()
    for other in overlapping.values():
        # The earlier of the pair first (by station time, then place, camera, officer), not the later reported.
        first, second = sorted((this, other), key=lambda r: (r[3], r[4] or "", r[1], r[2], r[0]))
        if first[2] == second[2]:
            kind, serial, officer_id, detail = (
                "officer_two_cameras",
                first[1],
                first[2],
                (
                    f"officer {first[2]} held {first[1]} (from {first[4] or 'personal issue'}, {first[3]}) and "
                    f"{second[1]} (from {second[4] or 'personal issue'}, {second[3]}) at once"
                ),
            )
        else:
            kind, serial, officer_id, detail = (
                "camera_two_officers",
                first[1],
                first[2],
                (
                    f"{first[1]} was held by {first[2]} (from {first[4] or 'personal issue'}, {first[3]}) and by "
                    f"{second[2]} (from {second[4] or 'personal issue'}, {second[3]}) at once"
                ),
            )
        db.execute(
            "INSERT INTO conflicts (kind, borough, device_serial, officer_id, detail, detected_at, "
            "assignment_a, assignment_b) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [
                kind,
                first[5] or second[5],
                serial,
                officer_id,
                detail,
                to_iso(utc_now()),
                min(this[0], other[0]),
                max(this[0], other[0]),
            ],
        )
