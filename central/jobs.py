"""Central's scheduled jobs (apscheduler 3, on the app's event loop)."""

from __future__ import annotations

import logging
from datetime import timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from central.receiver import UploadReceiver

logging.getLogger("apscheduler").setLevel(logging.WARNING)


def build_scheduler(receiver: UploadReceiver, expiry_check: timedelta) -> AsyncIOScheduler:
    """Must be started inside the running loop (a lifespan hook), never at import."""
    scheduler = AsyncIOScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1})
    scheduler.add_job(receiver.expire, "interval", seconds=expiry_check.total_seconds(), id="expire-uploads")
    return scheduler
