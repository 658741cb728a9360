import asyncio
import threading

import pytest
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from central.core.jobs import stop_scheduler


@pytest.mark.slow  # a scheduler's threads: the whole suite, not test-fast
@pytest.mark.sqlite_only  # no database at all: once
def test_stop_scheduler_returns_after_a_running_thread_job_has_finished():
    """AsyncIOScheduler.shutdown(wait=True) alone returns before its jobs end (the store was closed under one)."""
    started, release, finished = threading.Event(), threading.Event(), threading.Event()

    def job():
        started.set()
        release.wait(10)
        finished.set()

    async def main():
        scheduler = AsyncIOScheduler(executors={"threads": ThreadPoolExecutor(1)})
        scheduler.add_job(job, "date", executor="threads")
        scheduler.start()
        await asyncio.to_thread(started.wait, 10)
        # From a thread of its own: the shutdown blocks the loop until the job ends, so a
        # call_later would fire only after the job had waited out its 10 s.
        threading.Timer(0.2, release.set).start()
        await stop_scheduler(scheduler)
        return finished.is_set()

    assert asyncio.run(main()), "stop_scheduler returned while the job was still running"
