"""What a request to keep footage may say, and what its requester is told, in words.

The public form's fields are checked here (``parse_form``: every wrong field named, with a
message for the person filling it in), and so is any window a request is stored with
(``window_problem``: not in the future, at most ``LONGEST_WINDOW``, not older than any routine
footage). References are ``KF-`` and 12 Crockford base-32 characters (60 random bits): short
enough to read over the phone, forgiving of how a person types or says them. The plain-language
outcomes the requester may be told are ``OUTCOMES``; footage a request came too late for is told
as ``Deleted.sentence`` (no count, no staff decision). The service that stores requests is
``central.evidence.keep_requests``.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, date, datetime, timedelta

import msgspec

from fleet.clock import LONDON
from fleet.errors import BadRequest

MARGIN = timedelta(hours=1)
"""The window a request protects reaches this far either side of the one given: people misremember
times, and cameras' clocks drift."""
LONGEST_WINDOW = timedelta(hours=24)
OLDEST = timedelta(days=7 * 366)
"""Nothing recorded longer ago than this is kept but as evidence under the force's own rules."""
REVIEW_DAYS = 10
"""The requester is promised an answer within this many days."""
LOCAL = LONDON
"""The times the public types are the force's local times."""
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_REFERENCE = re.compile(r"^(?:KF)?([0-9A-Z]{12})$")
_SHOULDER = re.compile(r"^[A-Z0-9]{1,10}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
"""Control characters, C1 included, and the bidirectional marks and overrides, which would make
what an officer reads on the queue differ from what was stored."""

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
    """Footage a request came too late for, from the audit trail: how many recordings were
    deleted before the request arrived, and the day the last of them was."""

    clips: int
    last: date

    def sentence(self) -> str:
        """What the public is told: no count (with a borough and a window the requester chooses, a
        count, or the difference of two, would say how many recordings officers made there) and no
        rule (whether the 31-day rule or a reviewer's decision deleted a recording is a staff
        decision the force does not publish)."""
        return (
            f"Recordings from that time and place had already been deleted on or before {self.last:%-d %B %Y}, "
            "under the force's retention rules."
        )

    def note(self) -> str:
        """What the information-management officer is told (the request's closing note)."""
        return f"{self.clips:,} recordings had already been deleted, the last on {self.last:%-d %B %Y}"


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

    The window is a date and two local times; an end earlier than the start is the next day (on
    the calendar, whatever the clocks did that night)."""
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
        if times["time_to"] == times["time_from"]:
            errors["time_to"] = "the end must be later than the start"
        else:
            end_day = day + timedelta(days=1) if times["time_to"] < times["time_from"] else day  # past midnight
            start = _utc(day, times["time_from"], earliest=True)
            end = _utc(end_day, times["time_to"], earliest=False)
            problem = window_problem(start, end, now)
            if problem:
                errors[problem[0]] = problem[1]
    if errors or start is None or end is None:
        raise FormErrors(errors)
    return NewRequest(
        borough=borough, place=place, happened_from=start, happened_to=end, shoulder_numbers=shoulders, contact=contact
    )


def _utc(day: date, time: tuple[int, int], *, earliest: bool) -> datetime:
    """A local wall-clock time as UTC. The hour the clocks go back happens twice and the hour they
    go forward never: of the two readings, the earlier for a window's start and the later for its
    end, so a window is only ever widened."""
    readings = [
        datetime(day.year, day.month, day.day, *time, tzinfo=LOCAL, fold=fold).astimezone(UTC) for fold in (0, 1)
    ]
    return min(readings) if earliest else max(readings)


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


def public_answer(state: str, outcome: str | None, review_by: datetime, kept: int) -> tuple[str, str]:
    """What the requester is told of their request: (headline, explanation), in plain words."""
    if state == "open":
        return "We are reviewing your request", (
            "Until we have reviewed it, no recording from the time and place you gave will be deleted. "
            f"An information-management officer will review it by {review_by:%-d %B %Y}."
        )
    if state == "narrowed":
        return "We are keeping the recordings that match your request", (
            f"We have reviewed your request and are keeping {kept} recording{'s' * (kept != 1)} that "
            f"match{'es' * (kept == 1)} it. "
            "They will not be deleted while your request is open."
        )
    if outcome == ALREADY_DELETED:
        return "The footage had already been deleted", "We could not keep any recording for your request."
    return "Your request is closed", OUTCOMES.get(outcome or "", "")
