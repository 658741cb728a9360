"""The audit trail of fleet actions: who did what, when, where, to which object.

Appended inside the transaction of the change it records, so a change is never without
its record. Tamper-evident: each record carries the SHA-256 of its own content and of the
record before it (a hash chain, from ``GENESIS``), the head of the chain (last id and hash)
is kept beside it, and every ``ANCHOR_EVERY`` records an anchor is written (and can be
published elsewhere). ``verify`` recomputes the chain and names the first record that does
not match: an edited, deleted, inserted or reordered row breaks it from there on.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

import msgspec
from msgspec import Struct

from fleet.clock import from_iso, to_iso, utc_now

CENTRAL = "central"
"""The place of actions taken at central (its API and commands); stations' carry the station id."""
GENESIS = "0" * 64
ANCHOR_EVERY = 1000
COLUMNS = "id, at, actor, place, action, object_type, object_id, detail"

_encode = msgspec.json.Encoder().encode


class AuditRecord(Struct, kw_only=True):
    at: datetime
    actor: str
    place: str | None
    action: str
    object_type: str
    object_id: str
    detail: str = ""


class ChainReport(Struct, kw_only=True):
    records: int
    intact: bool
    last_hash: str
    first_broken: int | None = None
    """The id of the first record that does not match (or where one is missing)."""
    reason: str | None = None


def record_hash(row: tuple, prev_hash: str) -> str:
    """The hash of one record: its id, content and the previous record's hash."""
    return hashlib.sha256(_encode([*row, prev_hash])).hexdigest()


def _head(db) -> tuple[int, str]:
    row = db.execute("SELECT last_id, last_hash FROM audit_head WHERE one = 1").fetchone()
    return (row[0], row[1]) if row else (0, GENESIS)


def _append(db, rows: list[tuple]) -> None:
    """Chain and insert rows of (at, actor, place, action, object_type, object_id, detail)."""
    last_id, prev = _head(db)
    chained, anchors = [], []
    for content in rows:
        last_id += 1
        row = (last_id, *content)
        prev_hash, prev = prev, record_hash(row, prev)
        chained.append((*row, prev_hash, prev))
        if last_id % ANCHOR_EVERY == 0:
            anchors.append((last_id, prev, content[0]))
    db.conn.executemany(f"INSERT INTO audit ({COLUMNS}, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        chained)
    db.conn.executemany("INSERT INTO audit_anchors (audit_id, hash, at) VALUES (?, ?, ?)", anchors)
    db.execute("INSERT INTO audit_head (one, last_id, last_hash) VALUES (1, ?, ?) "
               "ON CONFLICT (one) DO UPDATE SET last_id = excluded.last_id, last_hash = excluded.last_hash",
               [last_id, prev])


def record(db, *, actor: str, action: str, object_type: str, object_id: str, place: str | None = None,
           detail: str = "", at: datetime | None = None) -> None:
    """Append one record; call inside the (BEGIN IMMEDIATE) transaction that makes the change."""
    _append(db, [(to_iso(at or utc_now()), actor, place or CENTRAL, action, object_type, object_id, detail)])


def record_many(db, records: list[dict]) -> None:
    """Append many records at once (bulk commits): each dict has ``record``'s keyword arguments."""
    now = utc_now()
    times: dict = {}  # bulk records mostly share one time: format it once
    _append(db, [(times.get(r.get("at") or now) or times.setdefault(r.get("at") or now, to_iso(r.get("at") or now)),
                  r["actor"], r.get("place") or CENTRAL, r["action"], r["object_type"],
                  r["object_id"], r.get("detail", "")) for r in records])


def chain_unhashed(db) -> int:
    """Hash records written before the chain existed (schema v6), in id order; once.

    Only while the chain has no head yet: afterwards a record without a hash is tampering,
    for ``verify`` to report, never something to hash over."""
    if db.execute("SELECT 1 FROM audit_head WHERE one = 1").fetchone():
        return 0
    rows = db.execute(f"SELECT {COLUMNS} FROM audit WHERE hash IS NULL ORDER BY id").fetchall()
    if not rows:
        return 0
    prev = GENESIS
    first = rows[0][0]
    before = db.execute("SELECT hash FROM audit WHERE id < ? ORDER BY id DESC LIMIT 1", [first]).fetchone()
    if before:
        prev = before[0]
    updates = []
    for row in rows:
        prev_hash, prev = prev, record_hash(tuple(row), prev)
        updates.append((prev_hash, prev, row[0]))
    db.conn.executemany("UPDATE audit SET prev_hash = ?, hash = ? WHERE id = ?", updates)
    db.execute("INSERT INTO audit_head (one, last_id, last_hash) VALUES (1, ?, ?) "
               "ON CONFLICT (one) DO UPDATE SET last_id = excluded.last_id, last_hash = excluded.last_hash",
               [rows[-1][0], prev])
    return len(rows)


def verify_file(path) -> ChainReport:
    """``verify`` on its own read-only connection: a consistent snapshot (WAL) that blocks no writer."""
    import sqlite3

    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    try:
        return verify(conn)
    finally:
        conn.close()


def verify(db) -> ChainReport:
    """Recompute the whole chain in one read transaction; the first record that does not match is named."""
    db.execute("BEGIN")
    try:
        return _verify(db)
    finally:
        db.execute("COMMIT")


def _verify(db) -> ChainReport:
    prev, expected_id, count = GENESIS, 1, 0
    anchors = dict(db.execute("SELECT audit_id, hash FROM audit_anchors").fetchall())
    for row in db.execute(f"SELECT {COLUMNS}, prev_hash, hash FROM audit ORDER BY id"):
        content, prev_hash, stored = tuple(row[:8]), row[8], row[9]
        if content[0] != expected_id:
            return ChainReport(records=count, intact=False, last_hash=prev, first_broken=expected_id,
                               reason=f"record {expected_id} is missing (the next one is {content[0]})")
        if prev_hash != prev:
            return ChainReport(records=count, intact=False, last_hash=prev, first_broken=content[0],
                               reason=f"record {content[0]} does not follow record {content[0] - 1} "
                                      "(removed, inserted or reordered)")
        computed = record_hash(content, prev)
        if computed != stored:
            return ChainReport(records=count, intact=False, last_hash=prev, first_broken=content[0],
                               reason=f"record {content[0]} was changed after it was written")
        if content[0] in anchors and anchors[content[0]] != computed:
            return ChainReport(records=count, intact=False, last_hash=prev, first_broken=content[0],
                               reason=f"record {content[0]} does not match its anchor")
        prev, expected_id, count = computed, expected_id + 1, count + 1
    beyond = [a for a in anchors if a > count]
    if beyond:
        return ChainReport(records=count, intact=False, last_hash=prev, first_broken=count + 1,
                           reason=f"an anchor names record {min(beyond)}, which is gone (records at the end were "
                                  "removed)")
    last_id, last_hash = _head(db)
    if (last_id, last_hash) != (count, prev):
        return ChainReport(records=count, intact=False, last_hash=prev, first_broken=count + 1,
                           reason=f"the chain's head says {last_id} records ending in {last_hash[:12]}…; "
                                  f"{count} are there (records at the end were removed)")
    return ChainReport(records=count, intact=True, last_hash=prev)


def records_for(db, object_type: str, object_id: str, limit: int = 200) -> list[AuditRecord]:
    rows = db.execute("SELECT at, actor, place, action, object_type, object_id, detail FROM audit "
                      "WHERE object_type = ? AND object_id = ? ORDER BY id DESC LIMIT ?",
                      [object_type, object_id, limit]).fetchall()
    return [AuditRecord(at=from_iso(r[0]), actor=r[1], place=r[2], action=r[3], object_type=r[4],
                        object_id=r[5], detail=r[6]) for r in rows]
