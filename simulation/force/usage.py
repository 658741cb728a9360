"""How a force uses its cameras for a month: which camera docks where and when, with what.

Seeded and pure: the same options give the same dockings, clip for clip, byte for byte.

- **Where.** Boroughs and their stations come from the roll-out planner's boroughs file
  (``config/boroughs.toml``: 32 boroughs, real station names, officers by role, dock slots);
  a borough's cameras are in proportion to its officers in scope (neighbourhood and
  response), spread over its stations by dock slots. Past the file, boroughs and stations
  are made up. A camera docks at its home station, now and then (``away_share``) at
  another station of its borough (an officer posted elsewhere for the day).
- **When.** Officers work ten-hour shifts starting 07:00, 15:00 and 23:00 (the planner's
  charging model), each camera on one of the three, rotating weekly. On a given day a
  camera goes out with probability ``shifts_per_week / 7`` (rest days, leave, courts,
  training, spares and pool cameras not drawn: not every camera docks every day) and docks
  when its shift ends, up to 45 minutes later (the queue at the dock).
- **What.** Every docking writes ``device.json`` telemetry: the battery after a shift
  (level 8–60 %, 24–38 °C), one charge cycle per shift and capacity fading from a
  per-camera start. A shift records a Poisson number of clips (mean ``clips_per_shift``)
  during the shift, each ``evidential_share`` likely to be evidential (~5 % of footage is
  kept past the standard retention), with small random bytes: the simulation is about
  coordination, not disk.
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import msgspec

from central.rollout.scenario import BoroughsFile
from fleet.config import read_toml
from fleet.protocol import Battery
from simulation.camera import SimClip, random_shift

SHIFT_STARTS_H = (7, 15, 23)
SHIFT_HOURS = 10
DOCK_QUEUE_MIN = 45
DESIGN_MAH = 3000
DEFAULT_BOROUGHS_FILE = Path(__file__).resolve().parents[2] / "config" / "boroughs.toml"


@dataclass(frozen=True)
class Station:
    station_id: str
    borough: str


@dataclass(frozen=True)
class Camera:
    serial: str
    home: int
    """Index of its home station in ``Layout.stations``."""
    neighbours: tuple[int, ...]
    """The other stations of its borough."""
    slot: int
    """Its shift (0 early, 1 late, 2 night) in the first week."""
    start_capacity: float
    """Full-charge capacity as a share of design at the start of the month."""
    start_cycles: int


@dataclass
class Layout:
    boroughs: list[str]
    stations: list[Station]
    cameras: list[Camera]


@dataclass(frozen=True)
class UsageModel:
    shifts_per_week: float = 1.25
    clips_per_shift: float = 0.7
    evidential_share: float = 0.05
    away_share: float = 0.05
    min_clip_bytes: int = 1024
    max_clip_bytes: int = 8 * 1024
    worn_share: float = 0.0
    """Share of cameras on an old pack (capacity 69-84 % of design, fading ten times faster), so the
    fleet's flags have something to show; 0 for the month the benchmarks measure."""
    hot_share: float = 0.0
    """Chance a docking reports its pack over temperature (46-52 °C)."""


@dataclass
class Docking:
    at: datetime
    """Simulated time the camera docked (its ``device.json`` ``docked_at``)."""
    station: int
    serial: str
    battery: Battery
    clips: list[SimClip] = field(default_factory=list)

    @property
    def folder_name(self) -> str:
        """Time first, so the station's scan (in name order) takes cameras in the order they docked."""
        return f"{self.at:%Y%m%dT%H%M%S}-{self.serial}"


def _borough_specs(path: Path | None) -> list[tuple[str, int, dict[str, int]]]:
    """(name, officers in scope, {station id: dock slots}) from the boroughs file, in file order."""
    if path is None or not path.is_file():
        return []
    spec = msgspec.convert(read_toml(path, "boroughs file"), BoroughsFile)
    return [(name, b.neighbourhood + b.response, dict(b.stations)) for name, b in spec.boroughs.items()]


def build_layout(
    devices: int,
    boroughs: int,
    stations_per_borough: int,
    seed: int,
    boroughs_file: Path | None = DEFAULT_BOROUGHS_FILE,
) -> Layout:
    """Boroughs, their stations and every camera with its home station and shift."""
    known = _borough_specs(boroughs_file)
    rng = random.Random(f"layout-{seed}")
    names: list[str] = []
    weights: list[float] = []  # officers per borough; a borough with none listed gets the mean
    station_slots: list[list[tuple[str, int]]] = []
    for index in range(boroughs):
        if index < len(known):
            name, officers, listed = known[index]
        else:
            name, officers, listed = f"Borough {index + 1}", 0, {}
        ids = list(listed)[:stations_per_borough]
        base = ids[0] if ids else name.lower().replace(" ", "-")
        ids += [f"{base}-{k}" for k in range(len(ids) + 1, stations_per_borough + 1)]
        names.append(name)
        weights.append(officers)
        station_slots.append([(sid, listed.get(sid, 0)) for sid in ids])
    mean = sum(weights) / max(1, sum(1 for w in weights if w)) if any(weights) else 1
    weights = [w or mean for w in weights]

    stations = [Station(sid, names[b]) for b, slots in enumerate(station_slots) for sid, _ in slots]
    first = [0]
    for slots in station_slots:
        first.append(first[-1] + len(slots))
    per_borough = _apportion(devices, weights)
    cameras: list[Camera] = []
    for b, count in enumerate(per_borough):
        slots = station_slots[b]
        per_station = _apportion(count, [s or 1 for _, s in slots])
        for k, n in enumerate(per_station):
            home = first[b] + k
            neighbours = tuple(i for i in range(first[b], first[b + 1]) if i != home)
            for _ in range(n):
                cameras.append(
                    Camera(
                        serial=f"BWV-{len(cameras):06d}",
                        home=home,
                        neighbours=neighbours,
                        slot=rng.randrange(3),
                        start_capacity=rng.uniform(0.82, 1.0),
                        start_cycles=rng.randint(20, 600),
                    )
                )
    return Layout(boroughs=names, stations=stations, cameras=cameras)


def _apportion(total: int, weights: Sequence[float]) -> list[int]:
    """``total`` split in proportion to ``weights`` (largest remainders), summing exactly."""
    scale = total / sum(weights)
    shares = [w * scale for w in weights]
    counts = [math.floor(s) for s in shares]
    for i in sorted(range(len(shares)), key=lambda i: counts[i] - shares[i])[: total - sum(counts)]:
        counts[i] += 1
    return counts


class Month:
    """The month's dockings, one day of shifts at a time (days in order: one seeded stream)."""

    def __init__(self, layout: Layout, model: UsageModel, start: datetime, seed: int) -> None:
        self.layout, self.model, self.start = layout, model, start
        self._rng = random.Random(f"usage-{seed}")
        self._shifts = [0] * len(layout.cameras)
        self._next_day = 0

    def day(self, day: int) -> list[Docking]:
        """Dockings after the shifts that start on ``day`` (a night shift docks the morning after)."""
        if day != self._next_day:
            raise ValueError(f"days are generated in order: expected day {self._next_day}, not {day}")
        self._next_day += 1
        rng, model = self._rng, self.model
        out_chance = min(1.0, model.shifts_per_week / 7)
        midnight = self.start + timedelta(days=day)
        ends = [midnight + timedelta(hours=h + SHIFT_HOURS) for h in SHIFT_STARTS_H]
        dockings = []
        for index, camera in enumerate(self.layout.cameras):
            if rng.random() >= out_chance:
                continue
            end = ends[(camera.slot + day // 7) % 3]
            at = end + timedelta(seconds=rng.uniform(0, DOCK_QUEUE_MIN * 60))
            station = camera.home
            if camera.neighbours and rng.random() < model.away_share:
                station = rng.choice(camera.neighbours)
            self._shifts[index] += 1
            count = _poisson(rng, model.clips_per_shift)
            clips = (
                random_shift(
                    rng,
                    count,
                    min_size=model.min_clip_bytes,
                    max_size=model.max_clip_bytes,
                    evidential_share=model.evidential_share,
                    now=end,
                )
                if count
                else []
            )
            dockings.append(
                Docking(
                    at=at,
                    station=station,
                    serial=camera.serial,
                    clips=clips,
                    battery=_battery(rng, camera, self._shifts[index], model),
                )
            )
        dockings.sort(key=lambda d: (d.at, d.serial))
        return dockings


def has_worn_pack(serial: str, share: float) -> bool:
    """Whether a camera is on an old pack (``UsageModel.worn_share``): chosen by serial, not drawn,
    so the benchmarks' month (no worn packs) keeps its random stream."""
    return share > 0 and zlib.crc32(serial.encode()) % 10_000 < share * 10_000


def _battery(rng: random.Random, camera: Camera, shifts: int, model: UsageModel) -> Battery:
    cycles = camera.start_cycles + shifts
    capacity = camera.start_capacity * (1 - 0.0002 * shifts)
    if has_worn_pack(camera.serial, model.worn_share):
        cycles += 600
        capacity = camera.start_capacity * (0.84 - 0.002 * shifts)
    level = round(rng.uniform(8, 60), 1)
    temperature = round(rng.uniform(24, 38), 1)
    if model.hot_share and rng.random() < model.hot_share:
        temperature = round(rng.uniform(46, 52), 1)
    return Battery(
        level_pct=level,
        voltage_mv=int(3300 + 9 * level),
        temperature_c=temperature,
        cycle_count=cycles,
        full_charge_mah=int(DESIGN_MAH * capacity),
        design_mah=DESIGN_MAH,
    )


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method: the means here are small (under one clip a shift)."""
    if mean <= 0:
        return 0
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count
