"""Sending what is due from the outbox, with the one retry policy (``fleet.retry``).

Each message gets the policy's quick retries inside one attempt (a reset connection); a failure
after them is written down with the time of its next attempt (full-jitter backoff, ``Retry-After``
honoured), so a restart keeps the schedule. A refusal a retry cannot mend (a 4xx, a 5xx mail
reply) or ``[alerts] max_attempts`` attempts give the message up: ``failed``, logged, counted in
``fleet_central_alert_deliveries_total{outcome="gave_up"}`` and listed by ``fleet central alerts list``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import NamedTuple

from central.alerts import outbox
from central.alerts.outbox import Pending
from central.core.database import Database, without_passwords
from central.core.metrics import CentralMetrics
from fleet.errors import PermanentTransferError
from fleet.retry import RetryPolicy, as_transfer_error

log = logging.getLogger(__name__)

Sender = Callable[[Pending], None]
"""One attempt at sending a message to its destination; raises on failure."""


class Report(NamedTuple):
    sent: int = 0
    retrying: int = 0
    gave_up: int = 0


def attempt(send: Sender, message: Pending, policy: RetryPolicy) -> None:
    """``send``, with the policy's quick retries of what is transient; the last error raised."""
    for tried in policy.retrying():
        with tried:
            send(message)


def deliver_due(
    writer: Database,
    senders: Mapping[str, Sender],
    policy: RetryPolicy,
    metrics: CentralMetrics,
    *,
    max_attempts: int,
    now: datetime,
) -> Report:
    """Send each destination's next message that is due; how many went, wait, were given up."""
    with writer.read() as db:
        due = outbox.due(db, now)
    sent = retrying = gave_up = 0
    for message in due:
        send = senders.get(message.destination)
        try:
            if send is None:
                raise PermanentTransferError(f"no destination {message.destination} in [alerts] any more")
            attempt(send, message, policy)
        except Exception as exc:  # noqa: BLE001 - every failure is recorded against the message
            error = as_transfer_error(exc)
            attempts = message.attempts + 1
            if isinstance(error, PermanentTransferError) or attempts >= max_attempts:
                with writer.write() as db:
                    outbox.give_up(db, message.id, now, without_passwords(str(error)))
                log.error(
                    "alerts: message %s to %s given up after %d attempt(s): %s",
                    message.message_id,
                    message.destination,
                    attempts,
                    error,
                )
                metrics.alert_deliveries.labels(message.destination, "gave_up").inc()
                gave_up += 1
            else:
                when = now + timedelta(seconds=policy.backoff_delay(attempts, error))
                with writer.write() as db:
                    outbox.retry_later(db, message.id, when, without_passwords(str(error)))
                log.warning(
                    "alerts: message %s to %s not delivered (%s); next attempt at %s",
                    message.message_id,
                    message.destination,
                    error,
                    when.isoformat(timespec="seconds"),
                )
                metrics.alert_deliveries.labels(message.destination, "retry").inc()
                retrying += 1
        else:
            # A crash before this commit sends the message again: the one duplicate (same message_id).
            with writer.write() as db:
                outbox.sent(db, message.id, now)
            metrics.alert_deliveries.labels(message.destination, "sent").inc()
            sent += 1
    return Report(sent, retrying, gave_up)
