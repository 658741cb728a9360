"""The alerts and the outbox at scrape time (``/metrics``; docs/metrics.md): small tables, two queries."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from central.alerts import outbox, state
from central.core.database import Database
from fleet.metrics import gauge

log = logging.getLogger(__name__)


class AlertCollector(Collector):
    def __init__(self, database: Database) -> None:
        self.database = database

    def collect(self) -> Iterator[Metric]:
        try:
            found = list(self._read())
        except Exception as exc:  # noqa: BLE001 - fleet_central_metrics_database_up already says the database is away
            log.warning("metrics: the alerts' tables did not answer (%s)", exc)
            return
        yield from found

    def _read(self) -> Iterable[Metric]:
        with self.database.read() as db:
            active = state.alerts(db, active_only=True)
            queued = outbox.counts(db)
        yield gauge(
            "fleet_central_alerts_active",
            "Alerts that need a person, as the digest job last counted them, by kind and borough ('' for the "
            "force's own): the count of what each alert counts",
            ["kind", "borough"],
            [(a.kind, a.borough or "", a.count) for a in active],
        )
        yield gauge(
            "fleet_central_alert_messages",
            "Alert messages not sent, by destination and state: pending (waiting or being retried), failed "
            "(given up: fleet central alerts list says why)",
            ["destination", "state"],
            queued,
        )
