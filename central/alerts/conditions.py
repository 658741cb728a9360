"""What needs a person now: the dashboard's alert counts, a station silent for hours, a broken audit
chain, each counted per borough (the force's own, the audit chain, under borough ``""``).

The dashboard's overview and the digest job count through ``counts`` here, so an alert a person
is sent is the card they find when they follow its link. Counts only: never a serial, an officer
or a clip, so a message carries no more than the overview shows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import NamedTuple
from urllib.parse import quote

from central.access.scope import OwnerLookup
from central.core.database import Database
from central.events import claims
from central.evidence import keep_request_escalation
from central.registry import assignments, attribution
from central.registry.devices import DeviceService
from central.registry.stations import StationHealth
from fleet.clock import to_iso
from fleet.config import ALERT_KINDS

FORCE = ""
"""The borough of an alert that is the force's own (a broken audit chain)."""

REFUSALS_SHOWN = timedelta(days=30)
"""Refused station events count as an alert this long; the Stations page lists the latest whatever their age."""


class Kind(NamedTuple):
    key: str
    label: str
    link: str
    """The dashboard page that lists what is counted (a path; ``{borough}`` filled in where it filters)."""
    dashboard: bool = True
    """One of the overview's alert cards."""


KINDS: tuple[Kind, ...] = (
    Kind("replace_soon", "Batteries to replace within 30 days", "/devices?flag=replace_soon&borough={borough}"),
    Kind("short_shift", "Won't last a shift", "/devices?flag=short_shift&borough={borough}"),
    Kind("over_temp", "Over temperature at the last docking", "/devices?flag=over_temp&borough={borough}"),
    Kind("capacity_drop", "Sudden capacity drop", "/devices?flag=capacity_drop&borough={borough}"),
    Kind("lost", "Lost cameras", "/devices?flag=lost&borough={borough}"),
    Kind("stale", "Not docked for too long", "/devices?flag=stale&borough={borough}"),
    Kind("failed_uploads", "Failed uploads at stations", "/stations"),
    Kind("conflicts", "Open assignment conflicts", "/officers/conflicts"),
    Kind("unattributed", "Clips attributed to nobody", "/clips?state=unattributed"),
    Kind(
        "station_refusals", f"Station events refused (security), last {REFUSALS_SHOWN.days} days", "/stations#refusals"
    ),
    Kind("keep_overdue", "Requests to keep footage past their review date", "/keep-requests"),
    Kind("station_silent", "Stations not heard from for hours", "/stations", dashboard=False),
    Kind("audit_chain", "Audit chain broken", "/audit", dashboard=False),
)
BY_KEY = {kind.key: kind for kind in KINDS}
KEEP_OVERDUE = "keep_overdue"
"""Shown only to those who work the public's requests (information managers) on the dashboard."""
assert tuple(BY_KEY) == ALERT_KINDS, "fleet.config.ALERT_KINDS names the same kinds, in this order"


def link(kind: str, borough: str) -> str:
    """The page of an alert, filtered to its borough where the page filters."""
    path = BY_KEY[kind].link
    return path.replace("{borough}", quote(borough)) if borough else path.replace("&borough={borough}", "")


def counts(
    database: Database,
    owners: OwnerLookup,
    devices: DeviceService,
    stations: list[StationHealth],
    within: str | None,
    now: datetime,
    *,
    silent_after: timedelta | None = None,
) -> dict[str, int]:
    """The dashboard's alert counts, of one borough (``within``) or the whole force; ``stations``: those
    counted (the borough's). With ``silent_after``, also the stations silent that long."""
    with database.read() as db:
        found = {
            "conflicts": assignments.open_conflicts_count(db, within),
            "unattributed": attribution.unattributed_count(db, within),
            "station_refusals": claims.refusals_count(
                db, to_iso(now - REFUSALS_SHOWN), owners.stations_of(within) if within is not None else None
            ),
            KEEP_OVERDUE: keep_request_escalation.overdue_count(db, within, now),
        }
    found |= devices.flag_counts(within)
    found["failed_uploads"] = sum(s.failed_clips for s in stations)
    if silent_after is not None:
        found["station_silent"] = sum(
            1 for s in stations if s.last_seen_at is None or now - s.last_seen_at > silent_after
        )
    return found


def observe(
    database: Database,
    owners: OwnerLookup,
    devices: DeviceService,
    stations: Iterable[StationHealth],
    now: datetime,
    *,
    silent_after: timedelta,
    chain_intact: Callable[[], bool | None],
) -> dict[tuple[str, str], int]:
    """Every borough's alerts now, ``{(kind, borough): count}`` (0 included: resolved ones must be
    seen), and the audit chain's when this process knows it (its last check; else left out)."""
    by_borough: dict[str, list[StationHealth]] = {}
    for station in stations:
        by_borough.setdefault(station.borough, []).append(station)
    found = {
        (kind, borough): n
        for borough, theirs in sorted(by_borough.items())
        for kind, n in counts(database, owners, devices, theirs, borough, now, silent_after=silent_after).items()
    }
    intact = chain_intact()
    if intact is not None:
        found["audit_chain", FORCE] = 0 if intact else 1
    return found
