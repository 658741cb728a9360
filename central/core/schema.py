"""The core package's own table: when each scheduled job last ran (``central.core.job_runs``)."""

from __future__ import annotations

from central.core.migrations import Step

TABLES = frozenset({"job_runs"})

STEPS = [
    # v31: each scheduled job's last success and failure, kept where every replica reads them and
    # a restart forgets nothing (``fleet_central_job_last_success_timestamp_seconds`` was this
    # process's own, absent after a restart until the job ran again: a day for the daily ones).
    Step(
        31,
        """
    CREATE TABLE job_runs (
        task            TEXT PRIMARY KEY,
        scheduled_at    TEXT NOT NULL,
        last_success_at TEXT,
        last_failure_at TEXT,
        last_error      TEXT,
        last_replica    TEXT
    );
    """,
    ),
]
