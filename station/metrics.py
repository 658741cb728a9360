"""A station's Prometheus metrics, served at ``/metrics`` on its desk API (docs/metrics.md).

``StationMetrics`` counts what this node did since it started (clips uploaded and verified,
uploads refused or retried, events acknowledged); ``StationCollector`` reads its queue from
the station's database at scrape time (a few aggregates over the station's own clips), so a
scrape shows the queue as ``fleet station status`` does, whoever changed it. Each node has a
registry of its own: a host running several stations serves each at its own desk.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import partial

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from fleet.clock import utc_now
from fleet.config import StationSettings
from fleet.metrics import disk_gauges, gauge, guarded
from station.store import StationStore

UPLOAD_FAILURES = ("retried", "refused", "damaged")
"""Why an upload attempt did not end verified: it will be retried, central refused it for good,
or the station's own copy is damaged."""


class StationMetrics:
    """This node's counters, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        counter = partial(Counter, registry=self.registry)
        self.uploads_verified = counter("fleet_station_uploads_verified", "Clips uploaded and verified by central")
        self.upload_verified_bytes = counter(
            "fleet_station_upload_verified_bytes", "Bytes of the clips uploaded and verified by central"
        )
        self.upload_failures = counter(
            "fleet_station_upload_failures",
            "Upload attempts that did not end verified: retried (later), refused (for good), damaged (the "
            "station's copy)",
            ["outcome"],
        )
        self.verification_failures = counter(
            "fleet_station_upload_verification_failures",
            "Uploads central refused for a checksum mismatch (460): bytes changed on the way",
        )
        self.events_acknowledged = counter(
            "fleet_station_events_acknowledged",
            "Events central acknowledged (the outbox's acked seq moved)",
        )
        self.event_send_failures = counter(
            "fleet_station_event_send_failures", "Event batches not delivered (retried with backoff)"
        )
        for outcome in UPLOAD_FAILURES:
            self.upload_failures.labels(outcome)


class StationCollector(Collector):
    """The station's queue, read from its database at scrape time."""

    def __init__(self, settings: StationSettings, store: StationStore) -> None:
        self.settings = settings
        self.store = store

    def collect(self) -> Iterator[Metric]:
        s = self.settings
        yield gauge(
            "fleet_station_info", "This station (always 1)", ["station", "borough"], [(s.station_id, s.borough, 1)]
        )
        yield from disk_gauges("fleet_station", s.data_dir)
        yield from guarded("fleet_station", self._from_database)

    def _from_database(self) -> Iterable[Metric]:
        summary = self.store.queue.summary()
        pending_events = self.store.outbox.pending_count()
        checked_out = self.store.checkouts.open_count()
        yield gauge(
            "fleet_station_clips",
            "Clips in the station's store, by state",
            ["state"],
            sorted(summary["clips_by_state"].items()),
        )
        yield gauge("fleet_station_pending_clips", "Clips waiting for upload", rows=[(summary["pending_clips"],)])
        yield gauge("fleet_station_pending_bytes", "Bytes waiting for upload", rows=[(summary["pending_bytes"],)])
        oldest = summary["oldest_pending_recorded_at"]
        yield gauge(
            "fleet_station_oldest_pending_clip_age_seconds",
            "Since the oldest clip waiting for upload was recorded (no sample: nothing waits)",
            rows=[(max(0.0, (utc_now() - oldest).total_seconds()),)] if oldest else [],
        )
        yield gauge(
            "fleet_station_pending_events", "Events in the outbox not yet acknowledged", rows=[(pending_events,)]
        )
        last = summary["last_sync_ok_at"]
        yield gauge(
            "fleet_station_last_sync_success_timestamp_seconds",
            "When a sync pass last reached central (Unix time; no sample: never)",
            rows=[(last.timestamp(),)] if last else [],
        )
        yield gauge(
            "fleet_station_failed_folders",
            "Dock folders that could not be ingested",
            rows=[(len(summary["failed_folders"]),)],
        )
        yield gauge("fleet_station_checked_out_cameras", "Cameras checked out now", rows=[(checked_out,)])
