"""A force's day for ``fleet demo``, on a compressed clock: shifts, what officers record, battery packs.

A pool camera's day: docked at its station, checked out to an officer at the start of a shift
(the station's desk), recording during the shift, docked at its end (the dock inbox, which also
checks it back in). The clock is compressed: a shift of ``SHIFT_HOURS`` passes in a few
seconds, and the clips' ``recorded_at`` fall inside the real time the camera was out, so central
attributes each clip to the officer who held the camera. Nothing here talks to a process:
``simulation.demo`` drives the processes with what these functions decide.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from fleet.protocol import Battery
from simulation.camera import SimClip

SHIFT_HOURS = 8
DESIGN_MAH = 3000
CATEGORY_TAGS = ["stop_and_search", "public_order", "use_of_force", "domestic_abuse"]
"""Tags that name a category of config/retention.toml: their clips are kept longer."""
OTHER_TAGS = ["traffic", "arrest", "shoplifting"]


@dataclass(frozen=True)
class Pack:
    """A camera's battery pack: its wear (state of health), age in cycles and temperature at docking."""

    soh_pct: float
    cycles: int
    temperature_c: float = 29.5

    def reading(self, rng: random.Random) -> Battery:
        """What the camera's ``device.json`` reports as it docks (the dock has topped it up)."""
        return Battery(
            level_pct=round(rng.uniform(85, 100), 1),
            voltage_mv=rng.randint(3850, 4150),
            temperature_c=self.temperature_c,
            cycle_count=self.cycles,
            full_charge_mah=round(DESIGN_MAH * self.soh_pct / 100),
            design_mah=DESIGN_MAH,
        )


def packs(station_index: int, cameras: int, rng: random.Random) -> list[Pack]:
    """Packs of different ages, most healthy, a few flagged: at the first two stations one that no
    longer lasts a shift (a full charge covers under 10 of the 12 rated hours), at the second one
    due for replacement (below 80 % of design capacity), at the first one over temperature."""
    out = [Pack(soh_pct=round(rng.uniform(86, 99), 1), cycles=rng.randint(40, 420)) for _ in range(cameras)]
    if cameras >= 2 and station_index < 2:
        out[1] = Pack(soh_pct=82.0, cycles=610)
    if cameras >= 3 and station_index == 1:
        out[2] = Pack(soh_pct=74.5, cycles=890)
    if station_index == 0:
        out[0] = Pack(soh_pct=93.0, cycles=120, temperature_c=48.5)
    return out


def clips_of_shift(
    rng: random.Random,
    out_at: datetime,
    back_at: datetime,
    *,
    min_size: int,
    max_size: int,
    evidential_share: float = 0.12,
) -> list[SimClip]:
    """What an officer recorded between check-out and docking: 1-4 clips, some tagged with a
    retention category, a few marked evidential. ``recorded_at`` lies inside the real window."""
    span = max((back_at - out_at).total_seconds(), 0.002)
    clips = []
    for _ in range(rng.randint(1, 4)):
        tags = rng.sample(CATEGORY_TAGS, k=1) if rng.random() < 0.2 else []
        if rng.random() < 0.3:
            tags.append(rng.choice(OTHER_TAGS))
        clips.append(
            SimClip(
                size=rng.randint(min_size, max_size),
                recorded_at=out_at + timedelta(seconds=span * rng.uniform(0.05, 0.95)),
                clip_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                tags=sorted(tags),
                evidential=rng.random() < evidential_share,
                duration_s=round(rng.uniform(20, 900), 1),
                seed=rng.getrandbits(32),
            )
        )
    return sorted(clips, key=lambda c: c.recorded_at)


def demo_scenario(reference: Path, today: date) -> str:
    """The reference roll-out scenario moved to the demo's present: week 1 is this week (its
    Monday), the deadline 26 weeks on, so the burn-up's plan and progress share today's axis."""
    monday = today - timedelta(days=today.weekday())
    lines = []
    for line in reference.read_text().splitlines():
        key = line.split("=", 1)[0].strip()
        if key == "name":
            line = f'name = "Demo roll-out from {monday}: every neighbourhood and response officer in 26 weeks"'
        elif key == "start":
            line = f"start = {monday}             # Monday of week 1: this week"
        elif key == "deadline":
            line = f"deadline = {monday + timedelta(weeks=26)}"
        lines.append(line)
    return "\n".join(lines) + "\n"
