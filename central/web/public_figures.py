"""The public figures: what the Mayor's office publishes each month about the cameras.

A month's figures are published once the month is over and ``PUBLISH_AFTER`` has passed
(time for the last stations' reports to arrive); from then on they never change. Each
measure is counted by a time central itself wrote (``central.evidence.figures``), so every
record that can count in a month exists before it is published, and a month's figures
computed again, on another replica or a year later, are the same. That is why they are
cached without a table or a leader: each process keeps the months it computed (``PublicFigures``)
and browsers and proxies may keep them too (``Cache-Control``); nothing needs invalidating.

Small counts are hidden (``central.web.suppression``). Every figure comes out as a ``Figure``
row: the page, the CSV and the JSON show the same rows.
"""

from __future__ import annotations

import hashlib
import re
import statistics
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import msgspec

from central.core.database import Database
from central.evidence import figures as evidence
from central.registry.stations import StationService
from central.web import suppression
from central.web.suppression import SHOWN, SMALL, Status
from fleet.clock import to_iso, utc_now
from fleet.errors import BadRequest, NotFound

PUBLISH_AFTER = timedelta(days=2)
"""A month is published this long after it ends."""
FIRST_YEAR, LAST_YEAR = 2000, 2999
SERIES_MONTHS = 12
"""Months drawn in the charts over time (the month asked and the eleven before it)."""
ALL = "All boroughs"
NO_BOROUGH = "No borough"
"""Clips uploaded by no station (by an administrator, by hand)."""
MONTH = re.compile(r"^([0-9]{4})-([0-9]{2})$")


@dataclass(frozen=True)
class Measure:
    key: str
    title: str
    unit: str
    definition: str


MEASURES = [
    Measure(
        "cameras_in_service",
        "Cameras in service",
        "cameras",
        "Cameras that sent central at least one clip in the month (a clip counts in the month central "
        "verified it), by the borough of the station that took the clip off the camera. A camera used in "
        "two boroughs counts in each; the all-boroughs figure is the sum of the boroughs'.",
    ),
    Measure(
        "clips_uploaded",
        "Clips uploaded",
        "clips",
        "Clips whose upload central verified (SHA-256 checked, stored) in the month, by the borough of "
        "the station that uploaded them.",
    ),
    Measure(
        "evidential_share",
        "Share marked evidential",
        "percent",
        "Of the clips uploaded in the month (all boroughs), the share the officer marked evidential on the "
        "camera, in per cent to one decimal; the count is given as clips_marked_evidential. Marking a clip "
        "evidential later, at central, is not counted: it could change a month already published.",
    ),
    Measure(
        "deleted_default_rule",
        "Clips deleted under the default rule",
        "clips",
        "Clips in no retention category (not evidential, no category from their tags or a reviewer) whose "
        "footage was deleted for good in the month: the purge after the recovery period that follows the "
        "default retention (31 days from recording unless configured otherwise). A clip kept by a hold is "
        "not deleted. By the borough of the station that uploaded it.",
    ),
    Measure(
        "keep_requests",
        "Requests to keep footage",
        "requests",
        "Requests from the public to keep footage longer received in the month (central's clock), by borough "
        "(outcome 'received'), and, for all boroughs, what had become of them when the month's figures were "
        "published: still under review, footage kept, or the outcome they were closed with. Each request "
        "counts under one outcome, so the outcomes add up to the requests received.",
    ),
    Measure(
        "median_dock_to_central_hours",
        "Median time from docking to central",
        "hours",
        "For the clips uploaded in the month, the median time from the moment the station copied the clip off "
        "the docked camera (the station's clock, from the chain of custody) to central's verification of its "
        "upload, in hours to one decimal, by the borough of the station. A median of fewer than 5 clips is "
        "not shown.",
    ),
]
MEASURE = {m.key: m for m in MEASURES}


class Figure(msgspec.Struct, kw_only=True, frozen=True):
    """One published figure (a CSV row): a measure, for a borough or all boroughs, maybe by outcome."""

    month: str
    measure: str
    borough: str
    outcome: str = ""
    value: float | None
    """None when not published (``status``)."""
    status: Status
    unit: str


class MonthFigures(msgspec.Struct, kw_only=True, frozen=True):
    month: str
    published_at: str
    """When the month's figures became final (the month's end plus ``PUBLISH_AFTER``)."""
    figures: list[Figure]


class OpenData(msgspec.Struct, kw_only=True, frozen=True):
    """``/public/figures.json``: a month's figures, and how each is computed."""

    month: str
    published_at: str
    threshold: int
    definitions: dict[str, str]
    figures: list[Figure]


def month_start(month: str) -> datetime:
    """The first moment of ``YYYY-MM`` (UTC); BadRequest for anything else."""
    found = MONTH.match(month)
    if not found or not 1 <= int(found[2]) <= 12:
        raise BadRequest(f"month must be a month as YYYY-MM (e.g. 2026-03), not {month[:20]!r}")
    if not FIRST_YEAR <= int(found[1]) <= LAST_YEAR:
        raise BadRequest(f"there are figures only for months from {FIRST_YEAR}-01 to {LAST_YEAR}-12")
    return datetime(int(found[1]), int(found[2]), 1, tzinfo=UTC)


def next_month(start: datetime) -> datetime:
    return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)


def previous_month(start: datetime) -> datetime:
    return start.replace(year=start.year - (start.month == 1), month=(start.month - 2) % 12 + 1)


def latest_published(now: datetime) -> str:
    """The last month whose figures are final at ``now``."""
    month = previous_month(now.replace(day=1, hour=0, minute=0, second=0, microsecond=0))
    while next_month(month) + PUBLISH_AFTER > now:
        month = previous_month(month)
    return f"{month:%Y-%m}"


@dataclass
class _Counts:
    """Every published month's clip counts, from one pass over the clips (for the charts over time)."""

    latest: str
    clips: dict[str, dict[str | None, tuple[int, int, int]]]
    """{month: {borough: (clips, evidential, cameras)}}."""
    purged: dict[str, dict[str | None, int]]

    @property
    def first(self) -> str | None:
        return min(self.clips, default=None)


class PublicFigures:
    """Computes and keeps the published months (thread-safe: one computation at a time)."""

    def __init__(self, writer: Database, stations: StationService, clock: Callable[[], datetime] = utc_now) -> None:
        self.writer = writer
        self.stations = stations
        self.clock = clock
        self._lock = threading.RLock()
        self._counts: _Counts | None = None
        self._tabled: dict[str, list[Figure]] = {}
        self._months: dict[str, tuple[MonthFigures, str]] = {}

    def latest(self) -> str:
        return latest_published(self.clock())

    def first(self) -> str | None:
        """The first month with figures (None: central has verified no clip yet)."""
        return self._counted().first

    def month(self, month: str) -> tuple[MonthFigures, str]:
        """A published month's figures and their ETag; 400 for no month, 404 for one not published."""
        start = month_start(month)
        latest = self.latest()
        if month > latest:
            raise NotFound(
                f"figures for {month} are published from {next_month(start) + PUBLISH_AFTER:%Y-%m-%d}; "
                f"the latest are {latest}'s"
            )
        kept = self._months.get(month)
        if kept is not None:
            return kept
        with self._lock:
            kept = self._months.get(month)
            if kept is None:
                counts = self._counted()
                if counts.first is None or month < counts.first:
                    raise NotFound(f"central holds no figures before {counts.first or latest}")
                computed = self._compute(month, counts)
                body = msgspec.json.encode(computed)
                kept = self._months[month] = (computed, f'"{hashlib.sha256(body).hexdigest()[:32]}"')
        return kept

    def warm(self) -> None:
        """Compute the latest published month now, so that no visitor waits for it."""
        try:
            self.month(self.latest())
        except NotFound:
            pass  # nothing published yet

    def series(self, month: str, measure: str) -> list[tuple[str, Figure | None]]:
        """The all-boroughs figure of ``measure`` for the ``SERIES_MONTHS`` months up to ``month``
        (None for a month before the first)."""
        counts = self._counted()
        start, out = month_start(month), []
        for _ in range(SERIES_MONTHS):
            key = f"{start:%Y-%m}"
            if counts.first is None or key < counts.first:
                break
            figures = self._tables(key, counts)
            total = (f for f in figures if f.measure == measure and f.borough == ALL and not f.outcome)
            out.append((key, next(total, None)))
            start = previous_month(start)
        return out[::-1]

    # -- computing -------------------------------------------------------------------------------

    def _boroughs(self) -> dict[str, str]:
        return {s.station_id: s.borough for s in self.stations.all()}

    def _counted(self) -> _Counts:
        latest = self.latest()
        counts = self._counts
        if counts is not None and counts.latest == latest:
            return counts
        with self._lock:
            if self._counts is None or self._counts.latest != latest:
                before = to_iso(next_month(month_start(latest)))
                boroughs = self._boroughs()
                clips: dict[str, dict[str | None, tuple[int, int, int]]] = {}
                purged: dict[str, dict[str | None, int]] = {}
                with self.writer.read() as db:
                    for month, borough, n, marked, cameras in evidence.clips_by_month(db, boroughs, before):
                        clips.setdefault(month, {})[borough] = (n, marked, cameras)
                    for month, borough, n in evidence.default_rule_purges_by_month(db, boroughs, before):
                        purged.setdefault(month, {})[borough] = n
                self._counts = _Counts(latest, clips, purged)
            return self._counts

    def _requests(self, month: str) -> evidence.RequestCounts:
        with self.writer.read() as db:
            return evidence.keep_request_counts(db, month, to_iso(next_month(month_start(month)) + PUBLISH_AFTER))

    def _tables(self, month: str, counts: _Counts) -> list[Figure]:
        """The month's counted figures (all but the median), small counts hidden."""
        kept = self._tabled.get(month)
        if kept is None:
            with self._lock:
                kept = self._tabled[month] = self._tabled.get(month) or self._count(month, counts)
        return kept

    def _count(self, month: str, counts: _Counts) -> list[Figure]:
        clips = counts.clips.get(month, {})
        purged = counts.purged.get(month, {})
        requests = self._requests(month)
        areas = sorted({_area(b) for b in (*clips, *purged)} | set(requests.received))
        by_area: dict[str, tuple[int, int, int]] = {}
        for borough, (n, marked, cameras) in clips.items():
            was = by_area.get(_area(borough), (0, 0, 0))
            by_area[_area(borough)] = (was[0] + n, was[1] + marked, was[2] + cameras)
        deleted: dict[str, int] = {}
        for borough, n in purged.items():
            deleted[_area(borough)] = deleted.get(_area(borough), 0) + n
        clip_counts = {a: by_area.get(a, (0, 0, 0))[0] for a in areas}
        camera_counts = {a: by_area.get(a, (0, 0, 0))[2] for a in areas}
        clip_status, clip_total = suppression.protect(clip_counts)
        # a borough's cameras are at most its clips (and at least one where it has any): protected
        # with the clips table beside them, never alone
        out = [
            *_table(
                month,
                "cameras_in_service",
                camera_counts,
                suppression.protect_bounded(camera_counts, clip_counts, clip_status),
            ),
            *_table(month, "clips_uploaded", clip_counts, (clip_status, clip_total)),
        ]
        uploaded = sum(n for n, _, _ in by_area.values())
        marked = sum(m for _, m, _ in by_area.values())
        total_shown = next(f for f in out if f.measure == "clips_uploaded" and f.borough == ALL).status == SHOWN
        status = suppression.share_status(marked, uploaded) if total_shown else SMALL
        out += [
            _figure(month, "evidential_share", ALL, round(100 * marked / uploaded, 1) if uploaded else 0, status),
            _figure(month, "evidential_share", ALL, marked, status, unit="clips", outcome="clips_marked_evidential"),
            *_table(month, "deleted_default_rule", {a: deleted.get(a, 0) for a in areas}),
        ]
        # Two tables with one total, the requests received: by borough, and by outcome, protected
        # together (``protect_shared``); with no safe way to publish the outcomes, they are left out.
        received = {a: requests.received.get(a, 0) for a in areas}
        outcomes: dict[str, int] = {}
        for per_borough in requests.outcomes.values():
            for outcome, n in per_borough.items():
                outcomes[outcome] = outcomes.get(outcome, 0) + n
        by_borough, by_outcome, total = suppression.protect_shared(received, outcomes)
        total_requests = sum(received.values())
        out += [_figure(month, "keep_requests", a, received[a], by_borough[a], outcome="received") for a in areas]
        out.append(_figure(month, "keep_requests", ALL, total_requests, total, outcome="received"))
        if by_outcome is not None:
            out += [
                _figure(month, "keep_requests", ALL, outcomes[o], by_outcome[o], outcome=o) for o in sorted(outcomes)
            ]
        return out

    def _compute(self, month: str, counts: _Counts) -> MonthFigures:
        start = month_start(month)
        out = self._tables(month, counts)
        with self.writer.read() as db:
            hours = evidence.dock_to_central_hours(db, self._boroughs(), to_iso(start), to_iso(next_month(start)))
        by_area: dict[str, list[float]] = {}
        for borough, h in hours:
            by_area.setdefault(_area(borough), []).append(h)
        areas = sorted({f.borough for f in out if f.borough != ALL})
        for area, found in [*((a, by_area.get(a, [])) for a in areas), (ALL, [h for _, h in hours])]:
            status = SHOWN if len(found) >= suppression.THRESHOLD else SMALL
            out.append(
                _figure(month, "median_dock_to_central_hours", area, round(statistics.median(found), 1), status)
                if status == SHOWN
                else _figure(month, "median_dock_to_central_hours", area, None, status)
            )
        return MonthFigures(month=month, published_at=to_iso(next_month(start) + PUBLISH_AFTER), figures=out)


def _area(borough: str | None) -> str:
    return borough if borough is not None else NO_BOROUGH


def _figure(
    month: str, measure: str, borough: str, value: float | None, status: Status, *, unit: str = "", outcome: str = ""
) -> Figure:
    return Figure(
        month=month,
        measure=measure,
        borough=borough,
        outcome=outcome,
        value=value if status == SHOWN else None,
        status=status,
        unit=unit or MEASURE[measure].unit,
    )


def _table(
    month: str, measure: str, counts: dict[str, int], protected: tuple[dict[str, Status], Status] | None = None
) -> Iterable[Figure]:
    """A borough table and its all-boroughs total, small counts protected (``protected``: as
    already decided with a table beside it)."""
    statuses, total_status = protected or suppression.protect(counts)
    for area in sorted(counts):
        yield _figure(month, measure, area, counts[area], statuses[area])
    yield _figure(month, measure, ALL, sum(counts.values()), total_status)
