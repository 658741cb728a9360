"""Holds: what keeps clips from deletion, and how the stations hear of it.

A hold is on a clip, on an officer for a time window (the clips attributed to them then, and
those attributed to nobody, since any may be theirs), or on a case (the clips added to it).
A public request to keep footage protects like a hold (``REQUEST_HELD``: its rows are
``central.evidence.keep_requests``'s), so the retention job needs to know nothing of requests.
Every deletion query of ``central.evidence.retention`` carries ``HELD``, evaluated in the
transaction that deletes; the stations learn each clip's held state down the changes feed
(``ClipHold``), so their local copies are not purged either.

The hand-offs with other packages are calls into this module, inside the caller's transaction:
``announce_holds`` when clips reach central (the projection), ``announce_reattributed`` when
attributions change (the projection, a supervisor), ``held_clips_of_borough`` for a station's
snapshot (the changes feed). The holds' predicates read the registry's ``attributions`` (who
a clip is attributed to) in SQL: a deletion and the attribution it depends on are judged in
one statement, and these are the retention job's hot paths; ``announce_holds`` reads a
station's borough from the registry's ``stations`` in the same query.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from central.access.scope import CLIPS_OF_BOROUGH
from central.core.database import Dialect
from fleet.clock import from_iso, to_iso, utc_now
from fleet.config import CentralSettings
from fleet.errors import NotFound
from fleet.events import ClipHold

STAFF_HELD = """(
    EXISTS (SELECT 1 FROM holds h WHERE h.kind = 'clip' AND h.clip_id = c.clip_id AND h.released_at IS NULL)
    OR EXISTS (SELECT 1 FROM case_clips cc JOIN holds h ON h.kind = 'case' AND h.case_ref = cc.case_ref
               AND h.released_at IS NULL WHERE cc.clip_id = c.clip_id)
    OR EXISTS (SELECT 1 FROM attributions a JOIN holds h ON h.kind = 'officer' AND h.officer_id = a.officer_id
               AND h.released_at IS NULL AND a.recorded_at >= h.window_from AND a.recorded_at < h.window_to
               WHERE a.clip_id = c.clip_id)
    OR EXISTS (SELECT 1 FROM attributions a JOIN holds h ON h.kind = 'officer' AND h.released_at IS NULL
               AND a.recorded_at >= h.window_from AND a.recorded_at < h.window_to
               WHERE a.clip_id = c.clip_id AND a.officer_id IS NULL)
)"""
"""True for a clip (alias ``c``) that a hold placed by staff protects. Each branch is an index probe.

An officer hold also covers the clips nobody is attributed to that were recorded in its
window: any of them may be the officer's, so they are kept until a supervisor attributes
them (then the hold covers them only if they are that officer's)."""


def in_request_area(row: str, borough: str) -> str:
    """SQL: true when ``row`` (an alias of ``clips`` or ``attributions``: a ``device_serial`` and a
    ``station_id``) is of ``borough`` (an SQL expression) for a public request: docked at one of
    the borough's stations, or recorded by one of its cameras. A clip's station never changes; its
    camera may be re-allocated to another borough after the recording, which must not take the
    clip out of a request made where it was recorded."""
    return (
        f"({row}.station_id IN (SELECT s.station_id FROM stations s WHERE s.borough = {borough}) "
        f"OR {row}.device_serial IN (SELECT d.serial FROM devices d WHERE d.borough = {borough}))"
    )


REQUEST_HELD = f"""(
    EXISTS (SELECT 1 FROM keep_request_clips kc JOIN keep_requests r ON r.reference = kc.reference
            AND r.state = 'narrowed' WHERE kc.clip_id = c.clip_id)
    OR EXISTS (SELECT 1 FROM clips rc JOIN keep_requests r ON r.state = 'open'
               AND rc.recorded_at >= r.hold_from AND rc.recorded_at < r.hold_to
               WHERE rc.clip_id = c.clip_id AND {in_request_area("rc", "r.borough")})
    OR EXISTS (SELECT 1 FROM attributions a JOIN keep_requests r ON r.state = 'open'
               AND a.recorded_at >= r.hold_from AND a.recorded_at < r.hold_to
               WHERE a.clip_id = c.clip_id AND {in_request_area("a", "r.borough")})
)"""
"""True for a clip (alias ``c``) that a public request to keep footage protects
(``central.evidence.keep_requests``): an open request, every clip recorded in its widened window
in its borough (``in_request_area``; known to central by its upload or by the station's event,
whichever came first); a narrowed one, the clips its officer chose."""

HELD = f"({STAFF_HELD} OR {REQUEST_HELD})"
"""True for a clip (alias ``c``) that anything protects: every deletion query carries it."""


def held_clips(dialect: Dialect) -> str:
    """Every clip an active hold or an open request protects, as one query (a set: for ``IN`` and
    the per-batch list).

    Each officer hold's window is looked up in the attributions by index, hold by hold. An open
    request's clips at central are found by its borough's stations and by its cameras (each an
    index); those central knows only from events, by its cameras: the station's branch would scan
    the attributions, and such a clip is at its station, which deletes nothing not yet uploaded."""
    officers = dialect.join_each(
        "attributions",
        "a",
        "attributions_officer",
        "a.officer_id = h.officer_id AND a.recorded_at >= h.window_from AND a.recorded_at < h.window_to",
    )
    nobody = dialect.join_each(
        "attributions",
        "a",
        "attributions_unattributed",
        "a.officer_id IS NULL AND a.recorded_at >= h.window_from AND a.recorded_at < h.window_to",
    )
    in_window = "{0}.recorded_at >= r.hold_from AND {0}.recorded_at < r.hold_to"
    by_station = dialect.join_each(
        "clips", "rc", "clips_station", f"rc.station_id = s.station_id AND {in_window.format('rc')}"
    )
    by_camera = dialect.join_each(
        "clips", "rc", "clips_device", f"rc.device_serial = d.serial AND {in_window.format('rc')}"
    )
    attributed_by_camera = dialect.join_each(
        "attributions", "a", "attributions_device", f"a.device_serial = d.serial AND {in_window.format('a')}"
    )
    return f"""
SELECT clip_id FROM holds WHERE kind = 'clip' AND released_at IS NULL
UNION SELECT cc.clip_id FROM case_clips cc JOIN holds h ON h.kind = 'case'
      AND h.case_ref = cc.case_ref AND h.released_at IS NULL
UNION SELECT a.clip_id FROM holds h {officers} WHERE h.kind = 'officer' AND h.released_at IS NULL
UNION SELECT a.clip_id FROM holds h {nobody} WHERE h.kind = 'officer' AND h.released_at IS NULL
UNION SELECT kc.clip_id FROM keep_request_clips kc JOIN keep_requests r ON r.reference = kc.reference
      AND r.state = 'narrowed'
UNION SELECT rc.clip_id FROM keep_requests r JOIN stations s ON s.borough = r.borough {by_station}
      WHERE r.state = 'open'
UNION SELECT rc.clip_id FROM keep_requests r JOIN devices d ON d.borough = r.borough {by_camera}
      WHERE r.state = 'open'
UNION SELECT a.clip_id FROM keep_requests r JOIN devices d ON d.borough = r.borough {attributed_by_camera}
      WHERE r.state = 'open'"""


class Hold(msgspec.Struct, kw_only=True):
    id: int
    kind: str
    reason: str
    clip_id: str | None
    officer_id: str | None
    window_from: datetime | None
    window_to: datetime | None
    case_ref: str | None
    created_at: datetime
    created_by: str
    released_at: datetime | None = None
    released_by: str | None = None
    clips: int = 0
    """Clips at central it protects now."""


def place(
    db,
    kind: str,
    reason: str,
    clip_id: str | None,
    officer_id: str | None,
    window_from: str | None,
    window_to: str | None,
    case_ref: str | None,
    actor: str,
    now: str,
) -> int:
    """A new hold (checked by the caller); its id."""
    return db.execute(
        "INSERT INTO holds (kind, reason, clip_id, officer_id, window_from, window_to, case_ref, created_at, "
        "created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        [kind, reason, clip_id, officer_id, window_from, window_to, case_ref, now, actor],
    ).fetchone()[0]


def released_at(db, hold_id: int) -> str | None:
    """When the hold was released (None: it applies); NotFound if there is no such hold."""
    row = db.execute("SELECT released_at FROM holds WHERE id = ?", [hold_id]).fetchone()
    if row is None:
        raise NotFound(f"no hold {hold_id}")
    return row[0]


def release(db, hold_id: int, actor: str, reason: str, now: str) -> None:
    db.execute(
        "UPDATE holds SET released_at = ?, released_by = ?, release_reason = ? WHERE id = ?",
        [now, actor, reason, hold_id],
    )


def add_to_case(db, case_ref: str, clip_ids: list[str], actor: str) -> list[str]:
    """Add clips to a case (a case hold covers them); every clip of the case, sorted."""
    db.executemany(
        "INSERT INTO case_clips (case_ref, clip_id, added_at, added_by) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [(case_ref, c, to_iso(utc_now()), actor) for c in clip_ids],
    )
    return sorted(r[0] for r in db.execute("SELECT clip_id FROM case_clips WHERE case_ref = ?", [case_ref]))


def listing(db, active: bool | None, limit: int, borough: str | None = None) -> list[Hold]:
    """Newest first; ``borough``: only that borough's holds, as ``central.access.scope`` places them (a
    clip hold in its clip's camera's borough, an officer hold in the officer's; a case hold in none)."""
    where = [{True: "h.released_at IS NULL", False: "h.released_at IS NOT NULL", None: "TRUE"}[active]]
    params: list = []
    if borough is not None:
        where.append(f"""((h.kind = 'clip' AND COALESCE((SELECT device_serial FROM clips WHERE clip_id = h.clip_id),
                               (SELECT device_serial FROM attributions WHERE clip_id = h.clip_id))
                              IN ({CLIPS_OF_BOROUGH}))
                          OR (h.kind = 'officer' AND (SELECT borough FROM officers
                                                      WHERE officer_id = h.officer_id) = ?))""")
        params += [borough, borough]
    sql = f"SELECT h.id FROM holds h WHERE {' AND '.join(where)} ORDER BY h.id DESC LIMIT ?"
    return [read(db, r[0]) for r in db.execute(sql, [*params, limit]).fetchall()]


def read(db, hold_id: int) -> Hold:
    r = db.execute(
        "SELECT id, kind, reason, clip_id, officer_id, window_from, window_to, case_ref, created_at, "
        "created_by, released_at, released_by FROM holds WHERE id = ?",
        [hold_id],
    ).fetchone()
    if r is None:
        raise NotFound(f"no hold {hold_id}")
    clips = len(clips_of(db, hold_id)) if r[10] is None else 0
    return Hold(
        id=r[0],
        kind=r[1],
        reason=r[2],
        clip_id=r[3],
        officer_id=r[4],
        window_from=from_iso(r[5]) if r[5] else None,
        window_to=from_iso(r[6]) if r[6] else None,
        case_ref=r[7],
        created_at=from_iso(r[8]),
        created_by=r[9],
        released_at=from_iso(r[10]) if r[10] else None,
        released_by=r[11],
        clips=clips,
    )


def clips_of(db, hold_id: int) -> list[str]:
    """The clips at central this hold covers (whether or not it still applies)."""
    kind, clip_id, officer, start, end, case_ref = db.execute(
        "SELECT kind, clip_id, officer_id, window_from, window_to, case_ref FROM holds WHERE id = ?", [hold_id]
    ).fetchone()
    if kind == "clip":
        return [clip_id]
    if kind == "case":
        return [
            r[0] for r in db.execute("SELECT clip_id FROM case_clips WHERE case_ref = ? ORDER BY clip_id", [case_ref])
        ]
    return [
        r[0]
        for r in db.execute(
            "SELECT clip_id FROM attributions WHERE (officer_id = ? OR officer_id IS NULL) AND recorded_at >= ? "
            "AND recorded_at < ? ORDER BY recorded_at",
            [officer, start, end],
        )
    ]


def requests_on_clip(db, clip_id: str) -> list[str]:
    """References of the public requests that protect this clip now (``REQUEST_HELD``'s, for one clip)."""
    return sorted(
        r[0]
        for r in db.execute(
            f"""SELECT kc.reference FROM keep_request_clips kc JOIN keep_requests r ON r.reference = kc.reference
               AND r.state = 'narrowed' WHERE kc.clip_id = :clip
               UNION SELECT r.reference FROM clips rc JOIN keep_requests r ON r.state = 'open'
               AND rc.recorded_at >= r.hold_from AND rc.recorded_at < r.hold_to
               WHERE rc.clip_id = :clip AND {in_request_area("rc", "r.borough")}
               UNION SELECT r.reference FROM attributions a JOIN keep_requests r ON r.state = 'open'
               AND a.recorded_at >= r.hold_from AND a.recorded_at < r.hold_to
               WHERE a.clip_id = :clip AND {in_request_area("a", "r.borough")}""",
            {"clip": clip_id},
        )
    )


def on_clip(db, clip_id: str) -> list[int]:
    """Ids of the holds that protect this clip now."""
    return sorted(
        r[0]
        for r in db.execute(
            """SELECT h.id FROM holds h WHERE h.released_at IS NULL AND (
               (h.kind = 'clip' AND h.clip_id = :clip)
               OR (h.kind = 'case' AND h.case_ref IN (SELECT case_ref FROM case_clips WHERE clip_id = :clip))
               OR (h.kind = 'officer' AND EXISTS (
                   SELECT 1 FROM attributions a WHERE a.clip_id = :clip
                   AND (a.officer_id = h.officer_id OR a.officer_id IS NULL)
                   AND a.recorded_at >= h.window_from AND a.recorded_at < h.window_to)))""",
            {"clip": clip_id},
        )
    )


def list_held_now(db) -> None:
    """``held_now``: the clips an active hold protects, listed inside the caller's transaction."""
    db.execute(f"CREATE TEMP TABLE IF NOT EXISTS held_now (clip_id TEXT PRIMARY KEY) {db.dialect.without_rowid()}")
    db.execute("DELETE FROM held_now")
    db.execute(f"INSERT INTO held_now {held_clips(db.dialect)} ON CONFLICT DO NOTHING")
    if db.dialect.postgres:
        # A temporary table has no statistics until analysed: without them PostgreSQL may check
        # ``NOT IN held_now`` by scanning it for every candidate clip (10 s a batch at 2M clips).
        db.execute("ANALYZE held_now")


# -- hand-offs: called by other packages, inside their transactions ---------------------------


HOLDS_CHUNK = 5000
"""Clips looked up a statement by ``announce_holds``. Planning its many branches costs ~1.7 ms on
PostgreSQL (a list parameter is planned each time, never prepared: ``database._of_many``), which at
500 clips a statement was a tenth of the projection's time in PostgreSQL; each clip's own lookups
are index probes, as cheap in a large chunk as in a small one."""


def announce_holds(db, changes, clip_ids: list[str], *, held_only: bool = False) -> None:
    """Each clip's held state now, down the feed to the borough of the station that has its copy.

    Called wherever a clip can come under a hold or leave one: a hold placed or released, a
    clip added to a case, and a clip's attribution set or changed (an officer hold placed
    before the clip reached central covers it from then on). ``held_only``: for clips new to
    central, whose stations hold nothing yet, only the held ones are worth a message. A station
    central has not heard from yet has the borough its config entry gives."""
    told: list[tuple[ClipHold, tuple[str | None, ...]]] = []
    for start in range(0, len(clip_ids), HOLDS_CHUNK):
        chunk = clip_ids[start : start + HOLDS_CHUNK]
        # Lookups by key only (scalar subqueries), whatever the planner thinks of the tables' sizes:
        # joins were hashed over all the attributions while a new database's statistics were young.
        rows = db.execute(
            f"""SELECT c.clip_id, c.station_id, (SELECT borough FROM stations WHERE station_id = c.station_id), c.held
                FROM (SELECT c.clip_id, {HELD} AS held,
                             COALESCE(
                                 (SELECT cl.station_id FROM clips cl WHERE cl.clip_id = c.clip_id),
                                 (SELECT a.station_id FROM attributions a WHERE a.clip_id = c.clip_id)
                             ) AS station_id
                      FROM (SELECT value AS clip_id FROM {db.dialect.values_of()} chunk) c
                      {"WHERE " + HELD if held_only else ""}) c""",
            [db.dialect.many(chunk)],
        ).fetchall()
        for clip_id, station_id, borough, held in rows:
            entry = changes.settings.stations.get(station_id) if station_id else None
            borough = borough or (entry.borough if entry else None)
            if borough:
                told.append((ClipHold(clip_id=clip_id, held=bool(held)), (borough,)))
    changes.emit_many(db, told)


def announce_reattributed(db, changes, clip_ids: list[str]) -> None:
    """After clips' attribution changed: an officer hold may now cover them or no longer.

    Only clips recorded inside some active officer hold's window can have changed state, so
    only those are announced (a docking re-attributes a few clips; most are in no window)."""
    if not clip_ids:
        return
    in_windows = [
        r[0]
        for r in db.execute(
            f"""SELECT a.clip_id FROM attributions a WHERE {db.dialect.any_of("a.clip_id")}
           AND EXISTS (SELECT 1 FROM holds h WHERE h.kind = 'officer' AND h.released_at IS NULL
                       AND a.recorded_at >= h.window_from AND a.recorded_at < h.window_to)""",
            [db.dialect.many(clip_ids)],
        )
    ]
    announce_holds(db, changes, in_windows)


def held_clips_of_borough(db, borough: str, settings: CentralSettings) -> list[str]:
    """For a station's snapshot: the borough's stations' clips that a hold protects."""
    stations = [s for s, entry in settings.stations.items() if entry.borough == borough]
    if not stations:
        return []
    return [
        r[0]
        for r in db.execute(
            f"SELECT c.clip_id FROM clips c WHERE c.station_id IN ({','.join('?' * len(stations))}) "
            "AND NOT EXISTS (SELECT 1 FROM clip_retention r WHERE r.clip_id = c.clip_id AND r.purged_at IS NOT NULL) "
            f"AND {HELD} ORDER BY c.clip_id",
            stations,
        )
    ]
