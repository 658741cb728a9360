"""The public's requests to keep footage: received without a login, reviewed by an
information-management officer, answered by reference.

A request names a borough, a place in words, a time window (at most ``LONGEST_WINDOW``, not in
the future), optionally officers' shoulder numbers, and a contact address. From the moment it is
stored it protects, like a hold (``central.evidence.holds.REQUEST_HELD``, which every deletion
query carries), every clip recorded in the borough (``holds.in_request_area``: docked at its
stations or by its cameras) in the window widened by ``MARGIN``:
nothing that could match is deleted while it is reviewed. Clips soft-deleted but not yet purged
come back (``RetentionService.restore_held``). The officer then **narrows** it to the clips that
match (only those stay protected) or **closes** it with an outcome the requester is told in
plain words (and an internal note). Every step is in the audit chain, and the stations hear of
each change in what is held (``holds.announce_holds``), so their copies are kept too.

What the public is ever shown is the reference, the state and its meaning in plain words, the
dates, and counts: never footage, never the place, the shoulder numbers or the contact given.
Footage already purged is answered from the audit trail ("fewer than 5 recordings … deleted on or
before …, under the force's retention rules": no small count, no staff decision; ``Deleted``); a
request that finds only purged footage is closed at once with that answer.

Submissions are throttled per client address and for the form as a whole (the login
throttle's machinery, ``central.access.login_throttle.FormThrottle``), in the transaction that
stores the request; status lookups that miss are throttled too. What a request may say, its
reference and the words its requester is told are ``central.evidence.keep_request_form``'s.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import msgspec

from central.access.login_throttle import FormThrottle
from central.access.pseudonyms import pseudonym
from central.core.database import Database
from central.evidence import audit, holds, keep_request_area, keep_request_cap, keep_request_escalation
from central.evidence.keep_request_form import (
    ALREADY_DELETED,
    MARGIN,
    OUTCOMES,
    REVIEW_DAYS,
    FormErrors,
    NewRequest,
    PublicStatus,
    new_reference,
    normal_reference,
    public_answer,
    window_problem,
)
from central.evidence.retention import RetentionService
from fleet.clock import from_iso, to_iso, utc_now
from fleet.config import CentralSettings
from fleet.errors import BadRequest, Conflict, NotFound

ADDRESS_FREE = 5
"""Requests from one client address before it waits (growing waits, as for logins)."""
ALL_FREE = 200
"""Requests from everyone together before the form waits: ~100 times the expected rate."""
MOST_CLOSED_AT_ONCE = 200
"""Requests one bulk close may name: the queue shows at most this many."""
LOOKUP_MISSES_FREE = 20
"""Status lookups of a reference that does not exist, from one address, before it waits."""
CONTACT_KEPT = timedelta(days=90)
"""A closed request's contact address is erased this long after it closed: long enough to answer
the requester's questions about the outcome, no longer (the rest of the request stays, for the
figures and the audit; the requester can still look the outcome up by its reference)."""


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
    overdue: bool = False
    """Open past its review date (``keep_request_escalation``)."""
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
        request protects from then on, the stations hear of it with the commit. Past the borough's
        cap (``keep_request_cap``) nothing is stored but the refusal: counted and audited."""
        try:
            return self._submit(new, place)
        except keep_request_cap.BoroughFull as refused:
            with self.writer.write() as db:
                self.throttle.admit(db, place)
                keep_request_cap.record_refusal(
                    db, refused, (new.happened_from, new.happened_to), pseudonym(db, place, self.clock())
                )
            raise

    def _submit(self, new: NewRequest, place: str) -> PublicStatus:
        now = self.clock()
        problem = window_problem(new.happened_from, new.happened_to, now)
        if problem or new.happened_to <= new.happened_from:
            raise FormErrors(dict([problem or ("time_to", "the end must be later than the start")]))
        if new.borough not in self.boroughs():
            raise FormErrors({"borough": "choose the borough from the list"})
        hold_from, hold_to = new.happened_from - MARGIN, new.happened_to + MARGIN
        with self.writer.write() as db:
            self.throttle.admit(db, place)
            keep_request_cap.check(db, new.borough, self.settings.keep_requests.per_borough_per_day, now)
            recorded_from = pseudonym(db, place, now)  # the audit keeps no address (central.access.pseudonyms)
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
                place=recorded_from,
                detail=f"{new.borough}, {to_iso(hold_from)} to {to_iso(hold_to)} (the window given, widened by "
                f"{MARGIN.total_seconds() / 3600:g} h)",
            )
            live = keep_request_area.clips(db, new.borough, to_iso(hold_from), to_iso(hold_to), alive=True)
            audit.record_many(
                db,
                [
                    dict(
                        actor="public",
                        action="hold",
                        object_type="clip",
                        object_id=c,
                        place=recorded_from,
                        detail=f"public request {reference}",
                    )
                    for c in live
                ],
            )
            # Footage a retention period ended comes back for review; what a reviewer decided to dispose
            # of stays deleted (the request still stops its purge), for a person to weigh, not the form.
            self.retention.restore_held(
                db, keep_request_area.not_disposed(db, live), f"public request {reference}", "public", now
            )
            gone = keep_request_area.deleted_from_audit(
                db, keep_request_area.clips(db, new.borough, to_iso(hold_from), to_iso(hold_to), alive=False)
            )
            if gone is not None and not live:
                self._close(db, reference, ALREADY_DELETED, gone.note(), "central", now)
            holds.announce_holds(
                db,
                self.changes,
                keep_request_area.clips(db, new.borough, to_iso(hold_from), to_iso(hold_to), stations=True),
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
        gone = keep_request_area.deleted_from_audit(
            db, keep_request_area.clips(db, r[4], r[5], r[6], alive=False), before=received
        )
        headline, explanation = public_answer(state, outcome, review_by, kept)
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
        """Open and narrowed requests (``which``: "active"): the overdue first, longest overdue at the
        top, then soonest deadline first (the ``limit`` soonest to be reviewed, so a flood of new ones
        never pushes an older one off); or the closed ones, newest first. ``borough``: that borough's only."""
        states = {"active": ("open", "narrowed"), "closed": ("closed",)}[which]
        with self.writer.read() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM keep_requests WHERE {db.dialect.any_of('state')}"
                + (" AND borough = ?" if borough is not None else "")
                + (
                    " ORDER BY review_by, reference LIMIT ?"
                    if which == "active"
                    else " ORDER BY received_at DESC, reference LIMIT ?"
                ),
                [db.dialect.many(states), *([borough] if borough is not None else []), limit],
            ).fetchall()
            found = [self._row(db, r) for r in rows]
        if which == "active":
            found.sort(
                key=lambda q: (not q.overdue, q.review_by if q.overdue else q.deadline or q.review_by, q.reference)
            )
        return found

    def request(self, reference: str) -> tuple[QueueRow, list[MatchingClip]]:
        """One request and the clips at central that it could match (all of its window's)."""
        with self.writer.read() as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM keep_requests WHERE reference = ?", [reference]).fetchone()
            if row is None:
                raise NotFound(f"no request {reference}")
            request = self._row(db, row)
            kept = {r[0] for r in db.execute("SELECT clip_id FROM keep_request_clips WHERE reference = ?", [reference])}
            area, params = keep_request_area.query(request.borough, to_iso(request.hold_from), to_iso(request.hold_to))
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
                    "SELECT c.clip_id, c.recorded_at, c.device_serial, a.officer_id, c.station_id, r.retain_until, "
                    f"r.deleted_at, r.purged_at FROM ({area}) m JOIN clips c ON c.clip_id = m.clip_id "
                    "LEFT JOIN clip_retention r ON r.clip_id = c.clip_id "
                    "LEFT JOIN attributions a ON a.clip_id = c.clip_id ORDER BY c.recorded_at, c.clip_id LIMIT 2000",
                    params,
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
            area = keep_request_area.clips(
                db, request.borough, to_iso(request.hold_from), to_iso(request.hold_to), alive=True
            )
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
                keep_request_area.clips(
                    db, request.borough, to_iso(request.hold_from), to_iso(request.hold_to), stations=True
                ),
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

    def close_many(self, references: list[str], outcome: str, note: str, actor: str) -> int:
        """Close several requests with one outcome and note, each as ``close`` would (and audited
        so), in one transaction: all of them, or none when any cannot be closed. How many."""
        if outcome not in OUTCOMES:
            raise BadRequest(f"unknown outcome {outcome!r}; outcomes are {', '.join(OUTCOMES)}")
        if not note.strip():
            raise BadRequest("say why (the note goes into the audit trail; the requesters are told the outcome only)")
        chosen = sorted(set(references))
        if not chosen:
            raise BadRequest("choose the requests to close")
        if len(chosen) > MOST_CLOSED_AT_ONCE:
            raise BadRequest(f"close at most {MOST_CLOSED_AT_ONCE} requests at once")
        now = self.clock()
        with self.writer.write() as db:
            for reference in chosen:
                if self._open_row(db, reference).state == "closed":
                    raise Conflict(f"request {reference} is closed already: nothing was closed")
            for reference in chosen:
                self._close(db, reference, outcome, note.strip(), actor, now)
        return len(chosen)

    def _close(self, db, reference: str, outcome: str, note: str, actor: str, now: datetime) -> None:
        request = self._open_row(db, reference)
        window = (request.borough, to_iso(request.hold_from), to_iso(request.hold_to))
        was = (
            keep_request_area.clips(db, *window, alive=True)
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
        stations = keep_request_area.clips(db, *window, stations=True) if request.state == "open" else was
        holds.announce_holds(db, self.changes, stations)

    def forget_contacts(self) -> int:
        """Erase the contact address of every request closed more than ``CONTACT_KEPT`` ago (the
        leader's daily job); each erasure audited. How many were erased."""
        now = self.clock()
        with self.writer.write() as db:
            erased = [
                r[0]
                for r in db.execute(
                    "UPDATE keep_requests SET contact = '' WHERE state = 'closed' AND closed_at < ? AND contact != '' "
                    "RETURNING reference",
                    [to_iso(now - CONTACT_KEPT)],
                ).fetchall()
            ]
            audit.record_many(
                db,
                [
                    dict(
                        actor="central",
                        action="keep-request-contact-erased",
                        object_type="keep_request",
                        object_id=reference,
                        detail=f"closed more than {CONTACT_KEPT.days} days ago: the requester's contact address erased",
                    )
                    for reference in sorted(erased)
                ],
            )
        return len(erased)

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
        row.overdue = keep_request_escalation.is_overdue(row.state, row.review_by, self.clock())
        if counted and row.state != "closed":
            row.protected, row.deadline = self._protection(db, row)
        return row

    def _protection(self, db, row: QueueRow) -> tuple[int, datetime | None]:
        """(clips at central it protects, the earliest end of retention among them): the day one would
        otherwise be deleted. With none at central yet, the day a clip recorded at the window's start
        would be due under the default rule."""
        if row.state == "open":
            area, params = keep_request_area.query(row.borough, to_iso(row.hold_from), to_iso(row.hold_to))
            found = db.execute(
                f"SELECT count(*), min(r.retain_until) FROM ({area}) a JOIN clip_retention r ON r.clip_id = a.clip_id "
                "WHERE r.deleted_at IS NULL",
                params,
            ).fetchone()
        else:
            found = db.execute(
                "SELECT count(*), min(r.retain_until) FROM keep_request_clips kc "
                "JOIN clip_retention r ON r.clip_id = kc.clip_id WHERE kc.reference = ? AND r.deleted_at IS NULL",
                [row.reference],
            ).fetchone()
        default = row.hold_from + timedelta(days=self._default_days())
        return found[0], from_iso(found[1]) if found[1] else (default if row.state == "open" else None)

    def over_retention(self, borough: str | None, now: datetime | None = None) -> list[keep_request_area.OverRetention]:
        """Per borough: clips past their end of retention that public requests alone keep, and for how long."""
        now = now or self.clock()
        with self.writer.read() as db:
            return keep_request_area.kept_only_by_requests(db, borough, now)


_COLUMNS = (
    "reference, borough, place, happened_from, happened_to, hold_from, hold_to, shoulder_numbers, contact, "
    "received_at, review_by, state, outcome, note, narrowed_at, narrowed_by, closed_at, closed_by"
)
