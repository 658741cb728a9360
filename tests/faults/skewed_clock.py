"""Run a ``fleet`` command whose wall clock is off by some hours, as on a station with a bad clock.

    python -m tests.faults.skewed_clock +27.5 station run --config station.toml

libfaketime would be the natural tool, but here its clock_nanosleep interception makes
Python's ``time.sleep`` fail with EINVAL (and faking the monotonic clock hangs threads). So
the clock is shifted where this system reads it: ``fleet.clock.utc_now`` (every station
timestamp comes from it) and ``time.time``, before any station module is imported.
Monotonic time is left alone, as on a real machine whose wall clock is wrong.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime, timedelta


def skew(hours: float) -> None:
    import fleet.clock

    offset = timedelta(hours=hours)
    real_utc_now, real_time, real_time_ns = fleet.clock.utc_now, time.time, time.time_ns
    fleet.clock.utc_now = lambda: real_utc_now() + offset
    time.time = lambda: real_time() + offset.total_seconds()
    time.time_ns = lambda: real_time_ns() + int(offset.total_seconds() * 1e9)
    _skew_scheduler(offset)


def _skew_scheduler(offset: timedelta) -> None:
    """APScheduler reads ``datetime.now`` itself: give it the same wrong clock, as the OS would."""
    import apscheduler.job
    import apscheduler.schedulers.background
    import apscheduler.triggers.interval  # noqa: F401

    class SkewedDatetime(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.now(tz) + offset

    for name, module in list(sys.modules.items()):
        if name.startswith("apscheduler") and getattr(module, "datetime", None) is datetime:
            vars(module)["datetime"] = SkewedDatetime


def main() -> None:
    hours, args = float(sys.argv[1]), sys.argv[2:]
    skew(hours)
    from fleet.cli import main as fleet_main

    sys.argv = ["fleet", *args]
    sys.exit(fleet_main())


if __name__ == "__main__":
    main()
