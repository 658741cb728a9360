"""Times on the staff's pages in the force's local time (London), each named GMT or BST.

Central stores and exchanges UTC (``fleet.clock``). People read and type London time: a
complaint's "about half past two" on a July afternoon is 13:30 UTC. The public's form already
takes London time (``central.evidence.keep_request_form``), and pages in UTC put an hour
between what it recorded and what an officer then searched for. The zone is named beside
every time of day: on the night the clocks go back, 01:30 happens twice.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from fleet.clock import LONDON, from_iso

TIME_OF_DAY = ("%H", "%I", "%M")


def local(value: datetime | date | str | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """``value`` (aware, naive UTC, a stored RFC 3339 string, or a plain date) as London reads it."""
    if value is None or value == "":
        return "-"
    if isinstance(value, str):
        try:
            moment: datetime | date = from_iso(value)
        except ValueError:
            return value  # not a stored time (a station's own text, say): shown as it is, not a 500
    else:
        moment = value
    if not isinstance(moment, datetime):
        return moment.strftime(fmt)  # a day, not a moment: no zone moves it
    here = (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).astimezone(LONDON)
    text = here.strftime(fmt)
    return f"{text} {here.tzname()}" if any(part in fmt for part in TIME_OF_DAY) else text


def moment_typed(text: str) -> datetime:
    """A time a person typed (``YYYY-MM-DD`` or ``YYYY-MM-DDTHH:MM[:SS]``), London time, in UTC.
    An hour the clocks skip reads as the one after; one they repeat, as its first."""
    typed = datetime.fromisoformat(text)
    return typed.replace(tzinfo=LONDON).astimezone(UTC)
