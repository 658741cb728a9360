"""Events from stations: stored by (station, seq), acknowledged gap-free, applied in seq order.

One batch is one transaction (``synchronous=FULL``): new events are stored and the station's
acknowledged seq moves to the end of its gap-free run. Only then is the acknowledgement
sent, so an acknowledged event is never lost, and a resent one is recognised and skipped.
A seq that comes back with other bytes means the station's database was replaced: refused
(409), never silently merged. A projection worker applies acknowledged events to fleet
state in seq order (``applied_seq`` per station), in larger transactions, off the hot path.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
from contextlib import contextmanager
from datetime import datetime

import msgspec
import psycopg
from litestar import Controller, post
from litestar.params import RawBody

from central.access.auth import Caller, stations_only
from central.access.scope import OWN_RECORDS
from central.core import database
from central.core.database import Database
from central.core.leadership import Leadership
from central.core.metrics import CentralMetrics
from central.core.notifications import EVENTS, notify
from central.core.openapi import errors
from central.core.providers import Injected
from central.events import claims
from central.events.projection import Applied, EventT, Projector
from central.registry import stations
from fleet.clock import to_iso, to_iso_many, utc_now
from fleet.errors import BadRequest, Conflict
from fleet.events import EVENT_KINDS, Event, EventAck, RawEventBatch, kind_of

log = logging.getLogger(__name__)


class _Kind(msgspec.Struct):
    kind: str


_batch_decoder = msgspec.json.Decoder(RawEventBatch)
_event_decoder = msgspec.json.Decoder(Event)
_kind_decoder = msgspec.json.Decoder(_Kind)


def decode_batch(body: bytes) -> tuple[RawEventBatch, dict[int, Event | None]]:
    """Validate a batch; events of kinds this central does not know are kept, unapplied (None)."""
    try:
        batch = _batch_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise BadRequest(f"event batch: {exc}") from None
    decoded: dict[int, Event | None] = {}
    previous = 0
    for envelope in batch.events:
        if envelope.seq <= previous:
            raise BadRequest(f"event batch: seq {envelope.seq} after {previous}; send events in seq order")
        previous = envelope.seq
        try:
            decoded[envelope.seq] = _event_decoder.decode(envelope.event)
        except msgspec.DecodeError as exc:
            kind = _kind_or_none(envelope.event)
            if kind is None or kind in EVENT_KINDS:
                raise BadRequest(f"event seq {envelope.seq}: {exc}") from None
            decoded[envelope.seq] = None  # a newer station's event kind: stored for later, not applied
    return batch, decoded


def _kind_or_none(raw: msgspec.Raw) -> str | None:
    try:
        return _kind_decoder.decode(raw).kind
    except msgspec.DecodeError:
        return None


class EventLog:
    """Stores and acknowledges events (durably, before answering); applies them in the background.

    Acknowledging is the hot path (every station, every batch), so it only validates, stores
    and moves the station's ``acked_seq``. Applying to fleet state is the projector's work,
    in seq order per station, in larger transactions, tracked by ``applied_seq``: a crash
    between the two leaves events stored and acknowledged, and the projector carries on
    from ``applied_seq`` after the restart.
    """

    def __init__(self, writer: Database, projector: Projector, metrics: CentralMetrics | None = None) -> None:
        self.writer = writer
        self.projector = projector
        self.metrics = metrics or CentralMetrics()
        """Events received, acknowledged and applied by this process (``central.core.metrics``)."""
        self.pending = threading.Event()
        """Set when there are acknowledged events to apply (wakes the projection worker)."""
        self._ingesting = 0
        self._ingested_at = 0.0
        """When the last acknowledgement ended (``time.monotonic``)."""
        self._count_lock = threading.Lock()

    @property
    def ingesting(self) -> bool:
        """A batch is being acknowledged."""
        return self._ingesting > 0

    @property
    def ingest_waits(self) -> bool:
        """A batch being acknowledged waits for the projection's transaction (SQLite's one writer):
        the projection worker lets it have the database first. On PostgreSQL the two run at once."""
        return self.ingesting and not self.writer.concurrent_writes

    def quiet_for(self) -> float:
        """Seconds since the last acknowledgement ended (0 while one is under way)."""
        with self._count_lock:
            return 0.0 if self._ingesting else time.monotonic() - self._ingested_at

    def ingest(self, station_id: str, borough: str, body: bytes, now: datetime | None = None) -> EventAck:
        with self._count_lock:
            self._ingesting += 1
        try:
            return self._ingest(station_id, borough, body, now)
        finally:
            with self._count_lock:
                self._ingesting -= 1
                self._ingested_at = time.monotonic()

    def _ingest(self, station_id: str, borough: str, body: bytes, now: datetime | None) -> EventAck:
        batch, decoded = decode_batch(body)
        now = now or utc_now()
        received = to_iso(now)
        # Beside the other writes (on PostgreSQL): a batch writes its station's row and its events,
        # nothing another writer reads before it writes. The row's lock (``heard_from``) keeps
        # one station's batches in turn, so its acked seq moves over a gap-free run, committed
        # with the run's events: whoever reads that seq finds every event up to it.
        with self.writer.write_concurrently() as db:
            acked = before = stations.heard_from(db, station_id, borough)
            envelopes = {e.seq: e for e in batch.events}
            seqs = sorted(envelopes)
            stored = {}
            if seqs:
                stored = {
                    r[0]: bytes(r[1])
                    for r in db.execute(
                        "SELECT seq, body FROM events WHERE station_id = ? AND seq BETWEEN ? AND ?",
                        [station_id, seqs[0], seqs[-1]],
                    )
                }
            for seq, body_then in stored.items():
                if bytes(envelopes[seq].event) != body_then:
                    raise Conflict(
                        f"event seq {seq} of {station_id} was already stored with other content: "
                        "was the station's database replaced? Central keeps the first; ask the "
                        "fleet team to reconcile before this station sends again"
                    )
            new = [s for s in seqs if s not in stored]
            station_times = to_iso_many([envelopes[s].at for s in new])
            sent = to_iso(batch.sent_at)
            db.executemany(
                "INSERT INTO events (station_id, seq, kind, station_at, received_at, body, sent_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        station_id,
                        s,
                        _kind_of(decoded[s], envelopes[s].event),
                        at,
                        received,
                        bytes(envelopes[s].event),
                        sent,
                    )
                    for s, at in zip(new, station_times, strict=True)
                ],
            )
            acked = self._gap_free(db, station_id, acked, envelopes)
            stations.note_batch(db, station_id, acked, received, (batch.sent_at - now).total_seconds(), batch.backlog)
            if new:
                notify(db, EVENTS, station_id)  # the leading replica's projection, wherever it runs
        if new:
            self.pending.set()
        self.metrics.events_received.labels("stored").inc(len(new))
        self.metrics.events_received.labels("duplicate").inc(len(seqs) - len(new))
        self.metrics.events_acknowledged.inc(max(0, acked - before))
        return EventAck(acked_seq=acked, stored=len(new), duplicates=len(seqs) - len(new))

    @staticmethod
    def _gap_free(db, station_id: str, acked: int, envelopes) -> int:
        """The end of the gap-free run after ``acked``: this batch, then any stored after a gap."""
        while acked + 1 in envelopes:
            acked += 1
        for (seq,) in db.execute(
            "SELECT seq FROM events WHERE station_id = ? AND seq > ? ORDER BY seq", [station_id, acked]
        ):
            if seq != acked + 1:
                break
            acked = seq
        return acked

    def apply_pending(self, limit: int = 2000) -> int:
        """Apply up to ``limit`` acknowledged events not yet applied, in one transaction: every station
        behind takes its share (one station's long backlog delays no other), and the stations' events
        are applied together (``projection.merged_runs``: a few statements however many stations)."""
        with self.writer.write() as db:
            behind = stations.behind(db)
            share = max(100, limit // max(1, len(behind)))
            taken: list[tuple[str, int, int]] = []
            boroughs: dict[str, str] = {}
            room = limit
            for station_id, borough, done, acked in behind:
                if room <= 0:
                    break
                upto = min(acked, done + share, done + room)
                taken.append((station_id, done, upto))
                boroughs[station_id] = borough
                room -= upto - done
            if not taken:
                return 0
            # One statement, a range of the key for each station (a join on the ranges as a table
            # was planned as a scan of every event on PostgreSQL); the bodies as they are stored.
            rows = db.fetch_bytes(
                " UNION ALL ".join(
                    [
                        "SELECT station_id, seq, station_at, body, sent_at FROM events WHERE station_id = ? "
                        "AND seq > ? AND seq <= ?"
                    ]
                    * len(taken)
                )
                + " ORDER BY 1, 2",
                [value for span in taken for value in span],
            ).fetchall()
            events = [
                Applied(r[0], boroughs[r[0]], r[1], r[2], event, r[4])
                for r in rows
                if (event := _decode_stored(bytes(r[3]))) is not None
            ]
            if events:
                with db.pipelined():  # the projection's statements go without a round trip each
                    self._apply_contained(db, events)
            stations.applied(db, {r[0]: r[1] for r in rows})  # each station's last
        self.metrics.events_applied.inc(len(rows))  # committed
        return len(rows)

    def _apply_contained(self, db, events: list[Applied]) -> None:
        """Apply events inside a savepoint. Should they raise, each station's are applied again on their
        own, then one event at a time, and an event that still raises is refused (recorded against its
        station, never applied): one station's event that central cannot apply must not roll back,
        and so stop, every station's projection on every retry."""
        try:
            with _savepoint(db):
                self.projector.apply(db, events)
            return
        except Exception as exc:
            if _centrals_condition(exc):
                raise  # the whole transaction is retried later, as the worker does after any failure
            if len(events) > 1:
                log.exception("applying %d events failed; applying them in smaller parts", len(events))
            else:
                a = events[0]
                log.exception("event %d of station %s cannot be applied: refused", a.seq, a.station)
                reason = f"central could not apply it ({type(exc).__name__})"
                claims.refuse(db, [(a.station, a.seq, kind_of(a.event), claims.subject_of(a.event), reason, a.at)])
                return
        by_station: dict[str, list[Applied]] = {}
        for a in events:
            by_station.setdefault(a.station, []).append(a)
        for own in by_station.values() if len(by_station) > 1 else ([a] for a in events):
            self._apply_contained(db, own)

    def apply_all(self) -> int:
        """Apply everything acknowledged so far (tests, and the worker's inner loop)."""
        total = 0
        while count := self.apply_pending():
            total += count
        return total

    def stored(self, db, station_id: str, seq: int, kind: type[EventT]) -> Applied[EventT] | None:
        """One stored event of ``station_id``, as the projection would apply it, if it is of ``kind``
        (None: the log holds no such event there, or central no longer knows the station)."""
        row = db.fetch_bytes(
            "SELECT station_at, body, sent_at FROM events WHERE station_id = ? AND seq = ?", [station_id, seq]
        ).fetchone()
        event = _decode_stored(bytes(row[1])) if row is not None else None
        borough = stations.borough_of(db, station_id)
        if not isinstance(event, kind) or borough is None:
            return None
        return Applied(station_id, borough, seq, row[0], event, row[2])

    def apply_again(self, db, station_id: str, seq: int, kind: type[EventT]) -> Applied[EventT] | None:
        """Apply one stored event of ``station_id`` again, in the caller's transaction (a person put a
        refused report back: ``central.events.decisions``); the event, or None (``stored``)."""
        applied = self.stored(db, station_id, seq, kind)
        if applied is not None:
            self.projector.apply(db, [applied])
        return applied

    def events(self, station_id: str, after: int = 0) -> list[tuple[int, str, str, bytes]]:
        """(seq, kind, station_at, body) of a station's events: central's side of the log."""
        with self.writer.read() as db:
            return [
                (r[0], r[1], r[2], bytes(r[3]))
                for r in db.execute(
                    "SELECT seq, kind, station_at, body FROM events WHERE station_id = ? AND seq > ? ORDER BY seq",
                    [station_id, after],
                )
            ]


class ProjectionWorker:
    """A thread that applies acknowledged events to fleet state as they arrive, while this process
    leads (``central.core.leadership``): one replica applies, whichever took the events in."""

    def __init__(self, log: EventLog, leadership: Leadership) -> None:
        self.log = log
        self.leadership = leadership
        leadership.on_gain(log.pending.set)  # a new leader starts with what is waiting
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="event-projection", daemon=True)

    def start(self) -> None:
        self.log.pending.set()  # events acknowledged before a restart are applied first
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self.log.pending.set()
        self._thread.join(timeout=30)

    MAX_YIELD_S = 1.0
    """Acknowledging comes first, but under a sustained burst the projection still moves (``BATCH_MIN``
    events a transaction then, as acknowledgements wait for it)."""
    TRANSACTION_S = 0.1
    """About how long one apply transaction should take while stations are sending. Long enough that a
    run's few statements and its commit (a flush to disk) serve thousands of events, short enough
    that an acknowledgement waiting for the writer waits little. (The event loop's reads do not
    wait for the writer: they have connections of their own.)"""
    QUIET_S, QUIET_TRANSACTION_S = 0.5, 0.5
    """Once no acknowledgement has come for ``QUIET_S`` (a burst is over, a backlog is left), transactions
    of about ``QUIET_TRANSACTION_S``: each commit and each statement serves five times the events,
    and the first acknowledgement to come waits at most that long."""
    BATCH_MIN, BATCH_MAX = 200, 20_000
    """Events applied per transaction, sized by ``next_batch`` within these."""
    PAUSE_S = 0.001
    """Between transactions: long enough for a request waiting on the writer to take it."""

    def _run(self) -> None:
        batches = {self.TRANSACTION_S: self.BATCH_MIN, self.QUIET_TRANSACTION_S: self.BATCH_MIN}
        """The transaction's size for each of the two aims, each sized by ``next_batch``."""
        while not self._stopping.is_set():
            self.log.pending.wait(timeout=5.0)
            self.log.pending.clear()
            if not self.leadership.leading:
                continue
            try:
                last = time.monotonic()
                while not self._stopping.is_set():
                    if self.log.ingest_waits and time.monotonic() - last < self.MAX_YIELD_S:
                        self._stopping.wait(0.005)
                        continue
                    last = time.monotonic()
                    # In a burst of acknowledgements (waited MAX_YIELD_S), a short transaction: they wait for it.
                    bursting = self.log.ingest_waits
                    aim = self.QUIET_TRANSACTION_S if self.log.quiet_for() >= self.QUIET_S else self.TRANSACTION_S
                    # A quiet transaction starts no smaller than a busy one, not from BATCH_MIN again.
                    batches[aim] = max(batches[aim], batches[self.TRANSACTION_S])
                    applied = self.log.apply_pending(limit=self.BATCH_MIN if bursting else batches[aim])
                    if not applied:
                        break
                    if not bursting:
                        batches[aim] = self.next_batch(batches[aim], applied, time.monotonic() - last, aim)
                    self._stopping.wait(self.PAUSE_S)
            except Exception:  # logged; the events stay stored and are retried on the next wake
                log.exception("applying events failed; they stay stored and will be retried")
                self._stopping.wait(5.0)

    @classmethod
    def next_batch(cls, batch: int, applied: int, seconds: float, aim: float | None = None) -> int:
        """The next transaction's size: twice this one's while a full one takes less than ``aim``
        (``TRANSACTION_S``), half when one takes more than twice it. (Not this one's pace times the
        time: a small transaction's fixed costs, a commit and a few statements a station, make
        its pace slow, and the batch would stay small.)"""
        aim = cls.TRANSACTION_S if aim is None else aim
        if applied >= batch and seconds < aim:
            batch *= 2
        elif seconds > 2 * aim:
            batch //= 2
        return max(cls.BATCH_MIN, min(cls.BATCH_MAX, batch))


def _centrals_condition(exc: BaseException) -> bool:
    """Central could not write (a full disk, a busy or broken database, no memory), not "this event
    cannot be applied": such an event waits and is applied once the condition clears. A refusal
    is for good (the station's outbox never sends the event again), so it must not be made of
    central's own trouble."""
    return isinstance(exc, MemoryError) or database.trouble(exc) is not None


@contextmanager
def _savepoint(db):
    """The run's statements undone together if any fails. Pipelined (PostgreSQL), a statement's
    error may come only at the next read: ``synced`` brings it here, before the release."""
    db.execute("SAVEPOINT apply_run")
    try:
        yield
        db.synced()
    except BaseException as exc:
        failure: BaseException = exc
        try:
            db.synced()  # what is still in flight runs (or fails) before the rollback, not instead of it
        except (sqlite3.Error, psycopg.Error) as unread:
            if database.trouble(unread) is not None:
                failure = unread  # central's own condition is the cause: the run waits, nothing is refused
        try:
            db.execute("ROLLBACK TO apply_run")
            db.execute("RELEASE apply_run")
            db.synced()
        except (sqlite3.Error, psycopg.Error):
            raise failure from None  # the database ended the transaction itself (a full disk, I/O): its cause counts
        if failure is exc:
            raise
        raise failure from exc
    db.execute("RELEASE apply_run")


def _decode_stored(body: bytes) -> Event | None:
    try:
        return _event_decoder.decode(body)
    except msgspec.DecodeError:
        return None  # a kind this central does not know: kept, not applied


def _kind_of(event: Event | None, raw: msgspec.Raw) -> str:
    """The kind stored beside an event's body: an unknown kind as the station spelt it, if it could
    be a kind at all; else "unknown" (the body keeps it). A NUL in it failed the batch on
    PostgreSQL (a 400 at every resend, the station's outbox stuck) where SQLite stored it."""
    if event is not None:
        return kind_of(event)
    kind = _kind_or_none(raw)
    return kind if kind is not None and _PLAUSIBLE_KIND.fullmatch(kind) else "unknown"


_PLAUSIBLE_KIND = re.compile(r"[a-z][a-z0-9_]{0,63}")


class EventsController(Controller):
    path = "/api/v1/events"
    tags = ["sync"]

    @post(
        "/",
        status_code=200,
        summary="A station's events, in seq order; answers the highest gap-free seq",
        responses=errors(400, 409, 413),
        guards=[stations_only],
        scope=OWN_RECORDS,
        description="Body: an EventBatch. Idempotent by (station, seq): resend anything after `acked_seq`. "
        "An empty batch is a heartbeat carrying the station's backlog.",
        sync_to_thread=True,
    )
    def receive(self, principal: Caller, body: RawBody, events: Injected[EventLog]) -> EventAck:
        station_id, borough = principal.station()  # stations_only let no one else through
        return events.ingest(station_id, borough, body)
