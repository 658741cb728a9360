"""Battery health from dock telemetry, so worn-out packs are swapped before they fail a shift.

A camera reports its pack's full-charge and design capacity each time it docks. State of
health (SoH) is one over the other; a least-squares line through SoH over time predicts
when the pack falls below the replacement threshold, early enough to order spares.
Everything here is pure arithmetic on readings: no clock, no I/O, no numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from math import fsum
from typing import TYPE_CHECKING

from fleet.battery import (  # judged alike at the station desk; here for the fleet's flags
    HealthPolicy,
    over_temperature,
    runtime_hours,
    state_of_health,
    will_not_last_shift,
)

if TYPE_CHECKING:
    from fleet.config import FleetSettings

__all__ = ["HealthPolicy", "over_temperature", "runtime_hours", "state_of_health", "will_not_last_shift"]

SECONDS_PER_DAY = 86_400.0
# Floating-point slack when comparing differences of percentages (50.05 - 45.05 is not quite 5.0).
_EPSILON = 1e-9


@dataclass(frozen=True)
class Reading:
    """One dock telemetry sample; any field the camera did not report is None."""

    at: datetime
    full_charge_mah: int | None
    design_mah: int | None
    cycle_count: int | None = None
    temperature_c: float | None = None
    level_pct: float | None = None

    def __post_init__(self) -> None:
        # Mixing naive and aware times fails far from the cause; refuse at the boundary.
        if self.at.tzinfo is None or self.at.utcoffset() is None:
            raise ValueError(f"Reading.at must be timezone-aware, got {self.at!r}")


def health_policy(fleet: FleetSettings) -> HealthPolicy:
    """The policy central's ``[fleet]`` settings give."""
    return HealthPolicy(
        replace_below_soh_pct=fleet.replace_below_soh_pct,
        shift_hours=fleet.shift_hours,
        rated_runtime_hours=fleet.rated_runtime_hours,
        over_temperature_c=fleet.over_temperature_c,
        sudden_drop_pct=fleet.sudden_drop_pct,
    )


@dataclass(frozen=True)
class Trend:
    """The fitted SoH line: value ``intercept_soh`` at ``intercept_at`` (the first reading)."""

    slope_pct_per_day: float
    intercept_at: datetime
    intercept_soh: float
    predicted_replace_at: datetime | None


@dataclass(frozen=True)
class BatteryAssessment:
    """What the dashboard shows for one pack, from its latest reading and its trend."""

    soh_pct: float | None
    runtime_hours: float | None
    short_shift: bool
    over_temperature: bool
    sudden_drop: bool
    predicted_replace_at: datetime | None


def drop_threshold(policy: HealthPolicy) -> float:
    """The fall in SoH points that counts as sudden: ``sudden_drop_pct``, less floating-point
    slack. Central's SQL compares against this value, so both sides judge a drop alike."""
    return policy.sudden_drop_pct - _EPSILON


def sudden_drop(previous_soh: float | None, current_soh: float | None, policy: HealthPolicy) -> bool:
    """True when SoH fell by at least ``sudden_drop_pct`` points between two readings,
    a sign of a damaged cell rather than ordinary ageing."""
    if previous_soh is None or current_soh is None:
        return False
    return previous_soh - current_soh >= drop_threshold(policy)


def _ordered(readings: Sequence[Reading]) -> list[Reading]:
    """Readings by time, ties broken by their values, so input order never changes a result."""

    def key(reading: Reading) -> tuple:
        values = (
            reading.full_charge_mah,
            reading.design_mah,
            reading.cycle_count,
            reading.temperature_c,
            reading.level_pct,
        )
        return (reading.at, *((value is not None, value or 0) for value in values))

    return sorted(readings, key=key)


def trend(readings: Sequence[Reading], policy: HealthPolicy) -> Trend | None:
    """Least-squares SoH-per-day line, or None without enough readings spread over time.

    ``predicted_replace_at`` is when the line crosses the replacement threshold going down.
    A pack whose line is already below the threshold at its latest reading is due now
    (that reading's time), even if it fades no further; otherwise a flat or rising line
    predicts nothing.
    """
    points = [
        (r.at, soh) for r in _ordered(readings) if (soh := state_of_health(r.full_charge_mah, r.design_mah)) is not None
    ]
    if len(points) < max(2, policy.min_readings_for_trend):
        return None
    origin, latest = points[0][0], points[-1][0]
    xs = [(at - origin).total_seconds() / SECONDS_PER_DAY for at, _ in points]
    # Relative to the first SoH, so a pack that never changes has a slope of exactly 0
    # rather than a rounding error's sign (which would predict a date centuries away).
    base = points[0][1]
    dys = [soh - base for _, soh in points]
    mean_x, mean_dy = fsum(xs) / len(xs), fsum(dys) / len(dys)
    sxx = fsum((x - mean_x) ** 2 for x in xs)
    if sxx == 0.0:
        return None
    slope = fsum((x - mean_x) * (dy - mean_dy) for x, dy in zip(xs, dys, strict=True)) / sxx
    intercept = base + mean_dy - slope * mean_x

    predicted: datetime | None = None
    threshold = policy.replace_below_soh_pct
    if intercept + slope * xs[-1] < threshold:
        predicted = latest
    elif slope < 0:
        try:
            crossing = origin + timedelta(days=(threshold - intercept) / slope)
            predicted = max(crossing, latest)  # rounding must not put it before the evidence
        except OverflowError:  # so slow a fade that the date is past year 9999
            predicted = None
    return Trend(slope, origin, intercept, predicted)


def assess(readings: Sequence[Reading], policy: HealthPolicy) -> BatteryAssessment:
    """The pack's state from its latest reading, the one before it, and its trend."""
    ordered = _ordered(readings)
    if not ordered:
        return BatteryAssessment(None, None, False, False, False, None)
    latest = ordered[-1]
    soh = state_of_health(latest.full_charge_mah, latest.design_mah)
    previous_soh = None
    if len(ordered) >= 2:
        previous_soh = state_of_health(ordered[-2].full_charge_mah, ordered[-2].design_mah)
    fitted = trend(ordered, policy)
    return BatteryAssessment(
        soh_pct=soh,
        runtime_hours=None if soh is None else runtime_hours(soh, policy),
        short_shift=will_not_last_shift(soh, policy),
        over_temperature=over_temperature(latest.temperature_c, policy),
        sudden_drop=sudden_drop(previous_soh, soh, policy),
        predicted_replace_at=None if fitted is None else fitted.predicted_replace_at,
    )
