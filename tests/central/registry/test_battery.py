import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from central.registry.battery import (
    BatteryAssessment,
    HealthPolicy,
    Reading,
    assess,
    over_temperature,
    runtime_hours,
    state_of_health,
    sudden_drop,
    trend,
    will_not_last_shift,
)

POLICY = HealthPolicy()
START = datetime(2024, 1, 1, 8, 0, tzinfo=UTC)
DESIGN = 3000


def at_soh(day: float, soh: float, **extra) -> Reading:
    """A reading ``day`` days after START whose gauge reports ``soh`` percent."""
    return Reading(START + timedelta(days=day), round(DESIGN * soh / 100), DESIGN, **extra)


def wobble(i: int) -> float:
    """Deterministic gauge noise within ±0.6 points."""
    return 0.6 * math.sin(i * 2.3)


# --- single-reading rules ---------------------------------------------------------------


def test_state_of_health_is_full_over_design_in_percent():
    assert state_of_health(2400, 3000) == pytest.approx(80.0)
    assert state_of_health(3000, 3000) == 100.0


@pytest.mark.parametrize("full, design", [(None, 3000), (2400, None), (None, None), (2400, 0), (2400, -5)])
def test_state_of_health_is_unknown_without_usable_capacities(full, design):
    assert state_of_health(full, design) is None


def test_state_of_health_is_clamped_against_silly_gauges():
    assert state_of_health(9000, 3000) == 120.0
    assert state_of_health(-100, 3000) == 0.0


def test_runtime_scales_rated_hours_by_health():
    assert runtime_hours(80.0, POLICY) == pytest.approx(9.6)
    assert runtime_hours(100.0, POLICY) == pytest.approx(12.0)


def test_short_shift_at_80_percent_with_a_10_hour_shift_on_a_12_hour_pack():
    assert will_not_last_shift(80.0, POLICY) is True  # 9.6 h < 10 h
    assert will_not_last_shift(83.0, POLICY) is True  # 9.96 h
    assert will_not_last_shift(84.0, POLICY) is False  # 10.08 h
    assert will_not_last_shift(90.0, POLICY) is False  # 10.8 h
    assert will_not_last_shift(None, POLICY) is False
    assert will_not_last_shift(80.0, HealthPolicy(shift_hours=8.0)) is False


def test_over_temperature_is_strictly_above_the_limit():
    assert over_temperature(45.5, POLICY) is True
    assert over_temperature(45.0, POLICY) is False
    assert over_temperature(None, POLICY) is False


def test_sudden_drop_flags_eight_points_but_not_ordinary_fade():
    assert sudden_drop(92.0, 84.0, POLICY) is True
    assert sudden_drop(92.0, 87.1, POLICY) is False
    assert sudden_drop(84.0, 92.0, POLICY) is False  # a rise is a recalibration, not damage
    assert sudden_drop(None, 84.0, POLICY) is False
    assert sudden_drop(92.0, None, POLICY) is False


def test_sudden_drop_of_exactly_the_threshold_counts_despite_float_rounding():
    before, after = state_of_health(1001, 2000), state_of_health(901, 2000)  # 50.05 % -> 45.05 %
    assert before is not None and after is not None
    assert before - after < 5.0  # the rounding this guards against
    assert sudden_drop(before, after, POLICY) is True


def test_readings_must_carry_a_timezone():
    with pytest.raises(ValueError, match="timezone-aware"):
        Reading(datetime(2024, 1, 1), 2900, 3000)


# --- trend ------------------------------------------------------------------------------


def test_linear_fade_predicts_the_true_crossing_within_a_few_days():
    # 100 % -> 70 % over 500 days crosses 80 % on day 333.3; we only see the first 250 days.
    readings = [at_soh(day, 100 - 30 * day / 500 + wobble(i)) for i, day in enumerate(range(0, 251, 5))]
    fitted = trend(readings, POLICY)
    assert fitted is not None
    assert fitted.slope_pct_per_day == pytest.approx(-0.06, rel=0.05)
    assert fitted.intercept_at == START
    assert fitted.intercept_soh == pytest.approx(100.0, abs=0.5)
    true_crossing = START + timedelta(days=1000 / 3)
    assert fitted.predicted_replace_at is not None
    assert abs(fitted.predicted_replace_at - true_crossing) < timedelta(days=4)


def test_a_battery_that_holds_steady_gets_no_prediction():
    readings = [at_soh(day, 96.0) for day in range(0, 300, 10)]
    fitted = trend(readings, POLICY)
    assert fitted is not None
    assert fitted.slope_pct_per_day == 0.0
    assert fitted.predicted_replace_at is None


def test_a_steady_pack_has_no_slope_even_where_float_means_do_not_round_trip():
    # fsum([80.0666...] * 7) / 7 is not 80.0666..., which used to leave a slope of -1e-31.
    readings = [Reading(START + timedelta(hours=80 * i), 2402, 3000) for i in range(7)]
    fitted = trend(readings, POLICY)
    assert fitted.slope_pct_per_day == 0.0
    assert fitted.intercept_soh == state_of_health(2402, 3000)


def test_a_rising_gauge_gets_no_prediction():
    readings = [at_soh(day, 90 + day / 100) for day in range(0, 100, 10)]
    assert trend(readings, POLICY).predicted_replace_at is None


def test_a_pack_already_below_the_threshold_is_due_at_its_latest_reading():
    fading = [at_soh(day, 79 - day / 10) for day in (0, 10, 20)]
    assert trend(fading, POLICY).predicted_replace_at == fading[-1].at
    flat_but_worn = [at_soh(day, 70.0) for day in (0, 10, 20)]
    assert trend(flat_but_worn, POLICY).predicted_replace_at == flat_but_worn[-1].at


def test_a_pack_that_crossed_during_the_readings_is_due_now_not_in_the_past():
    readings = [at_soh(day, 100 - 30 * day / 500) for day in range(0, 501, 25)]
    assert trend(readings, POLICY).predicted_replace_at == readings[-1].at


def test_trend_needs_enough_readings_with_a_state_of_health():
    two = [at_soh(0, 95), at_soh(10, 94)]
    assert trend(two, POLICY) is None
    no_gauge = [Reading(START + timedelta(days=d), None, DESIGN) for d in (20, 30, 40)]
    assert trend(two + no_gauge, POLICY) is None
    assert trend(two + no_gauge, HealthPolicy(min_readings_for_trend=2)) is not None
    assert trend([*two, at_soh(20, 93)], POLICY) is not None


def test_trend_is_none_when_every_reading_is_at_the_same_instant():
    assert trend([at_soh(0, soh) for soh in (95, 90, 85)], POLICY) is None


def test_trend_ignores_the_order_readings_arrive_in():
    readings = [at_soh(day, 100 - day / 20 + wobble(day)) for day in range(0, 200, 7)]
    assert trend(list(reversed(readings)), POLICY) == trend(readings, POLICY)


# --- assessment -------------------------------------------------------------------------


def test_assess_uses_the_latest_reading_even_when_it_arrives_first():
    readings = [
        at_soh(30, 82.0, temperature_c=47.0),  # latest: hot, worn, 8 points below the last
        at_soh(0, 91.0, temperature_c=20.0),
        at_soh(20, 90.0, temperature_c=20.0),
        at_soh(10, 90.5, temperature_c=20.0),
    ]
    result = assess(readings, POLICY)
    assert result.soh_pct == pytest.approx(82.0, abs=0.05)
    assert result.runtime_hours == pytest.approx(12 * 0.82, abs=0.01)
    assert result.short_shift is True
    assert result.over_temperature is True
    assert result.sudden_drop is True
    assert result.predicted_replace_at is not None


def test_assess_a_healthy_pack_flags_nothing():
    readings = [at_soh(day, 99.0, temperature_c=25.0) for day in range(0, 50, 10)]
    result = assess(readings, POLICY)
    # approx() stands in for a float: the dataclass's == compares field by field.
    assert result == BatteryAssessment(
        soh_pct=pytest.approx(99.0),  # type: ignore[arg-type]
        runtime_hours=pytest.approx(11.88),  # type: ignore[arg-type]
        short_shift=False,
        over_temperature=False,
        sudden_drop=False,
        predicted_replace_at=None,
    )


def test_assess_without_readings_or_without_a_gauge_knows_nothing():
    assert assess([], POLICY) == BatteryAssessment(None, None, False, False, False, None)
    blind = assess([Reading(START, None, None, temperature_c=50.0)], POLICY)
    assert (blind.soh_pct, blind.runtime_hours, blind.short_shift) == (None, None, False)
    assert blind.over_temperature is True


# --- properties -------------------------------------------------------------------------

maybe_int = st.none() | st.integers(min_value=-100, max_value=5000)
readings_strategy = st.lists(
    st.builds(
        Reading,
        at=st.integers(min_value=0, max_value=2_000_000).map(lambda m: START + timedelta(minutes=m)),
        full_charge_mah=maybe_int,
        design_mah=maybe_int,
        cycle_count=st.none() | st.integers(min_value=0, max_value=2000),
        temperature_c=st.none() | st.floats(min_value=-30, max_value=90),
        level_pct=st.none() | st.floats(min_value=0, max_value=100),
    ),
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(readings=readings_strategy, data=st.data())
def test_order_of_readings_never_changes_the_result(readings, data):
    shuffled = data.draw(st.permutations(readings))
    assert trend(shuffled, POLICY) == trend(readings, POLICY)
    assert assess(shuffled, POLICY) == assess(readings, POLICY)


@settings(max_examples=200, deadline=None)
@given(
    start_soh=st.floats(min_value=80.5, max_value=110),
    fade_per_day=st.floats(min_value=1e-4, max_value=0.5),
    days=st.lists(st.integers(min_value=0, max_value=1000), min_size=3, max_size=30, unique=True),
)
def test_a_fading_pack_is_never_predicted_before_its_first_reading(start_soh, fade_per_day, days):
    readings = [at_soh(day, start_soh - fade_per_day * day) for day in days]
    fitted = trend(readings, POLICY)
    assert fitted is not None
    if fitted.predicted_replace_at is not None:
        assert fitted.predicted_replace_at >= min(r.at for r in readings)
        assert fitted.predicted_replace_at >= max(r.at for r in readings)


@given(full=maybe_int, design=maybe_int)
def test_state_of_health_is_none_exactly_when_unknowable_else_clamped(full, design):
    soh = state_of_health(full, design)
    if full is None or design is None or design <= 0:
        assert soh is None
    else:
        assert soh is not None and 0.0 <= soh <= 120.0
        assert assess([Reading(START, full, design)], POLICY).soh_pct == soh
