"""A person's word on a report of a clip that waits for its upload (``fleet central claims``).

A station that reports copying a clip off its camera names the clip's bytes, and until its upload
is verified those bytes are the only ones central takes under that id (``claims.claimed_elsewhere``).
A report made first naming other bytes (a stolen token, a station's fault) therefore refuses the
true station's upload (409, "a person must look") and its report. Here that person sees the
clip's reports and its upload (``show``), refuses the waiting report, and may put another
station's refused report of the clip in its place (``refuse``): applied as if it had come first,
its claim then waits for that station's upload (``fleet station retry`` there) and joins the chain
of custody when it matches. One transaction: either all of it, or nothing and the reason.
"""

from __future__ import annotations

import msgspec

from central.events import claims
from central.events.log import EventLog
from central.events.projection import Applied
from central.registry import attribution
from central.uploads import records as upload_records
from fleet.config import StationId
from fleet.errors import BadRequest, Conflict, NotFound
from fleet.events import ClipIngested
from fleet.protocol import UNPRINTABLE

REASON_MAX = 500


class Report(msgspec.Struct, kw_only=True):
    """A station's report of copying a clip off its camera, and the bytes it named (from the event
    log; None where central cannot read it)."""

    station_id: str
    seq: int
    refused: str | None = None
    """Why it was refused (None: it waits for its upload, or was put back)."""
    size: int | None = None
    sha256: str | None = None


class UploadSeen(msgspec.Struct, kw_only=True):
    station_id: str | None
    """None: a person's upload."""
    size: int
    sha256: str
    state: str


class ClipClaims(msgspec.Struct, kw_only=True):
    """What a person deciding a clip's claim reads."""

    clip_id: str
    waiting: Report | None
    """The report that waits for the clip's upload, whose bytes alone central takes meanwhile."""
    reported_by: str | None = None
    """The station the clip's attribution names (the report applied), if any."""
    upload: UploadSeen | None = None
    refused: list[Report] = []


class Decision(msgspec.Struct, kw_only=True):
    clip_id: str
    refused: Report | None
    """None: no report waited (a report put back after a refusal made without ``instead``)."""
    reinstated: Report | None = None


def show(log: EventLog, clip_id: str) -> ClipClaims:
    _check_clip_id(clip_id)
    with log.writer.read() as db:
        waiting = attribution.claim_of(db, clip_id)
        upload = upload_records.of_clips(db, [clip_id]).get(clip_id)
        return ClipClaims(
            clip_id=clip_id,
            waiting=Report(station_id=waiting[0], seq=waiting[1], size=waiting[4], sha256=waiting[5])
            if waiting
            else None,
            reported_by=attribution.reporters(db, [clip_id]).get(clip_id),
            upload=UploadSeen(station_id=upload[0], size=upload[1], sha256=upload[2], state=upload[3])
            if upload
            else None,
            refused=[
                _report(log.stored(db, station, seq, ClipIngested), station, seq, reason)
                for station, seq, reason, _ in claims.refused_reports(db, clip_id)
            ],
        )


def _report(stored: Applied[ClipIngested] | None, station: str, seq: int, refused: str | None) -> Report:
    return Report(
        station_id=station,
        seq=seq,
        refused=refused,
        size=stored.event.size if stored else None,
        sha256=stored.event.sha256 if stored else None,
    )


def refuse(
    log: EventLog, clip_id: str, actor: str, reason: str, instead: str | None = None, event: int | None = None
) -> Decision:
    """Refuse the report of ``clip_id`` that waits for its upload; with ``instead``, put that
    station's refused report of the clip in its place (``put_back``). BadRequest (what the person
    typed), NotFound or Conflict, and nothing changed, when any of it cannot be done.

    With ``instead`` and no report waiting, that station's report is put back where no station's
    stands: a refusal made without ``instead`` (a slip) left the clip with no attribution row, and
    this is its way back."""
    _check_clip_id(clip_id)
    reason = _checked_reason(reason)
    if instead is not None:
        _check_station_id(instead)
    if event is not None and (instead is None or not 1 <= event <= 2**62):
        raise BadRequest("--event names one of the --instead station's refused reports (a number from show)")
    with log.writer.write() as db:
        claim = claims.refuse_waiting(db, clip_id, actor, reason)
        if claim is None and instead is None:
            raise NotFound(f"no report of clip {clip_id} waits for its upload: there is nothing to refuse")
        if claim is None and (standing := attribution.reporters(db, [clip_id]).get(clip_id)) is not None:
            raise Conflict(
                f"no report of clip {clip_id} waits for its upload, and station {standing}'s stands: "
                "there is nothing to refuse or to put a report in place of"
            )
        upload = upload_records.of_clips(db, [clip_id]).get(clip_id)
        if claim is not None and upload is not None and upload[0] == claim[0] and upload[3] != "verified":
            raise Conflict(  # finished, its bytes would be the clip's evidence, and refusing its report no help
                f"station {claim[0]} is uploading clip {clip_id} (the bytes its report named): replace its token "
                "first, stop that upload (DELETE /api/v1/uploads/ID as admin), then decide"
            )
        refused = Report(station_id=claim[0], seq=claim[1], refused=reason) if claim else None
        if instead is None:
            return Decision(clip_id=clip_id, refused=refused)
        if claim is not None and instead == claim[0]:
            raise Conflict(f"station {instead}'s is the report refused: name the station whose report should stand")
        reinstated = _put_back(log, db, clip_id, instead, event)
        claims.reinstated(db, clip_id, actor, instead, reinstated.seq, claim[0] if claim else None, reason)
        return Decision(clip_id=clip_id, refused=refused, reinstated=reinstated)


def _put_back(log: EventLog, db, clip_id: str, station: str, event: int | None) -> Report:
    """Apply ``station``'s refused report of ``clip_id`` again (``event``, or its latest: a station
    reports a clip once, several mean its token lied too); Conflict if it is refused again."""
    earlier = [seq for s, seq, _, _ in claims.refused_reports(db, clip_id) if s == station]
    if not earlier:
        raise NotFound(f"station {station} has no refused report of clip {clip_id} to put in its place")
    if event is not None and event not in earlier:
        raise NotFound(
            f"station {station}'s event {event} is not one of its refused reports of clip {clip_id} "
            f"({', '.join(map(str, earlier))}: see fleet central claims show)"
        )
    seq = earlier[-1] if event is None else event
    try:
        applied = log.apply_again(db, station, seq, ClipIngested)
    except Exception as exc:  # the whole decision is rolled back; the person reads why
        raise Conflict(f"station {station}'s event {seq} cannot be applied ({type(exc).__name__}: {exc})") from None
    if applied is None or applied.event.clip_id != clip_id:
        raise Conflict(f"station {station}'s event {seq} is not a report of clip {clip_id} that central can apply")
    if attribution.reporters(db, [clip_id]).get(clip_id) != station:
        again = [r for s, q, r, _ in claims.refused_reports(db, clip_id) if (s, q) == (station, seq)]
        raise Conflict(f"station {station}'s report of clip {clip_id} is refused again: {again[-1]}")
    return _report(applied, station, seq, None)


def _check_clip_id(clip_id: str) -> None:
    """A clip id as a person typed it: text the database can hold (a byte of the command line that
    is not UTF-8 comes as a lone surrogate, which no encoder takes)."""
    if not _encodable(clip_id) or "\x00" in clip_id:
        raise BadRequest(f"{clip_id!r} is not a clip id")


def _check_station_id(station_id: str) -> None:
    try:
        msgspec.convert(station_id, StationId)
    except msgspec.ValidationError:
        raise BadRequest(f"--instead {station_id!r} is not a station id") from None


def _checked_reason(reason: str) -> str:
    """The reason, trimmed: one printable line of at most ``REASON_MAX`` characters. It goes into the
    audit trail, the refusal and the clip's custody report, where a line break or a bidirectional
    mark would make it say what the person did not write."""
    reason = reason.strip()
    if not reason:
        raise BadRequest("say why the report is refused (--reason): it is audited")
    if not _encodable(reason) or UNPRINTABLE.search(reason):
        raise BadRequest("--reason must be one printable line (no line break, control character or bidirectional mark)")
    if len(reason) > REASON_MAX:
        raise BadRequest(f"--reason must be at most {REASON_MAX} characters, not {len(reason)}")
    return reason


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True
