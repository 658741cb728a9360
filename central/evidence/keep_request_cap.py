"""The most requests to keep footage one borough takes from the public form in a day.

Every request protects all of its borough's footage in its window (up to 26 hours, margin
included) until an information-management officer has looked at it, so the form is also a way
to keep footage from being deleted without anyone deciding it should be. The throttles
(``central.access.login_throttle.FormThrottle``) bound what one address, and everyone together,
may send; this bounds what one borough takes in any 24 hours, whoever sends it:
``[keep_requests] per_borough_per_day`` (docs/contracts.md says why 50). A request closed since
(a flood closed in bulk as "not actionable") no longer counts, so the officers who dealt with a
flood open the form again; nobody else can. A request closed at once because its footage was
already deleted still counts: such requests need no officer, and each answers whether any
recording was made in a window, so they must not be free.

Past it a request is refused (``BoroughFull``, 429) and nothing of it is stored: the form says so,
keeps what the requester typed and asks them to phone instead, so no request is lost unseen. The
refusal is counted by the form's throttle and audited (the borough, the window, the address's
pseudonym of the day; never the contact, the place or the shoulder numbers).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from central.evidence import audit
from fleet.clock import from_iso, to_iso
from fleet.errors import TooManyRequests

DAY = timedelta(hours=24)


class BoroughFull(TooManyRequests):
    """A borough has taken as many requests in the last 24 hours as it may: this one is refused."""

    def __init__(self, borough: str, cap: int, retry_after_s: int) -> None:
        super().__init__(
            f"we have had as many requests for {borough} today as we can review in time",
            headers={"Retry-After": str(retry_after_s)},
        )
        self.borough = borough
        self.cap = cap


def check(db, borough: str, cap: int, now: datetime) -> None:
    """BoroughFull when ``borough`` took ``cap`` requests, not closed by an officer since, in the 24 hours before
    ``now``. Inside the transaction that stores the request (central's writes are serialised), so
    the cap is exact."""
    taken, oldest = db.execute(
        "SELECT count(*), min(received_at) FROM keep_requests WHERE borough = ? AND received_at > ? "
        "AND (state != 'closed' OR outcome = 'already_deleted')",
        [borough, to_iso(now - DAY)],
    ).fetchone()
    if taken >= cap:
        # When the oldest of them leaves the 24 hours, in whole hours: not the minute another member
        # of the public asked.
        wait = math.ceil((from_iso(oldest) + DAY - now).total_seconds() / 3600) * 3600
        raise BoroughFull(borough, cap, max(3600, wait))


def record_refusal(db, refused: BoroughFull, window: tuple[datetime, datetime], place: str) -> None:
    """The refusal in the audit trail: which borough, which window and from where (``place``: the
    address's pseudonym, ``central.access.pseudonyms``), so that a flood is seen and a requester who
    phones can be matched; nothing the requester wrote."""
    audit.record(
        db,
        actor="public",
        action="keep-request-refused",
        object_type="borough",
        object_id=refused.borough,
        place=place,
        detail=f"{refused.cap} requests in 24 hours reached: a request for {to_iso(window[0])} to "
        f"{to_iso(window[1])} refused (the requester was asked to phone)",
    )
