"""Property: whatever the order of docking, outages, crashes, restarts and purges, every clip
that reached the station ends up at central exactly once with its SHA-256, and no local copy
is deleted before central verified it."""

import hashlib
import random
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

import httpx
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from simulation.camera import SimClip, dock_camera
from station.ingest import Ingestor
from station.sync.clips import SyncWorker, TusUploader, purge_local_copies
from tests.station.conftest import FAST, RECORDED, station_store
from tests.station.sync.fake_tus import FakeTus

CHUNK = 64 * 1024


class Crash(BaseException):
    """The station process dying mid-request."""


class SyncMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="sync-sm-"))
        self.dock = self.root / "dock"
        self.dock.mkdir()
        self.server = FakeTus()
        self.store = station_store(self.root / "data")
        self.docked: dict[str, str] = {}  # clip_id -> sha256
        self.central_up = True
        self.crash_in: int | None = None
        self.server.fault = self._fault
        self.folders = 0

    def _fault(self, request: httpx.Request):
        if not self.central_up:
            raise httpx.ConnectError("central down")
        if self.crash_in is not None and request.method == "PATCH":
            self.crash_in -= 1
            if self.crash_in <= 0:
                self.crash_in = None
                raise Crash()
        return None

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.root, ignore_errors=True)

    @rule(
        sizes=st.lists(st.integers(min_value=0, max_value=4 * CHUNK), min_size=1, max_size=3),
        seed=st.integers(0, 2**32),
    )
    def dock_camera(self, sizes, seed):
        rng = random.Random(seed)
        clips = [
            SimClip(
                size,
                RECORDED + timedelta(minutes=rng.randint(0, 600)),
                seed=rng.getrandbits(32),
                evidential=rng.random() < 0.2,
            )
            for size in sizes
        ]
        self.folders += 1
        dock_camera(self.dock, "BWV-000001", clips, folder_name=f"f{self.folders:04d}")
        Ingestor(self.store, "camden", self.dock, chunk_bytes=CHUNK if seed % 2 else None).scan()
        for clip in clips:
            self.docked[clip.clip_id] = hashlib.sha256(clip.content()).hexdigest()

    @rule()
    def central_goes_down(self):
        self.central_up = False

    @rule()
    def central_comes_back(self):
        self.central_up = True

    @rule(after=st.integers(1, 4))
    def arm_crash(self, after):
        self.crash_in = after

    @rule()
    def sync_pass(self):
        client = httpx.Client(base_url="http://central", transport=self.server.transport())
        worker = SyncWorker(self.store, TusUploader(client, self.store, FAST, chunk_bytes=CHUNK), FAST, concurrency=2)
        self.store.db.execute("UPDATE clips SET next_attempt_at = NULL")  # time passes: backoff over
        try:
            worker.run_once()
        except Crash:
            self.restart()

    @rule()
    def restart(self):
        self.store.close()
        self.store = station_store(self.root / "data")
        self.store.queue.recover_interrupted()

    @rule()
    def purge(self):
        purge_local_copies(self.store, timedelta(0))

    @precondition(lambda self: self.central_up and self.crash_in is None)
    @rule()
    def drain(self):
        """Once central is up and nothing crashes, everything gets there."""
        for _ in range(3):
            self.sync_pass()
        verified = self.server.verified()
        assert set(verified) == set(self.docked)
        for clip_id, data in verified.items():
            assert hashlib.sha256(data).hexdigest() == self.docked[clip_id]

    @invariant()
    def nothing_lost_nothing_early(self):
        verified = self.server.verified()
        rows = self.store.db.execute("SELECT clip_id, state, local_path FROM clips").fetchall()
        assert {r[0] for r in rows} == set(self.docked)  # the station knows every docked clip, once
        for clip_id, state, local_path in rows:
            if local_path is None:  # copy deleted: only ever after central verified it
                assert state == "verified" and clip_id in verified
            else:
                assert self.store.local_path(local_path).exists()
            if state == "verified":
                assert hashlib.sha256(verified[clip_id]).hexdigest() == self.docked[clip_id]
        assert len(self.server.uploads) == len(self.server.by_clip)  # one upload per clip, ever


SyncMachine.TestCase.settings = settings(
    max_examples=25, stateful_step_count=15, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestSyncStateMachine = SyncMachine.TestCase
