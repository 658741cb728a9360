"""The storage forecast: how much footage central holds, month by month, as cameras arrive.

Recorded per month = officers equipped × clips per officer × minutes per clip, at
``gb_per_hour_low``…``high``. Footage not kept longer lives ``retention_days`` from
recording, so the standard store holds that many days of recording; the
``kept_longer_share`` accumulates for ``kept_longer_years``. Months are 30.44 days.
"""

from __future__ import annotations

from datetime import date, timedelta

from msgspec import Struct

from central.rollout.plan import Plan, week_of
from central.rollout.scenario import Scenario

DAYS_PER_MONTH = 365.25 / 12


class StorageMonth(Struct, kw_only=True):
    month: int
    starts: date
    officers_equipped: int
    clips: int
    recorded_hours: float
    recorded_tb_low: float
    recorded_tb_high: float
    stored_tb_low: float
    """Held at the end of the month: the standard retention window plus everything kept longer."""
    stored_tb_high: float


class StorageForecast(Struct, kw_only=True):
    months: list[StorageMonth]
    steady_recorded_tb_per_month_low: float
    """Once every officer in scope is equipped."""
    steady_recorded_tb_per_month_high: float
    kept_longer_tb_per_year_low: float
    kept_longer_tb_per_year_high: float


def forecast(plan: Plan, scenario: Scenario) -> StorageForecast:
    s = scenario.storage
    hours_per_officer = s.clips_per_officer_per_month * s.minutes_per_clip / 60
    window_months = s.retention_days / DAYS_PER_MONTH
    equipped_by_week = [w.officers_equipped for w in plan.weeks]
    months: list[StorageMonth] = []
    recorded: list[float] = []  # hours per month
    for month in range(1, s.horizon_months + 1):
        starts = plan.start + timedelta(days=round((month - 1) * DAYS_PER_MONTH))
        ends = plan.start + timedelta(days=round(month * DAYS_PER_MONTH) - 1)
        week = week_of(plan.start, ends)
        officers = equipped_by_week[min(week, len(equipped_by_week)) - 1] if equipped_by_week else 0
        hours = officers * hours_per_officer
        recorded.append(hours)
        # The standard store holds the last window's recordings (part of the current month,
        # or several months when retention is longer than a month).
        window = _last_months(recorded, window_months)
        kept = _last_months(recorded, s.kept_longer_years * 12) * s.kept_longer_share
        stored_hours = window * (1 - s.kept_longer_share) + kept
        months.append(
            StorageMonth(
                month=month,
                starts=starts,
                officers_equipped=officers,
                clips=round(officers * s.clips_per_officer_per_month),
                recorded_hours=round(hours, 1),
                recorded_tb_low=_tb(hours, s.gb_per_hour_low),
                recorded_tb_high=_tb(hours, s.gb_per_hour_high),
                stored_tb_low=_tb(stored_hours, s.gb_per_hour_low),
                stored_tb_high=_tb(stored_hours, s.gb_per_hour_high),
            )
        )
    steady = plan.officers_in_scope * hours_per_officer
    return StorageForecast(
        months=months,
        steady_recorded_tb_per_month_low=_tb(steady, s.gb_per_hour_low),
        steady_recorded_tb_per_month_high=_tb(steady, s.gb_per_hour_high),
        kept_longer_tb_per_year_low=_tb(steady * 12 * s.kept_longer_share, s.gb_per_hour_low),
        kept_longer_tb_per_year_high=_tb(steady * 12 * s.kept_longer_share, s.gb_per_hour_high),
    )


def _last_months(per_month: list[float], months: float) -> float:
    """Hours recorded in the last ``months`` (fractional) months."""
    total, left = 0.0, months
    for hours in reversed(per_month):
        if left <= 0:
            break
        take = min(1.0, left)
        total += hours * take
        left -= take
    return total


def _tb(hours: float, gb_per_hour: float) -> float:
    return round(hours * gb_per_hour / 1000, 2)
