"""What the public figures read from evidence's records: clips, purges, the custody trail.

Every figure of a month is counted by a time central itself wrote when the thing happened
(a clip's ``verified_at``, its ``purged_at``, the custody record of its ingest), never by a
time that can still move: once a month is over, no later record changes its counts. A clip's
borough is its station's (``boroughs``: station → borough): a camera's own borough can change
later, its station's cannot. Times are stored as ISO text of one width, so a month is the
first seven characters and a range is a text comparison on either database.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgspec

from central.evidence.keep_request_form import FIGURE_OUTCOMES
from fleet.clock import from_iso, to_iso, utc_now

MonthRow = tuple[str, str | None, int, int, int]
"""(month ``YYYY-MM``, borough or None, clips, of them marked evidential, distinct cameras)."""


def _borough_of(db, boroughs: Mapping[str, str], column: str) -> tuple[str, list[Any]]:
    """A SQL expression naming the borough of ``column`` (a station id), and its parameters."""
    if not boroughs:
        return "CAST(NULL AS TEXT)", []
    whens = " ".join("WHEN ? THEN ?" for _ in boroughs)
    return f"CASE {column} {whens} ELSE NULL END", [v for pair in sorted(boroughs.items()) for v in pair]


def clips_by_month(db, boroughs: Mapping[str, str], before: str) -> list[MonthRow]:
    """Clips verified at central before ``before``, by the month of verification and borough:
    how many, how many the officer marked evidential on the camera (the flag the clip arrived
    with, which nothing changes later), and how many cameras recorded them. One pass over clips."""
    borough, params = _borough_of(db, boroughs, "station_id")
    return [
        (r[0], r[1], int(r[2]), int(r[3]), int(r[4]))
        for r in db.execute(
            f"SELECT substr(verified_at, 1, 7), {borough}, count(*), sum(evidential), count(DISTINCT device_serial) "
            "FROM clips WHERE state = 'verified' AND verified_at < ? GROUP BY 1, 2",
            [*params, before],
        )
    ]


def default_rule_purges_by_month(db, boroughs: Mapping[str, str], before: str) -> list[tuple[str, str | None, int]]:
    """Clips purged before ``before`` (the bytes deleted for good, which no restore undoes) that
    were in no retention category, so deleted under the default rule: (month of the purge,
    borough, clips). A purged clip's categories can no longer change."""
    borough, params = _borough_of(db, boroughs, "c.station_id")
    return [
        (r[0], r[1], int(r[2]))
        for r in db.execute(
            f"SELECT substr(r.purged_at, 1, 7), {borough}, count(*) FROM clip_retention r "
            "JOIN clips c ON c.clip_id = r.clip_id "
            "WHERE r.purged_at IS NOT NULL AND r.purged_at < ? AND c.categories = '[]' GROUP BY 1, 2",
            [*params, before],
        )
    ]


def dock_to_central_hours(db, boroughs: Mapping[str, str], start: str, end: str) -> list[tuple[str | None, float]]:
    """(borough, hours) for each clip verified in [start, end): from the custody record of its ingest
    at the station's dock (the station's clock, copied off the camera) to its verification at
    central. A station clock ahead of central's counts as no time, never as less."""
    borough, params = _borough_of(db, boroughs, "c.station_id")
    rows = db.execute(
        f"SELECT {borough}, c.verified_at, min(a.at) FROM clips c "
        "JOIN audit a ON a.object_type = 'clip' AND a.object_id = c.clip_id AND a.action = 'ingest' "
        "WHERE c.state = 'verified' AND c.verified_at >= ? AND c.verified_at < ? "
        "GROUP BY c.clip_id, c.station_id, c.verified_at",
        [*params, start, end],
    ).fetchall()
    return [
        (borough, max(0.0, (from_iso(verified) - from_iso(docked)).total_seconds() / 3600))
        for borough, verified, docked in rows
    ]


class RequestCounts(msgspec.Struct, frozen=True, kw_only=True):
    """Requests from the public to keep footage received in one month (by central's clock)."""

    received: dict[str, int] = {}
    """{borough: requests received in the month}."""
    outcomes: dict[str, dict[str, int]] = {}
    """{borough: {outcome: how many of those requests stood so at ``as_of``}}: every request
    received counts under one outcome ("under_review" while open)."""


def keep_request_counts(db, month: str, as_of: str) -> RequestCounts:
    """Requests to keep footage received in ``month`` (``YYYY-MM``), by borough, and their
    outcomes as they stood at ``as_of`` (the month's publication): the same answer whenever asked."""
    rows = counts_by_borough_month(db, month, month, from_iso(as_of))
    return RequestCounts(received={r.borough: r.received for r in rows}, outcomes={r.borough: r.outcomes for r in rows})


class MonthCounts(msgspec.Struct, kw_only=True):
    """Requests received in one borough in one month, by their outcome (``FIGURE_OUTCOMES``)."""

    borough: str
    month: str
    """YYYY-MM, of receipt (UTC)."""
    received: int
    outcomes: dict[str, int]


def counts_by_borough_month(
    db, first_month: str | None = None, last_month: str | None = None, as_of: datetime | None = None
) -> list[MonthCounts]:
    """Requests received per borough and month (``YYYY-MM`` of receipt, between the months given),
    each with its outcome as it stood at ``as_of`` (default: now): "under_review", "footage_kept"
    (narrowed), or the outcome it was closed with. For the open figures: no personal data, and the
    same answer for the same ``as_of`` whatever happened since. Inside the caller's read."""
    at = to_iso(as_of or utc_now())
    month = "substr(received_at, 1, 7)"
    where = ["received_at <= :at"]
    if first_month:
        where.append(f"{month} >= :first")
    if last_month:
        where.append(f"{month} <= :last")
    rows = db.execute(
        f"SELECT borough, {month}, CASE WHEN closed_at IS NOT NULL AND closed_at <= :at THEN outcome "
        "WHEN narrowed_at IS NOT NULL AND narrowed_at <= :at THEN 'footage_kept' ELSE 'under_review' END, count(*) "
        f"FROM keep_requests WHERE {' AND '.join(where)} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        {"at": at, "first": first_month, "last": last_month},
    ).fetchall()
    found: dict[tuple[str, str], MonthCounts] = {}
    for borough, month_of, outcome, n in rows:
        counts = found.setdefault(
            (borough, month_of),
            MonthCounts(borough=borough, month=month_of, received=0, outcomes=dict.fromkeys(FIGURE_OUTCOMES, 0)),
        )
        counts.received += n
        counts.outcomes[outcome] += n
    return list(found.values())
