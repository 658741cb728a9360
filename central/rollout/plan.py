"""Week-by-week roll-out waves, whether the deadline holds, what binds, what would fix it.

Each week, in the scenario's order (pilots, priority list, the rest), every borough in
progress trains and equips as many officers as its training places, its dock slots and the
cameras in stock allow; a borough starts when a place among ``boroughs_at_once`` is free.
A borough's spares go out once all its officers are equipped. Cameras arrive at
``deliveries_per_week`` until ``units`` are delivered; what is not handed out stays in stock.

The plan is pure and deterministic: the same rollout gives the same plan. When the deadline
does not hold, ``plan`` names the binding constraint (units, docks, deliveries, training or
boroughs at once) and the smallest change of each kind that makes it feasible, each found
by re-planning with only that one figure changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

import msgspec
from msgspec import Struct

from central.rollout.scenario import Rollout
from central.rollout.sizing import BoroughNeeds, cameras_for, spares_for
from fleet.errors import ConfigError

MAX_WEEKS = 520
"""Ten years: a scenario that has not finished by then is reported as not finishing."""

Constraint = Literal["units", "docks", "deliveries", "training", "boroughs_at_once"]


class Wave(Struct, kw_only=True):
    """What one borough gets in one week."""

    week: int
    starts: date
    borough: str
    officers: int
    """Officers trained and equipped this week."""
    cameras: int
    """Cameras handed out this week (officers' or pool cameras, spares not included)."""
    spares: int


class WeekTotal(Struct, kw_only=True):
    week: int
    starts: date
    delivered: int
    """Cameras delivered so far."""
    in_stock: int
    """Delivered, not yet handed out, at the end of the week."""
    officers_equipped: int
    """Officers equipped so far (cumulative)."""
    cameras_out: int
    """Cameras handed out so far, spares included (cumulative)."""
    boroughs_in_progress: int


class BoroughPlan(Struct, kw_only=True):
    borough: str
    policy: str
    officers: int
    cameras: int
    spares: int
    dock_slots: int
    docks_needed: int
    dock_shortfall: int
    start_week: int | None
    finish_week: int | None
    """The week its last officer and spare are equipped; None if it never is."""
    equipped: int
    """Officers equipped by the end of the plan."""


class StationDocks(Struct, kw_only=True):
    station_id: str
    borough: str
    dock_slots: int
    officers: int
    """The borough's officers in scope, shared among its stations by dock slots."""
    docks_needed: int
    shortfall: int
    """Dock slots to add here so that every station of the borough has enough once its officers
    are shared again by the new slots (officers follow slots: ``sizing.slots_to_add``)."""


class Remedy(Struct, kw_only=True):
    constraint: Constraint | Literal["deadline"]
    change: int
    """How much to add: cameras, dock slots, per week, boroughs, or weeks."""
    to: int | None = None
    """The new figure (deliveries a week, training places, boroughs at once)."""
    borough: str | None = None
    text: str


class Plan(Struct, kw_only=True):
    scenario: str
    start: date
    deadline: date
    deadline_week: int
    """The last week that ends on or before the deadline."""
    officers_in_scope: int
    cameras_needed: int
    """Officers' and pool cameras plus spares."""
    units: int
    feasible: bool
    finish_week: int | None
    finish_date: date | None
    """The last day of the week the roll-out completes."""
    binding: Constraint | None
    remedies: list[Remedy]
    warnings: list[str]
    boroughs: list[BoroughPlan]
    weeks: list[WeekTotal]
    waves: list[Wave]
    stations: list[StationDocks]


@dataclass(frozen=True)
class Rates:
    """The figures a what-if changes; everything else comes from the scenario."""

    units: int
    deliveries: int
    training: int
    at_once: int


@dataclass
class _Run:
    waves: list[Wave]
    weeks: list[WeekTotal]
    equipped: dict[str, int]
    started: dict[str, int]
    finished: dict[str, int]
    complete: bool
    finish_week: int | None


def week_start(start: date, week: int) -> date:
    return start + timedelta(days=7 * (week - 1))


def weeks_by(start: date, deadline: date) -> int:
    """Whole plan weeks that end on or before the deadline: work in a week that ends after it
    is not done by then."""
    return ((deadline - start).days + 1) // 7


def week_of(start: date, day: date) -> int:
    """The plan week a day falls in (week 1 starts on ``start``; days before are week 0 or less)."""
    return (day - start).days // 7 + 1


def _most_officers(needs: BoroughNeeds, charging, equipped: int, cameras_out: int, room: int, stock: int) -> int:
    """The most officers (≤ room) whose extra cameras fit in the stock (cameras_for is monotone)."""
    if cameras_for(equipped + room, needs.policy, charging) - cameras_out <= stock:
        return room
    low, high = 0, room
    while low < high:
        middle = (low + high + 1) // 2
        if cameras_for(equipped + middle, needs.policy, charging) - cameras_out <= stock:
            low = middle
        else:
            high = middle - 1
    return low


def simulate(rollout: Rollout, needs: list[BoroughNeeds], rates: Rates, *, keep_detail: bool = True) -> _Run:
    """The week loop. ``needs`` is in roll-out order."""
    scenario, charging = rollout.scenario, rollout.scenario.charging
    undelivered, stock, delivered = rates.units, 0, 0
    equipped = {n.name: 0 for n in needs}
    cameras = {n.name: 0 for n in needs}
    spares = {n.name: 0 for n in needs}
    started: dict[str, int] = {}
    finished: dict[str, int] = {}
    waves: list[Wave] = []
    weeks: list[WeekTotal] = []
    out_total = officers_total = 0
    for n in needs:
        if n.officers == 0 and n.spares == 0:
            finished[n.name] = 0  # nothing to do: no officers in scope
    for week in range(1, MAX_WEEKS + 1):
        arriving = min(rates.deliveries, undelivered)
        undelivered -= arriving
        stock += arriving
        delivered += arriving
        in_progress = sum(1 for name in started if name not in finished)
        moved = False
        for n in needs:
            name = n.name
            if name in finished:
                continue
            if name not in started and rates.at_once and in_progress >= rates.at_once:
                continue
            room = min(rates.training, n.dock_capped - equipped[name])
            officers = _most_officers(n, charging, equipped[name], cameras[name], room, stock) if room > 0 else 0
            handed = cameras_for(equipped[name] + officers, n.policy, charging) - cameras[name]
            given_spares = 0
            if equipped[name] + officers >= n.dock_capped:
                # Spares for the cameras it has, once its officers are equipped (as far as docks allow).
                due = min(n.spares, _spares_due(n, cameras[name] + handed, scenario.spares_ratio))
                given_spares = min(stock - handed, due - spares[name])
            if officers == 0 and handed == 0 and given_spares <= 0:
                continue
            given_spares = max(0, given_spares)
            if name not in started:
                started[name] = week
                in_progress += 1
            moved = True
            equipped[name] += officers
            cameras[name] += handed
            spares[name] += given_spares
            stock -= handed + given_spares
            out_total += handed + given_spares
            officers_total += officers
            if keep_detail:
                waves.append(
                    Wave(
                        week=week,
                        starts=week_start(scenario.start, week),
                        borough=name,
                        officers=officers,
                        cameras=handed,
                        spares=given_spares,
                    )
                )
            if equipped[name] >= n.dock_capped and spares[name] >= _spares_due(n, cameras[name], scenario.spares_ratio):
                finished[name] = week  # complete, or as complete as its docks allow
                in_progress -= 1
        if keep_detail:
            weeks.append(
                WeekTotal(
                    week=week,
                    starts=week_start(scenario.start, week),
                    delivered=delivered,
                    in_stock=stock,
                    officers_equipped=officers_total,
                    cameras_out=out_total,
                    boroughs_in_progress=in_progress,
                )
            )
        if len(finished) == len(needs):
            break
        if not moved and undelivered == 0:
            break  # nothing will ever change again: out of cameras
    complete = all(equipped[n.name] == n.officers and n.name in finished for n in needs)
    last = max(1, max(finished.values(), default=1)) if complete else None
    return _Run(waves, weeks, equipped, started, finished, complete, last)


def _spares_due(needs: BoroughNeeds, cameras: int, ratio: float) -> int:
    """Spares owed for the cameras a borough has so far (all of them once it is complete)."""
    return min(needs.spares, spares_for(cameras, ratio))


def borough_needs(rollout: Rollout) -> list[BoroughNeeds]:
    return [BoroughNeeds(name, rollout.boroughs[name], rollout.scenario) for name in rollout.order()]


def _feasible(rollout: Rollout, needs: list[BoroughNeeds], rates: Rates, deadline_week: int) -> tuple[bool, int | None]:
    run = simulate(rollout, needs, rates, keep_detail=False)
    return run.complete and run.finish_week is not None and run.finish_week <= deadline_week, run.finish_week


def _smallest(check, low: int, high: int) -> int | None:
    """The smallest value in [low, high] for which ``check`` holds, assuming it is monotone;
    verified, with an upward scan if the assumption fails."""
    if low > high or not check(high):
        return None
    lo, hi = low, high
    while lo < hi:
        middle = (lo + hi) // 2
        if check(middle):
            hi = middle
        else:
            lo = middle + 1
    while not check(lo):
        lo += 1
    return lo


def plan(
    rollout: Rollout,
    *,
    deliveries: int | None = None,
    training: int | None = None,
    at_once: int | None = None,
    units: int | None = None,
    deadline: date | None = None,
) -> Plan:
    """Plan the rollout; keyword figures override the scenario's (what-ifs)."""
    scenario = rollout.scenario
    if deadline is not None or any(v is not None for v in (deliveries, training, at_once, units)):
        changes = {
            k: v
            for k, v in (
                ("deliveries_per_week", deliveries),
                ("training_places_per_week", training),
                ("boroughs_at_once", at_once),
                ("units", units),
                ("deadline", deadline),
            )
            if v is not None
        }
        scenario = msgspec.structs.replace(scenario, **changes)
        if scenario.deadline < scenario.start:
            raise ConfigError(f"deadline {scenario.deadline} is before the roll-out starts ({scenario.start})")
        rollout = Rollout(boroughs=rollout.boroughs, scenario=scenario, note=rollout.note)
    charging = scenario.charging
    needs = borough_needs(rollout)
    rates = Rates(
        units=scenario.units,
        deliveries=scenario.deliveries_per_week,
        training=scenario.training_places_per_week,
        at_once=scenario.boroughs_at_once,
    )
    deadline_week = weeks_by(scenario.start, scenario.deadline)
    run = simulate(rollout, needs, rates)
    cameras_needed = sum(n.cameras + n.spares for n in needs)
    feasible = run.complete and run.finish_week is not None and run.finish_week <= deadline_week

    binding: Constraint | None = None
    remedies: list[Remedy] = []
    if not feasible:
        binding, remedies = _diagnose(rollout, needs, rates, deadline_week, run, cameras_needed)

    warnings = []
    if charging.runtime_hours < charging.shift_hours:
        warnings.append(
            f"a camera's runtime ({charging.runtime_hours:g} h) is shorter than a shift "
            f"({charging.shift_hours:g} h): officers will need a second camera or a charge mid-shift"
        )
    boroughs = [
        BoroughPlan(
            borough=n.name,
            policy=n.policy,
            officers=n.officers,
            cameras=n.cameras,
            spares=n.spares,
            dock_slots=n.dock_slots,
            docks_needed=n.docks_needed,
            dock_shortfall=n.dock_shortfall,
            start_week=run.started.get(n.name),
            finish_week=run.finished.get(n.name) if run.equipped[n.name] == n.officers else None,
            equipped=run.equipped[n.name],
        )
        for n in needs
    ]
    stations = [
        StationDocks(
            station_id=station,
            borough=n.name,
            dock_slots=slots,
            officers=officers,
            docks_needed=need,
            shortfall=n.to_add[station],
        )
        for n in needs
        for station, (slots, officers, need) in n.stations.items()
    ]
    finish_date = week_start(scenario.start, run.finish_week) + timedelta(days=6) if run.finish_week else None
    return Plan(
        scenario=scenario.name,
        start=scenario.start,
        deadline=scenario.deadline,
        deadline_week=deadline_week,
        officers_in_scope=sum(n.officers for n in needs),
        cameras_needed=cameras_needed,
        units=scenario.units,
        feasible=feasible,
        finish_week=run.finish_week if run.complete else None,
        finish_date=finish_date if run.complete else None,
        binding=binding,
        remedies=remedies,
        warnings=warnings,
        boroughs=boroughs,
        weeks=run.weeks,
        waves=run.waves,
        stations=stations,
    )


def _diagnose(
    rollout: Rollout, needs: list[BoroughNeeds], rates: Rates, deadline_week: int, run: _Run, cameras_needed: int
) -> tuple[Constraint, list[Remedy]]:
    """Which constraint binds, and the smallest single change of each kind that fixes the plan.

    Missing cameras and dock slots cannot be planned around: they are listed first, and the
    rates are then judged as if they had been added, so every remedy leads to a feasible plan.
    """
    remedies: list[Remedy] = []
    units_short = cameras_needed > rates.units
    short_docks = [n for n in needs if n.dock_shortfall]
    if units_short:
        extra = cameras_needed - rates.units
        remedies.append(
            Remedy(
                constraint="units",
                change=extra,
                to=cameras_needed,
                text=f"+{extra} cameras ({cameras_needed} needed, {rates.units} bought)",
            )
        )
    for n in short_docks:
        remedies.append(
            Remedy(
                constraint="docks",
                change=n.dock_shortfall,
                borough=n.name,
                text=f"+{n.dock_shortfall} dock slots in {n.name} ({n.docks_needed} needed, {n.dock_slots} there)",
            )
        )
    first: Constraint | None = "units" if units_short else "docks" if short_docks else None
    after = ""
    if first is not None:
        after = (
            " once the "
            + " and ".join(w for w, on in (("cameras", units_short), ("dock slots", short_docks)) if on)
            + " are added"
        )
        needs = [n.with_enough_docks() if n.dock_shortfall else n for n in needs]
        rates = Rates(
            units=max(rates.units, cameras_needed),
            deliveries=rates.deliveries,
            training=rates.training,
            at_once=rates.at_once,
        )
        run = simulate(rollout, needs, rates, keep_detail=False)
        if run.complete and run.finish_week is not None and run.finish_week <= deadline_week:
            return first, remedies

    most_officers = max((n.officers for n in needs), default=1) or 1
    candidates: dict[Constraint, tuple[int, Rates]] = {
        "deliveries": (rates.deliveries, Rates(rates.units, rates.units, rates.training, rates.at_once)),
        "training": (rates.training, Rates(rates.units, rates.deliveries, most_officers, rates.at_once)),
    }
    if rates.at_once:
        candidates["boroughs_at_once"] = (rates.at_once, Rates(rates.units, rates.deliveries, rates.training, 0))
    relaxed_finish: dict[Constraint, int] = {}
    for name, (_, relaxed) in candidates.items():
        finish = simulate(rollout, needs, relaxed, keep_detail=False).finish_week
        relaxed_finish[name] = finish if finish is not None else MAX_WEEKS + 1
    binding: Constraint = (
        first
        if first is not None
        else min(relaxed_finish, key=lambda name: (relaxed_finish[name], list(candidates).index(name)))
    )

    def rates_with(name: Constraint, value: int) -> Rates:
        return Rates(
            rates.units,
            value if name == "deliveries" else rates.deliveries,
            value if name == "training" else rates.training,
            value if name == "boroughs_at_once" else rates.at_once,
        )

    limits = {"deliveries": rates.units, "training": most_officers, "boroughs_at_once": len(needs)}
    units = {
        "deliveries": "deliveries a week",
        "training": "training places per borough per week",
        "boroughs_at_once": "boroughs at once",
    }
    found = False
    for name, (current, _) in candidates.items():
        value = _smallest(
            lambda v, name=name: _feasible(rollout, needs, rates_with(name, v), deadline_week)[0],
            current + 1,
            limits[name],
        )
        if value is not None:
            found = True
            remedies.append(
                Remedy(
                    constraint=name,
                    change=value - current,
                    to=value,
                    text=f"+{value - current} {units[name]} ({value} instead of {current}){after}",
                )
            )
    if run.complete and run.finish_week is not None:
        found = True
        late = run.finish_week - deadline_week
        done_by = week_start(rollout.scenario.start, run.finish_week) + timedelta(days=6)
        remedies.append(
            Remedy(
                constraint="deadline",
                change=late,
                text=f"deadline + {late} weeks (done in week {run.finish_week}, by {done_by}){after}",
            )
        )
    if not found:
        remedies.append(
            Remedy(
                constraint=binding,
                change=0,
                text=f"no single change makes it feasible: it would not finish within {MAX_WEEKS} "
                "weeks; change several figures together (try the what-if options)",
            )
        )
    return binding, remedies
