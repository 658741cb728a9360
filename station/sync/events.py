"""Events up: the outbox goes to central in batches, resent from central's acknowledged seq.

Central acknowledges the highest gap-free seq it has durably stored (it applies them later,
in seq order: its ``applied_seq``); everything after it is sent again, so a lost reply, a
cut connection or a central restart costs a resend, never an event. With nothing to send,
an empty batch every ``heartbeat`` reports the station's backlog (central's "last heard
from" and oldest un-synced clip).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import msgspec

from fleet.clock import utc_now
from fleet.errors import PermanentTransferError
from fleet.events import Backlog, EventAck, RawEventBatch, RawEventEnvelope
from fleet.retry import RetryPolicy, as_transfer_error
from station.metrics import StationMetrics
from station.store import StationStore
from station.sync.errors import error_from_response

log = logging.getLogger(__name__)
EVENTS_PATH = "/api/v1/events/"


_encoder = msgspec.json.Encoder()
_ack_decoder = msgspec.json.Decoder(EventAck)


@dataclass
class UplinkReport:
    sent: int = 0
    acked_seq: int = 0
    error: str | None = None


class EventSender:
    def __init__(
        self,
        client: httpx.Client,
        store: StationStore,
        policy: RetryPolicy,
        *,
        batch_size: int = 1000,
        heartbeat: timedelta = timedelta(seconds=60),
        metrics: StationMetrics | None = None,
    ) -> None:
        self.client = client
        self.metrics = metrics or StationMetrics()
        self.store = store
        self.outbox = store.outbox
        self.policy = policy
        self.batch_size = batch_size
        self.heartbeat = heartbeat
        self._lock = threading.Lock()
        self._failures = 0
        self._not_before: datetime | None = None
        self._last_contact: datetime | None = None

    def run_once(self, force: bool = False) -> UplinkReport:
        """Send everything pending (or a heartbeat when due); never raises."""
        with self._lock:
            report = UplinkReport(acked_seq=self.outbox.acked_seq())
            now = utc_now()
            if not force and self._not_before is not None and now < self._not_before:
                return report
            try:
                if self.outbox.rejoin_from() is not None:
                    self._rejoin()
                while True:
                    # Sent up to the first "verified" report of a clip central may have lost, until the
                    # station has sent or found it again (central's claims would refuse it as a lie);
                    # the ingest reports before it go first: central takes a blob it holds back only
                    # for the station that reported the clip's ingest.
                    rechecking = self.store.queue.rechecking_ids()
                    barrier = self.outbox.first_verified_of(rechecking) if rechecking else None
                    pending = self.outbox.pending(self.batch_size, before=barrier)
                    heartbeat_due = self._last_contact is None or now - self._last_contact >= self.heartbeat
                    if barrier is not None and not pending:
                        report.error = (
                            f"waiting for {len(rechecking)} clip(s) to be checked again with central after its restore"
                        )
                        break
                    if not pending and not heartbeat_due:
                        break
                    ack = self._send(pending)
                    self._last_contact = now = utc_now()
                    report.sent += len(pending)
                    progressed = self._take(ack, report.acked_seq)
                    report.acked_seq = ack.acked_seq
                    if not pending or not progressed:
                        break
            except Exception as exc:  # recorded and retried later with backoff, never raised into the job
                error = as_transfer_error(exc)
                self.metrics.event_send_failures.inc()
                self._failures += 1
                delay = self.policy.backoff_delay(self._failures, error)
                self._not_before = utc_now() + timedelta(seconds=delay)
                report.error = str(error)
                level = logging.ERROR if isinstance(error, PermanentTransferError) else logging.WARNING
                log.log(level, "events not sent (%s); next try in %.1fs", error, delay)
            else:
                self._failures, self._not_before = 0, None
            return report

    def _take(self, ack: EventAck, before: int) -> bool:
        """Record central's acknowledgement; True when it moved forward."""
        last = self.outbox.last_seq()
        if ack.acked_seq > last:
            raise PermanentTransferError(
                f"central has acknowledged events up to seq {ack.acked_seq} but this station's outbox ends at "
                f"{last}: was this station's database restored or replaced? New events are held back until "
                "the fleet team reconciles the two"
            )
        if ack.acked_seq < before:
            lost = self.outbox.verified_clips_after(ack.acked_seq)
            log.warning(
                "central acknowledges events only up to seq %d (it had %d): restored from a backup? Sending "
                "them again, after checking with it the %d clip(s) it had verified since",
                ack.acked_seq,
                before,
                len(lost),
            )
            with self.store.writer.write():  # one transaction: a crash never forgets which to check
                self.outbox.acknowledge(ack.acked_seq)
                self.store.queue.recheck(lost)
        self.outbox.acknowledge(ack.acked_seq)
        self.metrics.events_acknowledged.inc(max(0, ack.acked_seq - before))
        first = self.outbox.pending(1)
        if first and first[0].seq != ack.acked_seq + 1:
            log.error(
                "events %d..%d are no longer at this station (pruned after central acknowledged them) "
                "and central does not have them",
                ack.acked_seq + 1,
                first[0].seq - 1,
            )
        return ack.acked_seq > before

    def _rejoin(self) -> None:
        """A new or restored database's first word with central: learn how far central holds this
        station's events, and number this database's own after them."""
        ack = self._send([])
        if self.outbox.rejoin(ack.acked_seq):
            log.warning(
                "central holds this station's events up to seq %d, beyond what this database had (a replaced or "
                "restored station): its own events now follow them",
                ack.acked_seq,
            )

    def _send(self, pending: list[RawEventEnvelope]) -> EventAck:
        body = _encoder.encode(RawEventBatch(sent_at=utc_now(), events=pending, backlog=self.backlog()))
        for attempt in self.policy.retrying():
            with attempt:
                response = self.client.post(EVENTS_PATH, content=body, headers={"Content-Type": "application/json"})
                if response.status_code != 200:
                    raise error_from_response(response)
                return _ack_decoder.decode(response.content)
        raise AssertionError("unreachable: retrying re-raises")

    def backlog(self) -> Backlog:
        return self.store.queue.backlog()
