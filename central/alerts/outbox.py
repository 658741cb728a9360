"""The messages waiting to go: written with what they tell, sent, then marked (at least once).

A message is written in the digest's transaction, so the notices it records are never lost to a
crash; it is marked ``sent`` only after the receiver or the relay accepted it, so a crash between
the two sends it again (the one duplicate: it keeps its ``message_id``, which a receiver uses to
drop it). ``failed``: given up after ``[alerts] max_attempts`` or a refusal a retry cannot mend.
Per destination, messages go in order: a later one waits while an earlier is pending.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from central.alerts.message import Digest, encode
from fleet.clock import from_iso, to_iso

ERROR_CHARS = 500


class Pending(msgspec.Struct, kw_only=True):
    id: int
    message_id: str
    destination: str
    channel: str
    body: bytes
    attempts: int


class Delivery(msgspec.Struct, kw_only=True):
    """A message's state, for ``fleet central alerts list``."""

    message_id: str
    destination: str
    channel: str
    items: int
    state: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    done_at: datetime | None
    last_error: str | None


def enqueue(db, digest: Digest, channel: str) -> None:
    db.execute(
        "INSERT INTO alert_messages (message_id, destination, channel, body, items, created_at, state, "
        "next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)",
        [
            digest.message_id,
            digest.destination,
            channel,
            encode(digest).decode(),
            len(digest.items),
            to_iso(digest.created_at),
            to_iso(digest.created_at),
        ],
    )


def due(db, now: datetime, limit: int = 100) -> list[Pending]:
    """Each destination's oldest pending message, if its next attempt is due (order kept per destination)."""
    rows = db.execute(
        "SELECT m.id, m.message_id, m.destination, m.channel, m.body, m.attempts FROM alert_messages m "
        "WHERE m.state = 'pending' AND m.next_attempt_at <= ? AND NOT EXISTS (SELECT 1 FROM alert_messages e "
        "WHERE e.state = 'pending' AND e.destination = m.destination AND e.id < m.id) ORDER BY m.id LIMIT ?",
        [to_iso(now), limit],
    ).fetchall()
    return [
        Pending(id=r[0], message_id=r[1], destination=r[2], channel=r[3], body=r[4].encode(), attempts=r[5])
        for r in rows
    ]


def sent(db, message_id: int, now: datetime) -> None:
    db.execute(
        "UPDATE alert_messages SET state = 'sent', attempts = attempts + 1, done_at = ?, last_error = NULL "
        "WHERE id = ? AND state = 'pending'",
        [to_iso(now), message_id],
    )


def retry_later(db, message_id: int, when: datetime, error: str) -> None:
    db.execute(
        "UPDATE alert_messages SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? "
        "WHERE id = ? AND state = 'pending'",
        [to_iso(when), error[:ERROR_CHARS], message_id],
    )


def give_up(db, message_id: int, now: datetime, error: str) -> None:
    db.execute(
        "UPDATE alert_messages SET state = 'failed', attempts = attempts + 1, done_at = ?, last_error = ? "
        "WHERE id = ? AND state = 'pending'",
        [to_iso(now), error[:ERROR_CHARS], message_id],
    )


def counts(db) -> list[tuple[str, str, int]]:
    """(destination, state, messages) for the messages not sent (pending, failed)."""
    return db.execute(
        "SELECT destination, state, count(*) FROM alert_messages WHERE state <> 'sent' "
        "GROUP BY destination, state ORDER BY destination, state"
    ).fetchall()


def recent(db, limit: int = 20) -> list[Delivery]:
    """The latest messages, newest first, whatever their state."""
    rows = db.execute(
        "SELECT message_id, destination, channel, items, state, attempts, created_at, next_attempt_at, done_at, "
        "last_error FROM alert_messages ORDER BY id DESC LIMIT ?",
        [limit],
    ).fetchall()
    return [
        Delivery(
            message_id=r[0],
            destination=r[1],
            channel=r[2],
            items=r[3],
            state=r[4],
            attempts=r[5],
            created_at=from_iso(r[6]),
            next_attempt_at=from_iso(r[7]) if r[4] == "pending" else None,
            done_at=from_iso(r[8]) if r[8] else None,
            last_error=r[9],
        )
        for r in rows
    ]


def prune(db, before: datetime) -> None:
    """Messages done (sent or given up) before ``before`` go: the outbox is not an archive."""
    db.execute("DELETE FROM alert_messages WHERE state <> 'pending' AND done_at < ?", [to_iso(before)])
