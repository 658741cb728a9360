"""The audit trail of fleet actions: who did what, when, where, to which object.

Appended inside the transaction of the change it records, so a change is never without
its record. (Issue 5 turns this into a hash-chained, tamper-evident trail.)
"""

from __future__ import annotations

from datetime import datetime

from msgspec import Struct

from fleet.clock import from_iso, to_iso, utc_now


CENTRAL = "central"
"""The place of actions taken at central (its API and commands); stations' carry the station id."""


class AuditRecord(Struct, kw_only=True):
    at: datetime
    actor: str
    place: str | None
    action: str
    object_type: str
    object_id: str
    detail: str = ""


def record(db, *, actor: str, action: str, object_type: str, object_id: str, place: str | None = None,
           detail: str = "", at: datetime | None = None) -> None:
    """Append one record; call inside the transaction that makes the change."""
    db.execute("INSERT INTO audit (at, actor, place, action, object_type, object_id, detail) "
               "VALUES (?, ?, ?, ?, ?, ?, ?)",
               [to_iso(at or utc_now()), actor, place or CENTRAL, action, object_type, object_id, detail])


def record_many(db, records: list[dict]) -> None:
    """Append many records at once (bulk commits): each dict has ``record``'s keyword arguments."""
    now = utc_now()
    db.conn.executemany(
        "INSERT INTO audit (at, actor, place, action, object_type, object_id, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(to_iso(r.get("at") or now), r["actor"], r.get("place") or CENTRAL, r["action"], r["object_type"], r["object_id"],
          r.get("detail", "")) for r in records])


def records_for(db, object_type: str, object_id: str, limit: int = 200) -> list[AuditRecord]:
    rows = db.execute("SELECT at, actor, place, action, object_type, object_id, detail FROM audit "
                      "WHERE object_type = ? AND object_id = ? ORDER BY id DESC LIMIT ?",
                      [object_type, object_id, limit]).fetchall()
    return [AuditRecord(at=from_iso(r[0]), actor=r[1], place=r[2], action=r[3], object_type=r[4],
                        object_id=r[5], detail=r[6]) for r in rows]
