"""Station events applied to what they change: the registry (cameras, battery readings, pool
checkouts, whose clip is whose) and the evidence (custody, holds reaching the stations).

The projection decides what each kind of event does, in which order; the packages that own
the tables do it (``central.registry.docking``, ``.checkouts``, ``.attribution``,
``central.evidence``), inside the projection's transaction.

Events are applied in each station's seq order by the projection worker (``central.events.log``),
after they are acknowledged: "acknowledged" means durably stored; applying follows, tracked
per station by ``applied_seq``. Consecutive events of one kind are applied together
(``executemany``, ``rows_of``), statement by statement, which keeps their order where it
matters (one device's readings, one device's checkouts), and every station's run of a kind
with them (``merged_runs``): a transaction costs a few statements however many stations it
serves (on PostgreSQL each statement is a round trip).

Times: ``at`` is the station's clock. It orders nothing here except what it must: a pool
checkout is an interval of station time, and a clip belongs to whoever held the camera at
its ``recorded_at`` (the camera's clock). Late events (a station back after an outage)
re-attribute the clips their interval covers; clips a supervisor attributed by hand stay.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, ClassVar, Generic, TypeVar

import msgspec

from central.events import claims
from central.events.changes import ChangeLog
from central.evidence import audit, holds
from central.firmware import deployments, settings_history
from central.registry import attribution, battery, checkouts, devices, docking, stations
from fleet.clock import from_iso, to_iso, to_iso_many, utc_now
from fleet.config import FleetSettings
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

_encoder = msgspec.json.Encoder()
EventT = TypeVar("EventT", bound=Event)


E_co = TypeVar("E_co", bound=Event, covariant=True)
Clocks = dict[str, claims.StationClock]
"""Each station's clock (``claims.StationClock``), by station."""


class Applied(msgspec.Struct, Generic[E_co], frozen=True):
    """A stored event on its way to the projection (``Applied[CheckedOut]``: a checkout). A Struct,
    not a dataclass: one is made for every event applied, and a frozen dataclass's ``__init__``
    cost ~0.6 µs of the ~15 µs the projection's process spends on an event."""

    station: str
    borough: str
    """The station's borough, as its token says (what it may claim is judged against it)."""
    seq: int
    at: str
    """The station's clock, RFC 3339 UTC."""
    event: E_co
    sent_at: str | None = None
    """The station's clock when it sent the event's batch (None: stored before central kept it)."""


REORDERABLE = (CameraDocked, ClipIngested)
"""Kinds whose effects on one camera never touch another's: a docking (its telemetry, battery,
lifecycle, its own pool checkout) and the ingest of its clips (their attribution, custody)."""


def in_runs(events: Sequence[Applied[Event]]) -> list[Applied[Event]]:
    """The events in an order that makes long runs of one kind, with the same effect as seq order.

    A station reports each docking followed by its clips, so in seq order the kinds alternate
    (one docking, four ingests, one docking, …) and every run is a handful of events. Between
    two events of other kinds (a checkout, a check-in, a verification: applied where they
    stand), dockings and ingests are put in *generations* per camera: a camera's ingests
    before its first docking here, its first docking, the ingests after it, its second
    docking, … (a docking's generation is never lower than the docking's before it). Every
    camera's own events keep their order, the dockings keep theirs (the station's clock judges
    them in order), and each generation is one run of dockings and one
    run of ingests for all cameras at once."""
    ordered: list[Applied[Event]] = []
    segment: list[Applied[Event]] = []

    def flush() -> None:
        dockings: dict[str, int] = {}
        # The last docking's generation: a docking's is never lower, so the dockings of all cameras
        # keep their seq order (a camera's second docking numbered 2 before another's first, as 1,
        # was judged after it, and the station's clock refused it as back-dated).
        level = 0
        keyed = []
        for a in segment:
            e = a.event
            if isinstance(e, CameraDocked):
                level = dockings[e.device.serial] = max(level, dockings.get(e.device.serial, 0) + 1)
                keyed.append(((level, 0, a.seq), a))
            else:
                assert isinstance(e, ClipIngested)
                keyed.append(((dockings.get(e.device_serial, 0), 1, a.seq), a))
        keyed.sort(key=lambda pair: pair[0])
        ordered.extend(a for _, a in keyed)
        segment.clear()

    for a in events:
        if isinstance(a.event, REORDERABLE):
            segment.append(a)
        else:
            flush()
            ordered.append(a)
    flush()
    return ordered


def merged_runs(events: Sequence[Applied[Event]]) -> list[list[Applied[Event]]]:
    """Runs of one kind across every station, in an order that keeps each station's: so that one
    transaction's stations cost a few statements, not a few each.

    Each station's events are put in runs (``in_runs``); then, again and again, the kind most of
    the stations' next runs are of is taken, one run from each of those stations, in station
    order. The effect is that of applying the stations' runs one after another in that order
    (the claims see the run's earlier events: ``claims.admit_dockings``): one interleaving of
    the stations, each in its own order, as the stations' batches themselves interleave."""
    by_station: dict[str, list[Applied[Event]]] = {}
    for a in events:
        by_station.setdefault(a.station, []).append(a)
    queues = [
        [list(run) for _, run in itertools.groupby(in_runs(own), key=lambda a: type(a.event))]
        for own in by_station.values()
    ]
    queues = [q[::-1] for q in queues]  # popped from the end
    merged: list[list[Applied[Event]]] = []
    while any(queues):
        heads = [type(q[-1][0].event) for q in queues if q]
        kind = max(dict.fromkeys(heads), key=heads.count)  # the commonest; the first of equals
        merged.append([a for q in queues if q and type(q[-1][0].event) is kind for a in q.pop()])
    return merged


def reattribute(db, changes, serial: str, start: str, end: str | None = None) -> None:
    """Recompute the owner of this camera's clips recorded in [start, end), except hand-resolved ones,
    and tell the stations about those an officer hold now covers (or no longer does)."""
    holds.announce_reattributed(db, changes, attribution.reattribute(db, serial, start, end))


class Projector:
    def __init__(self, fleet: FleetSettings, changes: ChangeLog) -> None:
        self.fleet = fleet
        self.changes = changes
        """The changes feed, for the registry changes events cause (a lost camera docking)."""
        self.policy = battery.health_policy(fleet)
        self._latest_clips: dict[str, str] = {}
        """{camera: its latest clip's time} of the clips applied so far in ``apply``: moved on once,
        at its end (``attribution.move_latest_clips``), not at every run of clips."""
        self._boroughs = {station: entry.borough for station, entry in changes.settings.stations.items()}
        """Each configured station's borough (who may have copied a clip another uploads: ``claims``)."""
        self._new_clips: list[str] = []
        """The clips ``apply`` attributed: the held ones among them announced once, at its end."""

    def apply(self, db, events: Sequence[Applied[Event]]) -> None:
        """Apply events of one or more stations, each station's in its seq order; what a station may
        not claim is refused (``central.events.claims``).

        Each run of one kind is judged after the runs before it are applied: a camera first seen
        docking is registered before the checkout that names it is judged."""
        tolerance = timedelta(minutes=self.fleet.event_clock_tolerance_minutes)
        latest = stations.latest_at(db, dict.fromkeys(a.station for a in events))
        clocks = {station: claims.StationClock(at, tolerance) for station, at in latest.items()}
        self._latest_clips = {}
        self._new_clips = []
        for run in merged_runs(events):
            kind = type(run[0].event)
            run = self._admissions[kind](self, db, clocks, run)
            handler = self._handlers[kind]
            if run and handler is not None:
                handler(self, db, run)
        attribution.move_latest_clips(db, self._latest_clips)
        # An officer hold placed before these clips reached central covers them already. Looked up once
        # (a read waits for every statement before it), with their state at the end: a later run of
        # this transaction that re-attributed one has announced it then, and this is the latest word.
        holds.announce_holds(db, self.changes, self._new_clips, held_only=True)
        stations.set_latest_at(db, {station: clock.latest for station, clock in clocks.items()})

    def _admit_dockings(self, db, clocks: Clocks, run: list[Applied[CameraDocked]]) -> list[Applied[CameraDocked]]:
        return claims.admit_dockings(db, run, lambda a: self._misdated(clocks, a))

    def _admit_pool_events(
        self, db, clocks: Clocks, run: list[Applied[claims.PoolEvent]]
    ) -> list[Applied[claims.PoolEvent]]:
        tag = kind_of(run[0].event)
        return self._dated(db, clocks, claims.admit_pool_events(db, run, tag, self.fleet.assignment_mode))

    def _admit_ingests(self, db, clocks: Clocks, run: list[Applied[ClipIngested]]) -> list[Applied[ClipIngested]]:
        return run  # judged by ``_ingested`` with the uploads, which it needs too (``claims.admit_ingests``)

    def _admit_verified(self, db, clocks: Clocks, run: list[Applied[ClipVerified]]) -> list[Applied[ClipVerified]]:
        return claims.admit_verified(db, run)

    def _admit_damaged(self, db, clocks: Clocks, run: list[Applied[ClipDamaged]]) -> list[Applied[ClipDamaged]]:
        return claims.admit_damaged(db, run)

    def _admit_updates(
        self, db, clocks: Clocks, run: list[Applied[claims.UpdateEvent]]
    ) -> list[Applied[claims.UpdateEvent]]:
        # Station time orders nothing here: a camera's outcome is judged against the deployment itself.
        return claims.admit_updates(db, run)

    def _admit_own_dock(self, db, clocks: Clocks, run: list[Applied[BadFolder]]) -> list[Applied[BadFolder]]:
        return run  # a folder of its own dock it could not read: about the station itself, and applied to nothing

    @staticmethod
    def _misdated(clocks: Clocks, a: Applied[Event]) -> str | None:
        """Why the event's station time is not believable, by its station's clock (None: it is)."""
        reason = clocks[a.station].judge(a)
        return None if reason is None else f"clock: {reason}"

    @classmethod
    def _dated(cls, db, clocks: Clocks, run: list[Applied[EventT]]) -> list[Applied[EventT]]:
        """The events of a run whose station time is believable; the others are refused."""
        accepted: list[Applied[EventT]] = []
        refused: list[claims.Refusal] = []
        for a in run:
            reason = cls._misdated(clocks, a)
            if reason is None:
                accepted.append(a)
                continue
            refused.append((a.station, a.seq, kind_of(a.event), claims.subject_of(a.event), reason, a.at))
        claims.refuse(db, refused)
        return accepted

    # -- docking: telemetry, battery, lifecycle, the end of a pool checkout -----------------

    def _docked(self, db, run: list[Applied[CameraDocked]]) -> None:
        now = to_iso(utc_now())
        rows: list[docking.Docking] = []
        readings: list[tuple] = []
        camera_times = iter(to_iso_many([a.event.device.docked_at for a in run if a.event.device.docked_at]))
        for a in run:
            e = a.event
            b = e.device.battery
            # The camera's clock may be wrong; it cannot have docked after the station saw it docked.
            docked_at = min(next(camera_times), a.at) if e.device.docked_at else a.at
            soh = battery.state_of_health(b.full_charge_mah, b.design_mah) if b else None
            rows.append(
                {
                    "serial": e.device.serial,
                    "model": e.device.model,
                    "firmware": e.device.firmware,
                    "borough": a.borough,
                    "station": a.station,
                    "by": f"dock:{a.station}",
                    "now": now,
                    "docked_at": docked_at,
                    "clips": e.clip_count,
                    "telemetry": _encoder.encode(e.device).decode(),
                    "soh": soh,
                    "cycles": b.cycle_count if b else None,
                    "temp": b.temperature_c if b else None,
                    "level": b.level_pct if b else None,
                    "short": int(soh is not None and battery.will_not_last_shift(soh, self.policy)),
                    "hot": int(b is not None and battery.over_temperature(b.temperature_c, self.policy)),
                    "drop": battery.drop_threshold(self.policy),
                }
            )
            if b is not None:
                readings.append(
                    (
                        e.device.serial,
                        docked_at,
                        a.station,
                        soh,
                        b.cycle_count,
                        b.temperature_c,
                        b.level_pct,
                        b.full_charge_mah,
                        b.design_mah,
                    )
                )
        first_seen = docking.record(db, rows, readings)  # registered in its first docking station's borough
        for serial in first_seen:  # clips before its first docking moved no camera's latest clip: there was none
            self._latest_clips.pop(serial, None)
        first_at: dict[str, str] = {}
        for r in rows:
            first_at.setdefault(r["serial"], r["station"])
        docking.record_changes(db, self.changes, [(s, None, "first seen docked", first_at[s]) for s in first_seen], now)
        # A camera that docks with clips is in service; a lost one that docks is found.
        with_clips: dict[str, str] = {}
        for r in rows:
            if r["clips"]:
                with_clips.setdefault(r["serial"], r["station"])
        docking.record_changes(
            db,
            self.changes,
            [
                (
                    serial,
                    before,
                    "found: docked with clips" if before == "lost" else "docked with clips",
                    with_clips[serial],
                )
                for serial, before in docking.put_in_service(db, list(with_clips))
            ],
            now,
        )
        # Docking ends a pool checkout made before it, or one whose end central had from a later
        # docking or check-in (``checkouts.close_at_docking``). Only the run's cameras held at or
        # after the run's earliest docking are looked at one by one.
        held = checkouts.held_after(db, dict.fromkeys(r["serial"] for r in rows), min(r["docked_at"] for r in rows))
        for r in rows:
            if r["serial"] not in held:
                continue
            closed = checkouts.close_at_docking(db, r["serial"], r["docked_at"], r["by"])
            for assignment_id, officer_id in closed:
                audit.record(
                    db,
                    actor=r["by"],
                    place=r["station"],
                    action="check-in",
                    object_type="device",
                    object_id=r["serial"],
                    detail=f"officer {officer_id}: docked",
                )
                checkouts.find_conflicts(db, assignment_id)
            if closed:
                reattribute(db, self.changes, r["serial"], r["docked_at"])

    # -- clips: attribution to the officer holding the camera at recorded_at -------------------

    def _ingested(self, db, run: list[Applied[ClipIngested]]) -> None:
        first, later, verified = claims.admit_ingests(db, run, self._boroughs)
        rows = [
            {
                "clip": a.event.clip_id,
                "serial": a.event.device_serial,
                "at": recorded,
                "station": a.station,
                # the others' claims wait in their rows for the upload
                **({} if a.event.clip_id in verified else claims.claim_fields(a)),
            }
            for a, recorded in zip(first, to_iso_many([a.event.recorded_at for a in first]), strict=True)
        ]
        attributed = attribution.attribute_ingested(db, rows)
        new = claims.settle_reported(db, first, later, attributed)
        attribution.latest_clips([r for r in rows if r["clip"] in attributed], self._latest_clips)  # moved at the end
        self._new_clips += (a.event.clip_id for a in new)  # their holds announced at the end of ``apply``
        # Chain of custody, first link, once the verified upload agrees (the others wait for it).
        upload_verified = [a for a in new if a.event.clip_id in verified]
        if upload_verified:
            audit.record_many(
                db,
                [
                    claims.ingest_record(
                        a.station, a.event.clip_id, a.event.device_serial, a.event.size, a.event.sha256, a.at
                    )
                    for a in upload_verified
                ],
            )

    def _verified(self, db, run: list[Applied[ClipVerified]]) -> None:
        devices.record_uploads(db, [{"at": a.at, "clip": a.event.clip_id} for a in run])

    def _damaged(self, db, run: list[Applied[ClipDamaged]]) -> None:
        """A station's sealed copy failed authentication (tampering or a failing disk): in the clip's custody."""
        audit.record_many(
            db,
            [
                {
                    "actor": f"station {a.station}",
                    "place": a.station,
                    "action": "damaged-at-station",
                    "object_type": "clip",
                    "object_id": a.event.clip_id,
                    "detail": f"the station's encrypted copy failed authentication and was not sent: {a.event.reason}",
                    "at": from_iso(a.at),
                }
                for a in run
            ],
        )

    # -- pool checkouts: intervals of station time; conflicts listed, never dropped ------------

    def _checked_out(self, db, run: list[Applied[CheckedOut]]) -> None:
        for a in run:
            e = a.event
            actor = f"{e.by or 'desk'}@{a.station}"
            assignment_id = checkouts.check_out(db, e.device_serial, e.officer_id, a.at, a.station, actor)
            audit.record(
                db,
                actor=actor,
                place=a.station,
                action="check-out",
                object_type="device",
                object_id=e.device_serial,
                detail=f"officer {e.officer_id}, battery {e.battery_pct}%, station time {a.at}"
                + (f"; handed out past the battery gate: {e.override}" if e.override else ""),
            )
            checkouts.find_conflicts(db, assignment_id)
            reattribute(db, self.changes, e.device_serial, a.at)

    def _checked_in(self, db, run: list[Applied[CheckedIn]]) -> None:
        for a in run:
            e = a.event
            actor = f"{e.by or 'desk'}@{a.station}"
            closed = checkouts.check_in(db, e.device_serial, e.officer_id, a.at, actor, e.reason)
            for assignment_id, docked_end in closed:  # none: closed at or before this time already
                late = f" (reported after a docking at {docked_end} had closed it)" if docked_end else ""
                audit.record(
                    db,
                    actor=actor,
                    place=a.station,
                    action="check-in",
                    object_type="device",
                    object_id=e.device_serial,
                    detail=f"officer {e.officer_id}: {e.reason}{late}",
                )
                checkouts.find_conflicts(db, assignment_id)
                reattribute(db, self.changes, e.device_serial, a.at, docked_end)

    # -- deployments: a camera handed its update, and its outcome (the phase rules, at once) ----

    def _update_handed(self, db, run: list[Applied[CameraUpdateOffered]]) -> None:
        deployments.record_handed(db, [(a.event, a.at) for a in run])

    def _update_results(self, db, run: list[Applied[CameraUpdateResult]]) -> None:
        deployments.apply_results(db, self.changes, [(a.event, a.at) for a in run])
        settings_history.confirm(db, [(a.event, a.station) for a in run])

    # Each run goes to the rule and the handler of its kind, keyed by the events' type: the
    # one place the checker takes the pairing on trust (a handler names the kind it takes).
    _handlers: ClassVar[dict[type, Callable[[Projector, Any, list[Any]], None] | None]] = {
        CameraDocked: _docked,
        ClipIngested: _ingested,
        ClipVerified: _verified,
        CheckedOut: _checked_out,
        CheckedIn: _checked_in,
        BadFolder: None,
        ClipDamaged: _damaged,
        CameraUpdateOffered: _update_handed,
        CameraUpdateResult: _update_results,
    }
    _admissions: ClassVar[
        dict[type, Callable[[Projector, Any, dict[str, claims.StationClock], list[Any]], list[Any]]]
    ] = {
        CameraDocked: _admit_dockings,
        ClipIngested: _admit_ingests,
        ClipVerified: _admit_verified,
        CheckedOut: _admit_pool_events,
        CheckedIn: _admit_pool_events,
        BadFolder: _admit_own_dock,
        ClipDamaged: _admit_damaged,
        CameraUpdateOffered: _admit_updates,
        CameraUpdateResult: _admit_updates,
    }
    """What a station may claim, by event kind (``central.events.claims``): a kind with no rule here is
    never applied (``tests/central/events/test_claims.py`` fails for one)."""
