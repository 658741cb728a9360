"""Requests to keep footage past their review date: escalated, never let go.

The requester is promised a review by ``review_by`` (``REVIEW_DAYS`` after the request arrived).
An open request past it is **overdue**. Nothing closes it or releases its footage: deleting what a
member of the public asked to keep because staff were slow would be wrong. It is escalated
instead, where the people who answer for it look:

- the queue lists overdue requests first, the longest overdue at the top, marked as such
  (``KeepRequests.queue``);
- the dashboard's overview counts them among its alerts (a borough's users: their borough's);
- the hourly job (``escalate``) writes each to the audit trail once, the first time it finds it
  overdue (``keep-request-overdue``), so how late reviews were stays on the record after they end.

A narrowed request has been reviewed: it is never overdue.
"""

from __future__ import annotations

from datetime import datetime

from central.core.database import Database
from central.evidence import audit
from fleet.clock import from_iso, to_iso, utc_now

ACTION = "keep-request-overdue"


def is_overdue(state: str, review_by: datetime, now: datetime) -> bool:
    """The rule ``overdue_count`` and ``escalate`` apply in SQL, for one request."""
    return state == "open" and review_by < now


def overdue_count(db, borough: str | None, now: datetime) -> int:
    """Open requests past their review date (``borough``: that borough's only). Inside the caller's read."""
    return db.execute(
        "SELECT count(*) FROM keep_requests WHERE state = 'open' AND review_by < ?"
        + (" AND borough = ?" if borough is not None else ""),
        [to_iso(now), *([borough] if borough is not None else [])],
    ).fetchone()[0]


def escalate(writer: Database, now: datetime | None = None) -> int:
    """Audit each open request found past its review date for the first time; how many were."""
    now = now or utc_now()
    with writer.write() as db:
        late = db.execute(
            "SELECT k.reference, k.borough, k.review_by FROM keep_requests k "
            "WHERE k.state = 'open' AND k.review_by < ? AND NOT EXISTS (SELECT 1 FROM audit a "
            "WHERE a.object_type = 'keep_request' AND a.object_id = k.reference AND a.action = ?) "
            "ORDER BY k.review_by, k.reference",
            [to_iso(now), ACTION],
        ).fetchall()
        audit.record_many(
            db,
            [
                dict(
                    actor="central",
                    action=ACTION,
                    object_type="keep_request",
                    object_id=reference,
                    at=now,
                    detail=f"{borough}: not reviewed by {from_iso(review_by):%Y-%m-%d}, the date the requester "
                    "was promised; it keeps its footage until an information-management officer closes it",
                )
                for reference, borough, review_by in late
            ],
        )
    return len(late)
