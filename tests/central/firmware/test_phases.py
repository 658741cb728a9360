"""Phase selection and the phase rules, by property: deterministic, no camera in two phases, every
camera in one, shares met; a phase pauses only over its threshold with enough results."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from central.firmware.phases import (
    Candidate,
    Figures,
    PhaseSpec,
    Rule,
    decide,
    over_threshold,
    select,
    share_count,
    validate,
    why_open_next,
)
from fleet.errors import BadRequest

pytestmark = pytest.mark.sqlite_only  # no database: pure functions

BOROUGHS = ["Camden", "Barnet", "Hackney", "Islington"]

cameras = st.lists(
    st.builds(
        Candidate,
        serial=st.from_regex(r"BWV-[0-9]{1,6}", fullmatch=True),
        borough=st.sampled_from([*BOROUGHS, None]),
    ),
    max_size=300,
    unique_by=lambda c: c.serial,
)


@st.composite
def phase_lists(draw) -> list[PhaseSpec]:
    """Valid phases: increasing shares and borough waves (no borough twice), the last a share of 100
    or a wave."""
    shares = sorted(draw(st.sets(st.floats(min_value=0.5, max_value=99.5, allow_nan=False), max_size=4)))
    phases: list[PhaseSpec] = [PhaseSpec(share_pct=s) for s in shares]
    free = list(BOROUGHS)
    for _ in range(draw(st.integers(0, 2))):
        if not free:
            break
        wave = draw(st.lists(st.sampled_from(free), min_size=1, max_size=2, unique=True))
        free = [b for b in free if b not in wave]
        phases.insert(draw(st.integers(0, len(phases))), PhaseSpec(boroughs=wave))
    if draw(st.booleans()) or not phases or phases[-1].share_pct is not None:
        phases.append(PhaseSpec(share_pct=100))
    # shares must increase in the order they come, whatever the waves between them
    shares_in_order = [p.share_pct for p in phases if p.share_pct is not None]
    assert shares_in_order == sorted(shares_in_order)
    return phases


@given(cameras, phase_lists(), st.integers(1, 2**40))
def test_every_camera_is_in_exactly_one_phase_and_the_choice_is_deterministic(found, phases, deployment_id):
    validate(phases)
    chosen = select(deployment_id, found, phases)
    assert len(chosen) == len(phases)
    flat = [s for phase in chosen for s in phase]
    assert len(flat) == len(set(flat)), "a camera in two phases"
    assert set(flat) == {c.serial for c in found}, "a camera in no phase"
    assert select(deployment_id, list(reversed(found)), phases) == chosen  # the order given does not matter


@given(cameras, phase_lists(), st.integers(1, 2**40))
def test_shares_are_met_and_waves_take_only_their_boroughs(found, phases, deployment_id):
    chosen = select(deployment_id, found, phases)
    borough = {c.serial: c.borough for c in found}
    total = len(found)
    so_far = 0
    for number, (phase, mine) in enumerate(zip(phases, chosen, strict=True), start=1):
        so_far += len(mine)
        if number == len(phases):
            assert so_far == total
        elif phase.share_pct is not None:
            # cumulative: exactly the share (rounded up), unless earlier waves took more already
            assert so_far == max(share_count(total, phase.share_pct), so_far - len(mine))
        else:
            assert all(borough[s] in (phase.boroughs or []) for s in mine)


@given(cameras, st.integers(1, 2**40))
def test_a_share_phase_takes_cameras_in_hash_order_so_a_smaller_share_is_part_of_a_larger(found, deployment_id):
    small = select(deployment_id, found, [PhaseSpec(share_pct=10), PhaseSpec(share_pct=100)])[0]
    large = select(deployment_id, found, [PhaseSpec(share_pct=30), PhaseSpec(share_pct=100)])[0]
    assert set(small) <= set(large)
    if found:
        assert len(small) >= 1  # a canary of a small target is one camera, not none


def test_another_deployment_of_the_same_target_picks_another_canary():
    found = [Candidate(f"BWV-{n}", "Camden") for n in range(1000)]
    phases = [PhaseSpec(share_pct=1), PhaseSpec(share_pct=100)]
    assert select(1, found, phases)[0] != select(2, found, phases)[0]
    assert len(select(1, found, phases)[0]) == 10


@pytest.mark.parametrize(
    ("phases", "message"),
    [
        ([], "at least one phase"),
        ([PhaseSpec(share_pct=50), PhaseSpec(share_pct=50)], "must increase"),
        ([PhaseSpec(share_pct=10), PhaseSpec(share_pct=90)], "make its share 100"),
        ([PhaseSpec()], "either share_pct"),
        ([PhaseSpec(boroughs=["Camden"]), PhaseSpec(boroughs=["Camden"])], "in phase 1 already"),
        ([PhaseSpec(share_pct=100)] * 21, "at most 20"),
    ],
)
def test_invalid_phases_are_refused_saying_why(phases, message):
    with pytest.raises(BadRequest, match=message):
        validate(phases)


figures = st.builds(
    lambda cameras, updated, failed, results: Figures(
        cameras=cameras, updated=min(updated, cameras), failed=min(failed, results), results=min(results, cameras)
    ),
    st.integers(0, 200),
    st.integers(0, 200),
    st.integers(0, 200),
    st.integers(0, 200),
)


@given(figures, st.floats(0, 100), st.integers(1, 50))
def test_a_phase_pauses_only_over_its_threshold_with_enough_results(f, max_failure_pct, min_results):
    rule = Rule(max_failure_pct, min_results)
    if over_threshold(f, rule):
        assert f.results >= min_results and f.failed / f.results > max_failure_pct / 100
        assert decide([(f, rule)], 1) == "pause"
    if f.results < min_results:
        assert not over_threshold(f, rule)


def test_the_next_phase_waits_for_ninety_percent_within_the_threshold():
    rule = Rule(10, 3)
    waiting = Figures()
    assert decide([(Figures(cameras=10, updated=8, results=8), rule), (waiting, rule)], 1) is None
    assert decide([(Figures(cameras=10, updated=9, results=9), rule), (waiting, rule)], 1) == "open_next"
    # 90 % final but 2 of 9 with a failure: over 10 %, so it pauses instead
    assert decide([(Figures(cameras=10, updated=7, gave_up=2, failed=2, results=9), rule), (waiting, rule)], 1) == (
        "pause"
    )
    # resumed after those: judged from there, and every camera final opens the next
    resumed = Rule(10, 3, base_results=9, base_failures=2)
    assert decide(
        [(Figures(cameras=10, updated=8, gave_up=2, failed=2, results=10), resumed), (waiting, resumed)], 1
    ) == ("open_next")
    assert decide([(Figures(cameras=2, updated=1, results=1), rule)], 1) is None
    assert decide([(Figures(cameras=2, updated=2, results=2), rule)], 1) == "complete"
    assert decide([(Figures(), rule)], 0) == "open_next"


def test_a_soaked_phase_opens_the_next_with_enough_results_within_the_threshold_and_not_before():
    rule = Rule(5, 3, soak_hours=72)
    waiting = Figures()
    canary = Figures(cameras=200, updated=3, results=3)
    assert decide([(canary, rule), (waiting, rule)], 1, running_hours=71.9) is None
    assert decide([(canary, rule), (waiting, rule)], 1, running_hours=72) == "open_next"
    assert why_open_next(canary, rule, 72) == "soaked 72 h with 3 result(s), 0 with a failure"
    # too few results however long it soaked: nothing is known yet
    assert decide([(Figures(cameras=200, updated=2, results=2), rule), (waiting, rule)], 1, 1000) is None
    # one failure in three is over 5 % (and pauses)
    failing = Figures(cameras=200, updated=2, failed=1, results=3)
    assert why_open_next(failing, rule, 1000) is None
    assert decide([(failing, rule), (waiting, rule)], 1, 1000) == "pause"
    # under min_results a failure pauses nothing, and the soak opens nothing either
    assert why_open_next(Figures(cameras=200, updated=1, failed=1, results=2), Rule(5, 3, soak_hours=0), 5) is None
    # after a resume only the results since count toward min_results
    resumed = Rule(5, 3, base_results=3, base_failures=1, soak_hours=72)
    assert why_open_next(Figures(cameras=200, updated=4, failed=1, results=5), resumed, 100) is None
    assert why_open_next(Figures(cameras=200, updated=5, failed=1, results=6), resumed, 100) is not None
    # a deployment made before soaks waits for its cameras
    assert why_open_next(canary, Rule(5, 3), 10_000) is None


@given(figures, st.floats(0, 100), st.integers(1, 50), st.floats(0, 500), st.floats(0, 1000))
def test_a_phase_over_its_threshold_never_opens_the_next_whatever_its_soak(f, max_failure_pct, min_results, soak, h):
    rule = Rule(max_failure_pct, min_results, soak_hours=soak)
    if over_threshold(f, rule):
        assert decide([(f, rule), (Figures(), rule)], 1, h) == "pause"
    if why_open_next(f, rule, h) is not None and f.final < f.cameras:
        assert not over_threshold(f, rule)
