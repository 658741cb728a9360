"""The boroughs (``config/boroughs.toml``) and a roll-out scenario (``config/rollout.toml``).

Both are TOML decoded into strict msgspec Structs, like every config file here: an unknown
key, a negative headcount or a borough named in the scenario but missing from the boroughs
file is a ``ConfigError`` with one clear line, before any planning starts.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

from fleet.config import StationId, read_toml
from fleet.errors import ConfigError

Count = Annotated[int, Meta(ge=0, le=1_000_000)]
PositiveCount = Annotated[int, Meta(ge=1, le=1_000_000)]
Share = Annotated[float, Meta(ge=0, le=1)]
Hours = Annotated[float, Meta(gt=0, le=48)]
Role = Literal["neighbourhood", "response", "armed", "other"]
Policy = Literal["personal", "pool"]
ROLES: tuple[Role, ...] = ("neighbourhood", "response", "armed", "other")


class BoroughSpec(Struct, kw_only=True, forbid_unknown_fields=True):
    """One borough: officers by role and its stations with their dock slots."""

    neighbourhood: Count = 0
    response: Count = 0
    armed: Count = 0
    other: Count = 0
    stations: dict[StationId, Count]
    """Station id → dock slots (charging and upload bays) there."""

    def officers(self, roles: list[Role] | tuple[Role, ...]) -> int:
        return sum(getattr(self, role) for role in roles)

    @property
    def dock_slots(self) -> int:
        return sum(self.stations.values())


class BoroughsFile(Struct, kw_only=True, forbid_unknown_fields=True):
    note: str = ""
    """Where the figures come from (the reference file says they are illustrative)."""
    boroughs: dict[Annotated[str, Meta(min_length=1, max_length=64)], BoroughSpec]


class Charging(Struct, kw_only=True, forbid_unknown_fields=True):
    """How cameras are used and charged: what sizes pools and docks."""

    shifts_per_day: Annotated[int, Meta(ge=1, le=24)] = 3
    """Shifts start every 24 / shifts_per_day hours."""
    shift_hours: Hours = 10.0
    on_shift_share: Annotated[float, Meta(gt=0, le=1)] = 0.25
    """Share of a borough's officers in scope on duty in its busiest shift."""
    runtime_hours: Hours = 12.0
    """A charged camera's recording/standby runtime (Axon Body 2 class: ~12 h)."""
    recharge_hours: Hours = 9.0
    """Empty to full on a dock (Axon Body 2 class: up to ~9 h)."""


class StorageAssumptions(Struct, kw_only=True, forbid_unknown_fields=True):
    clips_per_officer_per_month: Annotated[float, Meta(ge=0, le=10_000)] = 6.0
    """The trial: ~6,000 clips a month from ~1,000 cameras."""
    minutes_per_clip: Annotated[float, Meta(gt=0, le=24 * 60)] = 5.0
    gb_per_hour_low: Annotated[float, Meta(gt=0, le=100)] = 1.4
    gb_per_hour_high: Annotated[float, Meta(gt=0, le=100)] = 2.3
    retention_days: Annotated[int, Meta(ge=1, le=36_500)] = 31
    """Footage not marked evidential is deleted this many days after recording."""
    kept_longer_share: Share = 0.05
    """Share of footage kept past the standard retention (the Met: ~4–6 %)."""
    kept_longer_years: Annotated[float, Meta(gt=0, le=100)] = 6.0
    horizon_months: Annotated[int, Meta(ge=1, le=240)] = 24


class Scenario(Struct, kw_only=True, forbid_unknown_fields=True):
    """What is to be rolled out, by when, at what rates."""

    name: str = "roll-out"
    units: PositiveCount
    """Cameras bought: officers' cameras, pool cameras and spares all come out of these."""
    start: date
    """Monday of week 1."""
    deadline: date
    deliveries_per_week: PositiveCount
    training_places_per_week: PositiveCount
    """Officers one borough can train (and so equip) in a week."""
    boroughs_at_once: Count = 0
    """Boroughs in progress at the same time (trainers, project teams); 0 means no limit."""
    roles: list[Role] = msgspec.field(default_factory=lambda: ["neighbourhood", "response"])
    """Which officers get cameras."""
    pilot_boroughs: list[str] = []
    """Go first, in this order (the trial boroughs)."""
    priority: list[str] = []
    """Then these, in this order; the rest follow in the boroughs file's order."""
    default_policy: Policy = "personal"
    policy: dict[str, Policy] = {}
    """Per-borough policy: personal issue, or a pool checked out per shift."""
    spares_ratio: Annotated[float, Meta(ge=0, le=1)] = 0.05
    charging: Charging = msgspec.field(default_factory=Charging)
    storage: StorageAssumptions = msgspec.field(default_factory=StorageAssumptions)

    def policy_of(self, borough: str) -> Policy:
        return self.policy.get(borough, self.default_policy)


class Rollout(Struct, kw_only=True):
    """A validated pair: the boroughs and the scenario planned over them."""

    boroughs: dict[str, BoroughSpec]
    scenario: Scenario
    note: str = ""

    def order(self) -> list[str]:
        """Pilots, then the priority list, then every other borough in file order."""
        seen: dict[str, None] = {}
        for name in (*self.scenario.pilot_boroughs, *self.scenario.priority, *self.boroughs):
            seen.setdefault(name, None)
        return list(seen)


def _convert(raw: dict, kind, where: str):
    try:
        return msgspec.convert(raw, kind)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def build_rollout(boroughs: dict, scenario: dict, *, where: tuple[str, str] = ("boroughs", "scenario")) -> Rollout:
    """Validate already-parsed boroughs and scenario (files, tests, what-ifs)."""
    spec = _convert(boroughs, BoroughsFile, where[0])
    plan = _convert(scenario, Scenario, where[1])
    if not spec.boroughs:
        raise ConfigError(f"{where[0]}: no boroughs")
    unknown = [name for name in (*plan.pilot_boroughs, *plan.priority, *plan.policy) if name not in spec.boroughs]
    if unknown:
        raise ConfigError(f"{where[1]}: unknown borough {unknown[0]!r} (not in {where[0]})")
    if plan.deadline < plan.start:
        raise ConfigError(f"{where[1]}: deadline {plan.deadline} is before start {plan.start}")
    if plan.storage.gb_per_hour_high < plan.storage.gb_per_hour_low:
        raise ConfigError(f"{where[1]}: storage.gb_per_hour_high is below gb_per_hour_low")
    if not plan.roles:
        raise ConfigError(f"{where[1]}: roles is empty: say which officers get cameras")
    stations: dict[str, str] = {}
    for name, borough in spec.boroughs.items():
        for station in borough.stations:
            if station in stations:
                raise ConfigError(f"{where[0]}: station {station!r} is listed in both {stations[station]} and {name}")
            stations[station] = name
    return Rollout(boroughs=spec.boroughs, scenario=plan, note=spec.note)


def load_rollout(boroughs_path: str | Path, scenario_path: str | Path) -> Rollout:
    boroughs_path, scenario_path = Path(boroughs_path), Path(scenario_path)
    return build_rollout(
        read_toml(boroughs_path, "boroughs file"),
        read_toml(scenario_path, "scenario file"),
        where=(str(boroughs_path), str(scenario_path)),
    )
