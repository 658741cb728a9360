"""Central's scheduled jobs (apscheduler 3, on the app's event loop)."""

from __future__ import annotations

import logging
from datetime import timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from apscheduler.executors.pool import ThreadPoolExecutor

from fleet.clock import utc_now
from central.fleet_health import FleetHealth
from central.receiver import UploadReceiver

logging.getLogger("apscheduler").setLevel(logging.WARNING)


def build_scheduler(receiver: UploadReceiver, expiry_check: timedelta, health: FleetHealth,
                    health_check: timedelta, retention=None, retention_hour: int = 2) -> AsyncIOScheduler:
    """Must be started inside the running loop (a lifespan hook), never at import."""
    scheduler = AsyncIOScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1},
                                 executors={"default": {"type": "asyncio"}, "threads": ThreadPoolExecutor(1)})
    scheduler.add_job(receiver.expire, "interval", seconds=expiry_check.total_seconds(), id="expire-uploads")
    # The health job reads and writes SQLite for a while: off the event loop, in apscheduler's pool.
    scheduler.add_job(health.run, "interval", seconds=health_check.total_seconds(), id="fleet-health",
                      executor="threads", next_run_time=utc_now())
    if retention is not None:
        # Daily: soft-delete what retention ended and no hold protects, purge after recovery.
        scheduler.add_job(retention.run, "cron", hour=retention_hour, minute=0, id="retention", executor="threads")
        # New clips get their end of retention soon after they are verified.
        scheduler.add_job(retention.assess, "interval", minutes=10, id="retention-assess", executor="threads")
    return scheduler
