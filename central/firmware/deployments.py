"""Deployments: a release (firmware) or the profiles (settings) delivered to a frozen target of
cameras, phase by phase, pausing themselves when a phase fails too often.

The only writer of ``deployments``, ``deployment_phases`` and ``deployment_cameras``. Fleet
managers create and decide (``DeploymentService``: pause, resume, abort, rollback); the
projection applies what stations report (``record_handed``, ``apply_results``) in its own
transaction, and the phase rules (``central.firmware.phases``) are applied right there, so a
result and the pause it causes commit together. Every decision is audited, with who and why
(a pause central makes by itself names ``central`` and the figures that made it).

What reaches the stations: one ``camera_update`` item per offered camera, in its borough's
changes feed, when its phase opens; ``active: false`` when the offer ends (a pause, an abort,
the camera updated, gave up or left the target); the offer again on resume or after a failure
(with the next attempt). A station keeps one offer per camera, the newest deployment's: when
one ends, central offers again what another running deployment holds for that camera.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal, Protocol, TypeVar

import msgspec
from msgspec import Meta

from central.core.database import Database
from central.evidence import audit
from central.firmware import phases as rules
from central.firmware import releases
from central.firmware.phases import Candidate, Figures, PhaseSpec, Rule
from central.firmware.profiles import cameras_resolved, effective
from fleet.clock import from_iso, to_iso, utc_now
from fleet.config import CentralSettings
from fleet.errors import BadRequest, Conflict, FleetError, NotFound
from fleet.events import CameraUpdate, CameraUpdateOffered, CameraUpdateRelease, CameraUpdateResult, ChangeItem
from fleet.firmware import Model, Version
from fleet.protocol import BoroughName, Serial

log = logging.getLogger(__name__)

State = Literal["running", "paused", "completed", "aborted", "rolled_back"]
CameraState = Literal["waiting", "offered", "updated", "failed", "gave_up", "cancelled"]
ACTIVE = ("offered", "failed")
"""A camera's states in which its offer stands (while the deployment runs)."""
FINAL = ("updated", "gave_up", "cancelled")
ELIGIBLE = ("in_stock", "allocated", "issued", "in_service")
"""Lifecycle states a deployment may target: never retired, lost or in repair."""
DEPARTED = ("repair", "lost", "retired")
"""The other lifecycle states (``central.registry.lifecycle``, tested): a camera in one of these
leaves the deployments it is in."""
CENTRAL = "central"
"""The actor of what the phase rules decide."""
Reason = Annotated[
    str, Meta(min_length=1, max_length=500, pattern=r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$")
]
"""Why, in one line (kept in the deployment and the audit trail)."""
StationName = Annotated[str, Meta(min_length=1, max_length=64)]


class Target(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Which cameras: every field given narrows the target; none given is every camera of the
    release's model (or, for profiles, every camera)."""

    models: Annotated[list[Model], Meta(min_length=1, max_length=64)] | None = None
    boroughs: Annotated[list[BoroughName], Meta(min_length=1, max_length=64)] | None = None
    stations: Annotated[list[StationName], Meta(min_length=1, max_length=500)] | None = None
    """Cameras whose home station is one of these."""
    serials: Annotated[list[Serial], Meta(min_length=1, max_length=50_000)] | None = None
    from_versions: Annotated[list[Version], Meta(min_length=1, max_length=64)] | None = None
    """Only cameras now reporting one of these firmware versions."""


class Policy(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    max_attempts: Annotated[int, Meta(ge=1, le=100)] = 3
    """A camera whose update failed is offered again at its next docks, until this many failures."""
    min_charge_pct: Annotated[float, Meta(ge=0, le=100)] = 50.0
    max_temperature_c: Annotated[float, Meta(ge=-20, le=80)] = 40.0


class DeploymentRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``POST /api/v1/deployments``: a release (``release_id``) or the profiles (``profiles: true``)."""

    reason: Reason
    release_id: Annotated[int, Meta(ge=1, le=2**62)] | None = None
    profiles: bool = False
    target: Target = msgspec.field(default_factory=Target)
    phases: Annotated[list[PhaseSpec], Meta(max_length=rules.MAX_PHASES)] = msgspec.field(
        default_factory=lambda: list(rules.DEFAULT_PHASES)
    )
    """Default: 1 %, 10 %, 50 %, 100 %."""
    policy: Policy = msgspec.field(default_factory=Policy)


class DecisionRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    reason: Reason


class PhaseFigures(msgspec.Struct, kw_only=True):
    cameras: int
    updated: int
    failed: int
    """Cameras with at least one failure."""
    gave_up: int
    cancelled: int
    outstanding: int
    """Cameras without a final state (waiting, offered, failed)."""


class PhaseView(msgspec.Struct, kw_only=True):
    number: int
    share_pct: float | None
    boroughs: list[str] | None
    max_failure_pct: float
    min_results: int
    soak_hours: float | None
    """None: a deployment made before soaks, whose phases wait for their cameras."""
    state: Literal["waiting", "open", "done"]
    opened_at: datetime | None
    figures: PhaseFigures


class ReleaseRef(msgspec.Struct, kw_only=True):
    id: int
    model: str
    version: str


class Deployment(msgspec.Struct, kw_only=True):
    id: int
    kind: Literal["release", "profiles"]
    release: ReleaseRef | None
    state: State
    target: Target
    policy: Policy
    reason: str
    created_at: datetime
    created_by: str
    decision: str
    """The last decision, in words (``paused by itself: phase 1 …``)."""
    decided_at: datetime
    decided_by: str
    rollback_of: int | None
    phases: list[PhaseView]
    figures: PhaseFigures
    """Every phase's together."""


class DeploymentCamera(msgspec.Struct, kw_only=True):
    serial: str
    phase: int
    state: CameraState
    failures: int
    attempt: int
    """The attempt a station makes next (1 + its failures)."""
    from_version: str
    """The firmware it reported when the deployment was created."""
    version: str | None
    """The firmware it reported with its last result."""
    error: str | None
    handed_attempt: int | None
    """The last attempt a station reported writing into the camera's dock folder."""
    handed_at: datetime | None
    result_at: datetime | None


class CameraHistory(msgspec.Struct, kw_only=True):
    """One deployment that targeted a camera, and how its attempts went (a camera's page)."""

    deployment_id: int
    kind: Literal["release", "profiles"]
    release: ReleaseRef | None
    deployment_state: State
    created_at: datetime
    camera: DeploymentCamera


class CameraPage(msgspec.Struct, kw_only=True):
    items: list[DeploymentCamera]
    next_cursor: str | None = None


class Feed(Protocol):
    """The changes feed (``central.events.changes.ChangeLog``), as this module uses it."""

    def emit_many(self, db, items: list[tuple[ChangeItem, tuple[str | None, ...]]]) -> None: ...


_encoder = msgspec.json.Encoder()
EventT = TypeVar("EventT", CameraUpdateOffered, CameraUpdateResult)


@dataclass(frozen=True)
class _Row:
    """A deployment as the rules see it."""

    id: int
    kind: str
    release: releases.Release | None
    lock: str
    state: str
    policy: Policy
    rollback: bool
    """A rollback: its cameras are those the deployment it undoes updated, whatever version central
    last heard them report (a docking after the update may not have arrived yet)."""


def _load(db, deployment_id: int, *, lock: bool = False) -> _Row:
    row = db.execute(
        "SELECT id, kind, release_id, lock, state, policy, rollback_of FROM deployments WHERE id = ?",
        [deployment_id],
    ).fetchone()
    if row is None:
        raise NotFound(f"no deployment {deployment_id}")
    release = releases.read(db, row[2]) if row[2] is not None else None
    policy = msgspec.json.decode(row[5], type=Policy)
    return _Row(row[0], row[1], release, row[3], row[4], policy, rollback=row[6] is not None)


def _decide(db, deployment_id: int, state: str, actor: str, decision: str, now: str) -> None:
    db.execute(
        "UPDATE deployments SET state = ?, decided_at = ?, decided_by = ?, decision = ? WHERE id = ?",
        [state, now, actor, decision, deployment_id],
    )


def _audit(db, deployment_id: int, action: str, actor: str, detail: str) -> None:
    audit.record(db, actor=actor, action=action, object_type="deployment", object_id=str(deployment_id), detail=detail)


# -- what goes down the feed -----------------------------------------------------------------------


def _items(
    db, deployment: _Row, serials: Sequence[str], active: bool
) -> list[tuple[ChangeItem, tuple[str | None, ...]]]:
    """The ``camera_update`` items of these cameras of a deployment, each for its borough's feed."""
    if not serials:
        return []
    rows = db.execute(
        "SELECT c.serial, c.failures, c.profile, d.borough FROM deployment_cameras c "
        "JOIN devices d ON d.serial = c.serial "
        f"WHERE c.deployment_id = ? AND {db.dialect.any_of('c.serial')} ORDER BY c.serial",
        [deployment.id, db.dialect.many(serials)],
    ).fetchall()
    offered = _offered_release(deployment.release)
    return [
        (
            CameraUpdate(
                serial=serial,
                deployment_id=deployment.id,
                active=active,
                release=offered,
                profile=msgspec.json.decode(profile) if profile else None,
                min_charge_pct=deployment.policy.min_charge_pct,
                max_temperature_c=deployment.policy.max_temperature_c,
                attempt=min(failures + 1, 1000),
            ),
            (borough,),
        )
        for serial, failures, profile, borough in rows
        if borough is not None  # a camera of no borough has no station to hand it over yet
    ]


def _offered_release(release: releases.Release | None) -> CameraUpdateRelease | None:
    if release is None:
        return None
    return CameraUpdateRelease(
        id=release.id,
        model=release.model,
        version=release.version,
        sha256=release.sha256,
        size=release.size,
        signature=release.signature,
    )


def _offer(db, feed: Feed, deployment: _Row, serials: Sequence[str]) -> None:
    feed.emit_many(db, _items(db, deployment, serials, active=True))


def _withdraw(db, feed: Feed, deployment: _Row, serials: Sequence[str]) -> None:
    """End these cameras' offers from this deployment; offer again what another running deployment
    holds for them (a station keeps one offer per camera: this one had replaced it)."""
    if not serials:
        return
    told = _items(db, deployment, serials, active=False)
    others = db.execute(
        "SELECT c.deployment_id, c.serial FROM deployment_cameras c JOIN deployments p ON p.id = c.deployment_id "
        f"WHERE {db.dialect.any_of('c.serial')} AND c.deployment_id <> ? AND p.state = 'running' "
        "AND c.state IN ('offered', 'failed') ORDER BY c.deployment_id",
        [db.dialect.many(serials), deployment.id],
    ).fetchall()
    by_deployment: dict[int, list[str]] = {}
    for other, serial in others:
        by_deployment.setdefault(other, []).append(serial)
    for other, theirs in by_deployment.items():  # oldest first: the newest one's item arrives last and stands
        told += _items(db, _load(db, other), theirs, active=True)
    feed.emit_many(db, told)


def _serials(db, deployment_id: int, states: Iterable[str], phase: int | None = None) -> list[str]:
    states = list(states)
    marks = ", ".join("?" * len(states))
    sql = f"SELECT serial FROM deployment_cameras WHERE deployment_id = ? AND state IN ({marks})"
    params: list = [deployment_id, *states]
    if phase is not None:
        sql += " AND phase = ?"
        params.append(phase)
    return [r[0] for r in db.execute(sql + " ORDER BY serial", params)]


def active_offers(db, borough: str) -> list[CameraUpdate]:
    """The offers standing for a borough's cameras (the feed's snapshot): per camera, the newest
    running deployment's."""
    rows = db.execute(
        "SELECT c.deployment_id, c.serial FROM devices d "
        "JOIN deployment_cameras c ON c.serial = d.serial AND c.state IN ('offered', 'failed') "
        "JOIN deployments p ON p.id = c.deployment_id AND p.state = 'running' "
        "WHERE d.borough = ? ORDER BY c.serial, c.deployment_id DESC",
        [borough],
    ).fetchall()
    newest: dict[int, list[str]] = {}
    seen: set[str] = set()
    for deployment_id, serial in rows:
        if serial not in seen:
            seen.add(serial)
            newest.setdefault(deployment_id, []).append(serial)
    items: list[CameraUpdate] = []
    for deployment_id, serials in newest.items():
        items += [item for item, _ in _items(db, _load(db, deployment_id), serials, active=True)]  # type: ignore[misc]
    return sorted(items, key=lambda item: item.serial)


# -- the phase rules -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Phase:
    number: int
    """From 0 in the tables; people read it from 1."""
    spec: PhaseSpec
    state: str
    opened_at: str | None
    resumed_at: str | None
    rule: Rule

    def running_hours(self, now: str) -> float:
        """How long the phase has been running: since it opened, or since a person last resumed it."""
        if self.opened_at is None:
            return 0.0
        since = max(from_iso(t) for t in (self.opened_at, self.resumed_at) if t is not None)
        return max((from_iso(now) - since).total_seconds() / 3600, 0.0)


def _phases(db, deployment_id: int) -> list[_Phase]:
    rows = db.execute(
        "SELECT phase, share_pct, boroughs, max_failure_pct, min_results, soak_hours, state, opened_at, resumed_at, "
        "base_results, base_failures FROM deployment_phases WHERE deployment_id = ? ORDER BY phase",
        [deployment_id],
    ).fetchall()
    found = []
    for row in rows:
        phase, share, boroughs, max_failure, min_results, soak, state, opened, resumed = row[:9]
        spec = PhaseSpec(
            share_pct=share,
            boroughs=msgspec.json.decode(boroughs) if boroughs else None,
            max_failure_pct=max_failure,
            min_results=min_results,
        )  # its soak is the rule's: None for a deployment made before soaks
        rule = Rule(max_failure, min_results, base_results=row[9], base_failures=row[10], soak_hours=soak)
        found.append(_Phase(phase, spec, state, opened, resumed, rule))
    return found


def _soak_ended(phases: list[_Phase], now: str) -> bool:
    """A phase waits, and the newest open one has run its soak: the clock may open the next (the
    rules decide, with the figures); the only judgement time alone can change."""
    opened = [p for p in phases if p.state != "waiting"]
    if not opened or len(opened) == len(phases):
        return False
    newest = opened[-1]
    return newest.rule.soak_hours is not None and newest.running_hours(now) >= newest.rule.soak_hours


def _figures(db, deployment_id: int) -> dict[int, Figures]:
    """Each phase's figures: its counters (kept by ``_set_cameras``), not a count of its cameras."""
    return {
        r[0]: Figures(*r[1:])
        for r in db.execute(
            f"SELECT phase, {', '.join(COUNTED)} FROM deployment_phases WHERE deployment_id = ?", [deployment_id]
        )
    }


# -- the cameras' states and the phases' counters --------------------------------------------------

COUNTED = ("cameras", "updated", "failed", "gave_up", "cancelled", "results")
"""``deployment_phases``' counters, in ``Figures``' order: kept with every change of a camera's state,
failures or results, so that the phase rules read a phase's figures, not all its cameras."""
_SETTABLE = {
    "state": "TEXT",
    "failures": "BIGINT",
    "results": "BIGINT",
    "profile": "TEXT",
    "error": "TEXT",
    "result_at": "TEXT",
    "version": "TEXT",
}
"""The columns of ``deployment_cameras`` that ``_set_cameras`` writes, and their types."""


def _counts(state: str, failures: int, results: int) -> tuple[int, ...]:
    """What one camera adds to its phase's counters (``COUNTED``)."""
    return (1, state == "updated", failures > 0, state == "gave_up", state == "cancelled", results > 0)


def _set_cameras(db, deployment_id: int, changes: dict[str, dict[str, object]]) -> None:
    """Change cameras of a deployment ({serial: {column: value}}, every camera the same columns of
    ``_SETTABLE``), and their phases' counters by the difference, in the caller's transaction.

    The only writer of a camera's ``state``, ``failures`` and ``results`` once it is created (and
    of the counters once its phase is), so the counters cannot drift from the rows they count. The
    rows before are read here, in the same transaction, never taken from the caller."""
    if not changes:
        return
    columns = list(next(iter(changes.values())))
    if any(list(c) != columns for c in changes.values()) or not set(columns) <= set(_SETTABLE):
        raise ValueError(f"cameras changed with different or unknown columns: {columns}")
    before = db.execute(
        "SELECT serial, phase, state, failures, results FROM deployment_cameras "
        f"WHERE deployment_id = ? AND {db.dialect.any_of('serial')}",
        [deployment_id, db.dialect.many(changes)],
    ).fetchall()
    moved: dict[int, list[int]] = {}
    for serial, phase, state, failures, results in before:
        change = changes[serial]
        after = _counts(
            str(change.get("state", state)),
            int(change.get("failures", failures)),  # type: ignore[call-overload]
            int(change.get("results", results)),  # type: ignore[call-overload]
        )
        delta = moved.setdefault(phase, [0] * len(COUNTED))
        for i, (new, old) in enumerate(zip(after, _counts(state, failures, results), strict=True)):
            delta[i] += new - old
    db.execute(
        f"UPDATE deployment_cameras SET {', '.join(f'{c} = v.{c}' for c in columns)} "
        f"FROM {db.dialect.rows_of(', '.join(['serial TEXT', *(f'{c} {_SETTABLE[c]}' for c in columns)]))} "
        "WHERE deployment_cameras.deployment_id = ? AND deployment_cameras.serial = v.serial",
        [db.dialect.rows({"serial": s, **c} for s, c in changes.items()), deployment_id],
    )
    moved = {phase: delta for phase, delta in moved.items() if any(delta)}
    if moved:
        db.execute(
            f"UPDATE deployment_phases SET {', '.join(f'{c} = deployment_phases.{c} + v.{c}' for c in COUNTED)} "
            f"FROM {db.dialect.rows_of(', '.join(['phase BIGINT', *(f'{c} BIGINT' for c in COUNTED)]))} "
            "WHERE deployment_phases.deployment_id = ? AND deployment_phases.phase = v.phase",
            [
                db.dialect.rows({"phase": p, **dict(zip(COUNTED, d, strict=True))} for p, d in sorted(moved.items())),
                deployment_id,
            ],
        )


def _advance(db, feed: Feed, deployment_id: int, now: str) -> None:
    """Apply the phase rules to a running deployment until none applies: pause it, open its next
    phase (and judge again: an empty phase closes at once), or complete it."""
    while True:
        deployment = _load(db, deployment_id)
        if deployment.state != "running":
            return
        _cancel_departed(db, feed, deployment)
        phases = _phases(db, deployment_id)
        figures = _figures(db, deployment_id)
        opened = [p for p in phases if p.state != "waiting"]
        for p in opened:
            f = figures.get(p.number, Figures())
            if p.state == "open" and f.final >= f.cameras:
                db.execute(
                    "UPDATE deployment_phases SET state = 'done', done_at = ? WHERE deployment_id = ? AND phase = ?",
                    [now, deployment_id, p.number],
                )
        judged = [(figures.get(p.number, Figures()), p.rule) for p in phases]
        running_hours = opened[-1].running_hours(now) if opened else 0.0
        decision = rules.decide(judged, len(opened), running_hours)
        if decision == "pause":
            over = [
                f"phase {p.number + 1}: {rules.describe(f)}, over {p.rule.max_failure_pct:g} % failures"
                for p, (f, r) in zip(phases, judged, strict=True)
                if p.state != "waiting" and rules.over_threshold(f, r)
            ]
            text = "paused by itself: " + "; ".join(over)
            _decide(db, deployment_id, "paused", CENTRAL, text, now)
            _audit(db, deployment_id, "deployment-pause", CENTRAL, text)
            _withdraw(db, feed, deployment, _serials(db, deployment_id, ACTIVE))
            return
        if decision == "complete":
            totals = _total(list(figures.values()))
            text = f"completed: {rules.describe(totals)}"
            _decide(db, deployment_id, "completed", CENTRAL, text, now)
            _audit(db, deployment_id, "deployment-complete", CENTRAL, text)
            return
        if decision is None:
            return
        after = ""
        if opened:
            newest = opened[-1]
            why = rules.why_open_next(figures.get(newest.number, Figures()), newest.rule, running_hours)
            after = f" after phase {newest.number + 1}: {why}"
        _open_phase(db, feed, deployment, phases[len(opened)], now, after)


def _open_phase(db, feed: Feed, deployment: _Row, phase: _Phase, now: str, after: str = "") -> None:
    """Offer the phase's cameras, but for those that left the target since it was frozen (retired,
    lost, in repair) or reached the release's version by other means: those are cancelled."""
    waiting = _serials(db, deployment.id, ["waiting"], phase.number)
    left: dict[str, str] = {}
    for serial, lifecycle, firmware in db.execute(
        f"SELECT serial, lifecycle, firmware FROM devices WHERE {db.dialect.any_of('serial')}",
        [db.dialect.many(waiting)],
    ):
        if lifecycle not in ELIGIBLE:
            left[serial] = f"left the target: {lifecycle}"
        elif deployment.release is not None and firmware == deployment.release.version and not deployment.rollback:
            left[serial] = f"already on {firmware}"
    _cancel(db, deployment.id, left)
    offered = [s for s in waiting if s not in left]
    profiles = _profiles(db, offered) if deployment.kind == "profiles" else {}
    _set_cameras(db, deployment.id, {s: {"state": "offered", "profile": profiles.get(s)} for s in offered})
    db.execute(
        "UPDATE deployment_phases SET state = 'open', opened_at = ? WHERE deployment_id = ? AND phase = ?",
        [now, deployment.id, phase.number],
    )
    text = f"phase {phase.number + 1} ({phase.spec.describe()}) opened{after}: {len(offered)} camera(s) offered" + (
        f", {len(left)} cancelled (left the target or already updated)" if left else ""
    )
    db.execute(
        "UPDATE deployments SET decision = ?, decided_at = ?, decided_by = ? WHERE id = ?",
        [text, now, CENTRAL, deployment.id],
    )
    _audit(db, deployment.id, "deployment-phase-open", CENTRAL, text)
    _offer(db, feed, deployment, offered)


def _profiles(db, serials: list[str]) -> dict[str, str]:
    """Each camera's whole effective profile, as JSON, as it is now (what the offer carries)."""
    return {
        serial: _encoder.encode(msgspec.structs.asdict(effective(resolved))).decode()
        for serial, (_, resolved) in cameras_resolved(db, serials).items()
    }


def _cancel(db, deployment_id: int, why: dict[str, str]) -> None:
    _set_cameras(db, deployment_id, {s: {"state": "cancelled", "error": e} for s, e in why.items()})


def _cancel_departed(db, feed: Feed, deployment: _Row) -> None:
    """Cameras retired, lost or sent to repair since their phase opened leave the deployment. Read
    from the few such cameras (by the lifecycle index) to the deployment's rows, not the other way:
    this runs each time results are applied, and a deployment may hold the whole force."""
    marks = ", ".join("?" * len(DEPARTED))
    gone = db.execute(
        "SELECT d.serial, d.lifecycle FROM devices d JOIN deployment_cameras c "
        "ON c.deployment_id = ? AND c.serial = d.serial "
        f"WHERE d.lifecycle IN ({marks}) AND c.state IN ('offered', 'failed') ORDER BY d.serial",
        [deployment.id, *DEPARTED],
    ).fetchall()
    if gone:
        _cancel(db, deployment.id, {serial: f"left the target: {lifecycle}" for serial, lifecycle in gone})
        _withdraw(db, feed, deployment, [serial for serial, _ in gone])


def camera_left(db, feed: Feed, serial: str, lifecycle: str, actor: str) -> list[int]:
    """A camera retired, lost or sent to repair (the registry's lifecycle change, in its transaction)
    leaves every running or paused deployment that has not finished with it: cancelled at once,
    its offer withdrawn, and the phase rules of a running one applied (its phase may now close).
    The ids of the deployments it left."""
    if lifecycle in ELIGIBLE:
        return []
    rows = db.execute(
        "SELECT c.deployment_id, c.state, p.state FROM deployment_cameras c "
        "JOIN deployments p ON p.id = c.deployment_id WHERE c.serial = ? "
        "AND c.state IN ('waiting', 'offered', 'failed') AND p.state IN ('running', 'paused') "
        "ORDER BY c.deployment_id",
        [serial],
    ).fetchall()
    now = to_iso(utc_now())
    for deployment_id, state, running in rows:
        deployment = _load(db, deployment_id)
        _cancel(db, deployment_id, {serial: f"left the target: {lifecycle}"})
        _audit(db, deployment_id, "deployment-camera-cancelled", actor, f"{serial} left the target: {lifecycle}")
        if running == "running":
            if state in ACTIVE:
                _withdraw(db, feed, deployment, [serial])
            _advance(db, feed, deployment_id, now)
    return [r[0] for r in rows]


def _total(figures: list[Figures]) -> Figures:
    return Figures(
        cameras=sum(f.cameras for f in figures),
        updated=sum(f.updated for f in figures),
        failed=sum(f.failed for f in figures),
        gave_up=sum(f.gave_up for f in figures),
        cancelled=sum(f.cancelled for f in figures),
        results=sum(f.results for f in figures),
    )


# -- what stations report (the projection, in its transaction) -------------------------------------


def targeted(db, pairs: Iterable[tuple[int, str]]) -> dict[tuple[int, str], tuple[str, str | None, int]]:
    """{(deployment, serial): (the camera's state in it, the borough it is registered to, the latest
    attempt offered)} of those that a deployment targets."""
    pairs = list(dict.fromkeys(pairs))
    if not pairs:
        return {}
    rows = db.execute(
        "SELECT c.deployment_id, c.serial, c.state, d.borough, c.failures FROM deployment_cameras c "
        f"LEFT JOIN devices d ON d.serial = c.serial WHERE {db.dialect.any_of('c.serial')}",
        [db.dialect.many({serial for _, serial in pairs})],
    ).fetchall()
    wanted = set(pairs)
    # Each failure counted is followed by the next attempt's offer (``_items``): none beyond it was offered.
    return {(r[0], r[1]): (r[2], r[3], min(r[4] + 1, 1000)) for r in rows if (r[0], r[1]) in wanted}


Reported = tuple[EventT, str]
"""A station's report and its station time (RFC 3339), as the projection hands it over."""


def record_handed(db, run: Sequence[Reported[CameraUpdateOffered]]) -> None:
    """A station wrote an update into a camera's dock folder: kept as information (the figures
    count results, not hand-overs)."""
    db.execute(
        "UPDATE deployment_cameras SET handed_attempt = v.attempt, handed_at = v.at "
        f"FROM {db.dialect.rows_of('deployment BIGINT, serial TEXT, attempt BIGINT, at TEXT')} "
        "WHERE deployment_cameras.deployment_id = v.deployment AND deployment_cameras.serial = v.serial",
        [
            db.dialect.rows(
                {
                    "deployment": e.deployment_id,
                    "serial": e.serial,
                    "attempt": e.attempt,
                    "at": to_iso(e.at) if e.at else station_at,
                }
                for e, station_at in run
            )
        ],
    )


def apply_results(db, feed: Feed, run: Sequence[Reported[CameraUpdateResult]]) -> None:
    """Cameras' outcomes, each counted once (a result for an attempt counted already is a repeat);
    then the phase rules of every running deployment they touched. Each deployment's cameras are
    read once and written once for the whole run (``_set_cameras``, with the phases' counters)."""
    now = to_iso(utc_now())
    by_deployment: dict[int, list[Reported[CameraUpdateResult]]] = {}
    for reported in run:
        by_deployment.setdefault(reported[0].deployment_id, []).append(reported)
    loaded = {deployment_id: _load(db, deployment_id) for deployment_id in by_deployment}
    for deployment_id, reports in by_deployment.items():
        deployment = loaded[deployment_id]
        rows = {
            r[0]: (r[1], r[2], r[3])
            for r in db.execute(
                "SELECT serial, state, failures, results FROM deployment_cameras "
                f"WHERE deployment_id = ? AND {db.dialect.any_of('serial')}",
                [deployment_id, db.dialect.many({e.serial for e, _ in reports})],
            )
        }
        changes: dict[str, dict[str, object]] = {}
        offer: dict[str, bool] = {}
        """The cameras whose offer changes: True, offered again (the next attempt); False, ended."""
        for e, station_at in reports:
            state, failures, results = rows[e.serial]
            if e.attempt <= results:
                continue  # told already (a station resends nothing, but a repeat changes nothing)
            ok, error = e.ok, e.error
            expected = deployment.release.version if deployment.release is not None else None
            if ok and expected is not None and e.version is not None and e.version != expected:
                ok, error = False, f"reported success but runs {e.version}, not {expected}"
            before = state
            if ok:
                state = "updated"  # whatever it was: the camera runs it (a rollback must know)
            else:
                failures += 1
                if state in ACTIVE:
                    state = "gave_up" if failures >= deployment.policy.max_attempts else "failed"
            rows[e.serial] = (state, failures, e.attempt)
            changes[e.serial] = {
                "state": state,
                "failures": failures,
                "results": e.attempt,
                "result_at": to_iso(e.at) if e.at else station_at,
                "version": e.version,
                "error": None if ok else (error or "failed (no reason given)"),
            }
            if deployment.state == "running" and before in ACTIVE:
                offer[e.serial] = state == "failed"  # a camera's last result in the run decides
        _set_cameras(db, deployment_id, changes)
        _withdraw(db, feed, deployment, [serial for serial, again in offer.items() if not again])
        _offer(db, feed, deployment, [serial for serial, again in offer.items() if again])  # the next attempt
    for deployment_id, deployment in loaded.items():
        if deployment.state == "running":
            _advance(db, feed, deployment_id, now)


# -- people's decisions ----------------------------------------------------------------------------


class DeploymentService:
    """Creates deployments and applies fleet managers' decisions; reads them with their figures."""

    def __init__(self, writer: Database, changes: Feed, settings: CentralSettings) -> None:
        self.writer = writer
        self.changes = changes
        self.settings = settings

    # -- creating -----------------------------------------------------------------------------

    def create(self, request: DeploymentRequest, actor: str) -> Deployment:
        if (request.release_id is None) == (not request.profiles):
            raise BadRequest('a deployment is of a release ("release_id": N) or of the profiles ("profiles": true)')
        rules.validate(request.phases)
        self._check_names(request)
        with self.writer.write() as db:
            deployment_id = self._create(db, request, actor)
            return self._view(db, deployment_id)

    def _check_names(self, request: DeploymentRequest) -> None:
        """Stations and boroughs central does not serve are typing mistakes: a camera there could never
        be handed its update (no station would hear of it)."""
        served = {entry.borough for entry in self.settings.stations.values()}
        for station in request.target.stations or []:
            if station not in self.settings.stations:
                raise BadRequest(f"target.stations: central has no station {station!r}")
        waves = [b for p in request.phases for b in p.boroughs or []]
        for borough in [*(request.target.boroughs or []), *waves]:
            if borough not in served:
                raise BadRequest(f"no station of central's serves borough {borough!r} (check its spelling)")

    def _create(self, db, request: DeploymentRequest, actor: str, rollback_of: int | None = None) -> int:
        now = to_iso(utc_now())
        release = None
        if request.release_id is not None:
            release = releases.read(db, request.release_id)
            if release.withdrawn_at is not None:
                raise Conflict(
                    f"release {release.id} ({release.model} {release.version}) was withdrawn: "
                    f"{release.withdrawn_reason}; no camera is to be given it"
                )
            if request.target.models not in (None, [release.model]):
                raise BadRequest(f"release {release.id} is for {release.model}: target.models may name only that model")
        lock = f"model:{release.model}" if release is not None else "profiles"
        running = db.execute(
            "SELECT id, state FROM deployments WHERE lock = ? AND state IN ('running', 'paused')", [lock]
        ).fetchone()
        if running is not None:
            what = f"model {release.model}" if release is not None else "the profiles"
            raise Conflict(
                f"deployment {running[0]} of {what} is {running[1]}: one deployment at a time may run or be paused "
                "for a model (or the profiles); resume, abort or wait for it first"
            )
        cameras = self._target(db, request.target, release, exclude_current=rollback_of is None)
        if not cameras:
            raise Conflict("no camera matches the target (retired, lost or in repair cameras, and cameras already "
                           "on the release's version, are never targeted); nothing was created")  # fmt: skip
        deployment_id = db.execute(
            "INSERT INTO deployments (kind, release_id, lock, state, target, policy, reason, rollback_of, created_at, "
            "created_by, decided_at, decided_by, decision) VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "RETURNING id",
            [
                "release" if release is not None else "profiles",
                release.id if release is not None else None,
                lock,
                _encoder.encode(request.target).decode(),
                _encoder.encode(request.policy).decode(),
                request.reason,
                rollback_of,
                now,
                actor,
                now,
                actor,
                "created",
            ],
        ).fetchone()[0]
        chosen = rules.select(deployment_id, [Candidate(s, b) for s, (b, _) in cameras.items()], request.phases)
        db.execute(
            "INSERT INTO deployment_phases (deployment_id, phase, share_pct, boroughs, max_failure_pct, min_results, "
            "soak_hours, state, cameras) SELECT ?, phase, share, boroughs, max_failure, min_results, soak, 'waiting', "
            "cameras FROM "
            + db.dialect.rows_of(
                "phase BIGINT, share FLOAT, boroughs TEXT, max_failure FLOAT, min_results BIGINT, soak FLOAT, "
                "cameras BIGINT"
            ),
            [
                deployment_id,
                db.dialect.rows(
                    {
                        "phase": n,
                        "share": p.share_pct,
                        "boroughs": _encoder.encode(p.boroughs).decode() if p.boroughs else None,
                        "max_failure": p.max_failure_pct,
                        "min_results": p.min_results,
                        "soak": p.soak_hours,
                        "cameras": len(chosen[n]),  # the phase's counters start here (``_set_cameras``)
                    }
                    for n, p in enumerate(request.phases)
                ),
            ],
        )
        db.execute(
            "INSERT INTO deployment_cameras (deployment_id, serial, phase, state, from_version) "
            f"SELECT ?, serial, phase, 'waiting', from_version FROM "
            f"{db.dialect.rows_of('serial TEXT, phase BIGINT, from_version TEXT')}",
            [
                deployment_id,
                db.dialect.rows(
                    {"serial": s, "phase": n, "from_version": cameras[s][1]}
                    for n, serials in enumerate(chosen)
                    for s in serials
                ),
            ],
        )
        what = f"release {release.id} ({release.model} {release.version})" if release is not None else "the profiles"
        sizes = ", ".join(f"{p.describe()}: {len(c)}" for p, c in zip(request.phases, chosen, strict=True))
        _audit(
            db,
            deployment_id,
            "deployment-create",
            actor,
            f"{what} to {len(cameras)} camera(s) ({sizes}); target {_encoder.encode(request.target).decode()}; "
            f"policy {_encoder.encode(request.policy).decode()}; why: {request.reason}",
        )
        _advance(db, self.changes, deployment_id, now)
        return deployment_id

    @staticmethod
    def _target(
        db, target: Target, release: releases.Release | None, *, exclude_current: bool = True
    ) -> dict[str, tuple[str | None, str]]:
        """{serial: (borough, firmware)} of the cameras the target names, frozen now."""
        where = [f"lifecycle IN ({', '.join(repr(s) for s in ELIGIBLE)})"]
        params: list = []
        models = [release.model] if release is not None else target.models
        for column, values in (
            ("model", models),
            ("borough", target.boroughs),
            ("home_station", target.stations),
            ("serial", target.serials),
            ("firmware", target.from_versions),
        ):
            if values is not None:
                where.append(db.dialect.any_of(column))
                params.append(db.dialect.many(values))
        if release is not None and exclude_current:
            where.append("firmware <> ?")
            params.append(release.version)
        rows = db.execute(
            f"SELECT serial, borough, firmware FROM devices WHERE {' AND '.join(where)}", params
        ).fetchall()
        return {r[0]: (r[1], r[2]) for r in rows}

    # -- deciding ----------------------------------------------------------------------------------

    def pause(self, deployment_id: int, reason: str, actor: str) -> Deployment:
        with self.writer.write() as db:
            deployment = self._in_state(db, deployment_id, ("running",), "pause")
            now = to_iso(utc_now())
            _decide(db, deployment_id, "paused", actor, f"paused: {reason}", now)
            _audit(db, deployment_id, "deployment-pause", actor, reason)
            _withdraw(db, self.changes, deployment, _serials(db, deployment_id, ACTIVE))
            return self._view(db, deployment_id)

    def resume(self, deployment_id: int, reason: str, actor: str) -> Deployment:
        """Offer again; the pause rule judges only the results that come after (a person looked at
        those before and decided to go on)."""
        with self.writer.write() as db:
            self._in_state(db, deployment_id, ("paused",), "resume")
            now = to_iso(utc_now())
            figures = _figures(db, deployment_id)
            for phase, f in figures.items():
                db.execute(
                    "UPDATE deployment_phases SET base_results = ?, base_failures = ?, resumed_at = ? "
                    "WHERE deployment_id = ? AND phase = ?",
                    [f.results, f.failed, now, deployment_id, phase],
                )
            _decide(db, deployment_id, "running", actor, f"resumed: {reason}", now)
            _audit(db, deployment_id, "deployment-resume", actor, reason)
            _offer(db, self.changes, _load(db, deployment_id), _serials(db, deployment_id, ACTIVE))
            _advance(db, self.changes, deployment_id, now)
            return self._view(db, deployment_id)

    def abort(self, deployment_id: int, reason: str, actor: str) -> Deployment:
        with self.writer.write() as db:
            self._abort(db, deployment_id, reason, actor, "aborted", "deployment-abort")
            return self._view(db, deployment_id)

    def release_withdrawn(self, db, release_id: int, reason: str, actor: str) -> list[int]:
        """A release was withdrawn (in the caller's transaction): its running and paused deployments
        are aborted, their offers withdrawn, so no station hands over an artifact central now refuses
        (410). Aborted rather than paused: a withdrawal is final, so such a deployment could never
        resume; aborting frees its model for the next release at once and still allows a rollback.
        The ids of the deployments aborted."""
        ids = [
            r[0]
            for r in db.execute(
                "SELECT id FROM deployments WHERE release_id = ? AND state IN ('running', 'paused') ORDER BY id",
                [release_id],
            )
        ]
        for deployment_id in ids:
            why = f"release {release_id} withdrawn: {reason}"[:500]
            self._abort(db, deployment_id, why, actor, "aborted", "deployment-abort")
        return ids

    def _abort(self, db, deployment_id: int, reason: str, actor: str, state: str, action: str) -> _Row:
        """Every camera without a final state is cancelled; a running deployment's offers end."""
        allowed = ("running", "paused") if state == "aborted" else ("paused", "aborted")
        deployment = self._in_state(db, deployment_id, allowed, "abort" if state == "aborted" else "roll back")
        now = to_iso(utc_now())
        if deployment.state == "running":
            _withdraw(db, self.changes, deployment, _serials(db, deployment_id, ACTIVE))
        why = f"{state.replace('_', ' ')}: {reason}"
        _cancel(db, deployment_id, dict.fromkeys(_serials(db, deployment_id, ("waiting", *ACTIVE)), why))
        _decide(db, deployment_id, state, actor, f"{state.replace('_', ' ')}: {reason}", now)
        _audit(db, deployment_id, action, actor, reason)
        return deployment

    def rollback(self, deployment_id: int, reason: str, actor: str) -> Deployment:
        """A new deployment of the release the updated cameras came from, to those cameras, in one
        phase of 100 %; this one ends ``rolled_back``."""
        with self.writer.write() as db:
            deployment = _load(db, deployment_id)
            if deployment.release is None:
                raise Conflict(
                    f"deployment {deployment_id} is of the profiles: set the profiles back and deploy them again"
                )
            self._in_state(db, deployment_id, ("paused", "aborted"), "roll back")
            model = deployment.release.model
            updated = db.execute(
                "SELECT serial, from_version FROM deployment_cameras WHERE deployment_id = ? AND state = 'updated' "
                "ORDER BY serial",
                [deployment_id],
            ).fetchall()
            versions = sorted({r[1] for r in updated})
            if not updated:
                raise Conflict(f"deployment {deployment_id} updated no camera: there is nothing to roll back")
            if len(versions) > 1:
                raise Conflict(
                    f"the cameras deployment {deployment_id} updated came from {len(versions)} versions "
                    f"({', '.join(versions)}): deploy each one's release to its cameras (target.serials) instead"
                )
            previous = releases.of_version(db, model, versions[0])
            if previous is None:
                raise Conflict(
                    f"central holds no release of {model} {versions[0]}, the version the cameras came from: add it "
                    "(fleet central firmware add …) and roll back again"
                )
            self._abort(db, deployment_id, reason, actor, "rolled_back", "deployment-rollback")
            request = DeploymentRequest(
                reason=f"rollback of deployment {deployment_id}: {reason}"[:500],
                release_id=previous.id,
                target=Target(serials=[r[0] for r in updated]),
                phases=[PhaseSpec(share_pct=100)],
                policy=deployment.policy,
            )
            created = self._create(db, request, actor, rollback_of=deployment_id)
            return self._view(db, created)

    def advance_running(self) -> int:
        """Judge again the running deployments whose newest phase's soak has ended while a phase
        still waits (the scheduled job): a soak ends with the clock, not with a result arriving;
        everything else is judged as results and lifecycle changes are applied. Each deployment in
        its own transaction. Returns how many were judged."""
        now = to_iso(utc_now())
        with self.writer.read() as db:
            running = [r[0] for r in db.execute("SELECT id FROM deployments WHERE state = 'running' ORDER BY id")]
            due = [d for d in running if _soak_ended(_phases(db, d), now)]
        failed: list[int] = []
        for deployment_id in due:
            try:
                with self.writer.write() as db:
                    _advance(db, self.changes, deployment_id, to_iso(utc_now()))
            except Exception:  # one deployment's fault must not hold the others' phases back
                log.exception("judging deployment %d's phases failed", deployment_id)
                failed.append(deployment_id)
        if failed:
            raise FleetError(f"judging the phases of deployment(s) {', '.join(map(str, failed))} failed (see the log)")
        return len(due)

    @staticmethod
    def _in_state(db, deployment_id: int, allowed: tuple[str, ...], verb: str) -> _Row:
        deployment = _load(db, deployment_id)
        if deployment.state not in allowed:
            raise Conflict(
                f"deployment {deployment_id} is {deployment.state.replace('_', ' ')}: only a "
                f"{' or '.join(allowed)} deployment can be asked to {verb}"
            )
        return deployment

    # -- reading -----------------------------------------------------------------------------------

    def deployments(
        self, state: str | None = None, *, before: int | None = None, limit: int | None = None
    ) -> list[Deployment]:
        """Newest first (``before``: only those older than this deployment; ``limit``: at most so many)."""
        where, params = [], []  # type: list[str], list[object]
        if state:
            where.append("state = ?")
            params.append(state)
        if before is not None:
            where.append("id < ?")
            params.append(before)
        sql = "SELECT id FROM deployments" + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self.writer.read() as db:
            return [self._view(db, r[0]) for r in db.execute(sql, params).fetchall()]

    def deployment(self, deployment_id: int) -> Deployment:
        with self.writer.read() as db:
            return self._view(db, deployment_id)

    def cameras(
        self, deployment_id: int, state: str | None = None, after: str | None = None, limit: int = 100
    ) -> CameraPage:
        """The deployment's cameras by serial, a page at a time (``after``: the last serial seen)."""
        with self.writer.read() as db:
            _load(db, deployment_id)
            where, params = ["deployment_id = ?"], [deployment_id]  # type: list[str], list[object]
            if state is not None:
                where.append("state = ?")
                params.append(state)
            if after is not None:
                where.append("serial > ?")
                params.append(after)
            rows = db.execute(
                f"SELECT {_CAMERA_COLUMNS} FROM deployment_cameras c WHERE {' AND '.join(where)} "
                "ORDER BY serial LIMIT ?",
                [*params, limit + 1],
            ).fetchall()
        items = [_camera(r) for r in rows[:limit]]
        return CameraPage(items=items, next_cursor=items[-1].serial if len(rows) > limit else None)

    def of_camera(self, serial: str) -> list[CameraHistory]:
        """The deployments that targeted this camera, newest first, each with the camera's state in it."""
        with self.writer.read() as db:
            rows = db.execute(
                f"SELECT p.id, p.kind, p.release_id, p.state, p.created_at, {_CAMERA_COLUMNS} "
                "FROM deployment_cameras c JOIN deployments p ON p.id = c.deployment_id "
                "WHERE c.serial = ? ORDER BY p.id DESC",
                [serial],
            ).fetchall()
            found = {r[2]: releases.read(db, r[2]) for r in rows if r[2] is not None}
        return [
            CameraHistory(
                deployment_id=r[0],
                kind=r[1],
                release=_ref(found[r[2]]) if r[2] is not None else None,
                deployment_state=r[3],
                created_at=from_iso(r[4]),
                camera=_camera(r[5:]),
            )
            for r in rows
        ]

    @staticmethod
    def _view(db, deployment_id: int) -> Deployment:
        row = db.execute(
            "SELECT id, kind, release_id, state, target, policy, reason, created_at, created_by, decision, "
            "decided_at, decided_by, rollback_of FROM deployments WHERE id = ?",
            [deployment_id],
        ).fetchone()
        if row is None:
            raise NotFound(f"no deployment {deployment_id}")
        release = releases.read(db, row[2]) if row[2] is not None else None
        figures = _figures(db, deployment_id)
        phases = [
            PhaseView(
                number=p.number + 1,
                share_pct=p.spec.share_pct,
                boroughs=p.spec.boroughs,
                max_failure_pct=p.spec.max_failure_pct,
                min_results=p.spec.min_results,
                soak_hours=p.rule.soak_hours,
                state=p.state,  # type: ignore[arg-type]
                opened_at=from_iso(p.opened_at) if p.opened_at else None,
                figures=_shown(figures.get(p.number, Figures())),
            )
            for p in _phases(db, deployment_id)
        ]
        return Deployment(
            id=row[0],
            kind=row[1],
            release=_ref(release) if release else None,
            state=row[3],
            target=msgspec.json.decode(row[4], type=Target),
            policy=msgspec.json.decode(row[5], type=Policy),
            reason=row[6],
            created_at=from_iso(row[7]),
            created_by=row[8],
            decision=row[9],
            decided_at=from_iso(row[10]),
            decided_by=row[11],
            rollback_of=row[12],
            phases=phases,
            figures=_shown(_total(list(figures.values()))),
        )


_CAMERA_COLUMNS = (
    "c.serial, c.phase, c.state, c.failures, c.from_version, c.version, c.error, c.handed_attempt, c.handed_at, "
    "c.result_at"
)


def _camera(r) -> DeploymentCamera:
    return DeploymentCamera(
        serial=r[0],
        phase=r[1] + 1,
        state=r[2],
        failures=r[3],
        attempt=r[3] + 1,
        from_version=r[4],
        version=r[5],
        error=r[6],
        handed_attempt=r[7],
        handed_at=from_iso(r[8]) if r[8] else None,
        result_at=from_iso(r[9]) if r[9] else None,
    )


def _ref(release: releases.Release) -> ReleaseRef:
    return ReleaseRef(id=release.id, model=release.model, version=release.version)


def _shown(f: Figures) -> PhaseFigures:
    return PhaseFigures(
        cameras=f.cameras,
        updated=f.updated,
        failed=f.failed,
        gave_up=f.gave_up,
        cancelled=f.cancelled,
        outstanding=f.outstanding,
    )
