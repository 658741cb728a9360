"""What a destination has not been told yet: the rule that makes a digest instead of a flood.

Against what the destination was last told of each (kind, borough) it wants:
- **new**: active now (count > 0), told nothing or that it was resolved;
- **worse**: more than it was told (fewer is left for the reminder: counts that wobble, the
  unattributed queue, would otherwise send a message every digest);
- **resolved**: 0 now, told it was active; told once, then nothing until it comes back;
- **reminder**: when anything active was last told ``remind_after`` ago or more, every alert still
  active and not already in the message is told again, so reminders come together, once a day.

An alert this process cannot judge now (the audit chain before its first check here) is absent
from ``current`` and changes nothing: unknown is not resolved.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import NamedTuple

from central.alerts.message import Change
from central.alerts.routing import wants
from fleet.config import AlertDestination

Key = tuple[str, str]
"""(kind, borough)."""


class Told(NamedTuple):
    number: int
    at: datetime


class News(NamedTuple):
    kind: str
    borough: str
    number: int
    previous: int
    change: Change


def news(
    destination: AlertDestination,
    current: Mapping[Key, int],
    told: Mapping[Key, Told],
    now: datetime,
    remind_after: timedelta,
) -> list[News]:
    """What goes into this destination's next message, in (kind, borough) order; [] for none."""
    found: list[News] = []
    still: list[News] = []
    reminder_due = False
    for (kind, borough), count in sorted(current.items()):
        if not wants(destination, kind, borough):
            continue
        before = told.get((kind, borough))
        previous = before.number if before else 0
        if count > 0 and previous == 0:
            found.append(News(kind, borough, count, previous, "new"))
        elif count > previous > 0:
            found.append(News(kind, borough, count, previous, "worse"))
        elif count == 0 and previous > 0:
            found.append(News(kind, borough, count, previous, "resolved"))
        elif count > 0 and before is not None:
            still.append(News(kind, borough, count, previous, "reminder"))
            reminder_due = reminder_due or now - before.at >= remind_after
    if reminder_due:
        found = sorted(found + still)
    return found
