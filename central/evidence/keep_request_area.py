"""What a public request to keep footage covers: the clips of its area and window, and what the
audit trail says of those already deleted.

A request's area is its borough (``holds.in_request_area``): the clips docked at the borough's
stations or recorded by its cameras, so a camera re-allocated after the recording takes none of
its clips out. These are the queries ``central.evidence.keep_requests`` runs inside its own
transactions; ``holds.REQUEST_HELD`` is the same rule for the deletion queries.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from central.evidence.holds import REQUEST_HELD, STAFF_HELD
from central.evidence.keep_request_form import Deleted
from fleet.clock import from_iso, to_iso


class OverRetention(msgspec.Struct, kw_only=True):
    """A borough's clips past their end of retention that only public requests keep."""

    borough: str
    clips: int
    longest_days: int
    """How long past its end of retention the longest-kept of them is."""
    mean_days: float


def not_disposed(db, clip_ids: list[str]) -> list[str]:
    """Of these clips, those a reviewer has not disposed of (``RetentionService.review``)."""
    if not clip_ids:
        return []
    disposed = {
        r[0]
        for r in db.execute(
            "SELECT object_id FROM audit WHERE object_type = 'clip' AND action = 'soft-delete' "
            f"AND detail = 'disposed of at review' AND {db.dialect.any_of('object_id')}",
            [db.dialect.many(clip_ids)],
        )
    }
    return [c for c in clip_ids if c not in disposed]


def query(borough: str, hold_from: str, hold_to: str) -> tuple[str, list[str]]:
    """The ids of the verified clips at central a request's area covers (``in_request_area``: by
    the borough's stations or its cameras), as a query and its parameters; each branch an index."""
    window = "state = 'verified' AND recorded_at >= ? AND recorded_at < ?"
    return (
        f"SELECT clip_id FROM clips WHERE station_id IN (SELECT station_id FROM stations WHERE borough = ?) "
        f"AND {window} UNION SELECT clip_id FROM clips WHERE device_serial IN "
        f"(SELECT serial FROM devices WHERE borough = ?) AND {window}",
        [borough, hold_from, hold_to] * 2,
    )


def clips(db, borough: str, hold_from: str, hold_to: str, *, alive: bool = True, stations: bool = False) -> list[str]:
    """The clips a request's window covers: at central and not purged (``alive``), or purged
    (not ``alive``); ``stations``: also those central knows only from a station's events."""
    area, params = query(borough, hold_from, hold_to)
    purged = "IS NULL" if alive or stations else "IS NOT NULL"
    at_central = [
        r[0]
        for r in db.execute(
            f"SELECT a.clip_id FROM ({area}) a LEFT JOIN clip_retention r ON r.clip_id = a.clip_id "
            f"WHERE r.purged_at {purged}",
            params,
        )
    ]
    if not stations:
        return at_central
    reported = [
        r[0]
        for r in db.execute(
            "SELECT clip_id FROM attributions WHERE device_serial IN (SELECT serial FROM devices WHERE borough = ?) "
            "AND recorded_at >= ? AND recorded_at < ?",
            [borough, hold_from, hold_to],
        )
    ]
    return sorted(set(at_central) | set(reported))


def deleted_from_audit(db, clip_ids: list[str], before: datetime | None = None) -> Deleted | None:
    """How many of these (purged) clips were deleted, and when the last was, as the audit trail
    records it; ``before``: only those whose last deletion was by then (a request's receipt: what
    its review released and the rules deleted later had not "already" been deleted)."""
    if not clip_ids:
        return None
    found = db.execute(
        f"SELECT a.object_id, a.at FROM audit a WHERE a.object_type = 'clip' AND a.action = 'soft-delete' "
        f"AND {db.dialect.any_of('a.object_id')} ORDER BY a.id",
        [db.dialect.many(clip_ids)],
    ).fetchall()
    last = {clip_id: from_iso(at) for clip_id, at in found}  # a restored clip deleted again: its last deletion
    days = sorted(at.date() for at in last.values() if before is None or at <= before)
    if not days:
        return None
    return Deleted(clips=len(days), last=days[-1])


def kept_only_by_requests(db, borough: str | None, now: datetime) -> list[OverRetention]:
    """Per borough (a clip's station's, else its camera's): clips past their end of retention that
    public requests alone keep, and for how long. ``borough``: that borough's only."""
    rows = db.execute(
        "SELECT COALESCE(s.borough, d.borough) AS b, r.retain_until FROM clip_retention r "
        "JOIN clips c ON c.clip_id = r.clip_id LEFT JOIN stations s ON s.station_id = c.station_id "
        "LEFT JOIN devices d ON d.serial = c.device_serial "
        f"WHERE r.deleted_at IS NULL AND r.retain_until <= ? AND {REQUEST_HELD} AND NOT {STAFF_HELD}"
        + (" AND COALESCE(s.borough, d.borough) = ?" if borough is not None else ""),
        [to_iso(now), *([borough] if borough is not None else [])],
    ).fetchall()
    by: dict[str, list[float]] = {}
    for name, until in rows:
        by.setdefault(name, []).append((now - from_iso(until)).total_seconds() / 86400)
    return [
        OverRetention(borough=b, clips=len(days), longest_days=int(max(days)), mean_days=sum(days) / len(days))
        for b, days in sorted(by.items())
    ]
