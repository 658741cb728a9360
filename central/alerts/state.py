"""The alerts as the digest job last counted them, and what each destination was told of them.

SQL only, inside the caller's transaction (the digest's: what it records and the message it
writes commit together, or neither does).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

import msgspec

from central.alerts.digest import Key, News, Told
from fleet.clock import from_iso, to_iso


class Alert(msgspec.Struct, kw_only=True):
    """One (kind, borough) as last counted; ``borough`` None for the force's own."""

    kind: str
    borough: str | None
    count: int
    active_since: datetime | None
    changed_at: datetime


def record(db, found: Mapping[Key, int], now: datetime) -> None:
    """The counts just taken: an alert that becomes active is active since now, one at 0 since never."""
    at = to_iso(now)
    db.executemany(
        "INSERT INTO alerts (kind, borough, count, active_since, changed_at) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (kind, borough) DO UPDATE SET count = excluded.count, "
        "active_since = CASE WHEN excluded.count = 0 THEN NULL WHEN alerts.count = 0 THEN excluded.active_since "
        "ELSE alerts.active_since END, "
        "changed_at = CASE WHEN alerts.count = excluded.count THEN alerts.changed_at ELSE excluded.changed_at END",
        [(kind, borough, count, at if count > 0 else None, at) for (kind, borough), count in sorted(found.items())],
    )


def alerts(db, *, active_only: bool = False) -> list[Alert]:
    rows = db.execute(
        "SELECT kind, borough, count, active_since, changed_at FROM alerts"
        + (" WHERE count > 0" if active_only else "")
        + " ORDER BY kind, borough"
    ).fetchall()
    return [
        Alert(
            kind=r[0],
            borough=r[1] or None,
            count=r[2],
            active_since=from_iso(r[3]) if r[3] else None,
            changed_at=from_iso(r[4]),
        )
        for r in rows
    ]


def told(db, destination: str) -> dict[Key, Told]:
    return {
        (r[0], r[1]): Told(r[2], from_iso(r[3]))
        for r in db.execute(
            "SELECT kind, borough, count, told_at FROM alert_notices WHERE destination = ?", [destination]
        )
    }


def tell(db, destination: str, items: Iterable[News], now: datetime) -> None:
    """``destination`` has been told ``items`` (its message is in the outbox, in this transaction)."""
    db.executemany(
        "INSERT INTO alert_notices (destination, kind, borough, count, told_at) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (destination, kind, borough) DO UPDATE SET count = excluded.count, told_at = excluded.told_at",
        [(destination, n.kind, n.borough, n.number, to_iso(now)) for n in items],
    )
