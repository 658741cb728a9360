"""The roll-out planner: the reference scenario by hand, and properties over random scenarios."""

from __future__ import annotations

import math
import tomllib
from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from central.rollout.plan import Rates, borough_needs, plan, simulate
from central.rollout.scenario import Rollout, build_rollout, load_rollout
from central.rollout.sizing import cameras_for, dock_turns, docks_for, pool_turns, split_by_slots
from central.rollout.storage import forecast
from fleet.errors import ConfigError

CONFIG = Path(__file__).resolve().parents[3] / "config"


@pytest.fixture(scope="module")
def reference():
    return load_rollout(CONFIG / "boroughs.toml", CONFIG / "rollout.toml")


def test_reference_files_cover_the_32_boroughs_and_about_20000_officers(reference):
    assert len(reference.boroughs) == 32
    in_scope = sum(b.neighbourhood + b.response for b in reference.boroughs.values())
    assert in_scope == 20_410  # the file's own comment says so
    assert "illustrative" in reference.note.lower()


def test_reference_scenario_against_a_hand_calculation(reference):
    """By hand, from the two files:

    - 20,410 officers in scope; Westminster (1,250) is a pool, every other borough personal
      issue, so 20,410 − 1,250 = 19,160 officers' cameras.
    - Westminster's pool: ceil(1,250 × 0.25) = 313 officers on its busiest shift; a pool
      camera is out 10 h then charging 9 h, 19 h = ceil(19 / 8) = 3 shift starts, so
      313 × 3 = 939 cameras.
    - Spares at 5 %: every personal borough's headcount is a multiple of 20, so 5 % of
      19,160 = 958 exactly; Westminster ceil(939 × 0.05) = 47. Total 19,160 + 939 + 958 + 47
      = 21,104 cameras, within the 22,000 bought.
    - Deadline: 2015-10-19 to 2016-03-31 is 165 days, 23 whole weeks (week 23 ends on Sunday
      27 March; week 24 would end after the deadline).
    - Deliveries: 23 × 800 = 18,400 cameras by the deadline < 21,104: infeasible, and
      deliveries are what binds (training: 14 boroughs × 80 = 1,120 a week > 800).
    - So at least ceil(21,104 / 23) = 918 a week (+118) would be needed, and at 800 a week the
      last camera cannot arrive before week ceil(21,104 / 800) = 27 (deadline + 4 weeks).
    """
    result = plan(reference)
    assert result.officers_in_scope == 20_410
    westminster = next(b for b in result.boroughs if b.borough == "Westminster")
    assert (westminster.policy, westminster.cameras, westminster.spares) == ("pool", 939, 47)
    assert result.cameras_needed == 21_104
    assert result.deadline_week == 23
    assert result.weeks[22].delivered == 18_400
    assert not result.feasible
    assert result.binding == "deliveries"
    remedies = {r.constraint: r for r in result.remedies}
    deliveries = remedies["deliveries"].to
    assert deliveries is not None and deliveries >= 918
    assert remedies["deadline"].change >= 4
    assert "training" not in remedies  # more training places cannot make up for missing cameras
    # The remedy is the smallest that works: exactly that many deliveries is feasible, one fewer is not.
    assert plan(reference, deliveries=deliveries).feasible
    assert not plan(reference, deliveries=deliveries - 1).feasible
    assert plan(reference, deadline=result.finish_date).feasible


def test_pilot_boroughs_start_first_and_docks_suffice(reference):
    result = plan(reference)
    pilots = reference.scenario.pilot_boroughs
    assert [b.borough for b in result.boroughs[: len(pilots)]] == pilots
    assert all(b.start_week == 1 for b in result.boroughs[: len(pilots)])
    assert all(b.dock_shortfall == 0 for b in result.boroughs)
    assert not any(s.shortfall for s in result.stations)


def test_charging_model_by_hand(reference):
    charging = reference.scenario.charging
    assert dock_turns(charging) == 2  # 9 h recharge, a shift every 8 h
    assert pool_turns(charging) == 3  # 10 h out + 9 h charging
    assert cameras_for(400, "personal", charging) == 400
    assert cameras_for(400, "pool", charging) == 300  # 100 on shift × 3
    assert docks_for(400, "personal", charging) == 200  # 100 on shift × 2
    assert split_by_slots(10, {"a": 1, "b": 1, "c": 1}) == {"a": 4, "b": 3, "c": 3}


def test_storage_forecast_by_hand(reference):
    result = plan(reference)
    storage = forecast(result, reference.scenario)
    # 20,410 officers × 6 clips × 5 min = 10,205 h a month, at 1.4 / 2.3 GB/h.
    assert storage.steady_recorded_tb_per_month_low == pytest.approx(10_205 * 1.4 / 1000, abs=0.01)
    assert storage.steady_recorded_tb_per_month_high == pytest.approx(10_205 * 2.3 / 1000, abs=0.01)
    last = storage.months[-1]
    assert last.officers_equipped == 20_410
    # After 24 months: 31 days of footage (95 % of it) plus 5 % of everything recorded so far.
    months = [m.recorded_hours for m in storage.months]
    expected_hours = 10_205 * (31 / (365.25 / 12)) * 0.95 + 0.05 * sum(months)
    assert last.stored_tb_low == pytest.approx(expected_hours * 1.4 / 1000, rel=0.01)


def test_bad_scenarios_are_refused_with_a_clear_line():
    boroughs = {"boroughs": {"A": {"response": 10, "stations": {"a": 10}}}}
    base = {
        "units": 100,
        "start": date(2025, 1, 6),
        "deadline": date(2025, 6, 1),
        "deliveries_per_week": 10,
        "training_places_per_week": 10,
    }
    with pytest.raises(ConfigError, match="unknown borough 'B'"):
        build_rollout(boroughs, {**base, "pilot_boroughs": ["B"]})
    with pytest.raises(ConfigError, match="before start"):
        build_rollout(boroughs, {**base, "deadline": date(2024, 1, 1)})
    with pytest.raises(ConfigError, match="unknown field `deliveries`"):
        build_rollout(boroughs, {**base, "deliveries": 5})
    with pytest.raises(ConfigError, match="response"):
        build_rollout({"boroughs": {"A": {"response": -1, "stations": {"a": 1}}}}, base)
    with pytest.raises(ConfigError, match="listed in both"):
        build_rollout({"boroughs": {"A": {"stations": {"a": 1}}, "B": {"stations": {"a": 1}}}}, base)


def test_a_dock_short_borough_is_the_binding_constraint():
    rollout = build_rollout(
        {
            "boroughs": {
                "A": {"response": 100, "stations": {"a1": 30, "a2": 0}},
                "B": {"response": 100, "stations": {"b": 60}},
            }
        },
        {
            "units": 1000,
            "start": date(2025, 1, 6),
            "deadline": date(2025, 12, 1),
            "deliveries_per_week": 100,
            "training_places_per_week": 50,
            "spares_ratio": 0,
        },
    )
    result = plan(rollout)
    assert not result.feasible and result.binding == "docks"
    [fix] = [r for r in result.remedies if r.constraint == "docks"]
    assert (fix.borough, fix.change) == ("A", 20)  # 25 on shift × 2 = 50 slots needed, 30 there
    a = next(b for b in result.boroughs if b.borough == "A")
    assert a.equipped == 60 and a.finish_week is None  # 30 slots serve 60 officers (15 on shift × 2)
    assert [(s.station_id, s.shortfall) for s in result.stations] == [("a1", 20), ("a2", 0), ("b", 0)]


def test_too_few_units_is_the_binding_constraint():
    rollout = build_rollout(
        {"boroughs": {"A": {"response": 100, "stations": {"a": 100}}}},
        {
            "units": 90,
            "start": date(2025, 1, 6),
            "deadline": date(2025, 12, 1),
            "deliveries_per_week": 100,
            "training_places_per_week": 100,
            "spares_ratio": 0.1,
        },
    )
    result = plan(rollout)
    assert not result.feasible and result.binding == "units"
    assert result.remedies[0].constraint == "units" and result.remedies[0].change == 20


# -- properties over random scenarios -----------------------------------------------------------


@st.composite
def scenarios(draw):
    count = draw(st.integers(1, 6))
    boroughs = {}
    for i in range(count):
        stations = {f"s{i}-{j}": draw(st.integers(0, 80)) for j in range(draw(st.integers(1, 3)))}
        boroughs[f"B{i}"] = {
            "neighbourhood": draw(st.integers(0, 150)),
            "response": draw(st.integers(0, 150)),
            "armed": draw(st.integers(0, 20)),
            "stations": stations,
        }
    names = list(boroughs)
    scenario = {
        "units": draw(st.integers(1, 2500)),
        "start": date(2025, 1, 6),
        "deadline": date(2025, 1, 6 + draw(st.integers(0, 20))) if draw(st.booleans()) else date(2025, 9, 1),
        "deliveries_per_week": draw(st.integers(1, 400)),
        "training_places_per_week": draw(st.integers(1, 120)),
        "boroughs_at_once": draw(st.integers(0, count)),
        "spares_ratio": draw(st.sampled_from([0, 0.05, 0.1])),
        "pilot_boroughs": draw(st.lists(st.sampled_from(names), unique=True, max_size=2)),
        "policy": {name: draw(st.sampled_from(["personal", "pool"])) for name in names},
        "roles": draw(st.sampled_from([["neighbourhood", "response"], ["response"], ["armed", "response"]])),
    }
    return build_rollout({"boroughs": boroughs}, scenario)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_capacities_are_never_exceeded(rollout):
    result = plan(rollout)
    scenario = rollout.scenario
    per_borough_week: defaultdict[tuple[str, int], int] = defaultdict(int)
    equipped: defaultdict[str, int] = defaultdict(int)
    cameras: defaultdict[str, int] = defaultdict(int)
    needs = {n.name: n for n in borough_needs(rollout)}
    for wave in result.waves:
        per_borough_week[(wave.borough, wave.week)] += wave.officers
        equipped[wave.borough] += wave.officers
        cameras[wave.borough] += wave.cameras + wave.spares
        n = needs[wave.borough]
        assert equipped[wave.borough] <= n.dock_capped  # what its stations' docks can charge
    assert all(v <= scenario.training_places_per_week for v in per_borough_week.values())
    for week in result.weeks:
        assert week.cameras_out <= week.delivered <= min(scenario.units, week.week * scenario.deliveries_per_week)
        assert week.in_stock == week.delivered - week.cameras_out
        if scenario.boroughs_at_once:
            assert week.boroughs_in_progress <= scenario.boroughs_at_once
    for name, n in needs.items():
        assert equipped[name] <= n.officers
        assert cameras[name] <= n.cameras + n.spares


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_feasible_means_every_officer_exactly_one_camera_else_a_reason(rollout):
    result = plan(rollout)
    if result.feasible:
        assert result.binding is None and not result.remedies
        for b in result.boroughs:
            assert b.equipped == b.officers  # everyone in scope, and nobody twice
            handed = sum(w.cameras for w in result.waves if w.borough == b.borough)
            assert handed == b.cameras  # one camera per officer (or the pool's size), spares apart
        assert result.finish_week is None or result.finish_week <= result.deadline_week
        assert not any(s.shortfall for s in result.stations)  # every station's docks suffice
    else:
        assert result.binding in ("units", "docks", "deliveries", "training", "boroughs_at_once")
        assert result.remedies  # always something to act on
        if result.binding == "units":
            assert result.cameras_needed > rollout.scenario.units
        if result.binding == "docks":
            assert any(b.dock_shortfall for b in result.boroughs)
        # Add the missing cameras and dock slots; then each rate remedy, or the deadline one, is feasible.
        fixed = with_remedies(rollout, result)
        if result.binding in ("units", "docks") and plan(fixed).feasible:
            return
        for remedy in result.remedies:
            keyword = {"deliveries": "deliveries", "training": "training", "boroughs_at_once": "at_once"}.get(
                remedy.constraint
            )
            if keyword:
                what_if: dict[str, Any] = {keyword: remedy.to}  # one of plan()'s int overrides
                assert plan(fixed, **what_if).feasible
            if remedy.constraint == "deadline":
                assert plan(fixed, deadline=plan(fixed).finish_date).feasible


def with_remedies(rollout, result):
    """The rollout with the plan's units and dock-slot remedies applied."""
    boroughs = {name: msgspec.structs.replace(b, stations=dict(b.stations)) for name, b in rollout.boroughs.items()}
    for station in result.stations:
        boroughs[station.borough].stations[station.station_id] += station.shortfall
    for remedy in result.remedies:
        # (The "no single change" remedy names the binding constraint, docks too, but no borough.)
        if remedy.constraint == "docks" and remedy.borough is not None and not boroughs[remedy.borough].stations:
            boroughs[remedy.borough].stations["added"] = remedy.change
    units = max(rollout.scenario.units, result.cameras_needed)
    return Rollout(boroughs=boroughs, scenario=msgspec.structs.replace(rollout.scenario, units=units), note="")


@settings(max_examples=50, deadline=None)
@given(scenarios())
def test_plans_are_deterministic(rollout):
    assert plan(rollout) == plan(rollout)


def test_a_scenario_that_cannot_finish_stops_instead_of_looping():
    rollout = build_rollout(
        {"boroughs": {"A": {"response": 10, "stations": {"a": 0}}}},
        {
            "units": 10,
            "start": date(2025, 1, 6),
            "deadline": date(2025, 2, 1),
            "deliveries_per_week": 1,
            "training_places_per_week": 1,
        },
    )
    run = simulate(rollout, borough_needs(rollout), Rates(units=10, deliveries=1, training=1, at_once=0))
    assert not run.complete and len(run.weeks) <= 11
    assert math.isfinite(len(plan(rollout).weeks))


def test_the_toml_files_parse_as_plain_toml():
    for name in ("boroughs.toml", "rollout.toml"):
        tomllib.loads((CONFIG / name).read_text())


def test_dock_slots_added_where_short_leave_no_station_short_once_officers_follow_them():
    """Officers are shared by dock slots, so slots added to a short station draw officers from
    the others: the remedy counts the slots every station needs once they have moved (a case
    Hypothesis found, where adding each station's first shortfall left another short)."""
    rollout = build_rollout(
        {"boroughs": {"B0": {"response": 35, "stations": {"s0": 19, "s1": 1, "s2": 1}}}},
        {
            "units": 2500,
            "start": date(2025, 1, 6),
            "deadline": date(2025, 9, 1),
            "deliveries_per_week": 400,
            "training_places_per_week": 120,
            "policy": {"B0": "pool"},
            "roles": ["response"],
        },
    )
    short = plan(rollout)
    # One slot short at s1 by its first share; once it has it, s2's share grows too.
    assert {s.station_id: s.shortfall for s in short.stations} == {"s0": 0, "s1": 1, "s2": 1}
    fixed = with_remedies(rollout, short)
    assert not any(s.shortfall for s in plan(fixed).stations)
