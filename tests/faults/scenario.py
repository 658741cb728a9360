"""Seeded fault scenarios against real processes: one central, three stations, a proxy each.

``Plan.from_seed(seed)`` draws what happens; ``Runner`` makes it happen to a real cluster
(``fleet central serve`` under uvicorn, ``fleet station run``, TCP fault proxies between
them), then heals every fault, waits until the system is quiet and reads central's final
state for the checker. The same seed always gives the same plan: the faults, their order,
their offsets and sizes. The moment a SIGKILL lands still depends on the machine, which is
the point of running many seeds.

Each plan has four fault kinds chosen by rotation, so seeds 0, 1 and 2 together cover all
twelve, and up to two more at random.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx

from fleet.clock import utc_now
from fleet.errors import FleetError
from simulation.camera import SimClip, dock_camera, random_shift
from tests.e2e.harness import Cluster, wait_until
from tests.faults.central_state import bookkeeping, read_state
from tests.faults.checker import CentralClip, CreatedClip, CreatedDock, History, Verdict, check, check_effects
from tests.faults.disks import SmallDisk
from tests.support.faultproxy import FaultProxy

KiB, MiB = 1 << 10, 1 << 20
STATIONS = ("camden", "barnet", "lewisham")
MENU = (
    "kill_station_ingest",
    "kill_station_upload",
    "kill_central_mid_chunk",
    "kill_central_before_reply",
    "reset",
    "flip",
    "stall",
    "bandwidth",
    "outage_herd",
    "station_disk_full",
    "central_disk_full",
    "clock_skew",
)
SETUP = ("station_disk_full", "central_disk_full", "clock_skew")
"""Kinds that shape how the cluster starts; the others are steps during the run."""
ROTATED = 4
STATION_SETTINGS = {
    "request_timeout_s": 3.0,
    "retry_initial_s": 0.2,
    "retry_max_s": 2.0,
    "concurrent_uploads": 2,
    "chunk_bytes": 256 * KiB,
}
LIMITS = {
    "uploads_in_flight": 3,
    "events_in_flight": 2,
    "other_in_flight": 32,
    "per_client_in_flight": 2,
    "retry_after_s": 1,
    "storage_full_retry_after_s": 2,
    "body_idle_timeout_s": 5.0,
}
"""Tight on purpose: central is saturated often, so 503/429 and backing off are part of every run."""
QUIET_TIMEOUT_S = 240.0
REPLY_DELAY_S = 1.5
"""Latency on replies while central is killed before its reply: the window to kill it in,
and under the station's request timeout (3 s) so that uploads keep going meanwhile."""
FORGOTTEN_ACK = "central acknowledges events only up to seq"
"""What a station logs when central acknowledges fewer of its events than it had (station.sync.events).
Only that: a whole clip's creation killed between storing its blob and committing its row
acknowledged nothing, and the station's retry may meet a 423 naming a restore too (central.uploads.receiver)."""
ROOMY = 512 * MiB
"""A small disk's size until its fault comes, and after: earlier and later steps' clips must not meet it."""
STATION_RESERVE = 5 * MiB
"""min_free_bytes of the station whose disk fills (the WAL alone may take 4 MiB)."""


@dataclass(frozen=True)
class Step:
    kind: str
    station: str
    value: float
    """The fault's own number: a byte offset, a delay, a rate (see ``Runner``)."""


@dataclass
class Plan:
    seed: int
    kinds: list[str]
    steps: list[Step]
    skewed: dict[str, float] = field(default_factory=dict)
    """Station → clock offset in hours."""
    small_station: str | None = None
    small_central: bool = False

    @classmethod
    def from_seed(cls, seed: int) -> Plan:
        rng = random.Random(seed)
        kinds = [MENU[(ROTATED * seed + i) % len(MENU)] for i in range(ROTATED)]
        kinds += rng.sample([k for k in MENU if k not in kinds], rng.randint(0, 2))
        rng.shuffle(kinds)
        plan = cls(seed=seed, kinds=kinds, steps=[])
        for kind in kinds:
            station = rng.choice(STATIONS)
            if kind == "clock_skew":
                plan.skewed[station] = rng.choice([-1, 1]) * rng.uniform(0.5, 30)
            elif kind == "station_disk_full":
                plan.small_station = station
            elif kind == "central_disk_full":
                plan.small_central = True
            value = {
                "reset": rng.randint(20 * KiB, 600 * KiB),
                "flip": rng.randint(1 * KiB, 600 * KiB),
                "stall": rng.uniform(1.0, 6.0),
                "bandwidth": rng.uniform(150 * KiB, 1 * MiB),
                "outage_herd": rng.uniform(2.0, 6.0),
                "kill_station_ingest": rng.uniform(0.0, 0.4),
                "kill_station_upload": rng.randint(64 * KiB, 1 * MiB),
                "kill_central_mid_chunk": rng.randint(64 * KiB, 1 * MiB),
            }.get(kind, 0.0)
            plan.steps.append(Step(kind, station, value))
        return plan


@dataclass
class Outcome:
    seed: int
    kinds: list[str]
    verdict: Verdict
    seconds: float
    refused: dict[str, int]
    laps: dict[str, float]
    skew_unseen: list[str]

    def as_dict(self) -> dict:
        return {
            "seed": self.seed,
            "kinds": self.kinds,
            **self.verdict.as_dict(),
            "seconds": round(self.seconds, 1),
            "refused": self.refused,
            "laps": self.laps,
            "problems": self.verdict.problems[:20],
        }


class Runner:
    def __init__(self, plan: Plan, root: Path) -> None:
        self.plan = plan
        self.rng = random.Random(plan.seed * 7919 + 1)
        self.history = History()
        self.settled: set[str] = set()
        self.refused = {"503": 0, "429": 0}
        options = {
            "station_ids": STATIONS,
            "station_settings": STATION_SETTINGS,
            "central_tables": {"limits": LIMITS},
            "launchers": {
                sid: (sys.executable, "-m", "tests.faults.skewed_clock", f"{hours:+.2f}")
                for sid, hours in plan.skewed.items()
            },
        }
        self.cluster = Cluster(root, **(options | self.cluster_options()))
        self.proxies = {sid: FaultProxy("127.0.0.1", self.cluster.port).start() for sid in STATIONS}
        for sid, proxy in self.proxies.items():
            small = {"min_free_bytes": STATION_RESERVE} if sid == plan.small_station else {}
            self.cluster.write_station_config(sid, proxy.url, **small)
        self.disks: list[SmallDisk] = []
        self.central_disk: SmallDisk | None = None
        self.station_disk: SmallDisk | None = None
        self.serial = 0
        self.laps: dict[str, float] = {}
        self.skew_unseen: list[str] = []
        self._lap_at = time.monotonic()

    def cluster_options(self) -> dict:
        """More of ``Cluster``'s options (replicas, database): one central on SQLite here."""
        return {}

    def stored_blobs(self) -> int:
        """How many clip blobs central's store holds (the checker's count of duplicates)."""
        return sum(1 for p in (self.cluster.central_data() / "blobs").rglob("*") if p.is_file())

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.laps[name] = round(now - self._lap_at, 1)
        self._lap_at = now

    # -- the run ----------------------------------------------------------------------------

    def run(self) -> Outcome:
        started = time.monotonic()
        try:
            self._set_up_disks()
            self.cluster.start_central()
            for sid in STATIONS:
                self.cluster.start_station(sid)
            for sid in STATIONS:
                self.dock(sid, 3)
            self.lap("start")
            for step in self.plan.steps:
                settled_before = self.verified_now()
                getattr(self, f"fault_{step.kind}")(step)
                self.history.fault_fired(settled_before)  # all not verified before the fault was in its way
                self.cluster.check_alive()
                self.lap(step.kind)
            self.heal()
            self.wait_quiet()
            self.lap("settle")
            verdict = self.final_check()
            self.lap("check")
        finally:
            self.tear_down()
        return Outcome(
            self.plan.seed,
            self.plan.kinds,
            verdict,
            time.monotonic() - started,
            self.refused,
            self.laps,
            self.skew_unseen,
        )

    def _set_up_disks(self) -> None:
        if self.plan.small_station:  # roomy until its fault comes, like central's
            self.station_disk = SmallDisk(self.cluster.station_data(self.plan.small_station), ROOMY).mount()
            self.disks.append(self.station_disk)
        if self.plan.small_central:  # roomy until its fault comes (earlier clips must not fill it)
            self.central_disk = SmallDisk(self.cluster.central_data(), ROOMY).mount()
            self.disks.append(self.central_disk)

    def tear_down(self) -> None:
        failures = []
        try:
            self.cluster.stop_all()
        except AssertionError as exc:
            failures.append(str(exc))
        for proxy in self.proxies.values():
            proxy.stop()
        for disk in self.disks:
            disk.unmount()
        assert not failures, failures

    # -- the outside world: cameras docking --------------------------------------------------

    def dock(
        self,
        station: str,
        clips: int,
        min_size: int = 20 * KiB,
        max_size: int = 600 * KiB,
        extra: list[SimClip] | None = None,
    ) -> Path:
        shift = random_shift(self.rng, clips, min_size=min_size, max_size=max_size) + (extra or [])
        self.serial += 1
        serial = f"BWV-{self.plan.seed % 1000:03d}{self.serial:03d}"
        battery = round(self.rng.uniform(5, 100), 1)
        folder = dock_camera(
            self.cluster.dock_dir(station),
            serial,
            shift,
            battery_pct=battery,
            docked_at=utc_now() - timedelta(seconds=1),
        )
        for clip in shift:
            self.history.created_clip(CreatedClip(clip.clip_id, _sha256(clip), clip.size, station))
        self.history.created_dock(CreatedDock(station, folder.name, serial, battery, tuple(c.clip_id for c in shift)))
        return folder

    def verified_now(self) -> set[str]:
        """Clips verified at central now (what we last knew while central is down)."""
        try:
            self.settled = {c["clip_id"] for c in self.cluster.central_clips() if c["state"] == "verified"}
        except (httpx.TransportError, httpx.HTTPStatusError):
            pass
        return set(self.settled)

    # -- faults -------------------------------------------------------------------------------

    def fault_kill_station_ingest(self, step: Step) -> None:
        """SIGKILL a station at a random moment of ingesting a camera with a big clip."""
        big = SimClip(self.rng.randint(8, 16) * MiB, utc_now() - timedelta(hours=1), seed=self.rng.getrandbits(32))
        self.dock(step.station, 2, extra=[big])
        time.sleep(step.value)
        self.restart_station(step.station)

    def fault_kill_station_upload(self, step: Step) -> None:
        """SIGKILL a station part-way through an upload (the link slowed so one is in flight)."""
        proxy = self.proxies[step.station]
        proxy.bandwidth(1 * MiB)
        before = proxy.bytes_up
        self.dock(step.station, 3, min_size=1 * MiB, max_size=2 * MiB)
        wait_until(lambda: proxy.bytes_up - before > step.value, 60, "an upload under way")
        self.restart_station(step.station)
        proxy.bandwidth(None)

    def fault_kill_central_mid_chunk(self, step: Step) -> None:
        """SIGKILL central while a chunk is arriving."""
        proxy = self.proxies[step.station]
        proxy.bandwidth(1 * MiB)
        before = proxy.bytes_up
        self.dock(step.station, 3, min_size=1 * MiB, max_size=2 * MiB)
        wait_until(lambda: proxy.bytes_up - before > step.value, 60, "an upload under way")
        self.restart_central(pause=self.rng.uniform(0, 1.5))
        proxy.bandwidth(None)

    def fault_kill_central_before_reply(self, step: Step) -> None:
        """SIGKILL central after it committed a clip but before its "verified" reached the station.

        Replies to the station arrive late (latency below the station's request timeout, so it
        keeps working); once central (asked directly) has the clip verified, central dies and the
        proxy drops the reply it was holding.
        """
        proxy = self.proxies[step.station]
        # First let the station finish what it has: a reply held now (a HEAD, a creation) would
        # keep it from ever sending the clip whose reply this fault is about.
        self.dock(step.station, 1)
        mine = [c for c, clip in self.history.clips.items() if clip.station_id == step.station]
        wait_until(lambda: self.cluster.verified(mine), 90, f"{step.station} uploading what it holds", interval=0.3)
        verified_before = self._verified_count()
        proxy.delay(REPLY_DELAY_S, direction="down")
        self.dock(step.station, 2)
        wait_until(lambda: self._verified_count() > verified_before, 60, "central committing a clip", interval=0.05)
        self.cluster.processes["central"].kill(signal.SIGKILL)
        proxy.refuse()  # the held reply is dropped with its connection
        proxy.clear()
        self.cluster.start_central()
        self._count_refusals()

    def fault_reset(self, step: Step) -> None:
        self._one_shot(step, lambda proxy: proxy.reset_after(int(step.value)))

    def fault_flip(self, step: Step) -> None:
        self._one_shot(step, lambda proxy: proxy.flip_byte_at(int(step.value)))

    def _one_shot(self, step: Step, arm) -> None:
        proxy = self.proxies[step.station]
        fired = len(proxy.faults_fired)
        arm(proxy)
        self.dock(step.station, 3, min_size=200 * KiB, max_size=700 * KiB)
        wait_until(lambda: len(proxy.faults_fired) > fired, 60, f"the {step.kind} firing")

    def fault_stall(self, step: Step) -> None:
        """The link hangs (longer than the station's request timeout, sometimes)."""
        proxy = self.proxies[step.station]
        proxy.stall()
        self.dock(step.station, 2)
        time.sleep(step.value)
        proxy.resume()

    def fault_bandwidth(self, step: Step) -> None:
        proxy = self.proxies[step.station]
        proxy.bandwidth(step.value)
        self.dock(step.station, 3)
        time.sleep(2.0)
        proxy.bandwidth(None)

    def fault_outage_herd(self, step: Step) -> None:
        """Central down while every station keeps docking; then all of them reconnect at once."""
        self.cluster.processes["central"].kill(signal.SIGKILL)
        for sid in STATIONS:
            self.dock(sid, 3)
        time.sleep(step.value)
        self.cluster.start_central()
        self._count_refusals()

    def fault_station_disk_full(self, step: Step) -> None:
        """More than the station's disk holds arrives at once; it fills, then frees as clips verify."""
        station = self.plan.small_station
        assert station is not None  # the plan chose it when it chose this fault
        self.proxies[station].stall()  # nothing leaves, so nothing is freed, until the disk has filled
        # Room for its reserve (min_free_bytes), its WAL's growth (up to 4 MiB) and a few of the
        # twelve clips below (at least 9.4 MiB): the rest wait on the camera until copies verified
        # at central are purged.
        self.station_disk.resize(self.station_disk.used_bytes() + STATION_RESERVE + 8 * MiB)
        folders = [self.dock(station, 3, min_size=800 * KiB, max_size=1200 * KiB) for _ in range(4)]
        log = self.cluster.processes[station].log  # the report is gone again once space is freed: read the log
        wait_until(lambda: "disk full: " in log.read_text(), 60, "the station's disk filling up", interval=0.2)
        self.proxies[station].resume()
        # Copies verified at central are purged, which makes room for the rest: no operator needed.
        wait_until(
            lambda: not any(f.exists() and not (f / "INGESTED.json").exists() for f in folders),
            90,
            "the station ingesting the rest as verified copies are purged",
            interval=0.5,
        )
        self.station_disk.resize(ROOMY)

    def fault_central_disk_full(self, step: Step) -> None:
        """Central's disk fills (507 + Retry-After); the operator then gives it room."""
        self.central_disk.resize(self.central_disk.used_bytes() + 2 * MiB)  # what the next clips fill
        for sid in STATIONS:
            self.dock(sid, 3, min_size=500 * KiB, max_size=900 * KiB)
        wait_until(
            lambda: shutil.disk_usage(self.central_disk.path).free < 256 * KiB,
            60,
            "central's disk filling up",
            interval=0.1,
        )
        time.sleep(self.rng.uniform(1.0, 3.0))  # requests meet the full disk for a while
        self.central_disk.resize(ROOMY)

    def fault_clock_skew(self, step: Step) -> None:
        """Set up at start (the station runs under tests.faults.skewed_clock); during the run it just works."""
        for sid in self.plan.skewed:
            self.dock(sid, 2)

    # -- helpers ----------------------------------------------------------------------------

    def restart_station(self, station: str) -> None:
        self.cluster.processes[station].kill(signal.SIGKILL)
        self.cluster.start_station(station)

    def restart_central(self, pause: float) -> None:
        self._count_refusals()
        self.cluster.processes["central"].kill(signal.SIGKILL)
        time.sleep(pause)
        self.cluster.start_central()

    def _verified_count(self) -> int:
        return sum(1 for c in self.cluster.central_clips() if c["state"] == "verified")

    def _count_refusals(self) -> None:
        """Add the refusals central counted since it started (read before it is killed)."""
        try:
            load = httpx.get(f"{self.cluster.url}/healthz", timeout=2).json().get("load") or {}
        except (httpx.TransportError, ValueError):
            return
        self.refused["503"] += load.get("refused_503", 0)
        self.refused["429"] += load.get("refused_429", 0)

    def heal(self) -> None:
        for proxy in self.proxies.values():
            proxy.clear()
        for disk in self.disks:
            if disk.size_bytes < ROOMY:
                disk.resize(ROOMY)
        if not self.cluster.processes["central"].alive():
            self.cluster.start_central()
        for sid in STATIONS:
            if not self.cluster.processes[sid].alive():
                self.cluster.start_station(sid)

    def wait_quiet(self) -> None:
        """Every clip verified, every event acknowledged and applied, every camera wiped, every
        station's mirror of the changes feed at its end: the system has settled."""
        want = set(self.history.clips)
        unsettled = ["nothing checked yet"]

        def quiet() -> bool:
            if not self.cluster.verified(want):
                unsettled[0] = "clips not all verified at central"
                return False
            statuses = {sid: self.cluster.station_status(sid) for sid in STATIONS}
            busy = [
                sid for sid, s in statuses.items() if s["pending_clips"] or s["pending_events"] or s["failed_folders"]
            ]
            if busy:
                unsettled[0] = f"stations with clips or events pending: {busy}"
                return False
            lagging, ends = bookkeeping(self.cluster.central_data(), self.cluster.database_url)
            if lagging:
                unsettled[0] = f"events acknowledged, not applied (applied, acked): {lagging}"
                return False
            behind = {
                sid: (s["feed_cursor"], ends.get(s["borough"], 0))
                for sid, s in statuses.items()
                if s["feed_cursor"] < ends.get(s["borough"], 0)
            }
            if behind:
                unsettled[0] = f"stations' changes feed behind central's (mirrored, central): {behind}"
                return False
            return True

        try:
            wait_until(
                quiet,
                QUIET_TIMEOUT_S,
                "the system settling after the faults were healed",
                interval=0.5,
                check=self.cluster.check_alive,
            )
        except FleetError as exc:
            raise AssertionError(f"{exc}; still: {unsettled[0]}") from None

    def final_check(self) -> Verdict:
        self._count_refusals()
        clips = []
        with self.cluster.admin() as client:
            for c in self.cluster.central_clips():

                def served(clip_id: str = c["clip_id"]) -> httpx.Response | None:
                    r = client.get(f"/api/v1/clips/{clip_id}/content")
                    return r if r.status_code not in (429, 503) else None

                response = wait_until(
                    served,
                    30,
                    "central serving a clip's bytes",
                    interval=0.5,
                )
                content = _hex(response.content) if response.status_code == 200 else None
                clips.append(CentralClip(c["clip_id"], c["sha256"], c["size"], c["state"], content))
        for folder in {(s, f) for s, f in self.history.docks}:
            path = self.cluster.dock_dir(folder[0]) / folder[1]
            assert (path / "INGESTED.json").exists(), f"{folder} never ingested"
        self.cluster.stop_processes()  # central and the stations; its database (PostgreSQL) still up
        blobs = self.stored_blobs()
        state = read_state(self.cluster.central_data(), self.cluster.database_url)
        verdict = check(self.history, clips, blobs, state.events)
        check_effects(
            verdict,
            self.history,
            behind=state.behind(),
            readings=state.readings,
            chain=(state.audit.intact, f"at record {state.audit.first_broken}: {state.audit.reason}"),
        )
        for sid in STATIONS:  # an acknowledgement is durable: central never takes one back
            log = self.cluster.root / f"{sid}.log"
            for line in log.read_text(errors="replace").splitlines():
                if FORGOTTEN_ACK in line:
                    verdict.violated(f"{sid}: central took back an acknowledgement: {line.strip()[:200]}")
        seen = {sid: row.clock_skew_s for sid, row in state.stations.items()}
        for sid, hours in self.plan.skewed.items():  # the skew was real: central measured it
            measured = seen.get(sid)
            if measured is None or abs(measured - hours * 3600) > 600:
                verdict.problems.append(f"{sid} ran {hours:+.1f} h off but central measured {seen.get(sid)} s")
                self.skew_unseen.append(sid)
        return verdict


def _sha256(clip: SimClip) -> str:
    return _hex(clip.content())


def _hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
