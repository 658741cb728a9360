"""The public's requests to keep footage: received without a login, reviewed by an
information-management officer, answered by reference.

A request names a borough, a place in words, a time window (at most ``LONGEST_WINDOW``, not in
the future), optionally officers' shoulder numbers, and a contact address. From the moment it is
stored it protects, like a hold (``central.evidence.holds.REQUEST_HELD``, which every deletion
query carries), every clip the borough's cameras recorded in the window widened by ``MARGIN``:
nothing that could match is deleted while it is reviewed. Clips soft-deleted but not yet purged
come back (``RetentionService.restore_held``). The officer then **narrows** it to the clips that
match (only those stay protected) or **closes** it with an outcome the requester is told in
plain words (and an internal note). Every step is in the audit chain, and the stations hear of
each change in what is held (``holds.announce_holds``), so their copies are kept too.

What the public is ever shown is the reference, the state and its meaning in plain words, the
dates, and counts: never footage, never the place, the shoulder numbers or the contact given.
Footage already purged is answered from the audit trail ("deleted on …, under the 31-day rule");
a request that finds only purged footage is closed at once with that answer.

Submissions are throttled per client address and for the form as a whole (the login
throttle's machinery, ``central.access.login_throttle.FormThrottle``), in the transaction that
stores the request. References are ``KF-`` and 12 Crockford base-32 characters (60 random
bits): short enough to read over the phone, and status lookups that miss are throttled too.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import msgspec

from central.access.login_throttle import FormThrottle
from central.core.database import Database
from central.evidence import audit, holds
from central.evidence.holds import REQUEST_HELD, STAFF_HELD
from central.evidence.retention import RetentionService
from fleet.clock import from_iso, to_iso, utc_now
from fleet.config import CentralSettings
from fleet.errors import BadRequest, Conflict, NotFound

MARGIN = timedelta(hours=1)
"""The window a request protects reaches this far either side of the one given: people misremember
times, and cameras' clocks drift."""
LONGEST_WINDOW = timedelta(hours=24)
OLDEST = timedelta(days=7 * 366)
"""Nothing recorded longer ago than this is kept but as evidence under the force's own rules."""
REVIEW_DAYS = 10
"""The requester is promised an answer within this many days."""
LOCAL = ZoneInfo("Europe/London")
"""The times the public types are the force's local times."""
ADDRESS_FREE = 5
"""Requests from one client address before it waits (growing waits, as for logins)."""
ALL_FREE = 200
"""Requests from everyone together before the form waits: ~100 times the expected rate."""
LOOKUP_MISSES_FREE = 20
"""Status lookups of a reference that does not exist, from one address, before it waits."""
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_REFERENCE = re.compile(r"^(?:KF)?([0-9A-Z]{12})$")
_SHOULDER = re.compile(r"^[A-Z0-9]{1,10}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

OUTCOMES = {
    "no_matching_footage": "We looked at the footage from that time and place and found no recording that matches "
    "what you described. It now follows the force's normal rules, and footage not needed as evidence is deleted "
    "31 days after it was recorded.",
    "concluded": "The matter your request was about has been dealt with. The recordings we kept for it now follow "
    "the force's normal rules.",
    "kept_as_evidence": "The recordings that match your request are now kept as evidence, under the force's rules "
    "for evidence, so they no longer need your request to keep them.",
    "withdrawn": "Your request was withdrawn, as you asked.",
    "not_actionable": "We could not act on this request (for example, it repeated another request, or did not "
    "describe an event we could look for).",
}
"""What an officer may close a request with, and what the requester is told for each."""
ALREADY_DELETED = "already_deleted"
"""The outcome of a request that found only purged footage: closed by central at once."""
FIGURE_OUTCOMES = ("under_review", "footage_kept", *OUTCOMES, ALREADY_DELETED)
"""Every outcome ``counts_by_borough_month`` reports."""


class NewRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A request as the public form gives it, checked (``parse_form``)."""

    borough: str
    place: str
    happened_from: datetime
    happened_to: datetime
    shoulder_numbers: list[str] = []
    contact: str


class Deleted(msgspec.Struct, kw_only=True):
    """Footage a request came too late for, from the audit trail."""

    clips: int
    first: date
    last: date
    rule: str
    """Why, in words: "the 31-day rule", "its retention period", "a reviewer's decision"."""

    def sentence(self) -> str:
        when = (
            f"on {self.first:%-d %B %Y}"
            if self.first == self.last
            else (f"between {self.first:%-d %B %Y} and {self.last:%-d %B %Y}")
        )
        what = "A recording" if self.clips == 1 else f"{self.clips} recordings"
        return f"{what} from that time and place had already been deleted {when}, under {self.rule}."


class PublicStatus(msgspec.Struct, kw_only=True):
    """What anyone holding a reference may learn: no footage, no personal data."""

    reference: str
    received_on: date
    state: str
    """"open", "narrowed" or "closed"."""
    review_by: date
    headline: str
    explanation: str
    kept: int = 0
    """Recordings kept for this request, once narrowed."""
    deleted: str | None = None
    """The truthful answer about footage already deleted, if any."""


class QueueRow(msgspec.Struct, kw_only=True):
    reference: str
    borough: str
    place: str
    happened_from: datetime
    happened_to: datetime
    hold_from: datetime
    hold_to: datetime
    shoulder_numbers: list[str]
    contact: str
    received_at: datetime
    review_by: datetime
    state: str
    deadline: datetime | None
    """The earliest moment a clip this request protects would otherwise be deleted (None: closed)."""
    protected: int
    """Clips at central this request protects now."""
    outcome: str | None = None
    note: str | None = None
    narrowed_at: datetime | None = None
    narrowed_by: str | None = None
    closed_at: datetime | None = None
    closed_by: str | None = None


class MatchingClip(msgspec.Struct, kw_only=True):
    clip_id: str
    recorded_at: datetime
    device_serial: str
    officer_id: str | None
    station_id: str | None
    retain_until: datetime | None
    deleted_at: datetime | None
    purged_at: datetime | None
    kept: bool
    """Chosen when the request was narrowed."""


class OverRetention(msgspec.Struct, kw_only=True):
    """A borough's clips past their end of retention that only public requests keep."""

    borough: str
    clips: int
    longest_days: int
    """How long past its end of retention the longest-kept of them is."""
    mean_days: float


class MonthCounts(msgspec.Struct, kw_only=True):
    """Requests received in one borough in one month, by their outcome (``FIGURE_OUTCOMES``)."""

    borough: str
    month: str
    """YYYY-MM, of receipt (UTC)."""
    received: int
    outcomes: dict[str, int]


class FormErrors(BadRequest):
    """The public form's fields that are wrong, each with a message for the person filling it in."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k.replace('_', ' ')}: {v}" for k, v in errors.items()))
        self.errors = errors


def new_reference() -> str:
    """``KF-XXXX-XXXX-XXXX``: 60 random bits in Crockford's base 32 (no I, L, O or U to misread)."""
    body = "".join(secrets.choice(CROCKFORD) for _ in range(12))
    return f"KF-{body[:4]}-{body[4:8]}-{body[8:]}"


def normal_reference(text: str) -> str | None:
    """A reference as a person may type or say it (any case, spaces, dashes, O for 0, I or L for 1),
    in its stored form; None when it cannot be one."""
    squeezed = re.sub(r"[\s\-]", "", text.upper())[:20].translate(str.maketrans("OIL", "011"))
    match = _REFERENCE.match(squeezed.replace("KF", "", 1) if squeezed.startswith("KF") else squeezed)
    if match is None:
        return None
    body = match.group(1)
    if any(ch not in CROCKFORD for ch in body):
        return None
    return f"KF-{body[:4]}-{body[4:8]}-{body[8:]}"


def _text(value: str, name: str, shortest: int, longest: int, errors: dict[str, str]) -> str:
    value = value.replace("\r\n", "\n").replace("\r", "\n").strip()  # a textarea's lines end in CR LF
    if len(value) < shortest:
        errors[name] = "this is needed" if not value else f"please give at least {shortest} characters"
    elif len(value) > longest:
        errors[name] = f"please keep this to {longest} characters (it has {len(value)})"
    elif _CONTROL.search(value):
        errors[name] = "this has characters we cannot store (control characters)"
    return value


def parse_form(fields: dict[str, str], boroughs: list[str], now: datetime) -> NewRequest:
    """The public form's fields (strings as posted) as a request, or FormErrors naming every wrong field.

    The window is a date and two local times; an end earlier than the start is the next day."""
    errors: dict[str, str] = {}
    borough = fields.get("borough", "").strip()
    if borough not in boroughs:
        errors["borough"] = (
            "choose the borough from the list"
            if borough == ""
            else ("we have no cameras in that borough: choose one from the list")
        )
    place = _text(fields.get("place", ""), "place", 3, 500, errors)
    contact = _text(fields.get("contact", ""), "contact", 5, 300, errors)
    shoulders = [s for s in re.split(r"[\s,;]+", fields.get("shoulder_numbers", "").upper()) if s]
    if len(fields.get("shoulder_numbers", "")) > 200 or len(shoulders) > 10:
        errors["shoulder_numbers"] = "give at most 10 shoulder numbers"
    elif any(not _SHOULDER.match(s) for s in shoulders):
        errors["shoulder_numbers"] = "a shoulder number has only letters and digits (e.g. 1234AB), separated by commas"
    start = end = None
    try:
        day = date.fromisoformat(fields.get("date", "").strip())
    except ValueError:
        errors["date"] = "give the date it happened (for example 2026-11-20)"
        day = None
    times = {}
    for key, label in (("time_from", "the time it started"), ("time_to", "the time it ended")):
        value = fields.get(key, "").strip()
        if not re.fullmatch(r"\d{2}:\d{2}(:\d{2})?", value) or not (int(value[:2]) < 24 and int(value[3:5]) < 60):
            errors[key] = f"give {label}, as hours and minutes (for example 21:30)"
        else:
            times[key] = (int(value[:2]), int(value[3:5]))
    if day is not None and len(times) == 2:
        start = datetime(day.year, day.month, day.day, *times["time_from"], tzinfo=LOCAL).astimezone(UTC)
        end = datetime(day.year, day.month, day.day, *times["time_to"], tzinfo=LOCAL).astimezone(UTC)
        if end == start:
            errors["time_to"] = "the end must be later than the start"
        elif end < start:
            end += timedelta(days=1)  # past midnight
        problem = window_problem(start, end, now)
        if problem:
            errors[problem[0]] = problem[1]
    if errors or start is None or end is None:
        raise FormErrors(errors)
    return NewRequest(
        borough=borough, place=place, happened_from=start, happened_to=end, shoulder_numbers=shoulders, contact=contact
    )


def window_problem(start: datetime, end: datetime, now: datetime) -> tuple[str, str] | None:
    """(field, message) when a window cannot be a request's, else None."""
    if start > now:
        return "date", "that time is in the future: a request can only be about something that has happened"
    if end > now:
        return "time_to", "the end is later than now: give the time it ended"
    if end - start > LONGEST_WINDOW:
        return "time_to", f"a request covers at most {LONGEST_WINDOW.total_seconds() / 3600:.0f} hours"
    if start < now - OLDEST:
        return "date", f"we keep no routine footage from before {(now - OLDEST):%Y}"
    return None


class KeepRequests:
    """The requests' one owner: every write to ``keep_requests`` and ``keep_request_clips`` is here."""

    def __init__(
        self,
        writer: Database,
        changes,
        retention: RetentionService,
        settings: CentralSettings,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.writer = writer
        self.changes = changes
        self.retention = retention
        self.settings = settings
        self.clock = clock
        self.throttle = FormThrottle(writer, "keep-footage", ADDRESS_FREE, ALL_FREE, clock)
        self.lookups = FormThrottle(writer, "keep-footage-status", LOOKUP_MISSES_FREE, 10**9, clock)

    def boroughs(self) -> list[str]:
        """Boroughs a request may name: those with a station or a camera."""
        with self.writer.read() as db:
            known = {r[0] for r in db.execute("SELECT DISTINCT borough FROM devices WHERE borough IS NOT NULL")}
        return sorted(known | {entry.borough for entry in self.settings.stations.values()})

    # -- the public's side -------------------------------------------------------------------

    def submit(self, new: NewRequest, place: str) -> PublicStatus:
        """Store a request and protect what it could match, in one transaction with its throttle count.

        A crash before the commit leaves nothing (the requester saw no reference); after it, the
        request protects from then on, the stations hear of it with the commit."""
        now = self.clock()
        problem = window_problem(new.happened_from, new.happened_to, now)
        if problem or new.happened_to <= new.happened_from:
            raise FormErrors(dict([problem or ("time_to", "the end must be later than the start")]))
        if new.borough not in self.boroughs():
            raise FormErrors({"borough": "choose the borough from the list"})
        hold_from, hold_to = new.happened_from - MARGIN, new.happened_to + MARGIN
        with self.writer.write() as db:
            self.throttle.admit(db, place)
            reference = None
            while reference is None:  # 60 random bits: a collision is a curiosity, not a plan
                reference = new_reference()
                reference = db.execute(
                    "INSERT INTO keep_requests (reference, borough, place, happened_from, happened_to, hold_from, "
                    "hold_to, shoulder_numbers, contact, received_at, review_by, state) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'open') ON CONFLICT DO NOTHING RETURNING reference",
                    [
                        reference,
                        new.borough,
                        new.place,
                        to_iso(new.happened_from),
                        to_iso(new.happened_to),
                        to_iso(hold_from),
                        to_iso(hold_to),
                        " ".join(new.shoulder_numbers),
                        new.contact,
                        to_iso(now),
                        to_iso(now + timedelta(days=REVIEW_DAYS)),
                    ],
                ).fetchone()
                reference = reference[0] if reference else None
            audit.record(
                db,
                actor="public",
                action="keep-request",
                object_type="keep_request",
                object_id=reference,
                place=place,
                detail=f"{new.borough}, {to_iso(hold_from)} to {to_iso(hold_to)} (the window given, widened by "
                f"{MARGIN.total_seconds() / 3600:g} h)",
            )
            live = _area_clips(db, new.borough, to_iso(hold_from), to_iso(hold_to), alive=True)
            audit.record_many(
                db,
                [
                    dict(
                        actor="public",
                        action="hold",
                        object_type="clip",
                        object_id=c,
                        place=place,
                        detail=f"public request {reference}",
                    )
                    for c in live
                ],
            )
            self.retention.restore_held(db, live, f"public request {reference}", "public", now)
            gone = deleted_from_audit(
                db, _area_clips(db, new.borough, to_iso(hold_from), to_iso(hold_to), alive=False), self._default_days()
            )
            if gone is not None and not live:
                self._close(db, reference, ALREADY_DELETED, gone.sentence(), "central", now)
            holds.announce_holds(
                db, self.changes, _area_clips(db, new.borough, to_iso(hold_from), to_iso(hold_to), stations=True)
            )
            return self._status(db, reference)

    def status(self, text: str, place: str) -> PublicStatus:
        """The outcome of a request, by its reference; NotFound (counted against the address) if none."""
        reference = normal_reference(text)
        with self.writer.read() as db:
            self.lookups.admit(db, place, count=False)  # only a lookup that misses is counted
            if (
                reference is not None
                and db.execute("SELECT 1 FROM keep_requests WHERE reference = ?", [reference]).fetchone()
            ):
                return self._status(db, reference)
        with self.writer.write() as db:
            self.lookups.missed(db, place)
        raise NotFound("we have no request with that reference: check it against the one we gave you")

    def _status(self, db, reference: str) -> PublicStatus:
        r = db.execute(
            "SELECT received_at, state, review_by, outcome, borough, hold_from, hold_to FROM keep_requests "
            "WHERE reference = ?",
            [reference],
        ).fetchone()
        received, state, review_by, outcome = from_iso(r[0]), r[1], from_iso(r[2]), r[3]
        kept = db.execute("SELECT count(*) FROM keep_request_clips WHERE reference = ?", [reference]).fetchone()[0]
        gone = deleted_from_audit(db, _area_clips(db, r[4], r[5], r[6], alive=False), self._default_days())
        if state == "open":
            headline = "We are reviewing your request"
            explanation = (
                "Until we have reviewed it, no recording from the time and place you gave will be deleted. "
                f"An information-management officer will review it by {review_by:%-d %B %Y}."
            )
        elif state == "narrowed":
            headline = "We are keeping the recordings that match your request"
            explanation = (
                f"We have reviewed your request and are keeping {kept} recording{'s' * (kept != 1)} that "
                f"match{'es' * (kept == 1)} it. "
                "They will not be deleted while your request is open."
            )
        elif outcome == ALREADY_DELETED:
            headline = "The footage had already been deleted"
            explanation = "We could not keep any recording for your request."
        else:
            headline = "Your request is closed"
            explanation = OUTCOMES.get(outcome or "", "")
        return PublicStatus(
            reference=reference,
            received_on=received.date(),
            state=state,
            review_by=review_by.date(),
            headline=headline,
            explanation=explanation,
            kept=kept,
            deleted=gone.sentence() if gone else None,
        )

    def _default_days(self) -> int:
        return self.retention.rules().default_days

    # -- the information-management officer's side ------------------------------------------

    def queue(self, borough: str | None, which: str = "active", limit: int = 200) -> list[QueueRow]:
        """Open and narrowed requests (``which``: "active"), soonest deadline first; or the closed ones,
        newest first. ``borough``: that borough's only."""
        states = {"active": ("open", "narrowed"), "closed": ("closed",)}[which]
        with self.writer.read() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM keep_requests WHERE {db.dialect.any_of('state')}"
                + (" AND borough = ?" if borough is not None else "")
                + " ORDER BY received_at DESC, reference LIMIT ?",
                [db.dialect.many(states), *([borough] if borough is not None else []), limit],
            ).fetchall()
            found = [self._row(db, r) for r in rows]
        if which == "active":
            found.sort(key=lambda q: (q.deadline or q.review_by, q.reference))
        return found

    def request(self, reference: str) -> tuple[QueueRow, list[MatchingClip]]:
        """One request and the clips at central that it could match (all of its window's)."""
        with self.writer.read() as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM keep_requests WHERE reference = ?", [reference]).fetchone()
            if row is None:
                raise NotFound(f"no request {reference}")
            request = self._row(db, row)
            kept = {r[0] for r in db.execute("SELECT clip_id FROM keep_request_clips WHERE reference = ?", [reference])}
            clips = [
                MatchingClip(
                    clip_id=c[0],
                    recorded_at=from_iso(c[1]),
                    device_serial=c[2],
                    officer_id=c[3],
                    station_id=c[4],
                    retain_until=from_iso(c[5]) if c[5] else None,
                    deleted_at=from_iso(c[6]) if c[6] else None,
                    purged_at=from_iso(c[7]) if c[7] else None,
                    kept=c[0] in kept,
                )
                for c in db.execute(
                    "SELECT c.clip_id, c.recorded_at, c.device_serial, a.officer_id, c.station_id, c.retain_until, "
                    "c.deleted_at, c.purged_at FROM clips c LEFT JOIN attributions a ON a.clip_id = c.clip_id "
                    "WHERE c.state = 'verified' AND c.device_serial IN (SELECT serial FROM devices WHERE borough = ?) "
                    "AND c.recorded_at >= ? AND c.recorded_at < ? ORDER BY c.recorded_at, c.clip_id LIMIT 2000",
                    [request.borough, to_iso(request.hold_from), to_iso(request.hold_to)],
                )
            ]
        return request, clips

    def narrow(self, reference: str, clip_ids: list[str], note: str, actor: str) -> QueueRow:
        """Keep only the chosen clips of an open request's window; the rest go back to the normal rules."""
        if not clip_ids:
            raise BadRequest("choose the clips that match (or close the request if none does)")
        if not note.strip():
            raise BadRequest("say why these clips match (the note goes into the audit trail)")
        now = self.clock()
        with self.writer.write() as db:
            request = self._open_row(db, reference)
            if request.state != "open":
                raise Conflict(f"request {reference} is {request.state}: only an open request is narrowed")
            area = _area_clips(db, request.borough, to_iso(request.hold_from), to_iso(request.hold_to), alive=True)
            outside = sorted(set(clip_ids) - set(area))
            if outside:
                raise BadRequest(
                    f"clip {outside[0]} is not one this request could match (not its borough's, not in its "
                    "window, or purged)"
                )
            chosen = sorted(set(clip_ids))
            db.executemany(
                "INSERT INTO keep_request_clips (reference, clip_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                [(reference, c) for c in chosen],
            )
            db.execute(
                "UPDATE keep_requests SET state = 'narrowed', narrowed_at = ?, narrowed_by = ?, note = ? "
                "WHERE reference = ?",
                [to_iso(now), actor, note.strip(), reference],
            )
            audit.record(
                db,
                actor=actor,
                action="keep-request-narrow",
                object_type="keep_request",
                object_id=reference,
                detail=f"{len(chosen)} of {len(area)} clips kept: {note.strip()}",
            )
            audit.record_many(
                db,
                [
                    dict(
                        actor=actor,
                        action="release",
                        object_type="clip",
                        object_id=c,
                        detail=f"public request {reference} narrowed to other clips",
                    )
                    for c in sorted(set(area) - set(chosen))
                ],
            )
            holds.announce_holds(
                db,
                self.changes,
                _area_clips(db, request.borough, to_iso(request.hold_from), to_iso(request.hold_to), stations=True),
            )
            return self._row(
                db, db.execute(f"SELECT {_COLUMNS} FROM keep_requests WHERE reference = ?", [reference]).fetchone()
            )

    def close(self, reference: str, outcome: str, note: str, actor: str) -> QueueRow:
        """Close a request: what it protected goes back to the normal rules (deleted at the next run
        if its retention has ended and nothing else keeps it)."""
        if outcome not in OUTCOMES:
            raise BadRequest(f"unknown outcome {outcome!r}; outcomes are {', '.join(OUTCOMES)}")
        if not note.strip():
            raise BadRequest("say why (the note goes into the audit trail; the requester is told the outcome only)")
        with self.writer.write() as db:
            request = self._open_row(db, reference)
            if request.state == "closed":
                raise Conflict(f"request {reference} is closed already")
            self._close(db, reference, outcome, note.strip(), actor, self.clock())
            return self._row(
                db, db.execute(f"SELECT {_COLUMNS} FROM keep_requests WHERE reference = ?", [reference]).fetchone()
            )

    def _close(self, db, reference: str, outcome: str, note: str, actor: str, now: datetime) -> None:
        request = self._open_row(db, reference)
        window = (request.borough, to_iso(request.hold_from), to_iso(request.hold_to))
        was = (
            _area_clips(db, *window, alive=True)
            if request.state == "open"
            else [r[0] for r in db.execute("SELECT clip_id FROM keep_request_clips WHERE reference = ?", [reference])]
        )
        db.execute(
            "UPDATE keep_requests SET state = 'closed', closed_at = ?, closed_by = ?, outcome = ?, note = ? "
            "WHERE reference = ?",
            [to_iso(now), actor, outcome, note, reference],
        )
        audit.record(
            db,
            actor=actor,
            action="keep-request-close",
            object_type="keep_request",
            object_id=reference,
            detail=f"{outcome}: {note}",
        )
        audit.record_many(
            db,
            [
                dict(
                    actor=actor,
                    action="release",
                    object_type="clip",
                    object_id=c,
                    detail=f"public request {reference} closed ({outcome})",
                )
                for c in was
            ],
        )
        stations = _area_clips(db, *window, stations=True) if request.state == "open" else was
        holds.announce_holds(db, self.changes, stations)

    def _open_row(self, db, reference: str) -> QueueRow:
        row = db.execute(f"SELECT {_COLUMNS} FROM keep_requests WHERE reference = ?", [reference]).fetchone()
        if row is None:
            raise NotFound(f"no request {reference}")
        return self._row(db, row, counted=False)

    def _row(self, db, r, counted: bool = True) -> QueueRow:
        row = QueueRow(
            reference=r[0],
            borough=r[1],
            place=r[2],
            happened_from=from_iso(r[3]),
            happened_to=from_iso(r[4]),
            hold_from=from_iso(r[5]),
            hold_to=from_iso(r[6]),
            shoulder_numbers=r[7].split(),
            contact=r[8],
            received_at=from_iso(r[9]),
            review_by=from_iso(r[10]),
            state=r[11],
            outcome=r[12],
            note=r[13],
            narrowed_at=from_iso(r[14]) if r[14] else None,
            narrowed_by=r[15],
            closed_at=from_iso(r[16]) if r[16] else None,
            closed_by=r[17],
            deadline=None,
            protected=0,
        )
        if counted and row.state != "closed":
            row.protected, row.deadline = self._protection(db, row)
        return row

    def _protection(self, db, row: QueueRow) -> tuple[int, datetime | None]:
        """(clips at central it protects, the earliest end of retention among them): the day one would
        otherwise be deleted. With none at central yet, the day a clip recorded at the window's start
        would be due under the default rule."""
        if row.state == "open":
            found = db.execute(
                "SELECT count(*), min(c.retain_until) FROM clips c WHERE c.state = 'verified' "
                "AND c.deleted_at IS NULL AND c.device_serial IN (SELECT serial FROM devices WHERE borough = ?) "
                "AND c.recorded_at >= ? AND c.recorded_at < ?",
                [row.borough, to_iso(row.hold_from), to_iso(row.hold_to)],
            ).fetchone()
        else:
            found = db.execute(
                "SELECT count(*), min(c.retain_until) FROM keep_request_clips kc "
                "JOIN clips c ON c.clip_id = kc.clip_id WHERE kc.reference = ? AND c.deleted_at IS NULL",
                [row.reference],
            ).fetchone()
        default = row.hold_from + timedelta(days=self._default_days())
        return found[0], from_iso(found[1]) if found[1] else (default if row.state == "open" else None)

    def over_retention(self, borough: str | None, now: datetime | None = None) -> list[OverRetention]:
        """Per borough: clips past their end of retention that public requests alone keep, and for how long."""
        now = now or self.clock()
        with self.writer.read() as db:
            rows = db.execute(
                "SELECT d.borough, c.retain_until FROM clips c JOIN devices d ON d.serial = c.device_serial "
                "WHERE c.state = 'verified' AND c.deleted_at IS NULL AND c.retain_until <= ? "
                f"AND {REQUEST_HELD} AND NOT {STAFF_HELD}" + (" AND d.borough = ?" if borough is not None else ""),
                [to_iso(now), *([borough] if borough is not None else [])],
            ).fetchall()
        by: dict[str, list[float]] = {}
        for name, until in rows:
            by.setdefault(name, []).append((now - from_iso(until)).total_seconds() / 86400)
        return [
            OverRetention(borough=b, clips=len(days), longest_days=int(max(days)), mean_days=sum(days) / len(days))
            for b, days in sorted(by.items())
        ]


_COLUMNS = (
    "reference, borough, place, happened_from, happened_to, hold_from, hold_to, shoulder_numbers, contact, "
    "received_at, review_by, state, outcome, note, narrowed_at, narrowed_by, closed_at, closed_by"
)


def _area_clips(
    db, borough: str, hold_from: str, hold_to: str, *, alive: bool = True, stations: bool = False
) -> list[str]:
    """The clips a request's window covers: at central and not purged (``alive``), or purged
    (not ``alive``); ``stations``: also those central knows only from a station's events."""
    at_central = [
        r[0]
        for r in db.execute(
            "SELECT clip_id FROM clips WHERE state = 'verified' AND device_serial IN "
            "(SELECT serial FROM devices WHERE borough = ?) AND recorded_at >= ? AND recorded_at < ? "
            + ("AND purged_at IS NULL" if alive or stations else "AND purged_at IS NOT NULL"),
            [borough, hold_from, hold_to],
        )
    ]
    if not stations:
        return at_central
    reported = [
        r[0]
        for r in db.execute(
            "SELECT clip_id FROM attributions WHERE device_serial IN (SELECT serial FROM devices WHERE borough = ?) "
            "AND recorded_at >= ? AND recorded_at < ?",
            [borough, hold_from, hold_to],
        )
    ]
    return sorted(set(at_central) | set(reported))


def deleted_from_audit(db, clip_ids: list[str], default_days: int) -> Deleted | None:
    """When and under which rule these (purged) clips were deleted, as the audit trail records it."""
    if not clip_ids:
        return None
    found = db.execute(
        f"SELECT a.object_id, a.at, a.actor, c.categories FROM audit a JOIN clips c ON c.clip_id = a.object_id "
        f"WHERE a.object_type = 'clip' AND a.action = 'soft-delete' AND {db.dialect.any_of('a.object_id')} "
        "ORDER BY a.id",
        [db.dialect.many(clip_ids)],
    ).fetchall()
    last: dict[str, tuple] = {r[0]: r for r in found}  # a restored clip deleted again: its last deletion
    if not last:
        return None
    days = sorted(from_iso(r[1]).date() for r in last.values())
    rules = {
        f"the {default_days}-day rule"
        if actor == "retention-job" and json.loads(categories) == []
        else "its retention period"
        if actor == "retention-job"
        else "a reviewer's decision"
        for _, _, actor, categories in last.values()
    }
    return Deleted(
        clips=len(clip_ids),
        first=days[0],
        last=days[-1],
        rule=" and ".join(sorted(rules)) if len(rules) < 3 else "the force's retention rules",
    )


def counts_by_borough_month(
    db, first_month: str | None = None, last_month: str | None = None, as_of: datetime | None = None
) -> list[MonthCounts]:
    """Requests received per borough and month (``YYYY-MM`` of receipt, between the months given),
    each with its outcome as it stood at ``as_of`` (default: now): "under_review", "footage_kept"
    (narrowed), or the outcome it was closed with. For the open figures: no personal data, and the
    same answer for the same ``as_of`` whatever happened since. Inside the caller's read."""
    at = to_iso(as_of or utc_now())
    month = "substr(received_at, 1, 7)"
    where = ["received_at <= :at"]
    if first_month:
        where.append(f"{month} >= :first")
    if last_month:
        where.append(f"{month} <= :last")
    rows = db.execute(
        f"SELECT borough, {month}, CASE WHEN closed_at IS NOT NULL AND closed_at <= :at THEN outcome "
        "WHEN narrowed_at IS NOT NULL AND narrowed_at <= :at THEN 'footage_kept' ELSE 'under_review' END, count(*) "
        f"FROM keep_requests WHERE {' AND '.join(where)} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        {"at": at, "first": first_month, "last": last_month},
    ).fetchall()
    found: dict[tuple[str, str], MonthCounts] = {}
    for borough, month_of, outcome, n in rows:
        counts = found.setdefault(
            (borough, month_of),
            MonthCounts(borough=borough, month=month_of, received=0, outcomes=dict.fromkeys(FIGURE_OUTCOMES, 0)),
        )
        counts.received += n
        counts.outcomes[outcome] += n
    return list(found.values())
