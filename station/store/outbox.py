"""The transactional outbox: events written in the same transaction as the change they describe.

``append`` is called inside the writer's transaction by whoever makes the change (ingest,
verification, checkout), so a change and its event commit together or not at all. The
sequence is SQLite's AUTOINCREMENT rowid: gap-free per committed event and never reused,
whichever process (the running station or a CLI command) wrote it. Central's acknowledged
seq is kept beside it (``meta``); what comes after it is still to send.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

import msgspec

from fleet.clock import from_iso, to_iso, utc_now
from fleet.events import Event, RawEventEnvelope, kind_of
from fleet.sqlite import Writer
from station.store import meta

ACKED_SEQ = "outbox_acked_seq"
REJOIN_FROM = "outbox_rejoin_from"
"""Set on a database that may continue a station central already knows (a new database, one
restored from a backup): the last seq of the station's earlier life it holds. Until central's
first answer, events after it may be numbered where central already has others (``rejoin``)."""
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

    def pending(self, limit: int, before: int | None = None) -> list[RawEventEnvelope]:
        """Events after the last acknowledged one (and before ``before``), in seq order, each exactly
        as written here (sent as is, so both logs hold the same bytes)."""
        acked = self.acked_seq()
        with self.writer.read() as db:
            rows = db.execute(
                "SELECT seq, at, body FROM outbox WHERE seq > ? AND seq < ? ORDER BY seq LIMIT ?",
                [acked, before if before is not None else 2**63 - 1, limit],
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

    def rejoin_from(self) -> int | None:
        with self.writer.read() as db:
            value = meta.get(db, REJOIN_FROM)
        return int(value) if value is not None else None

    def mark_rejoining(self) -> None:
        """This database continues the station from its last event (a new one, or a restored backup)."""
        with self.writer.write() as db:
            meta.put(db, REJOIN_FROM, str(self.last_seq()))

    def rejoin(self, central_acked: int) -> int:
        """Central's first answer to a rejoining database: it holds the station's events up to
        ``central_acked``. Events this database wrote after its earlier life (after ``REJOIN_FROM``)
        are numbered after central's, in one transaction, so none lands on a seq central holds with
        other bytes; returns how far they moved (0: central holds nothing beyond this database)."""
        with self.writer.write() as db:
            start = self.rejoin_from()
            if start is None:
                return 0
            shift = max(0, central_acked - start)
            if shift:
                # Two steps: moving each up at once would meet the next one's seq on the way.
                db.execute("UPDATE outbox SET seq = -seq WHERE seq > ?", [start])
                db.execute("UPDATE outbox SET seq = -seq + ? WHERE seq < 0", [shift])
                db.execute(
                    "UPDATE sqlite_sequence SET seq = MAX(seq + ?, ?) WHERE name = 'outbox'", [shift, central_acked]
                )
                db.execute(
                    "INSERT INTO sqlite_sequence (name, seq) SELECT 'outbox', ? "
                    "WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'outbox')",
                    [central_acked],
                )
            meta.put(db, ACKED_SEQ, str(central_acked))
            db.execute("DELETE FROM meta WHERE key = ?", [REJOIN_FROM])
        return shift

    def verified_clips_after(self, seq: int) -> list[str]:
        """Clips this station's ``clip_verified`` events after ``seq`` name: the ones a central
        restored to an earlier point may have lost."""
        with self.writer.read() as db:
            rows = db.execute("SELECT body FROM outbox WHERE seq > ? AND kind = 'clip_verified'", [seq]).fetchall()
        return [msgspec.json.decode(bytes(r[0]))["clip_id"] for r in rows]

    def first_verified_of(self, clip_ids: Collection[str]) -> int | None:
        """The seq of the first unacknowledged ``clip_verified`` event naming one of these clips."""
        wanted = set(clip_ids)
        with self.writer.read() as db:
            rows = db.execute(
                "SELECT seq, body FROM outbox WHERE seq > ? AND kind = 'clip_verified' ORDER BY seq",
                [self.acked_seq()],
            )
            return next((seq for seq, body in rows if msgspec.json.decode(bytes(body))["clip_id"] in wanted), None)

    def unacked_ingests(self) -> set[str]:
        """Clips whose ``clip_ingested`` event central does not hold yet."""
        with self.writer.read() as db:
            rows = db.execute(
                "SELECT body FROM outbox WHERE seq > ? AND kind = 'clip_ingested'", [self.acked_seq()]
            ).fetchall()
        return {msgspec.json.decode(bytes(r[0]))["clip_id"] for r in rows}

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
