"""Central's scheduled jobs (apscheduler 3, on the app's event loop)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta
from functools import partial, wraps
from typing import Any, TypeVar

from apscheduler.events import EVENT_SCHEDULER_SHUTDOWN
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from central.alerts.service import DELIVER_EVERY
from central.core import job_runs
from central.core.leadership import Leadership, when_leading, when_leading_async
from central.core.services import Services
from central.evidence import audit, keep_request_escalation
from central.uploads.receiver import UploadReceiver
from central.web.evidence_pages import ChainCheck
from fleet.clock import utc_now

log = logging.getLogger(__name__)
T = TypeVar("T")
logging.getLogger("apscheduler").setLevel(logging.WARNING)


def build_scheduler(
    services: Services, receiver: UploadReceiver, leadership: Leadership, chain_check: ChainCheck
) -> AsyncIOScheduler:
    """Must be started inside the running loop (a lifespan hook), never at import.

    Every replica schedules every job; each runs only where ``leadership`` says this process leads.
    Each run is counted and timed by job id (``fleet_central_job_*``, docs/metrics.md); a replica
    that does not lead counts nothing."""
    settings, health, retention, metrics = services.settings, services.health, services.retention, services.metrics

    writer = services.store.writer

    def recorded(name: str, job: Callable[..., T]) -> Callable[..., T]:
        """``job``, counted and timed in this process, its outcome kept in ``job_runs`` for every replica."""
        timed = metrics.timed(name, job)

        @wraps(job)
        def run(*args: Any, **kwargs: Any) -> T:
            try:
                result = timed(*args, **kwargs)
            except BaseException as exc:
                job_runs.ran(writer, name, exc, leadership.name)
                raise
            job_runs.ran(writer, name, None, leadership.name)
            return result

        return run

    def led(job: Callable[..., object], name: str) -> Callable[..., object]:
        return when_leading(leadership, recorded(name, job))

    def led_async(job: Callable[..., Any], name: str) -> Callable[..., Any]:
        timed = metrics.timed_async(name, job)

        @wraps(job)
        async def run(*args: Any, **kwargs: Any) -> Any:
            try:
                result = await timed(*args, **kwargs)
            except BaseException as exc:
                await asyncio.to_thread(job_runs.ran, writer, name, exc, leadership.name)
                raise
            await asyncio.to_thread(job_runs.ran, writer, name, None, leadership.name)
            return result

        return when_leading_async(leadership, run)

    scheduler = AsyncIOScheduler(
        timezone="UTC",
        job_defaults={"coalesce": True, "max_instances": 1},
        # Alerts on a thread of their own: a webhook or a relay that times out never holds the other jobs up.
        executors={"default": {"type": "asyncio"}, "threads": ThreadPoolExecutor(1), "alerts": ThreadPoolExecutor(1)},
    )
    # On the loop, like the receiver's requests: an upload is only forgotten when no PATCH holds its asyncio lock.
    scheduler.add_job(
        led_async(receiver.expire, "expire-uploads"),
        "interval",
        minutes=settings.expiry_check_minutes,
        id="expire-uploads",
    )
    # The health job reads and writes SQLite for a while: off the event loop, in apscheduler's pool.
    scheduler.add_job(
        led(health.run, "fleet-health"),
        "interval",
        minutes=settings.fleet.health_check_minutes,
        id="fleet-health",
        executor="threads",
        next_run_time=utc_now(),
    )
    # Daily: soft-delete what retention ended and no hold protects, purge after recovery.
    scheduler.add_job(
        led(retention.run, "retention"),
        "cron",
        hour=settings.retention.job_hour_utc,
        minute=0,
        id="retention",
        executor="threads",
    )
    # Daily too: a closed public request's contact address is erased once it is no longer needed.
    scheduler.add_job(
        led(services.keep_requests.forget_contacts, "keep-request-contacts"),
        "cron",
        hour=settings.retention.job_hour_utc,
        minute=30,
        id="keep-request-contacts",
        executor="threads",
    )
    # Daily too: firmware artifacts no release names (a crash during an addition), a day old at least.
    scheduler.add_job(
        led(services.releases.sweep_orphans, "firmware-orphans"),
        "cron",
        hour=settings.retention.job_hour_utc,
        minute=45,
        id="firmware-orphans",
        executor="threads",
    )
    # Hourly: a public request past its review date is written to the audit trail (once), besides
    # heading the queue and the overview's alerts; it is never closed or released for being late.
    scheduler.add_job(
        led(partial(keep_request_escalation.escalate, services.store.writer), "keep-request-overdue"),
        "interval",
        hours=1,
        id="keep-request-overdue",
        executor="threads",
        next_run_time=utc_now() + timedelta(minutes=2),
    )
    # A deployment's phase whose soak has ended opens the next without waiting for a result to arrive.
    scheduler.add_job(
        led(services.deployments.advance_running, "deployment-phases"),
        "interval",
        seconds=settings.firmware.phase_check_seconds,
        id="deployment-phases",
        executor="threads",
    )
    # New clips get their end of retention soon after they are verified.
    scheduler.add_job(
        led(retention.assess, "retention-assess"), "interval", minutes=10, id="retention-assess", executor="threads"
    )
    # The audit chain's anchors and head go to the file kept outside the database (first at start-up).
    scheduler.add_job(
        led(partial(audit.publish, services.store.writer, settings.anchors_file), "publish-anchors"),
        "interval",
        minutes=settings.audit.publish_minutes,
        id="publish-anchors",
        executor="threads",
        next_run_time=utc_now(),
    )
    # Every replica (no leader needed: a published month never changes) works out the latest
    # public figures before the first visitor asks, a minute after start-up and then hourly.
    scheduler.add_job(
        recorded("public-figures", services.public_figures.warm),
        "interval",
        hours=1,
        id="public-figures",
        executor="threads",
        next_run_time=utc_now() + timedelta(minutes=1),
    )
    # The whole audit chain recomputed (and checked against the published anchors): what the
    # audit page's button does, by the leader, so a broken chain raises an alert without anyone
    # asking (fleet_central_audit_chain_intact). Not at start-up: on a large force it takes a while.
    scheduler.add_job(
        led(partial(verify_chain, services, chain_check), "verify-audit-chain"),
        "interval",
        hours=settings.audit.verify_hours,
        id="verify-audit-chain",
        executor="threads",
        next_run_time=utc_now() + timedelta(minutes=5),
    )
    if settings.alerts.destinations:
        # What needs a person, as one digest per destination; then the retries as they fall due.
        scheduler.add_job(
            led(services.alerts.run, "alerts-digest"),
            "interval",
            minutes=settings.alerts.digest_minutes,
            id="alerts-digest",
            executor="alerts",
            next_run_time=utc_now() + timedelta(minutes=1),
        )
        scheduler.add_job(
            led(services.alerts.deliver, "alerts-deliver"),
            "interval",
            seconds=DELIVER_EVERY.total_seconds(),
            id="alerts-deliver",
            executor="alerts",
        )
    job_runs.scheduled(writer, metrics.jobs)
    return scheduler


def verify_chain(services: Services, chain_check: ChainCheck) -> bool:
    """Recompute the audit chain, keep the result for the audit page and ``/metrics``; whether it is intact."""
    published = audit.read_published(services.settings.anchors_file)
    report = audit.verify_database(services.store.writer, published)
    chain_check.last = (utc_now(), report, len(published), "central (scheduled check)")
    if not report.intact:
        log.error("the audit chain is broken at record %s: %s", report.first_broken, report.reason)
    return report.intact


async def stop_scheduler(scheduler: AsyncIOScheduler) -> None:
    """Stop the scheduler and return only once every running job has finished.

    ``AsyncIOScheduler.shutdown(wait=True)`` only schedules the shutdown on the loop and
    returns at once, so a thread job (the health check) could still be querying when the
    store was closed under it, which crashed the process."""
    stopped = asyncio.Event()
    scheduler.add_listener(lambda _event: stopped.set(), EVENT_SCHEDULER_SHUTDOWN)
    scheduler.shutdown(wait=True)
    await stopped.wait()
