"""Events from stations: stored by (station, seq), applied in seq order, acknowledged gap-free.

One batch is one transaction (``synchronous=FULL``): new events are stored, every event
that now continues the station's gap-free run is applied to fleet state, and the station's
acknowledged seq moves on. Only then is the acknowledgement sent, so an acknowledged event
is never lost, and a resent one is recognised and skipped. A seq that comes back with other
bytes means the station's database was replaced: refused (409), never silently merged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Controller, Request, post

from fleet.clock import to_iso, utc_now
from fleet.errors import BadRequest, Conflict, Forbidden
from fleet.events import EVENT_KINDS, MAX_EVENTS_PER_BATCH, Backlog, Event, EventAck
from fleet.protocol import AwareDatetime
from fleet.sqlite import Writer
from central.auth import Caller
from central.projection import Applied, Projector


class _RawEnvelope(msgspec.Struct, kw_only=True):
    seq: Annotated[int, msgspec.Meta(ge=1)]
    at: AwareDatetime
    event: msgspec.Raw


class _RawBatch(msgspec.Struct, kw_only=True):
    sent_at: AwareDatetime
    events: Annotated[list[_RawEnvelope], msgspec.Meta(max_length=MAX_EVENTS_PER_BATCH)] = []
    backlog: Backlog | None = None


class _Kind(msgspec.Struct):
    kind: str


_batch_decoder = msgspec.json.Decoder(_RawBatch)
_event_decoder = msgspec.json.Decoder(Event)
_kind_decoder = msgspec.json.Decoder(_Kind)


def decode_batch(body: bytes) -> tuple[_RawBatch, dict[int, Event | None]]:
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
    def __init__(self, writer: Writer, projector: Projector) -> None:
        self.writer = writer
        self.projector = projector

    def ingest(self, station_id: str, borough: str, body: bytes, now: datetime | None = None) -> EventAck:
        batch, decoded = decode_batch(body)
        now = now or utc_now()
        received = to_iso(now)
        with self.writer.write() as db:
            db.execute("INSERT INTO stations (station_id, borough) VALUES (?, ?) ON CONFLICT DO NOTHING",
                       [station_id, borough])
            acked = db.execute("SELECT acked_seq FROM stations WHERE station_id = ?", [station_id]).fetchone()[0]
            envelopes = {e.seq: e for e in batch.events}
            seqs = sorted(envelopes)
            stored = {}
            if seqs:
                stored = {r[0]: bytes(r[1]) for r in db.execute(
                    "SELECT seq, body FROM events WHERE station_id = ? AND seq BETWEEN ? AND ?",
                    [station_id, seqs[0], seqs[-1]])}
            for seq, body_then in stored.items():
                if seq in envelopes and bytes(envelopes[seq].event) != body_then:
                    raise Conflict(f"event seq {seq} of {station_id} was already stored with other content: "
                                   "was the station's database replaced? Central keeps the first; ask the "
                                   "fleet team to reconcile before this station sends again")
            new = [s for s in seqs if s not in stored]
            db.conn.executemany(
                "INSERT INTO events (station_id, seq, kind, station_at, received_at, body) VALUES (?, ?, ?, ?, ?, ?)",
                [(station_id, s, _kind_of(decoded[s], envelopes[s].event), to_iso(envelopes[s].at), received,
                  bytes(envelopes[s].event)) for s in new])
            run = self._contiguous(db, station_id, acked, envelopes, decoded)
            self.projector.apply(db, station_id, borough, [a for a in run if a.event is not None])
            acked += len(run)
            self._note_station(db, station_id, acked, received, now, batch)
        return EventAck(acked_seq=acked, stored=len(new), duplicates=len(seqs) - len(new))

    @staticmethod
    def _contiguous(db, station_id: str, acked: int, envelopes, decoded) -> list[Applied]:
        """The events that continue the gap-free run after ``acked``: from this batch, or stored earlier."""
        run: list[Applied] = []
        seq = acked + 1
        while True:
            if seq in envelopes:
                run.append(Applied(seq, to_iso(envelopes[seq].at), decoded[seq]))
            else:
                row = db.execute("SELECT station_at, body FROM events WHERE station_id = ? AND seq = ?",
                                 [station_id, seq]).fetchone()
                if row is None:
                    return run
                event = decode_batch(b'{"sent_at":"2000-01-01T00:00:00Z","events":[{"seq":1,"at":"'
                                     + row[0].encode() + b'","event":' + bytes(row[1]) + b"}]}")[1][1]
                run.append(Applied(seq, row[0], event))
            seq += 1

    @staticmethod
    def _note_station(db, station_id: str, acked: int, received: str, now: datetime, batch: _RawBatch) -> None:
        backlog = batch.backlog
        db.execute(
            """UPDATE stations SET acked_seq = ?, last_seen_at = ?, clock_skew_s = ?,
                   backlog = COALESCE(?, backlog), pending_clips = COALESCE(?, pending_clips),
                   pending_bytes = COALESCE(?, pending_bytes),
                   oldest_pending_recorded_at = CASE WHEN ? THEN ? ELSE oldest_pending_recorded_at END
               WHERE station_id = ?""",
            [acked, received, (batch.sent_at - now).total_seconds(),
             msgspec.json.encode(backlog).decode() if backlog else None,
             backlog.pending_clips if backlog else None, backlog.pending_bytes if backlog else None,
             backlog is not None,
             to_iso(backlog.oldest_pending_recorded_at) if backlog and backlog.oldest_pending_recorded_at else None,
             station_id])

    def events(self, station_id: str, after: int = 0) -> list[tuple[int, str, str, bytes]]:
        """(seq, kind, station_at, body) of a station's events: central's side of the log."""
        with self.writer.read() as db:
            return [(r[0], r[1], r[2], bytes(r[3])) for r in db.execute(
                "SELECT seq, kind, station_at, body FROM events WHERE station_id = ? AND seq > ? ORDER BY seq",
                [station_id, after])]


def _kind_of(event: Event | None, raw: msgspec.Raw) -> str:
    return type(event).__struct_config__.tag if event is not None else (_kind_or_none(raw) or "unknown")


class EventsController(Controller):
    path = "/api/v1/events"
    tags = ["sync"]

    @post("/", status_code=200, summary="A station's events, in seq order; answers the highest gap-free seq",
          description="Body: an EventBatch. Idempotent by (station, seq): resend anything after `acked_seq`. "
                      "An empty batch is a heartbeat carrying the station's backlog.")
    async def receive(self, request: Request, principal: Caller) -> EventAck:
        if not principal.is_station:
            raise Forbidden("only stations send events, each with its own token")
        return request.app.state.events.ingest(principal.station_id, principal.borough, await request.body())
