"""A force-sized central as a fleet manager finds it on a Monday morning, for the README's pictures.

Built with the real pipeline, not written into tables: ``fleet simulate``'s month (real central
under uvicorn, real station nodes, cameras docking on a compressed clock: battery telemetry,
clips uploaded over tus, events, the audit chain), five weeks of it ending last night, with
fewer clips than the benchmark's month (the pages show counts, not bytes) and some worn and
hot battery packs so the fleet's flags have something to flag. The force is near the end of its
roll-out: the reference scenario moved so that its week 1 is 26 weeks before the month. Before it, the
roll-out's office work through central's own services, as the commands and pages do it: the
officers imported, then each borough's cameras registered on delivery and issued to its officers
(``assignments.issue``) in the weeks of the borough's waves, so central attributes each clip at
ingest to whoever held its camera then. After it, the Monday's: clips held for complaints, the
retention job run now (the month's oldest routine clips are past their 31 days), and a user to
sign in as.

The state is kept under a folder (``STATE_DIR``) and reused until asked for a fresh one; a
``READY`` file written last says it is complete, with the options it was built with.
"""

from __future__ import annotations

import json
import shutil
import time
import tomllib
from collections import Counter, defaultdict
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fleet.errors import FleetError

ROOT = Path(__file__).resolve().parents[2]
STATE_DIR = ROOT / ".screenshots-state"
"""Where the state is kept between runs (gitignored)."""
READY = "READY"
BUILDING = "BUILDING"
USER = "f.manager"
PASSWORD = "screenshots password"  # a SCREENSHOTS value for a throwaway central, not a secret
DRAIN_TIMEOUT_S = 1800.0
"""After the month, how long the stations may take to hand everything over: a host busy with other
work took over the simulation's own 10 minutes."""
WORN_SHARE = 0.06
"""Cameras on an old pack: some won't last a shift, some are due for replacement."""
HOT_SHARE = 0.002
"""Dockings over temperature: a handful a day across the force."""
ISSUE_AT = timedelta(hours=8)
"""When on its Monday a wave's cameras are handed out: the first parade."""
HOLD_REASONS = ("complaint CMP-{n:04d}", "IOPC referral {n:04d}", "subject access request SAR-{n:04d}")


@dataclass(frozen=True)
class Size:
    """How big a force to build."""

    devices: int
    boroughs: int
    stations_per_borough: int
    days: int
    day_seconds: float
    hosts: int
    clips_per_shift: float
    outage_hours: float
    holds: int


FORCE = Size(
    devices=20_000,
    boroughs=32,
    stations_per_borough=2,
    days=33,
    day_seconds=5.0,
    hosts=4,
    clips_per_shift=0.1,
    outage_hours=12.0,
    holds=24,
)
"""The Met's size: 32 boroughs, 64 stations, 20,000 cameras; five weeks, a 12-hour central outage
in the last week (the stations' sync lag), about 12,000 clips."""
QUICK = Size(
    devices=60,
    boroughs=2,
    stations_per_borough=1,
    days=8,
    day_seconds=0.375,
    hosts=1,
    clips_per_shift=1.0,
    outage_hours=0.0,
    holds=2,
)
"""Small enough for a test: every page has rows, built in seconds; eight days, so that the
roll-out's second week starts inside the data whatever the weekday."""


@dataclass(frozen=True)
class Built:
    """What a built state holds that the pictures need (``READY``'s content)."""

    size: Size
    built_at: str
    build_s: float
    worn_serial: str
    """A camera on a worn pack: its battery health page."""
    held_clip: str
    counts: dict[str, int]
    issued_by_week: dict[str, int] = field(default_factory=dict)
    """Cameras issued by the Monday of their week: the burn-up's steps."""

    @staticmethod
    def config(root: Path) -> Path:
        return root / "central" / "central.toml"

    @classmethod
    def read(cls, root: Path) -> Built | None:
        ready = root / READY
        if not ready.is_file():
            return None
        try:
            data = json.loads(ready.read_text())
            return cls(**{**data, "size": Size(**data["size"])})
        except (ValueError, TypeError, KeyError):  # an older version's: built again
            return None


def state(root: Path, size: Size, work: Path, *, fresh: bool = False, log=print) -> Built:
    """The state under ``root``: the one there if complete and of this size, else built anew
    (in ``work``, a fast folder, then central's part copied to ``root``)."""
    built = None if fresh else Built.read(root)
    if built is not None and built.size != size:
        raise FleetError(f"{root} holds a force of another size: give another folder, or build it again (fresh)")
    if built is not None:
        log(f"reusing the force built {built.built_at} in {root} (FRESH=1 builds it again)")
        return built
    return build(root, size, work, log=log)


def build(root: Path, size: Size, work: Path, *, log=print) -> Built:
    """The month in ``work`` (stations and all), then central alone kept under ``root``."""
    from simulation.force.check import wait_until_applied
    from simulation.force.cluster import SimCluster, prepare_workdir
    from simulation.force.run import Plan, Simulation
    from simulation.force.usage import UsageModel, build_layout

    started = time.monotonic()
    if root.exists():
        if any(root.iterdir()) and not (root / READY).exists() and not (root / BUILDING).exists():
            raise FleetError(f"{root} is not empty and not a screenshots state: choose another folder")
        shutil.rmtree(root)
    root.mkdir(parents=True)
    (root / BUILDING).write_text("a screenshots state being built; cleared by the next build\n")
    prepare_workdir(work)
    # Central's folder is the kept one from the start (the stations' stay in the fast folder): served
    # later from the same place, central sees the same settings, not a config change to audit.
    (root / "central").mkdir()
    (work / "central").symlink_to(root / "central", target_is_directory=True)
    plan = Plan(
        devices=size.devices,
        boroughs=size.boroughs,
        stations_per_borough=size.stations_per_borough,
        days=size.days,
        outage_hours=size.outage_hours,
        outage_at_hours=(size.days - 5) * 24 + 6 if size.outage_hours else None,
        day_seconds=size.day_seconds,
        hosts=size.hosts,
        drain_timeout_s=DRAIN_TIMEOUT_S,
        model=UsageModel(
            clips_per_shift=size.clips_per_shift, evidential_share=0.05, worn_share=WORN_SHARE, hot_share=HOT_SHARE
        ),
    )
    layout = build_layout(plan.devices, plan.boroughs, plan.stations_per_borough, plan.seed)
    cluster = SimCluster(work, layout.stations, plan.hosts, plan.day_seconds)
    simulation = Simulation(plan, layout, cluster)
    config = work / "central" / "central.toml"
    log(
        f"building a force: {plan.days} days of {plan.devices:,} cameras at {len(layout.stations)} stations "
        f"in {len(layout.boroughs)} boroughs (`fleet simulate`'s pipeline, in {work})"
    )
    try:
        cluster.write_configs()
        _configure_central(config, simulation.sim_start)
        log("the roll-out before the month: officers, each borough's cameras registered and issued…")
        office = _roll_out(config, layout, simulation.sim_start, simulation.sim_start + timedelta(days=plan.days))
        last_line = [0.0]

        def progress(sim, now: datetime) -> None:
            if time.monotonic() - last_line[0] >= 15:
                last_line[0] = time.monotonic()
                day = min(plan.days, (now - sim.sim_start).days + 1)
                log(f"  day {day}/{plan.days}, {len(sim.records):,} dockings")

        outcome = simulation.run(progress)
        if not outcome.drained or not wait_until_applied(cluster.central_db, timeout=300):
            raise FleetError(f"the simulated month did not drain into central; see {root / 'logs'}")
    finally:
        cluster.stop_all()
        shutil.copytree(work / "logs", root / "logs", dirs_exist_ok=True)  # the work folder goes; its logs stay
    log("the Monday's office work: holds, the retention job…")
    clips = [clip_id for record in outcome.records for clip_id, _, _ in record.clips]
    monday = _monday(config, layout, clips, size.holds, office)
    shutil.rmtree(work)  # the stations' folders (the link to central's is removed, not followed)
    built = Built(
        size=size,
        built_at=datetime.now(UTC).isoformat(timespec="seconds"),
        build_s=round(time.monotonic() - started, 1),
        **monday,
    )
    (root / READY).write_text(json.dumps(asdict(built), indent=2) + "\n")
    (root / BUILDING).unlink()
    log(f"built in {built.build_s:.0f} s: {built.counts}")
    return built


ROLLED_OUT_WEEKS = 26
"""How far into its roll-out the force is when the month starts: a fleet manager's Monday near its
end, most boroughs' cameras issued before the month (so its clips are attributed), the last waves
in it, as the plan's deliveries allow."""


def _configure_central(config: Path, data_start: datetime) -> None:
    """The reference boroughs, roll-out (moved so that its week 1 is ``ROLLED_OUT_WEEKS`` before the
    month) and retention rules."""
    from simulation.local_cluster import write_toml
    from simulation.shifts import demo_scenario

    folder = config.parent
    reference = ROOT / "config"
    shutil.copyfile(reference / "boroughs.toml", folder / "boroughs.toml")
    shutil.copyfile(reference / "retention.toml", folder / "retention.toml")
    scenario = demo_scenario(reference / "rollout.toml", data_start.date() - timedelta(weeks=ROLLED_OUT_WEEKS))
    (folder / "rollout.toml").write_text(scenario.replace("Demo roll-out", "Roll-out"))
    values = tomllib.loads(config.read_text())
    values["rollout"] = {"boroughs": "boroughs.toml", "scenario": "rollout.toml"}
    values["retention"] = {**values.get("retention", {}), "rules": "retention.toml"}
    # Cameras issued to officers, as the scenario plans (its default policy and exceptions)
    plan = tomllib.loads(scenario)
    values["fleet"] = {
        **values.get("fleet", {}),
        "default_assignment_mode": plan.get("default_policy", "personal"),
        "assignment_modes": plan.get("policy", {}),
    }
    write_toml(config, values, "SCREENSHOTS configuration written by `make screenshots`: tokens are new every build.")


@contextmanager
def _central_clock(moment: datetime):
    """Central's services stamp ``moment`` as now: the build does in minutes what a force did over
    weeks (the HR import, deliveries and issues before the month's clips), and the burn-up and the
    clips' attribution read those stamps. Every module that stamps an import, a registration or an
    issue (its rows, history and audit record) reads the clock through its own name."""
    from unittest import mock

    with ExitStack() as stack:
        for module in (
            "central.registry.officers",
            "central.registry.devices",
            "central.registry.assignments",
            "central.evidence.audit",
        ):
            stack.enter_context(mock.patch(f"{module}.utc_now", return_value=moment))
        yield


def _issue_dates(
    rollout_plan, cameras_of: dict[str, list], start: datetime, end: datetime
) -> list[tuple[datetime, list]]:
    """(when, cameras) handed out: each borough's cameras shared among its waves as the plan shares
    them, each on its wave's Monday (a wave planned after the month is done on its last day). In
    time order."""
    waves: dict[str, list] = defaultdict(list)
    for wave in rollout_plan.waves:
        waves[wave.borough].append(wave)
    batches: list[tuple[datetime, list]] = []
    for borough, cameras in cameras_of.items():
        planned = waves.get(borough) or []
        total = sum(w.cameras for w in planned)
        if not total:  # outside the plan: handed out at the start
            batches.append((start, cameras))
            continue
        done, given = 0, 0
        for wave in planned:
            done += wave.cameras
            upto = round(len(cameras) * done / total)
            when = min(datetime.combine(wave.starts, datetime.min.time(), UTC) + ISSUE_AT, end)
            if upto > given:
                batches.append((when, cameras[given:upto]))
            given = upto
    return sorted(batches, key=lambda batch: batch[0])


def _roll_out(config: Path, layout, start: datetime, end: datetime) -> dict:
    """Before the month (central not serving yet): the officers imported at its start, then each
    borough's cameras registered as delivered (model, borough, home station) and issued, one to an
    officer, in the weeks the roll-out plan hands them out."""
    from central.core.services import open_services
    from central.registry.assignments import IssueRequest
    from central.registry.devices import DeviceRegistration
    from fleet.config import CentralSettings, load_settings
    from fleet.events import Officer
    from simulation.force.deploy import MODEL

    settings = load_settings(config, CentralSettings)
    cameras_of: dict[str, list] = defaultdict(list)
    for camera in layout.cameras:
        cameras_of[layout.stations[camera.home].borough].append(camera)
    officers: list[Officer] = []
    for borough, cameras in cameras_of.items():  # a few more officers than cameras: the roll-out goes on
        for k in range(len(cameras) + max(1, len(cameras) // 10)):
            officers.append(
                Officer(
                    officer_id=f"PC{len(officers) + 1:05d}",
                    borough=borough,
                    role="response" if k % 3 else "neighbourhood",
                )
            )
    pool: dict[str, list[str]] = defaultdict(list)
    for officer in officers:
        pool[officer.borough].append(officer.officer_id)
    without_camera = {borough: iter(ids) for borough, ids in pool.items()}
    issued: Counter[str] = Counter()  # by the Monday of the week
    with open_services(settings) as services:
        handed_out = _issue_dates(services.rollout.plan(), cameras_of, start, end)
        with _central_clock(min([start, *(when for when, _ in handed_out)])):  # before any issue
            services.officers.upsert(officers, "import:hr")
        for when, cameras in handed_out:
            borough = layout.stations[cameras[0].home].borough
            with _central_clock(when):
                services.devices.register(
                    [
                        DeviceRegistration(
                            serial=c.serial,
                            model=MODEL,
                            borough=borough,
                            home_station=layout.stations[c.home].station_id,
                        )
                        for c in cameras
                    ],
                    "l.logistics",
                )
                if settings.fleet.assignment_mode(borough) != "personal":
                    continue  # a pool borough's cameras are signed out at the desk, not issued
                for camera in cameras:
                    services.assignments.issue(
                        IssueRequest(device_serial=camera.serial, officer_id=next(without_camera[borough])),
                        "s.sergeant",
                        settings.fleet.assignment_mode,
                    )
            issued[str(when.date() - timedelta(days=when.weekday()))] += len(cameras)
    return {"officers": len(officers), "issued": sum(issued.values()), "issued_by_week": dict(sorted(issued.items()))}


def _monday(config: Path, layout, clips: list[str], holds: int, office: dict) -> dict:
    """Holds, the retention job, the user: central's services."""
    from central.core.services import open_services
    from central.evidence.retention import HoldRequest
    from central.registry import attribution
    from fleet.config import CentralSettings, load_settings
    from simulation.force.usage import has_worn_pack

    settings = load_settings(config, CentralSettings)
    with open_services(settings) as services:
        held = clips[:: max(1, len(clips) // holds)][:holds]
        for n, clip_id in enumerate(held):
            reason = HOLD_REASONS[n % len(HOLD_REASONS)].format(n=2231 + n)
            services.retention.place_hold(HoldRequest(kind="clip", clip_id=clip_id, reason=reason), "i.manager")
        report = services.retention.run()
        services.users.add(USER, "admin", "screenshots", password=PASSWORD)
        with services.store.writer.read() as db:
            unattributed = attribution.unattributed_count(db)
    return {
        "worn_serial": next(c.serial for c in layout.cameras if has_worn_pack(c.serial, WORN_SHARE)),
        "held_clip": held[0],
        "counts": {
            "cameras": len(layout.cameras),
            "officers": office["officers"],
            "issued": office["issued"],
            "clips": len(clips),
            "attributed": len(clips) - unattributed,
            "held": len(held),
            "soft_deleted": report.soft_deleted,
        },
        "issued_by_week": office["issued_by_week"],
    }
