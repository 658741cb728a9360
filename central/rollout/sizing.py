"""How many cameras, spares and dock slots a borough needs: the charging model.

A camera docks at the end of its shift and needs up to ``recharge_hours`` on a dock slot
(uploading meanwhile). Shifts start every ``24 / shifts_per_day`` hours, so the cameras of
``ceil(recharge / spacing)`` consecutive shifts are on the docks at once: dock slots
needed = officers on the busiest shift × that many shifts. A pool camera is out for a
shift and then charging, ``shift + recharge`` hours, so it can serve one shift in every
``ceil((shift + recharge) / spacing)``: pool cameras = officers on the busiest shift × that
(never more than one per officer). Personal issue is one camera per officer. Spares are
``spares_ratio`` of the cameras, rounded up per borough.

With the Axon Body 2 class figures (9 h recharge, 10 h shifts, a shift every 8 h) that is
2 shifts on the docks and a pool turn of 3 shifts.
"""

from __future__ import annotations

import math

from central.rollout.scenario import BoroughSpec, Charging, Policy, Scenario

_EPSILON = 1e-9  # so 0.25 × 400 is 100, not 100.00000000000001 rounded up


def ceil(x: float) -> int:
    return math.ceil(x - _EPSILON)


def spacing_hours(charging: Charging) -> float:
    return 24 / charging.shifts_per_day


def dock_turns(charging: Charging) -> int:
    """Shifts whose cameras are charging at the same time."""
    return max(1, ceil(charging.recharge_hours / spacing_hours(charging)))


def pool_turns(charging: Charging) -> int:
    """Shifts a pool camera needs to go out, come back and be charged again."""
    return max(1, ceil((charging.shift_hours + charging.recharge_hours) / spacing_hours(charging)))


def on_shift(officers: int, charging: Charging) -> int:
    return ceil(officers * charging.on_shift_share)


def cameras_for(officers: int, policy: Policy, charging: Charging) -> int:
    """Cameras that equip this many officers under the policy (spares not included)."""
    if policy == "personal":
        return officers
    return min(officers, on_shift(officers, charging) * pool_turns(charging))


def docks_for(officers: int, policy: Policy, charging: Charging) -> int:
    """Dock slots this many equipped officers need."""
    return min(cameras_for(officers, policy, charging), on_shift(officers, charging) * dock_turns(charging))


def spares_for(cameras: int, ratio: float) -> int:
    return ceil(cameras * ratio)


def most_officers_for_docks(slots: int, officers: int, policy: Policy, charging: Charging) -> int:
    """The most of ``officers`` whose cameras ``slots`` dock slots can charge (docks_for is monotone)."""
    low, high = 0, officers
    while low < high:
        middle = (low + high + 1) // 2
        if docks_for(middle, policy, charging) <= slots:
            low = middle
        else:
            high = middle - 1
    return low


def split_by_slots(officers: int, stations: dict[str, int]) -> dict[str, int]:
    """Officers per station, in proportion to its dock slots (largest remainder, ties by name)."""
    total = sum(stations.values())
    if not stations:
        return {}
    if total == 0:
        return {name: (officers if i == 0 else 0) for i, name in enumerate(sorted(stations))}
    exact = {name: officers * slots / total for name, slots in stations.items()}
    shares = {name: math.floor(value) for name, value in exact.items()}
    left = officers - sum(shares.values())
    for name in sorted(stations, key=lambda n: (-(exact[n] - shares[n]), n))[:left]:
        shares[name] += 1
    return shares


def slots_to_add(officers: int, stations: dict[str, int], policy, charging) -> dict[str, int]:
    """Dock slots to add per station so that each has enough for the officers it then serves.

    Officers follow dock slots (``split_by_slots``), so slots added to a short station draw
    officers from the others, which may leave one of those short: added until none is. Each
    round adds slots and none takes any away, so it ends (bounded all the same)."""
    slots = dict(stations)
    added = dict.fromkeys(stations, 0)
    for _ in range(1000):
        split = split_by_slots(officers, slots)
        short = {s: docks_for(split[s], policy, charging) - slots[s] for s in slots}
        short = {s: n for s, n in short.items() if n > 0}
        if not short:
            break
        for station, n in short.items():
            slots[station] += n
            added[station] += n
    return added


class BoroughNeeds:
    """What one borough needs in total under a scenario.

    Its officers are shared among its stations by dock slots (``split_by_slots``) and each
    station's docks charge its own officers' cameras, so the borough's dock need and the
    officers its docks can serve are sums over its stations.
    """

    __slots__ = (
        "cameras",
        "dock_capped",
        "dock_slots",
        "docks_needed",
        "name",
        "officers",
        "policy",
        "spares",
        "stations",
        "to_add",
    )

    def __init__(self, name: str, borough: BoroughSpec, scenario: Scenario) -> None:
        charging = scenario.charging
        self.name = name
        self.policy = scenario.policy_of(name)
        self.officers = borough.officers(scenario.roles)
        self.cameras = cameras_for(self.officers, self.policy, charging)
        self.spares = spares_for(self.cameras, scenario.spares_ratio)
        self.dock_slots = borough.dock_slots
        self.stations: dict[str, tuple[int, int, int]] = {}
        """Station → (dock slots, officers, dock slots needed)."""
        capped = 0
        for station, officers in split_by_slots(self.officers, borough.stations).items():
            slots = borough.stations[station]
            self.stations[station] = (slots, officers, docks_for(officers, self.policy, charging))
            capped += most_officers_for_docks(slots, officers, self.policy, charging)
        self.docks_needed = (
            sum(need for _, _, need in self.stations.values())
            if self.stations
            else docks_for(self.officers, self.policy, charging)
        )
        self.dock_capped = capped if self.stations else 0
        """The most officers its docks can serve (= officers when every station's docks suffice)."""
        self.to_add = slots_to_add(self.officers, borough.stations, self.policy, charging)
        """Station → dock slots to add so every station's docks suffice, its officers shared again."""

    @property
    def dock_shortfall(self) -> int:
        if not self.stations:
            return self.docks_needed  # no station at all: every slot is missing
        return sum(self.to_add.values())

    def with_enough_docks(self) -> BoroughNeeds:
        """The same borough with every station's shortfall made good (to plan past it)."""
        copy = object.__new__(BoroughNeeds)
        for name in self.__slots__:
            setattr(copy, name, getattr(self, name))
        copy.stations = {
            s: (slots + self.to_add[s], officers, need) for s, (slots, officers, need) in self.stations.items()
        }
        copy.dock_slots = max(self.docks_needed, sum(slots for slots, _, _ in copy.stations.values()))
        copy.dock_capped = self.officers
        return copy
