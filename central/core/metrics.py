"""Central's Prometheus metrics (``GET /metrics``; every name in docs/metrics.md).

``CentralMetrics`` holds this process's counters (what it received, verified, applied, ran,
refused) in a registry of its own; each replica is scraped on its own and its counters start
at 0 when it starts, as Prometheus expects. ``CentralCollector`` reads, at scrape time, what
the database knows (uploads under way, holds, battery flags and stale cameras by borough,
each station's last contact and backlog) with a few aggregate queries over small tables or
partial indexes, so a scrape costs the same on a force with two million clips as on a trial,
and every replica answers the same figures. No label takes a value from outside a bounded
set: routes are templates, stations and boroughs come from the configuration, never a clip
id, a serial or a raw path.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import partial, wraps
from pathlib import Path
from typing import Any, TypeVar

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from central.core import job_runs
from central.core.admission import lane_of
from central.core.database import Database
from fleet import __version__
from fleet.clock import from_iso
from fleet.config import CentralSettings
from fleet.metrics import disk_gauges, gauge, guarded

T = TypeVar("T")

REFUSALS = frozenset({429, 503, 507})
"""The answers that mean "later": a client over its share, central at its limit, a full disk."""
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0)
"""Seconds; the last ones for large uploads' PATCH requests and the changes feed's long poll."""
HOLD_KINDS = ("clip", "officer", "case")
FLAGS = ("short_shift", "over_temp", "capacity_drop", "stale")
"""The battery and contact flags the fleet-health job sets on cameras (``central.registry.fleet_health``)."""


class CentralMetrics:
    """This process's counters, in a registry of its own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.jobs: set[str] = set()
        """The scheduled jobs' names (``task``): their last success is read from ``job_runs`` at scrape time."""
        counter, gauge_ = partial(Counter, registry=self.registry), partial(Gauge, registry=self.registry)
        histogram = partial(Histogram, registry=self.registry)
        self.requests = counter(
            "fleet_central_http_requests",
            "HTTP requests answered, by route template",
            ["method", "route", "code"],
        )
        self.latency = histogram(
            "fleet_central_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, by route template",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
        )
        self.refusals = counter(
            "fleet_central_http_refusals",
            "Requests told to come back later: 429 (a client over its share), 503 (central at its limit "
            "or its database away), 507 (disk full)",
            ["code", "lane"],
        )
        self.uploads_verified = counter(
            "fleet_central_uploads_verified", "Clips whose upload this process verified and stored"
        )
        self.upload_verified_bytes = counter(
            "fleet_central_upload_verified_bytes", "Bytes of the clips this process verified and stored"
        )
        self.upload_received_bytes = counter(
            "fleet_central_upload_received_bytes", "Upload bytes received and made durable by this process"
        )
        self.verification_failures = counter(
            "fleet_central_upload_verification_failures",
            "Uploads refused for a checksum that did not match: a chunk's Upload-Checksum, or the whole file's SHA-256",
            ["check"],
        )
        self.events_received = counter(
            "fleet_central_events_received",
            "Events stations sent, by outcome: stored (new) or duplicate (already stored)",
            ["outcome"],
        )
        self.events_acknowledged = counter(
            "fleet_central_events_acknowledged",
            "Events acknowledged to their station (its gap-free acked_seq moved past them)",
        )
        self.events_applied = counter(
            "fleet_central_events_applied", "Events the projection applied to fleet state (the leader)"
        )
        self.job_runs = counter(
            "fleet_central_job_runs", "Scheduled jobs run by this process, by outcome", ["task", "outcome"]
        )
        self.job_duration = gauge_(
            "fleet_central_job_last_duration_seconds",
            "How long the job's last run in this process took",
            ["task"],
        )
        self.retention_deleted = counter(
            "fleet_central_retention_deleted_clips",
            "Clips retention deleted: soft_deleted (hidden, recoverable for the recovery period), purged "
            "(bytes deleted)",
            ["stage"],
        )
        self.retention_held_back = gauge_(
            "fleet_central_retention_held_back_clips",
            "Clips past their retention that a hold kept, at this process's last retention run",
        )
        self.retention_review_due = gauge_(
            "fleet_central_retention_review_due_clips",
            "Clips past a reviewed retention period waiting for a reviewer, at this process's last retention run",
        )
        self.alert_deliveries = counter(
            "fleet_central_alert_deliveries",
            "Attempts to deliver an alert message (docs/alerts.md), by destination and outcome: sent, retry "
            "(failed, tried again later), gave_up (failed for good: see fleet central alerts list)",
            ["destination", "outcome"],
        )
        for check in ("chunk", "file"):
            self.verification_failures.labels(check)
        for outcome in ("stored", "duplicate"):
            self.events_received.labels(outcome)
        for stage in ("soft_deleted", "purged"):
            self.retention_deleted.labels(stage)

    def known_destinations(self, names: Iterable[str]) -> None:
        """Each alert destination's series exist (at 0) from start-up."""
        for name in names:
            for outcome in ("sent", "retry", "gave_up"):
                self.alert_deliveries.labels(name, outcome)

    def known_job(self, job: str) -> None:
        """A job's series exist (at 0) from start-up, not only once it first ran."""
        self.jobs.add(job)
        for outcome in ("ok", "failed"):
            self.job_runs.labels(job, outcome)

    def timed(self, job: str, run: Callable[..., T]) -> Callable[..., T]:
        """``run``, counted, timed and its last success noted."""
        self.known_job(job)

        @wraps(run)
        def counted(*args: Any, **kwargs: Any) -> T:
            with self._running(job):
                return run(*args, **kwargs)

        return counted

    def timed_async(self, job: str, run: Callable[..., Any]) -> Callable[..., Any]:
        """``timed`` for a job that runs on the event loop."""
        self.known_job(job)

        @wraps(run)
        async def counted(*args: Any, **kwargs: Any) -> Any:
            with self._running(job):
                return await run(*args, **kwargs)

        return counted

    @contextmanager
    def _running(self, job: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        except BaseException:
            self._ran(job, "failed", started)
            raise
        self._ran(job, "ok", started)

    def _ran(self, job: str, outcome: str, started: float) -> None:
        self.job_runs.labels(job, outcome).inc()
        self.job_duration.labels(job).set(time.monotonic() - started)

    def retention_report(self, report: Any) -> None:
        """A retention run's ``JobReport`` (``central.evidence.retention``)."""
        self.retention_deleted.labels("soft_deleted").inc(report.soft_deleted)
        self.retention_deleted.labels("purged").inc(report.purged)
        self.retention_held_back.set(report.held_back)
        self.retention_review_due.set(report.for_review)


class RequestMetricsMiddleware:
    """ASGI middleware, outermost: each answer counted and timed by its route's template (what
    the router matched, never the raw path), and every refusal counted by its lane."""

    def __init__(self, app: ASGIApp, metrics: CentralMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = 500  # an exception that escapes every handler ends as uvicorn's 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:
            # Raised past the route's middleware (admission's 429/503) and answered by the app's
            # exception handlers, outside this middleware: the answer is the error's status.
            status = getattr(exc, "status_code", 500)
            raise
        finally:
            method = scope.get("method", "")
            route = scope.get("path_template") or "unmatched"
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(time.monotonic() - started)
            if status in REFUSALS:
                self.metrics.refusals.labels(str(status), lane_of(method, scope["path"]) or "none").inc()


def _timestamp(iso: str | None) -> float:
    return from_iso(iso).timestamp() if iso else 0.0


class CentralCollector(Collector):
    """The figures read from the database at scrape time (bounded cost: see the module docstring)."""

    def __init__(
        self,
        database: Database,
        settings: CentralSettings,
        *,
        leading: Callable[[], bool],
        chain: Callable[[], tuple[datetime, bool, int] | None],
        jobs: Callable[[], Iterable[str]] = tuple,
    ) -> None:
        self.database = database
        self.settings = settings
        self.leading = leading
        self.chain = chain
        self.jobs = jobs
        """The scheduled jobs' names, whose last success (``central.core.job_runs``) is reported."""
        """The last check of the audit chain in this process: (when, intact, records), or None."""

    def collect(self) -> Iterator[Metric]:
        yield gauge("fleet_central_build_info", "This central's version (always 1)", ["version"], [(__version__, 1)])
        yield gauge(
            "fleet_central_leader", "1 while this replica leads the jobs that run once", rows=[(self.leading(),)]
        )
        # Declared on every replica; a sample only where the chain was checked (the leader, once its job ran).
        checked = self.chain()
        yield gauge(
            "fleet_central_audit_chain_intact",
            "1 if this replica's last check found the audit chain intact, 0 if broken",
            rows=[(checked[1],)] if checked else [],
        )
        yield gauge(
            "fleet_central_audit_chain_checked_timestamp_seconds",
            "When this replica last recomputed the audit chain (Unix time)",
            rows=[(checked[0].timestamp(),)] if checked else [],
        )
        yield gauge(
            "fleet_central_audit_chain_records",
            "Audit records this replica's last check went through",
            rows=[(checked[2],)] if checked else [],
        )
        yield from disk_gauges("fleet_central", Path(self.settings.data_dir))
        yield from guarded("fleet_central", self._from_database)

    def _from_database(self) -> Iterable[Metric]:
        with self.database.read() as db:
            successes = job_runs.last_successes(db, self.jobs())
            # The partial index uploads_expiry holds exactly the uploads under way.
            receiving = db.execute("SELECT count(*) FROM uploads WHERE state = 'receiving'").fetchone()[0]
            # Each kind from its partial index of the holds in force (released ones are never read).
            holds = db.execute(
                " UNION ALL ".join(
                    f"SELECT '{kind}', count(*) FROM holds WHERE kind = '{kind}' AND released_at IS NULL"
                    for kind in HOLD_KINDS
                )
            ).fetchall()
            # One pass over the cameras: tens of thousands for a whole force (never clips), a few ms.
            flags = db.execute(
                "SELECT COALESCE(borough, ''), "
                + ", ".join(f"sum(flag_{flag})" for flag in FLAGS)
                + ", count(*) FROM devices WHERE lifecycle <> 'retired' GROUP BY COALESCE(borough, '') ORDER BY 1"
            ).fetchall()
            stations = db.execute(
                "SELECT station_id, borough, last_seen_at, acked_seq - applied_seq, pending_clips, pending_bytes, "
                "oldest_pending_recorded_at FROM stations ORDER BY station_id"
            ).fetchall()
        yield gauge("fleet_central_uploads_in_progress", "Uploads created and not yet verified", rows=[(receiving,)])
        yield gauge("fleet_central_holds_active", "Holds in force (never released), by kind", ["kind"], holds)
        yield gauge(
            "fleet_central_devices",
            "Cameras not retired, by borough ('' for none: in stock)",
            ["borough"],
            [(r[0], r[-1]) for r in flags],
        )
        yield gauge(
            "fleet_central_devices_flagged",
            "Cameras not retired with a fleet-health flag set, by borough and flag (stale: not docked for "
            "[fleet] stale_after_days)",
            ["borough", "flag"],
            [(r[0], flag, r[1 + i] or 0) for r in flags for i, flag in enumerate(FLAGS)],
        )
        configured = self.settings.stations
        seen = {r[0]: r for r in stations}
        rows = [
            seen.get(station_id) or (station_id, entry.borough, None, 0, 0, 0, None)
            for station_id, entry in sorted(configured.items())
        ]
        yield gauge(
            "fleet_central_station_last_seen_timestamp_seconds",
            "When the station last sent events or a heartbeat (Unix time; 0: never)",
            ["station", "borough"],
            [(r[0], r[1], _timestamp(r[2])) for r in rows],
        )
        yield gauge(
            "fleet_central_station_events_unapplied",
            "Events acknowledged to the station and not yet applied by the projection",
            ["station", "borough"],
            [(r[0], r[1], r[3]) for r in rows],
        )
        yield gauge(
            "fleet_central_station_pending_clips",
            "Clips waiting at the station for upload, as it last reported",
            ["station", "borough"],
            [(r[0], r[1], r[4]) for r in rows],
        )
        yield gauge(
            "fleet_central_station_pending_bytes",
            "Bytes waiting at the station for upload, as it last reported",
            ["station", "borough"],
            [(r[0], r[1], r[5]) for r in rows],
        )
        yield gauge(
            "fleet_central_station_oldest_pending_clip_timestamp_seconds",
            "When the oldest clip waiting at the station was recorded, as it last reported (Unix time; absent: none)",
            ["station", "borough"],
            [(r[0], r[1], _timestamp(r[6])) for r in rows if r[6]],
        )
        yield gauge(
            "fleet_central_job_last_success_timestamp_seconds",
            "When the job last ended without an error on any replica, or was first scheduled if it never "
            "has (Unix time; from the database: the same on every replica, kept across restarts)",
            ["task"],
            [(task, _timestamp(at)) for task, at in successes],
        )
