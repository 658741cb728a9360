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
from typing import Any

import msgspec

from central.evidence import keep_requests
from fleet.clock import from_iso

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
    rows = keep_requests.counts_by_borough_month(db, month, month, from_iso(as_of))
    return RequestCounts(received={r.borough: r.received for r in rows}, outcomes={r.borough: r.outcomes for r in rows})
