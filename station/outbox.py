"""The transactional outbox: events written in the same transaction as the change they describe.

``append`` is called inside the writer's transaction by whoever makes the change (ingest,
verification, checkout), so a change and its event commit together or not at all. The
sequence is SQLite's AUTOINCREMENT rowid: gap-free per committed event and never reused,
whichever process (the running station or a CLI command) wrote it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import msgspec

from fleet.clock import from_iso, to_iso, utc_now
from fleet.events import Event, RawEventEnvelope, kind_of
from fleet.sqlite import Writer

_encoder = msgspec.json.Encoder()


def append(db, events: Sequence[Event], at: datetime | None = None) -> None:
    """Add events to the outbox; call inside the transaction that makes the change."""
    if not events:
        return
    when = to_iso(at or utc_now())
    db.conn.executemany(
        "INSERT INTO outbox (kind, at, body) VALUES (?, ?, ?)",
        [(kind_of(e), when, _encoder.encode(e)) for e in events],
    )


class Outbox:
    """Reads and acknowledgements of the outbox, over the station's one connection."""

    def __init__(self, writer: Writer) -> None:
        self.writer = writer

    def acked_seq(self) -> int:
        with self.writer.read() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'outbox_acked_seq'").fetchone()
        return int(row[0]) if row else 0

    def pending(self, limit: int) -> list[RawEventEnvelope]:
        """Events after the last acknowledged one, in seq order, each exactly as written here (sent
        as is, so both logs hold the same bytes)."""
        acked = self.acked_seq()
        with self.writer.read() as db:
            rows = db.execute("SELECT seq, at, body FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
                              [acked, limit]).fetchall()
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
            db.execute(
                """INSERT INTO meta (key, value) VALUES ('outbox_acked_seq', ?)
                   ON CONFLICT (key) DO UPDATE SET value = excluded.value""",
                [str(acked_seq)],
            )

    def events(self, after: int = 0) -> list[tuple[int, str, str, bytes]]:
        """(seq, kind, at, body) of every kept event: the station's side of the event log."""
        with self.writer.read() as db:
            return [(r[0], r[1], r[2], bytes(r[3])) for r in
                    db.execute("SELECT seq, kind, at, body FROM outbox WHERE seq > ? ORDER BY seq", [after])]

    def prune(self, keep: timedelta, now: datetime | None = None) -> int:
        """Forget acknowledged events older than ``keep`` (central has them)."""
        acked = self.acked_seq()
        cutoff = to_iso((now or utc_now()) - keep)
        with self.writer.write() as db:
            return db.execute("DELETE FROM outbox WHERE seq <= ? AND at < ?", [acked, cutoff]).rowcount
