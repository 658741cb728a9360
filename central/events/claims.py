"""What a station claims, checked against what central knows; what it may not claim is refused.

A station's token speaks for that station only. It may report the ingest of clips it uploads
(or will upload), dockings at itself of cameras of its own borough (or of cameras central has
never heard of: a camera first seen docking is that station's borough's, so offline-first
roll-out keeps working), and checkouts and check-ins of its own borough's pool cameras, dated
within its measured clock skew. An event that claims more is refused: recorded here against
the station (``station_refusals``, a security alert on the dashboard), never applied, never in
any chain of custody. The event stays stored and acknowledged, so the station's outbox moves
on and never retries it.

Refused when applied (the projection), not when acknowledged: a claim is judged on fleet state
as of its place in the station's seq order (the same batch's docking registers the camera its
checkout then names), and acknowledging stays a durable store and nothing more (the hot path).

An ingest reported before its upload exists is attributed at once (an officer hold must reach
the station before the clip leaves it), but its custody record waits (in the clip's attribution row)
until the upload is verified: it joins the chain only if that upload has the same size and
SHA-256 and came from the same station, another of its borough (a camera copied at two docks), or
anyone if the camera is registered to the report's borough (``_may_have_copied``);
otherwise the claim is refused and its attribution undone. Meanwhile the claim names the clip's
bytes: another station's upload of other bytes under its id is refused before it is stored
(``claimed_elsewhere``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from central.evidence import audit
from central.firmware import deployments
from central.registry import attribution, checkouts, devices
from central.uploads import records as upload_records
from fleet.clock import from_iso, to_iso, utc_now
from fleet.events import (
    BadFolder,
    CameraDocked,
    CameraUpdateOffered,
    CameraUpdateResult,
    CheckedIn,
    CheckedOut,
    ClipDamaged,
    ClipIngested,
    ClipVerified,
    Event,
    kind_of,
)

if TYPE_CHECKING:
    from central.events.projection import Applied  # the projection imports this module

Refusal = tuple[str, int, str, str, str, str]
"""(station, seq, kind, subject, reason, station time) of one refused event."""

PoolEvent = CheckedOut | CheckedIn
"""What a station's desk reports about its pool cameras."""
UpdateEvent = CameraUpdateOffered | CameraUpdateResult
"""What a station reports about a deployment's update of one of its cameras."""


def refuse(db, refusals: Sequence[Refusal]) -> None:
    """Record refused events. A refusal must always be storable, or the transaction it is part of
    fails on every retry and no station's events are applied: a subject a station wrote (a clip
    id, a folder) has its NUL characters spelt out, which PostgreSQL's text cannot hold."""
    if not refusals:
        return
    now = to_iso(utc_now())
    db.executemany(
        "INSERT INTO station_refusals (station_id, seq, kind, subject, reason, station_at, at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (station, seq, kind, _storable(subject), _storable(reason), at, now)
            for station, seq, kind, subject, reason, at in refusals
        ],
    )


def _storable(text: str) -> str:
    return text.replace("\x00", "\\x00")


NUL_ID = "a clip id cannot hold a NUL character"
"""Why a report of such a clip is refused: SQLite reads a string of JSON up to its NUL (another
clip's id, whose checks the report then passed), PostgreSQL's text cannot hold one."""


def _clip_ids(run: Sequence[Applied[ClipIngested] | Applied[ClipVerified] | Applied[ClipDamaged]]) -> list[str]:
    """The run's clip ids that can name a clip, to look up: not one with a NUL (``NUL_ID``)."""
    return [a.event.clip_id for a in run if "\x00" not in a.event.clip_id]


def ingest_record(station_id: str, clip_id: str, serial: str, size: int, sha256: str, station_at: str) -> dict:
    """The chain of custody's first link: the station copied the clip off the camera in its dock."""
    return dict(
        actor=f"station:{station_id}",
        place=station_id,
        action="ingest",
        object_type="clip",
        object_id=clip_id,
        at=from_iso(station_at),
        detail=f"copied from camera {serial} at the dock, {size} bytes, sha256 {sha256}",
    )


def subject_of(event: Event) -> str:
    """The camera or clip an event is about, as a refusal names it."""
    match event:
        case CameraDocked():
            return event.device.serial
        case ClipIngested():
            return event.clip_id or event.device_serial
        case ClipVerified() | ClipDamaged():
            return event.clip_id or "-"
        case CheckedOut() | CheckedIn():
            return event.device_serial
        case BadFolder():
            return event.folder
        case CameraUpdateOffered() | CameraUpdateResult():
            return event.serial


# -- clips -----------------------------------------------------------------------------------------


def admit_ingests(
    db, run: list[Applied[ClipIngested]], boroughs: Mapping[str, str]
) -> tuple[list[Applied[ClipIngested]], list[Applied[ClipIngested]], set[str]]:
    """Sort a run of ``clip_ingested`` (of one or more stations) into (each clip's first report in the
    run: to attribute; its later reports; the clips whose upload is verified, whose custody record
    can be written now); refused ones are recorded. A clip of another borough's camera is refused
    as its docking would be (its upload, if any, stays: evidence); one another station is still
    uploading stands if that station may have copied it too and declares the same bytes
    (``_copied_too``: the same as when the report comes first). Whether a clip was reported
    before is settled after its attribution is tried (``settle_reported``): one lookup of the few
    clips that had a row already, not of every clip. The others' claims wait for their upload in
    their attribution rows (``claim_fields``, written with the attribution)."""
    registered = devices.registered_to(db, (a.event.device_serial for a in run))
    uploads = upload_records.of_clips(db, _clip_ids(run))
    first: dict[str, Applied[ClipIngested]] = {}
    later: list[Applied[ClipIngested]] = []
    verified: set[str] = set()
    refused: list[Refusal] = []
    for a in run:
        e, station_id = a.event, a.station
        upload = uploads.get(e.clip_id)
        reason = None
        if "\x00" in e.clip_id:
            reason = f"clip {e.clip_id}: {NUL_ID}"
        elif registered.get(e.device_serial, a.borough) != a.borough:
            reason = (
                f"clip {e.clip_id} is of camera {e.device_serial}, registered to {registered[e.device_serial]}, "
                f"not to {a.borough}"
            )
        elif upload is not None and upload[0] != station_id and not _copied_too(db, a, upload, boroughs):
            reason = f"clip {e.clip_id} is uploaded by {_station(upload[0])}, not by {station_id}"
        elif upload is not None and upload[1] != e.size:
            reason = f"clip {e.clip_id}: reported size {e.size} bytes, its upload has {upload[1]}"
        elif upload is not None and upload[2] != e.sha256:
            reason = f"clip {e.clip_id}: reported SHA-256 {e.sha256}, its upload has {upload[2]}"
        if reason is not None:
            refused.append((station_id, a.seq, "clip_ingested", e.clip_id, reason, a.at))
        elif e.clip_id in first:
            later.append(a)
        else:
            first[e.clip_id] = a
            if upload is not None and upload[3] == "verified":
                verified.add(e.clip_id)
    refuse(db, refused)
    return list(first.values()), later, verified


def _copied_too(db, a: Applied[ClipIngested], upload: tuple, boroughs: Mapping[str, str]) -> bool:
    """Whether a report of a clip another station (or a person) is still uploading stands, as it would
    had it come first (``settle``): the upload declares the very bytes it names, and its station
    may have copied the clip too (``_may_have_copied``). Once verified, the clip's SHA-256 is in
    custody reports and proves nothing: a report then needs its own station's upload."""
    station, length, sha256, state = upload
    return (
        state != "verified"
        and (length, sha256) == (a.event.size, a.event.sha256)
        and _may_have_copied(db, a.station, station, a.event.device_serial, boroughs)
    )


def settle_reported(
    db, first: list[Applied[ClipIngested]], later: list[Applied[ClipIngested]], attributed: set[str]
) -> list[Applied[ClipIngested]]:
    """After ``admit_ingests``' reports were attributed: those whose rows were made (``attributed``),
    the clips new to central. Each other report names a clip reported before (earlier in the run or
    in another): by the same station, nothing new; by another, refused."""
    owners: dict[str, str | None] = {a.event.clip_id: a.station for a in first if a.event.clip_id in attributed}
    again = [a for a in first if a.event.clip_id not in attributed] + later
    if not again:
        return first
    owners |= attribution.reporters(db, (a.event.clip_id for a in again if a.event.clip_id not in owners))
    refuse(
        db,
        [
            (
                a.station,
                a.seq,
                "clip_ingested",
                a.event.clip_id,
                f"clip {a.event.clip_id} was reported by station {owners.get(a.event.clip_id)}, not by {a.station}",
                a.at,
            )
            for a in sorted(again, key=lambda a: (a.station, a.seq))
            if owners.get(a.event.clip_id) != a.station
        ],
    )
    return [a for a in first if a.event.clip_id in attributed]


def claim_fields(a: Applied[ClipIngested]) -> dict:
    """The claim a clip's attribution row keeps until its upload is verified (``settle``)."""
    return {"seq": a.seq, "station_at": a.at, "size": a.event.size, "sha256": a.event.sha256}


def admit_verified(db, run: list[Applied[ClipVerified]]) -> list[Applied[ClipVerified]]:
    """ "Central verified this clip" from the station that uploaded it; about another's, refused."""
    uploads = {clip: upload[0] for clip, upload in upload_records.of_clips(db, _clip_ids(run)).items()}
    accepted: list[Applied[ClipVerified]] = []
    refused: list[Refusal] = []
    for a in run:
        if a.event.clip_id in uploads and uploads[a.event.clip_id] == a.station:
            accepted.append(a)
            continue
        reason = (
            f"clip {a.event.clip_id} is uploaded by {_station(uploads[a.event.clip_id])}, not by {a.station}"
            if a.event.clip_id in uploads
            else f"central has no upload of clip {a.event.clip_id}"
        )
        refused.append((a.station, a.seq, "clip_verified", a.event.clip_id, reason, a.at))
    refuse(db, refused)
    return accepted


def admit_damaged(db, run: list[Applied[ClipDamaged]]) -> list[Applied[ClipDamaged]]:
    """ "My copy of this clip is damaged" from the station that reported or uploaded it; about another's, refused."""
    clip_ids = _clip_ids(run)
    reported = attribution.reporters(db, clip_ids)
    uploads = {clip: upload[0] for clip, upload in upload_records.of_clips(db, clip_ids).items()}
    accepted: list[Applied[ClipDamaged]] = []
    refused: list[Refusal] = []
    for a in run:
        if a.station in (reported.get(a.event.clip_id), uploads.get(a.event.clip_id)):
            accepted.append(a)
        else:
            reason = f"clip {a.event.clip_id} was neither reported nor uploaded by {a.station}"
            refused.append((a.station, a.seq, "clip_damaged", a.event.clip_id, reason, a.at))
    refuse(db, refused)
    return accepted


def waiting(db, clip_id: str, station_id: str) -> tuple[int, str] | None:
    """(size, SHA-256) of ``station_id``'s ingest report of ``clip_id`` still waiting for its upload
    (kept in the clip's attribution row; the uploads package asks here, as its layer allows)."""
    claim = attribution.claimant(db, clip_id)
    return (claim[1], claim[2]) if claim is not None and claim[0] == station_id else None


def claimed_elsewhere(db, clip_id: str, station_id: str | None, sha256: str, size: int) -> str | None:
    """Why ``station_id`` may not upload these bytes as ``clip_id`` (None: it may). A station that
    reported copying the clip off its camera, and whose report waits for the upload, named its
    bytes: other bytes under that id from anyone else are refused before they are stored. Else
    another station of the borough, told the id of a held clip, could upload its own bytes first:
    verified, they won the clip, the true report was refused and the true upload met a 409. The
    same bytes from another station (a camera copied at two docks) are welcome."""
    claim = attribution.claimant(db, clip_id)
    if claim is None or claim[0] == station_id or (claim[1], claim[2]) == (size, sha256):
        return None
    return (
        f"clip {clip_id} was reported copied off its camera by station {claim[0]} with other bytes "
        "than these: not taken from another station (a person must look)"
    )


def _may_have_copied(db, claimant: str, uploader: str | None, serial: str, boroughs: Mapping[str, str]) -> bool:
    """Whether ``claimant`` may have copied a clip ``uploader`` (None: a person) uploaded: a station of
    the uploader's borough, or of the borough the clip's camera is registered to."""
    theirs = boroughs.get(claimant)
    if theirs is None:
        return False
    if uploader is not None and boroughs.get(uploader) == theirs:
        return True
    return devices.registered_to(db, [serial]).get(serial) == theirs


def settle(db, clip_id: str, station_id: str | None, sha256: str, size: int, boroughs: Mapping[str, str]) -> None:
    """The upload of ``clip_id`` is verified: a waiting ingest claim joins the chain if it matches,
    else is refused and its attribution undone (the uploading station's own report attributes it).

    A claim matches the upload's bytes (size and SHA-256) and comes from the uploading station, or
    from one that may have copied the clip too: another of the uploader's borough (``boroughs``:
    each station's), or one of the borough the camera is registered to, whoever uploads (a camera
    docked at its own borough's station and at another's, or the footage sent by a person). The
    claim named those bytes before any upload was verified: its station had them. Refusing it left
    the clip with no attribution at all (the uploader's own report, the second, had been refused,
    or another borough's report of the camera is refused), so no officer hold covered it. A claim
    of another borough's station on an unregistered camera uploaded by another borough stays refused."""
    claim = attribution.take_claim(db, clip_id)
    if claim is not None:
        claimant, seq, station_at, serial, claimed_size, claimed_sha = claim
        same_bytes = claimed_size == size and claimed_sha == sha256
        if same_bytes and (claimant == station_id or _may_have_copied(db, claimant, station_id, serial, boroughs)):
            audit.record(db, **ingest_record(claimant, clip_id, serial, size, sha256, station_at))
            return
        reason = (
            f"clip {clip_id} was uploaded by {_station(station_id)}, not by {claimant}"
            if claimant != station_id
            else f"clip {clip_id}: reported {claimed_size} bytes, SHA-256 {claimed_sha}; its verified upload "
            f"has {size} bytes, SHA-256 {sha256}"
        )
        refuse(db, [(claimant, seq, "clip_ingested", clip_id, reason, station_at)])
        attribution.withdraw(db, clip_id, claimant)


def _station(station_id: str | None) -> str:
    return f"station {station_id}" if station_id else "a user at central"


# -- a person's word on a report that waits for its upload -----------------------------------------

Claim = tuple[str, int, str, str, int, str]
"""(station, seq, station time, camera, size, SHA-256) of a report of copying a clip off its camera."""


def refuse_waiting(db, clip_id: str, actor: str, reason: str) -> Claim | None:
    """A person refuses the report of ``clip_id`` that waits for its upload (``fleet central claims
    refuse``): recorded against its station as any refusal is, its attribution undone (unless a
    person made it), audited. None: no report of the clip waits.

    A report made first naming other bytes than the camera's refuses every other station's
    upload of the clip (``claimed_elsewhere``: 409, "a person must look"), and the true station's
    report of it (``settle_reported``). This is what that person does about it."""
    claim = attribution.take_claim(db, clip_id)
    if claim is None:
        return None
    station, seq, station_at, serial, size, sha256 = claim
    refuse(db, [(station, seq, "clip_ingested", clip_id, f"refused by {actor}: {reason}", station_at)])
    attribution.withdraw(db, clip_id, station)
    audit.record(
        db,
        actor=actor,
        action="claim-refused",
        object_type="clip",
        object_id=clip_id,
        detail=f"station {station}'s report (event {seq}) of copying it off camera {serial}, {size} bytes, "
        f"sha256 {sha256}: {reason}",
    )
    return station, seq, station_at, serial, size, sha256


def reinstated(db, clip_id: str, actor: str, station: str, seq: int, instead_of: str | None, reason: str) -> None:
    """A person put ``station``'s refused report of ``clip_id`` in the place of ``instead_of``'s (None:
    of none, a refusal made before: ``central.events.decisions``): audited beside the refusal."""
    place = f"in place of station {instead_of}'s" if instead_of else "where no station's stood"
    audit.record(
        db,
        actor=actor,
        action="claim-reinstated",
        object_type="clip",
        object_id=clip_id,
        detail=f"station {station}'s report (event {seq}) applied {place}: {reason}",
    )


def refused_reports(db, clip_id: str) -> list[tuple[str, int, str, str]]:
    """(station, seq, reason, when refused) of the refused reports of copying ``clip_id`` off its
    camera, oldest first: what a person deciding its claim reads. A scan of the refusals (none
    is indexed by its subject; they are few, and this is read by hand)."""
    return [
        tuple(r)
        for r in db.execute(
            "SELECT station_id, seq, reason, at FROM station_refusals WHERE kind = 'clip_ingested' AND subject = ? "
            "ORDER BY id",
            [clip_id],
        )
    ]


# -- cameras ---------------------------------------------------------------------------------------


def admit_dockings(
    db, run: list[Applied[CameraDocked]], misdated: Callable[[Applied[CameraDocked]], str | None]
) -> list[Applied[CameraDocked]]:
    """Dockings of cameras of the station's borough, or never heard of, dated believably (``misdated``:
    why not, by the station's clock); the others are refused. A camera never heard of is its first
    accepted docking's borough's from then on, as applying the run's stations one after another
    would make it (``projection.merged_runs``)."""
    registered = devices.registered_to(db, (a.event.device.serial for a in run))
    accepted: list[Applied[CameraDocked]] = []
    refused: list[Refusal] = []
    for a in run:
        serial = a.event.device.serial
        borough = registered.get(serial, a.borough)
        reason = (
            f"camera {serial} is registered to {borough}, not to {a.borough}: move it in the registry first"
            if borough != a.borough
            else misdated(a)
        )
        if reason is None:
            registered[serial] = borough
            accepted.append(a)
        else:
            refused.append((a.station, a.seq, "camera_docked", serial, reason, a.at))
    refuse(db, refused)
    return accepted


def admit_pool_events(
    db, run: list[Applied[PoolEvent]], kind: str, mode_for: Callable[[str], str]
) -> list[Applied[PoolEvent]]:
    """Checkouts or check-ins of the station's own borough's pool cameras; ``mode_for(borough)``
    is the borough's assignment policy."""
    cameras = checkouts.standing(db, (a.event.device_serial for a in run))
    accepted: list[Applied[PoolEvent]] = []
    refused: list[Refusal] = []
    for a in run:
        serial, borough = a.event.device_serial, a.borough
        device = cameras.get(serial)
        if device is None:
            reason = f"camera {serial} was never docked anywhere central knows of"
        elif device[0] != borough:
            reason = f"camera {serial} is registered to {device[0] or 'no borough'}, not to {borough}"
        elif device[2] is not None:
            reason = f"camera {serial} is on personal issue to {device[2]}"
        elif (device[1] or mode_for(borough)) == "personal":
            reason = f"camera {serial} is for personal issue, not in {borough}'s pool"
        else:
            accepted.append(a)
            continue
        refused.append((a.station, a.seq, kind, serial, reason, a.at))
    refuse(db, refused)
    return accepted


# -- deployments ----------------------------------------------------------------------------------


def admit_updates(db, run: list[Applied[UpdateEvent]]) -> list[Applied[UpdateEvent]]:
    """A station reports the hand-over and the outcome of updates of its own borough's cameras, in
    deployments that offered them, for attempts offered; anything else is refused."""
    known = deployments.targeted(db, ((a.event.deployment_id, a.event.serial) for a in run))
    accepted: list[Applied[UpdateEvent]] = []
    refused: list[Refusal] = []
    for a in run:
        e = a.event
        found = known.get((e.deployment_id, e.serial))
        if found is None:
            reason = f"camera {e.serial} is not in deployment {e.deployment_id}"
        elif found[1] != a.borough:
            reason = f"camera {e.serial} is registered to {found[1] or 'no borough'}, not to {a.borough}"
        elif found[0] == "waiting":
            reason = f"deployment {e.deployment_id} has not offered camera {e.serial} yet (its phase is not open)"
        elif e.attempt > found[2]:
            # A result for an attempt never offered would count a failure, and its number would make
            # every real result of a lower attempt look like a repeat, ignored for ever.
            reason = (
                f"deployment {e.deployment_id} offered camera {e.serial} up to attempt {found[2]}, "
                f"not attempt {e.attempt}"
            )
        else:
            accepted.append(a)
            continue
        refused.append((a.station, a.seq, kind_of(e), e.serial, reason, a.at))
    refuse(db, refused)
    return accepted


class StationClock:
    """A station's events dated within its own clock: never after it sent them, never before what it
    reported earlier, give or take ``tolerance``.

    A station stamps events with its clock as it writes them, in seq order, and stamps each batch
    as it sends it (central measures the skew from that): an event dated well after its batch was
    sent, or well before an event the station reported earlier, was not written when it says.
    """

    def __init__(self, latest: str | None, tolerance: timedelta) -> None:
        self.latest = latest
        """The latest station time of an event accepted from this station (None: none yet)."""
        self.tolerance = tolerance
        self._floor: tuple[str | None, str | None] = (None, None)
        self._ceilings: dict[str, str] = {}

    def judge(self, a: Applied[Event]) -> str | None:
        """Why this event's date is not believable (None: it is; the station's latest date moves on)."""
        if self.latest is not None and self._floor[0] != self.latest:
            self._floor = (self.latest, to_iso(from_iso(self.latest) - self.tolerance))
        if self._floor[1] is not None and a.at < self._floor[1]:
            return (
                f"dated {a.at}, before {self.latest} of an event this station reported earlier "
                "(back-dated, or its clock was set back)"
            )
        if a.sent_at is not None:
            ceiling = self._ceilings.get(a.sent_at)
            if ceiling is None:
                ceiling = self._ceilings[a.sent_at] = to_iso(from_iso(a.sent_at) + self.tolerance)
            if a.at > ceiling:
                return f"dated {a.at}, after the station sent it at {a.sent_at} by its own clock"
        if self.latest is None or a.at > self.latest:
            self.latest = a.at
        return None


def refusals_count(db, since: str, stations: list[str] | None = None) -> int:
    """Refusals since ``since``, of these stations only (a borough's) or of all."""
    only = f" AND {db.dialect.any_of('station_id')}" if stations is not None else ""
    return db.execute(
        f"SELECT count(*) FROM station_refusals {db.dialect.indexed_by('station_refusals_at')} WHERE at >= ?{only}",
        [since, *([db.dialect.many(stations)] if stations is not None else [])],
    ).fetchone()[0]


def recent_refusals(db, limit: int = 100, stations: list[str] | None = None) -> list[tuple]:
    """(station, seq, kind, subject, reason, station time, refused at), newest first; of these
    stations only (a borough's) or of all."""
    only = f"WHERE {db.dialect.any_of('station_id')} " if stations is not None else ""
    return db.execute(
        "SELECT station_id, seq, kind, subject, reason, station_at, at FROM station_refusals "
        f"{only}ORDER BY id DESC LIMIT ?",
        [*([db.dialect.many(stations)] if stations is not None else []), limit],
    ).fetchall()


def counts_by_station(db) -> dict[str, int]:
    return dict(db.execute("SELECT station_id, count(*) FROM station_refusals GROUP BY station_id").fetchall())
