"""A pack's fitness for a shift, judged alike at central (the fleet's flags) and at the station
desk (the checkout gate, with central out of reach): pure arithmetic on one dock reading."""

from __future__ import annotations

from dataclasses import dataclass

from fleet.protocol import Battery


@dataclass(frozen=True)
class HealthPolicy:
    """Thresholds a force sets for its fleet; the defaults suit Axon-Body-2-class packs."""

    replace_below_soh_pct: float = 80.0
    shift_hours: float = 10.0
    rated_runtime_hours: float = 12.0
    over_temperature_c: float = 45.0
    sudden_drop_pct: float = 5.0
    min_readings_for_trend: int = 3


def state_of_health(full_charge_mah: int | None, design_mah: int | None) -> float | None:
    """Full-charge over design capacity in percent, clamped to [0, 120] against bad gauges."""
    if full_charge_mah is None or design_mah is None or design_mah <= 0:
        return None
    return min(120.0, max(0.0, full_charge_mah / design_mah * 100.0))


def runtime_hours(soh_pct: float, policy: HealthPolicy) -> float:
    """Expected recording time on a full charge: rated runtime scales with capacity."""
    return policy.rated_runtime_hours * soh_pct / 100.0


def will_not_last_shift(soh_pct: float | None, policy: HealthPolicy) -> bool:
    """True when a full charge no longer covers a shift; unknown SoH is not flagged."""
    return soh_pct is not None and runtime_hours(soh_pct, policy) < policy.shift_hours


def over_temperature(temperature_c: float | None, policy: HealthPolicy) -> bool:
    """True when the pack is hotter than the policy allows; no reading is not flagged."""
    return temperature_c is not None and temperature_c > policy.over_temperature_c


def due_for_replacement(soh_pct: float | None, policy: HealthPolicy) -> bool:
    """True when the pack has worn below the force's replacement threshold."""
    return soh_pct is not None and soh_pct < policy.replace_below_soh_pct


def unfit_for_shift(battery: Battery | None, policy: HealthPolicy) -> list[str]:
    """Why this pack should not go out for a shift, in words; empty when nothing is known against it."""
    if battery is None:
        return []
    reasons = []
    soh = state_of_health(battery.full_charge_mah, battery.design_mah)
    if soh is not None and will_not_last_shift(soh, policy):
        reasons.append(
            f"it will not last a {policy.shift_hours:g}-hour shift "
            f"(about {runtime_hours(soh, policy):.1f} h on a full charge)"
        )
    if soh is not None and due_for_replacement(soh, policy):
        reasons.append(
            f"its battery is due for replacement ({soh:.0f}% of design capacity, "
            f"below {policy.replace_below_soh_pct:g}%)"
        )
    if over_temperature(battery.temperature_c, policy):
        reasons.append(
            f"its battery was over temperature when docked ({battery.temperature_c:g} °C, "
            f"above {policy.over_temperature_c:g} °C)"
        )
    return reasons
