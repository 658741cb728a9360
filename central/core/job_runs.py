"""When each scheduled job last succeeded or failed, in the database (``job_runs``).

A job runs on the leading replica only, and the leader changes; a process's own memory of its
runs is lost when it restarts. The alert "a job has not run" needs the time of the last success
whoever ran it, the same on every replica and across restarts: each run ends by writing it
here, and ``/metrics`` reads it back at scrape time. A job never run yet is reported from when
it was first scheduled, so a fresh install is not an alert, and a job that never succeeds
becomes one once its period has passed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from central.core.database import Database, without_passwords
from fleet.clock import to_iso, utc_now

log = logging.getLogger(__name__)
ERROR_CHARS = 500
"""A failure's message kept (the log has it whole), without any password in it (a database URL in a
driver's message): every replica, every backup and whoever reads the table sees it."""


def scheduled(writer: Database, tasks: Iterable[str]) -> None:
    """These jobs are scheduled from now on (the first time each is seen; later calls change nothing)."""
    now = to_iso(utc_now())
    with writer.write() as db:
        db.executemany(
            "INSERT INTO job_runs (task, scheduled_at) VALUES (?, ?) ON CONFLICT (task) DO NOTHING",
            [(task, now) for task in sorted(set(tasks))],
        )


def ran(writer: Database, task: str, error: BaseException | None, replica: str) -> None:
    """A run of ``task`` ended on ``replica``, well (``error`` None) or not. A run whose record cannot be written
    (the database is away) is logged, never raised: the job's own outcome is what counts."""
    now = to_iso(utc_now())
    try:
        with writer.write() as db:
            if error is None:
                db.execute(
                    "UPDATE job_runs SET last_success_at = ?, last_replica = ? WHERE task = ?", [now, replica, task]
                )
            else:
                text = without_passwords(f"{type(error).__name__}: {error}")[:ERROR_CHARS]
                db.execute(
                    "UPDATE job_runs SET last_failure_at = ?, last_error = ?, last_replica = ? WHERE task = ?",
                    [now, text, replica, task],
                )
    except Exception:
        log.warning("could not record a run of the job %s", task, exc_info=True)


def last_successes(db, tasks: Iterable[str]) -> list[tuple[str, str]]:
    """(task, when it last succeeded, or was first scheduled if never) of these tasks, by name."""
    wanted = sorted(set(tasks))
    return [
        (task, at)
        for task, at in db.execute(
            f"SELECT task, COALESCE(last_success_at, scheduled_at) FROM job_runs WHERE {db.dialect.any_of('task')} "
            "ORDER BY task",
            [db.dialect.many(wanted)],
        )
    ]
