"""The simulated month, driven on a compressed clock: docking, the outage, the drain.

One simulated day lasts ``day_seconds`` of wall time. Cameras dock at their simulated
times (the dock folder is written then, ``DOCKED`` last, ``docked_at`` and ``recorded_at``
in simulated time) and are taken out of the dock once the station has ingested them. In
the middle of the month central is stopped for the outage (SIGTERM, as an operator would)
and started again so that it answers when the outage ends; the stations keep ingesting and
queueing meanwhile. After the month everything drains; then ``check`` compares what
central holds with what the cameras docked.

The month is placed just before the run (it ends at yesterday's midnight UTC, so that the
last night shift's dockings, up to ten hours later, are past too): every simulated time is
in the past, as it must be, since central trusts a camera's clock only up to the moment a
station reported the docking.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from fleet.errors import FleetError
from fleet.protocol import Battery
from simulation.camera import SimCamera, UpdateFailures, undock
from simulation.force import deploy as deploying
from simulation.force.cluster import SimCluster
from simulation.force.usage import Docking, Layout, Month, UsageModel

DONE_SETTLE_S = 0.5
"""A folder is taken out of the dock this long after it was seen ingested (the station may still be wiping it)."""
DEPLOY_SETTLE_S = 2.0
"""… with ``--deploy``: the station hands updates over after ingesting a whole pass of folders, so
a camera stays docked a little longer (2 s is five simulated hours at 10 s a day: a night's charge).
A camera taken out before its update was written is offered it again at its next dock."""
DOCK_BATCH = 100
"""At most this many cameras dock per pass of the driver, so it also takes ingested ones out when behind."""
UNDOCK_WINDOW = 64
TICK_S = 0.05
"""The driver's pass: docking times are simulated times written into the folders, so a
coarser pass only delays when a folder appears (by 0.05 s = 7 simulated minutes)."""
UNDOCK_EVERY_S = 0.25
"""How often the docked folders are looked at for INGESTED.json: each look stats up to 64
folders per station, and on 2 cores the driver's polling takes CPU from central."""
"""How many of each station's oldest docked folders are looked at per pass (a station ingests in name order)."""


@dataclass(frozen=True)
class Plan:
    """What to simulate (validated by the command)."""

    devices: int = 20_000
    boroughs: int = 32
    stations_per_borough: int = 2
    days: int = 30
    outage_hours: float = 24.0
    outage_at_hours: float | None = None
    """Start of the outage, in hours from the start of the month; None: centred on the middle."""
    seed: int = 7
    day_seconds: float = 10.0
    hosts: int = 4
    model: UsageModel = field(default_factory=UsageModel)
    sample_s: float | None = None
    """How often every station's status is read; None: ``sample_every_s``."""
    drain_timeout_s: float = 600.0
    database: str = "sqlite"
    replicas: int = 1
    kill_replica_at_hours: float | None = None
    """When the leading replica is SIGKILLed (and started again at once), in hours from the start of
    the month; None: never."""
    deploy: deploying.DeployPlan | None = None
    """A firmware release to every camera during the month (``simulation.force.deploy``); None: none."""

    @property
    def outage_start_h(self) -> float:
        if self.outage_at_hours is not None:
            return self.outage_at_hours
        return self.days * 12 - self.outage_hours / 2

    @property
    def sample_every_s(self) -> float:
        """At most every 5 s (half a simulated day by default: on 2 cores, reading 64 statuses
        every 2 s took over half the driver's thread from docking), but at least twice in the
        outage, so that the samples see the backlog it builds."""
        if self.sample_s is not None:
            return self.sample_s
        outage_wall_s = self.outage_hours / 24 * self.day_seconds
        return min(5.0, max(0.5, outage_wall_s / 2)) if self.outage_hours else 5.0

    @property
    def speed(self) -> float:
        """Simulated seconds per wall second."""
        return 86_400 / self.day_seconds


@dataclass
class DockRecord:
    """One docking as the camera wrote it, and when (wall clock) things happened to it."""

    station: int
    serial: str
    docked_at: datetime
    battery: Battery
    clips: list[tuple[str, str, int]]
    """(clip_id, sha256, size) of every clip in the folder."""
    folder: Path
    wall_docked: float
    evidential: int = 0
    wall_ingested: float | None = None
    in_outage: bool = False
    recorded_at: list[datetime] = field(default_factory=list)
    """When each of ``clips`` was recorded (camera time)."""


@dataclass
class Sample:
    wall: float
    """Seconds since the month started, when every station had answered."""
    began: float
    """… when the first was asked."""
    sim_h: float
    central_up: bool
    pending_clips: int
    pending_events: int
    verified_clips: int
    failed_folders: int


@dataclass
class OutageLog:
    stop_wall: float | None = None
    """Seconds since the month started when central was stopped (it answered no more)."""
    back_wall: float | None = None
    """… and when it answered again."""
    startup_s: float = 0.0


@dataclass
class KillLog:
    """The replica SIGKILLed in the month (``Plan.kill_replica_at_hours``)."""

    replica: int | None = None
    killed_wall: float | None = None
    """Seconds since the month started when it was killed."""
    takeover_s: float | None = None
    """… until another replica led the jobs."""
    back_wall: float | None = None
    """… when it answered again."""


@dataclass
class Outcome:
    records: list[DockRecord]
    samples: list[Sample]
    outage: OutageLog
    sim_start: datetime
    month_wall_s: float
    drain_wall_s: float
    drained: bool
    wall_epoch: float
    """``time.time()`` when the month started: the zero of every ``wall`` above."""
    kill: KillLog = field(default_factory=KillLog)
    deploy: deploying.DeployLog | None = None


def month_start(days: int, now: datetime) -> datetime:
    """The month ends at the midnight UTC before last: its last dockings, up to ten hours after
    its end, are in the past at any time of day."""
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days + 1)


class Simulation:
    def __init__(self, plan: Plan, layout: Layout, cluster: SimCluster) -> None:
        self.plan, self.layout, self.cluster = plan, layout, cluster
        self.sim_start = month_start(plan.days, datetime.now(UTC))
        self.month = Month(layout, plan.model, self.sim_start, plan.seed)
        self.queue: list[tuple[datetime, int, Docking]] = []
        self._generated = 0
        self._order = 0
        self.records: list[DockRecord] = []
        self.cameras: dict[str, SimCamera] = {}
        """Each camera as it is between docks (its firmware, its last update's outcome)."""
        self.pending: list[deque[DockRecord]] = [deque() for _ in layout.stations]
        self.seen_done: dict[int, float] = {}
        self._undocked_at = 0.0
        self.samples: list[Sample] = []
        self.outage = OutageLog()
        self.kill = KillLog()
        self._central_job: threading.Thread | None = None
        self._central_error: BaseException | None = None
        self.mono0 = 0.0
        self.epoch0 = 0.0
        self._stop_sampling = threading.Event()
        self.deploy = deploying.DeployLog() if plan.deploy is not None else None
        self.vendor_key = deploying.VendorKey() if plan.deploy is not None else None
        self._failures = UpdateFailures(default=plan.deploy.failure_rate if plan.deploy else 0.0, seed=plan.seed)
        self._failed_attempts = 0

    # -- clock -----------------------------------------------------------------------------

    def sim_now(self) -> datetime:
        return self.sim_start + timedelta(seconds=(time.monotonic() - self.mono0) * self.plan.speed)

    def sim_hours(self, moment: datetime) -> float:
        return (moment - self.sim_start).total_seconds() / 3600

    def wall(self) -> float:
        return time.monotonic() - self.mono0

    # -- the month -------------------------------------------------------------------------

    def run(self, progress=None) -> Outcome:
        plan = self.plan
        self.outage.startup_s = self.cluster.start_central()
        self.cluster.start_hosts()
        if self.deploy is not None and self.vendor_key is not None and plan.deploy is not None:
            with self.cluster.admin() as admin:
                deploying.start(admin, self.layout, self.vendor_key, plan.deploy, plan.seed, self.deploy, plan.speed)
        end = self.sim_start + timedelta(days=plan.days)
        outage_start, outage_end = self.outage_window
        self._generate_through(self.sim_start + timedelta(days=1))
        self.mono0, self.epoch0 = time.monotonic(), time.time()
        sampler = threading.Thread(target=self._sample_forever, name="sampler", daemon=True)
        sampler.start()
        phase = "before" if plan.outage_hours > 0 else "after"
        try:
            while True:
                now = self.sim_now()
                self._generate_through(now + timedelta(days=1))
                self._dock_due(now)
                self._undock_ingested()
                phase = self._outage_step(phase, now, outage_start, outage_end)
                self._kill_step(now)
                self._count_days(now)
                if progress:
                    progress(self, now)
                if now >= end and not self.queue and self._generated >= plan.days and phase == "after":
                    break
                self._check_processes(phase)
                time.sleep(TICK_S)
            month_wall = self.wall()
            drained = self._drain(progress)
            self._count_days(end, final=True)
        finally:
            self._stop_sampling.set()
            sampler.join(timeout=30)
        return Outcome(
            records=self.records,
            samples=self.samples,
            outage=self.outage,
            kill=self.kill,
            sim_start=self.sim_start,
            month_wall_s=month_wall,
            drain_wall_s=self.wall() - month_wall,
            drained=drained,
            wall_epoch=self.epoch0,
            deploy=self.deploy,
        )

    def _count_days(self, now: datetime, final: bool = False) -> None:
        """With ``--deploy``: the cameras' account at the end of each simulated day (the last one, the
        month's last day, once everything is in: its cameras taken out of the dock after the drain)."""
        if self.deploy is None:
            return
        while len(self.deploy.days) < self.plan.days:
            day = len(self.deploy.days)
            if day == self.plan.days - 1 and not final:
                return
            if now < self.sim_start + timedelta(days=day + 1):
                return
            deploying.count_day(self.deploy, day + 1, list(self.cameras.values()), self._failed_attempts)

    def _generate_through(self, moment: datetime) -> None:
        """Keep the next day's dockings queued ahead of the clock (night shifts dock the morning after)."""
        while self._generated < self.plan.days and self.sim_start + timedelta(days=self._generated) <= moment:
            for docking in self.month.day(self._generated):
                heapq.heappush(self.queue, (docking.at, self._order, docking))
                self._order += 1
            self._generated += 1

    @property
    def outage_window(self) -> tuple[datetime, datetime]:
        start = self.sim_start + timedelta(hours=self.plan.outage_start_h)
        return start, start + timedelta(hours=self.plan.outage_hours)

    def camera(self, serial: str) -> SimCamera:
        camera = self.cameras.get(serial)
        if camera is None:
            camera = self.cameras[serial] = SimCamera(serial, model=deploying.MODEL, failures=self._failures)
        return camera

    def _dock_due(self, now: datetime, most: int = DOCK_BATCH) -> None:
        outage_start, outage_end = self.outage_window
        while self.queue and self.queue[0][0] <= now and most > 0:
            most -= 1
            _, _, d = heapq.heappop(self.queue)
            folder = self.camera(d.serial).dock(
                self.cluster.dock_dir(d.station),
                d.clips,
                folder_name=d.folder_name,
                docked_at=d.at,
                battery=d.battery,
            )
            record = DockRecord(
                station=d.station,
                serial=d.serial,
                docked_at=d.at,
                battery=d.battery,
                clips=[(c.clip_id, _sha256(c), c.size) for c in d.clips],
                folder=folder,
                wall_docked=time.time(),
                evidential=sum(c.evidential for c in d.clips),
                in_outage=outage_start <= d.at < outage_end,
                recorded_at=[c.recorded_at for c in d.clips],
            )
            self.records.append(record)
            self.pending[d.station].append(record)

    def _undock_ingested(self) -> None:
        """Take out of its dock every camera its station has ingested, looking at the oldest few of each
        station (a folder left behind would make every scan of that station list it again)."""
        now = time.monotonic()
        if now - self._undocked_at < UNDOCK_EVERY_S:
            return
        self._undocked_at = now
        settle = DEPLOY_SETTLE_S if self.deploy is not None else DONE_SETTLE_S
        for queue in self.pending:
            for record in itertools.islice(queue, UNDOCK_WINDOW):
                if record.wall_ingested is None and _ingested(record.folder):
                    record.wall_ingested = time.time()
                    self.seen_done[id(record)] = now
            settled = [
                r
                for r in itertools.islice(queue, UNDOCK_WINDOW)
                if r.wall_ingested is not None and now - self.seen_done[id(r)] >= settle
            ]
            for record in settled:
                queue.remove(record)
                del self.seen_done[id(record)]
                report = self.camera(record.serial).take_update(record.folder)  # it reboots into it
                undock(record.folder)
                if report is not None and not report.ok:
                    self._failed_attempts += 1

    def _outage_step(self, phase: str, now: datetime, start: datetime, end: datetime) -> str:
        """before → down (central stopped) → restarting → after; central is started and stopped off this thread."""
        if self._central_error is not None:
            raise self._central_error
        busy = self._central_job is not None and self._central_job.is_alive()
        if phase == "before" and now >= start and not busy:  # a replica being killed and restarted: right after
            self._in_background(self._stop_central)
            return "down"
        lead = timedelta(seconds=self.outage.startup_s * self.plan.speed)
        if phase == "down" and not busy and now >= end - lead:
            self._in_background(self._restart_central)
            return "restarting"
        if phase == "restarting" and not busy:
            return "after"
        return phase

    def _kill_step(self, now: datetime) -> None:
        """SIGKILL the leading replica once, at ``kill_replica_at_hours`` (off this thread, as the outage)."""
        at = self.plan.kill_replica_at_hours
        if at is None or self.kill.killed_wall is not None or self._busy():
            return
        if now >= self.sim_start + timedelta(hours=at):
            self.kill.killed_wall = self.wall()
            self._in_background(self._kill_replica)

    def _kill_replica(self) -> None:
        self.kill.killed_wall = self.wall()
        self.kill.replica, self.kill.takeover_s = self.cluster.kill_leader()
        self.kill.back_wall = self.wall()

    def _busy(self) -> bool:
        return self._central_job is not None and self._central_job.is_alive()

    def _in_background(self, job) -> None:
        def run() -> None:
            try:
                job()
            except BaseException as exc:  # raised again on the driver's thread
                self._central_error = exc

        self._central_job = threading.Thread(target=run, name="central-control", daemon=True)
        self._central_job.start()

    def _stop_central(self) -> None:
        self.cluster.stop_central()
        self.outage.stop_wall = self.wall()

    def _restart_central(self) -> None:
        self._sample_once()  # the backlog the outage built, whatever the sampler's timing on a loaded host
        self.cluster.start_central()
        self.outage.back_wall = self.wall()

    def _check_processes(self, phase: str) -> None:
        self.cluster.check_hosts()
        if phase in ("before", "after") and not self._busy():  # not while a replica is killed and restarted
            self.cluster.check_central()

    def _sample_forever(self) -> None:
        """Every ``sample_every_s``: every station's queue, summed (on its own thread: a slow
        station never stalls docking)."""
        while not self._stop_sampling.is_set():
            started = time.monotonic()
            self._sample_once()
            self._stop_sampling.wait(max(0.0, self.plan.sample_every_s - (time.monotonic() - started)))

    def _sample_once(self) -> None:
        started = time.monotonic()
        try:
            statuses = self.cluster.statuses()
        except (httpx.HTTPError, FleetError):
            return
        self.samples.append(
            Sample(
                wall=self.wall(),
                began=started - self.mono0,
                sim_h=self.sim_hours(self.sim_now()),
                central_up=self.outage.stop_wall is None or self.outage.back_wall is not None,
                pending_clips=sum(s["pending_clips"] for s in statuses),
                pending_events=sum(s.get("pending_events", 0) for s in statuses),
                verified_clips=sum(s["verified_clips"] for s in statuses),
                failed_folders=sum(len(s["failed_folders"]) for s in statuses),
            )
        )
        if self.deploy is not None:
            try:
                with self.cluster.admin() as admin:
                    deploying.sample(admin, self.deploy, self.sim_hours(self.sim_now()))
            except (httpx.HTTPError, FleetError):
                pass  # central is down (the outage): the cameras' own account goes on

    def _drain(self, progress) -> bool:
        """After the month: until every camera is ingested and a sample finds every clip and event at central."""
        deadline = time.monotonic() + self.plan.drain_timeout_s
        undocked_at = None
        while time.monotonic() < deadline:
            self._undock_ingested()
            if progress:
                progress(self, self.sim_now())
            if undocked_at is None and not any(self.pending):
                undocked_at = self.wall()  # every camera ingested: from now on a sample can say "drained"
            last = self.samples[-1] if self.samples else None
            if (
                undocked_at is not None
                and last is not None
                and last.began > undocked_at
                and last.pending_clips == 0
                and last.pending_events == 0
            ):
                return True
            self._check_processes("after")
            time.sleep(0.2)
        return False


def _ingested(folder: Path) -> bool:
    """The station wrote INGESTED.json and wiped the camera (docs/contracts.md §3)."""
    if not (folder / "INGESTED.json").exists():
        return False
    try:
        return not any((folder / "clips").iterdir())
    except FileNotFoundError:
        return True


def _sha256(clip) -> str:
    import hashlib

    return hashlib.sha256(clip.content()).hexdigest()
