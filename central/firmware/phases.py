"""A deployment's phases: which camera goes in which phase, and when a phase pauses the deployment
or lets the next one open. Pure functions (no database), so that the rules can be tested on their
own, by property (``tests/central/firmware/test_phases.py``).

Selection, frozen when the deployment is created:

- a **share phase** (``share_pct``: cumulative, of the whole target) brings the number of cameras
  in the phases up to it to ``ceil(share × target / 100)``, taking cameras in the order of
  ``sha256(f"{deployment_id}:{serial}")``: deterministic, and spread across boroughs and
  stations (a serial's neighbours are a borough's delivery, a hash's neighbours are anyone);
- a **borough wave** (``boroughs``) takes the target's cameras of those boroughs not in an
  earlier phase;
- the **last phase** takes every camera left.

So every camera of the target is in exactly one phase, and a share phase holds at least one
camera whenever it can (the canary of a small target is one camera, not none).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from fleet.errors import BadRequest
from fleet.protocol import BoroughName

MAX_PHASES = 20
OPEN_NEXT_AT = 0.9
"""The next phase opens when this share of the open phase's cameras has a final state (with the
failures within the threshold): a camera that never docks does not hold up the force."""
DEFAULT_SOAK_HOURS = 72.0
"""Three days: long enough for a canary's early results to come in from cameras used every day,
short enough that cameras docked once a week do not hold a force's roll-out back by weeks."""
Decision = Literal["pause", "open_next", "complete"]


class PhaseSpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One phase as a fleet manager asks for it: a cumulative share of the target, or a borough wave."""

    share_pct: Annotated[float, Meta(gt=0, le=100)] | None = None
    """The share of the whole target in this phase and those before it (1, 10, 50, 100)."""
    boroughs: Annotated[list[BoroughName], Meta(min_length=1, max_length=64)] | None = None
    """A borough wave: the target's cameras of these boroughs not in an earlier phase."""
    max_failure_pct: Annotated[float, Meta(ge=0, le=100)] = 5.0
    """The deployment pauses itself when cameras with a failure pass this share of those with a result."""
    min_results: Annotated[int, Meta(ge=1, le=100_000)] = 3
    """Results needed before the pause rule judges the phase, and before its soak may open the next."""
    soak_hours: Annotated[float, Meta(ge=0, le=2160)] = DEFAULT_SOAK_HOURS
    """Once the phase has been open (or, after a pause, running again) this long, with at least
    ``min_results`` results and the failures within the threshold, the next phase opens even if
    many of its cameras have not docked since: most report only at their next shift's dock."""

    def describe(self) -> str:
        return f"{self.share_pct:g} %" if self.share_pct is not None else "boroughs " + ", ".join(self.boroughs or [])


DEFAULT_PHASES = [PhaseSpec(share_pct=p) for p in (1.0, 10.0, 50.0, 100.0)]
"""A canary of 1 %, then 10 %, half, and the rest."""


def validate(phases: Sequence[PhaseSpec]) -> None:
    """BadRequest saying what is wrong with a list of phases."""
    if not phases:
        raise BadRequest('a deployment needs at least one phase (e.g. [{"share_pct": 100}])')
    if len(phases) > MAX_PHASES:
        raise BadRequest(f"a deployment has at most {MAX_PHASES} phases, not {len(phases)}")
    last_share = 0.0
    waved: dict[str, int] = {}
    for number, phase in enumerate(phases, start=1):
        if (phase.share_pct is None) == (phase.boroughs is None):
            raise BadRequest(f"phase {number}: give either share_pct (a cumulative share) or boroughs (a wave)")
        if phase.share_pct is not None:
            if phase.share_pct <= last_share:
                raise BadRequest(
                    f"phase {number}: shares are cumulative and must increase ({phase.share_pct:g} % after "
                    f"{last_share:g} %)"
                )
            last_share = phase.share_pct
        for borough in phase.boroughs or []:
            if borough in waved:
                raise BadRequest(f"phase {number}: borough {borough} is in phase {waved[borough]} already")
            waved[borough] = number
    last = phases[-1]
    if last.share_pct is not None and last.share_pct != 100:
        raise BadRequest(
            f"the last phase takes every camera left: make its share 100 %, not {last.share_pct:g} % "
            "(or end with the phase you want last)"
        )


@dataclass(frozen=True)
class Candidate:
    """A camera of the target, as selection sees it."""

    serial: str
    borough: str | None


def order_key(deployment_id: int, serial: str) -> bytes:
    """Where a camera comes in a share phase's order."""
    return hashlib.sha256(f"{deployment_id}:{serial}".encode()).digest()


def select(deployment_id: int, cameras: Iterable[Candidate], phases: Sequence[PhaseSpec]) -> list[list[str]]:
    """The serials of each phase (``validate`` them first). Every camera is in exactly one phase."""
    ordered = sorted({c.serial: c for c in cameras}.values(), key=lambda c: order_key(deployment_id, c.serial))
    total = len(ordered)
    taken: set[str] = set()
    chosen: list[list[str]] = []
    for number, phase in enumerate(phases, start=1):
        if number == len(phases):
            mine = [c.serial for c in ordered if c.serial not in taken]
        elif phase.boroughs is not None:
            wave = set(phase.boroughs)
            mine = [c.serial for c in ordered if c.serial not in taken and c.borough in wave]
        else:
            assert phase.share_pct is not None
            wanted = share_count(total, phase.share_pct) - len(taken)
            mine = [c.serial for c in ordered if c.serial not in taken][: max(wanted, 0)]
        taken.update(mine)
        chosen.append(mine)
    return chosen


def share_count(total: int, share_pct: float) -> int:
    """How many cameras of ``total`` a cumulative share holds: rounded up (1 % of 50 is one camera)."""
    return min(total, math.ceil(total * share_pct / 100 - 1e-9))


# -- the rules a result is judged by -------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    """A phase's cameras by state. ``failed``: cameras with at least one failure (whatever their state)."""

    cameras: int = 0
    updated: int = 0
    failed: int = 0
    gave_up: int = 0
    cancelled: int = 0
    results: int = 0
    """Cameras with at least one result."""

    @property
    def final(self) -> int:
        return self.updated + self.gave_up + self.cancelled

    @property
    def outstanding(self) -> int:
        return self.cameras - self.final


@dataclass(frozen=True)
class Rule:
    max_failure_pct: float
    min_results: int
    base_results: int = 0
    base_failures: int = 0
    """The phase's figures when a person last resumed it: what came after is judged."""
    soak_hours: float | None = None
    """None: no soak (deployments made before soaks existed wait for their cameras)."""


def over_threshold(figures: Figures, rule: Rule) -> bool:
    """The pause rule: with at least ``min_results`` results in (since the last resume), cameras
    with a failure pass ``max_failure_pct`` of the cameras with a result."""
    results = figures.results - rule.base_results
    failures = figures.failed - rule.base_failures
    return results >= rule.min_results and failures * 100 > rule.max_failure_pct * results


def within_threshold(figures: Figures, rule: Rule) -> bool:
    results = figures.results - rule.base_results
    failures = figures.failed - rule.base_failures
    return failures * 100 <= rule.max_failure_pct * max(results, 0)


def why_open_next(figures: Figures, rule: Rule, running_hours: float) -> str | None:
    """Why the next phase may open after this one, in words, or None while it may not: every camera
    of the phase has a final state; or 90 % have, with the failures within the threshold; or the
    phase has run ``running_hours`` (since it opened or was last resumed) past its soak with at
    least ``min_results`` results, the failures within the threshold."""
    if figures.final >= figures.cameras:
        return "every camera final"
    if not within_threshold(figures, rule):
        return None
    if figures.final >= OPEN_NEXT_AT * figures.cameras:
        return f"{figures.final} of {figures.cameras} cameras final"
    results = figures.results - rule.base_results
    if rule.soak_hours is not None and running_hours >= rule.soak_hours and results >= rule.min_results:
        failures = figures.failed - rule.base_failures
        return f"soaked {rule.soak_hours:g} h with {results} result(s), {failures} with a failure"
    return None


def decide(phases: Sequence[tuple[Figures, Rule]], opened: int, running_hours: float = 0.0) -> Decision | None:
    """What a running deployment does now, given every phase's figures and rule (in order), how
    many phases are open (the first ``opened``) and how long the newest has been running: pause
    when an open phase is over its threshold; otherwise open the next phase when the newest allows
    it (``why_open_next``); complete when the last phase is open and every camera of every phase
    has a final state."""
    if opened == 0:
        return "open_next"
    if any(over_threshold(f, r) for f, r in phases[:opened]):
        return "pause"
    if opened >= len(phases):
        return "complete" if all(f.final >= f.cameras for f, _ in phases) else None
    newest, rule = phases[opened - 1]
    return "open_next" if why_open_next(newest, rule, running_hours) is not None else None


def describe(figures: Figures) -> str:
    """The figures a decision is audited with."""
    return (
        f"{figures.cameras} camera(s): {figures.updated} updated, {figures.failed} with a failure, "
        f"{figures.gave_up} gave up, {figures.cancelled} cancelled, {figures.outstanding} outstanding"
    )
