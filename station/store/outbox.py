"""The transactional outbox: events written in the same transaction as the change they describe.

``append`` is called inside the writer's transaction by whoever makes the change (ingest,
verification, checkout), so a change and its event commit together or not at all. The
sequence is SQLite's AUTOINCREMENT rowid: gap-free per committed event and never reused,
whichever process (the running station or a CLI command) wrote it. Central's acknowledged
seq is kept beside it (``meta``); what comes after it is still to send.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import msgspec

from fleet.clock import from_iso, to_iso, utc_now
from fleet.events import Event, RawEventEnvelope, kind_of
from fleet.sqlite import Writer
from station.store import meta

ACKED_SEQ = "outbox_acked_seq"
_encoder = msgspec.json.Encoder()


class Outbox:
    """Every read and write of the ``outbox`` table, over the station's one connection."""

    def __init__(self, writer: Writer) -> None:
        self.writer = writer

    def append(self, events: Sequence[Event], at: datetime | None = None) -> None:
        """Add events to the outbox; call inside the ``writer.write()`` that makes the change (it
        joins that transaction)."""
        if not events:
            return
        when = to_iso(at or utc_now())
        with self.writer.write() as db:
            db.executemany(
                "INSERT INTO outbox (kind, at, body) VALUES (?, ?, ?)",
                [(kind_of(e), when, _encoder.encode(e)) for e in events],
            )

    def acked_seq(self) -> int:
        with self.writer.read() as db:
            value = meta.get(db, ACKED_SEQ)
        return int(value) if value is not None else 0

    def pending(self, limit: int) -> list[RawEventEnvelope]:
        """Events after the last acknowledged one, in seq order, each exactly as written here (sent
        as is, so both logs hold the same bytes)."""
        acked = self.acked_seq()
        with self.writer.read() as db:
            rows = db.execute(
                "SELECT seq, at, body FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?", [acked, limit]
            ).fetchall()
        return [RawEventEnvelope(seq=r[0], at=from_iso(r[1]), event=msgspec.Raw(bytes(r[2]))) for r in rows]

    def pending_count(self) -> int:
        acked = self.acked_seq()
        with self.writer.read() as db:
            return db.execute("SELECT COUNT(*) FROM outbox WHERE seq > ?", [acked]).fetchone()[0]

    def last_seq(self) -> int:
        with self.writer.read() as db:
            return db.execute("SELECT COALESCE(MAX(seq), 0) FROM outbox").fetchone()[0]

    def acknowledge(self, acked_seq: int) -> None:
        """Central holds everything up to ``acked_seq``: its answer is the truth, even a smaller one
        (a central restored from a backup must get the newer events again). Requests go one at
        a time, so no late reply can overtake a newer one."""
        with self.writer.write() as db:
            meta.put(db, ACKED_SEQ, str(acked_seq))

    def events(self, after: int = 0) -> list[tuple[int, str, str, bytes]]:
        """(seq, kind, at, body) of every kept event: the station's side of the event log."""
        with self.writer.read() as db:
            return [
                (r[0], r[1], r[2], bytes(r[3]))
                for r in db.execute("SELECT seq, kind, at, body FROM outbox WHERE seq > ? ORDER BY seq", [after])
            ]

    def prune(self, keep: timedelta, now: datetime | None = None) -> int:
        """Forget acknowledged events older than ``keep`` (central has them)."""
        acked = self.acked_seq()
        cutoff = to_iso((now or utc_now()) - keep)
        with self.writer.write() as db:
            return db.execute("DELETE FROM outbox WHERE seq <= ? AND at < ?", [acked, cutoff]).rowcount
