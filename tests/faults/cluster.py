"""Seeded fault scenarios against a cluster: two central replicas on one PostgreSQL behind HAProxy.

The same three stations (each behind its own fault proxy, pointed at the balancer), the same
history and the same checker as ``tests.faults.scenario``; the faults are the cluster's own:

- ``kill_replica_mid_upload``: SIGKILL the replica that holds an upload's part file open
  (a PATCH under way); the station resumes the upload through the other replica.
- ``kill_replica_mid_events``: SIGKILL a replica while an event batch is in flight on it (the
  batch's body trickling in over a slowed link); the station sends it again, elsewhere.
- ``kill_replica_mid_long_poll``: SIGKILL a replica holding stations' long polls of the
  changes feed; they poll again elsewhere and miss no change (new cameras docked after it).
- ``kill_leader``: SIGKILL the replica leading the jobs that run once while the projection has
  work; the other must lead within ``TAKEOVER_S`` (its ``/healthz`` says ``leading``).
- ``restart_postgres``: stop PostgreSQL under load (``fast`` or ``immediate``, by seed), start it
  again on the same data folder; meanwhile every replica answers 503, after it every replica
  answers again without being restarted, and one leads.
- ``restart_balancer``: HAProxy stopped under load and started again on its port.

Every plan has all six, in an order and with offsets drawn from the seed; a killed replica
is started again after a pause drawn from the run's seeded random numbers.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from central.uploads.s3parts import TAILS
from tests.e2e.harness import wait_until
from tests.faults.scenario import LIMITS, STATION_SETTINGS, STATIONS, KiB, MiB, Plan, Runner, Step
from tests.support.s3server import s3_settings

CLUSTER_MENU = (
    "kill_replica_mid_upload",
    "kill_replica_mid_events",
    "kill_replica_mid_long_poll",
    "kill_leader",
    "restart_postgres",
    "restart_balancer",
)
REPLICAS = 2
TAKEOVER_S = 15.0
"""A leader's death is seen by PostgreSQL at once (its session ends) and every replica tries
for the lead every second: another leads within seconds. 15 s leaves room for a loaded host."""
UNAVAILABLE_S = 20.0
"""How soon every replica must answer 503 once PostgreSQL is down (a read waits at most
``central.core.database.READ_WAIT_S`` for a pooled connection, then it is a 503)."""
RECOVERY_S = 30.0
"""How soon every replica must answer 200 again once PostgreSQL is back, with no restart."""
CLUSTER_STATION_SETTINGS = {
    **STATION_SETTINGS,
    "feed_wait_s": 10.0,  # long polls held long enough to be in flight when a replica dies
}


def cluster_plan(seed: int) -> Plan:
    """All six cluster faults, in a seeded order, each at a seeded station with a seeded number."""
    rng = random.Random(seed)
    kinds = list(CLUSTER_MENU)
    rng.shuffle(kinds)
    steps = []
    for kind in kinds:
        value = {
            "kill_replica_mid_upload": rng.randint(64 * KiB, 1 * MiB),  # bytes up before the kill
            "kill_replica_mid_long_poll": rng.uniform(0.0, 1.0),  # seconds into the held polls
            "restart_postgres": rng.uniform(1.0, 4.0),  # seconds PostgreSQL stays down
            "restart_balancer": rng.uniform(0.0, 2.0),  # seconds HAProxy stays down
        }.get(kind, 0.0)
        steps.append(Step(kind, rng.choice(STATIONS), value))
    return Plan(seed=seed, kinds=kinds, steps=steps)


class ClusterRunner(Runner):
    """``Runner`` on two replicas, PostgreSQL and HAProxy, with the cluster's faults."""

    def cluster_options(self) -> dict:
        return {"replicas": REPLICAS, "database": "postgresql", "station_settings": CLUSTER_STATION_SETTINGS}

    # -- observations -------------------------------------------------------------------------

    def health(self, number: int) -> httpx.Response | None:
        """Replica ``number``'s own ``/healthz`` (not through the balancer); None if it does not answer."""
        try:
            return httpx.get(f"{self.cluster.replica_url(number)}/healthz", timeout=UNAVAILABLE_S)
        except httpx.TransportError:
            return None

    def answers(self, number: int, status: int) -> bool:
        response = self.health(number)
        return response is not None and response.status_code == status

    def all_answer(self, status: int) -> bool:
        """Every replica answers its health check with ``status`` (asked at once: one may take seconds)."""
        with ThreadPoolExecutor(REPLICAS) as pool:
            return all(pool.map(lambda n: self.answers(n, status), self.numbers()))

    def in_flight(self, number: int, lane: str) -> int:
        response = self.health(number)
        if response is None or response.status_code != 200:
            return 0
        return int(response.json()["load"]["in_flight"][lane])

    def writing_part(self, number: int) -> bool:
        """Replica ``number`` has an upload's part file open: a PATCH is writing through it."""
        proc = self.cluster.processes.get(self.cluster.replica_name(number))
        if proc is None or not proc.alive():
            return False
        uploads = str(self.cluster.central_data() / "uploads")
        fds = Path(f"/proc/{proc.popen.pid}/fd")
        try:
            targets = [os.readlink(fd) for fd in fds.iterdir()]
        except OSError:  # it exited, or a descriptor closed while listed
            return False
        return any(t.startswith(uploads) and t.endswith(".part") for t in targets)

    def numbers(self) -> range:
        return range(1, REPLICAS + 1)

    # -- faults ---------------------------------------------------------------------------------

    def kill_replica(self, number: int) -> None:
        """SIGKILL replica ``number`` (its refusals counted first), and start it again after a pause."""
        self._count_refusals_of(number)
        self.cluster.processes.pop(self.cluster.replica_name(number)).kill(signal.SIGKILL)
        time.sleep(self.rng.uniform(0.0, 2.0))  # meanwhile the other replica serves alone
        self.cluster.start_replica(number)

    def _kill_the_replica(self, caught: Callable[[int], object], what: str) -> None:
        """SIGKILL the first replica caught in the act (polled closely: the act is short)."""
        number = wait_until(lambda: next((n for n in self.numbers() if caught(n)), None), 60, what, interval=0.02)
        self.kill_replica(number)

    UPLOAD_MIB = (1, 2)
    """The sizes of the clips docked for ``kill_replica_mid_upload``, in MiB."""
    UPLOAD_SCALE = 1
    """``kill_replica_mid_upload``'s seeded byte count is multiplied by this: where in a clip it dies."""

    def fault_kill_replica_mid_upload(self, step: Step) -> None:
        proxy = self.proxies[step.station]
        proxy.bandwidth(512 * KiB)  # a 256 KiB PATCH takes half a second
        before = proxy.bytes_up
        low, high = self.UPLOAD_MIB
        self.dock(step.station, 3, min_size=low * MiB, max_size=high * MiB)
        wait_until(lambda: proxy.bytes_up - before > step.value * self.UPLOAD_SCALE, 60, "an upload under way")
        self._kill_the_replica(self.writing_part, "a replica writing an upload")
        proxy.bandwidth(None)

    def fault_kill_replica_mid_events(self, step: Step) -> None:
        proxy = self.proxies[step.station]
        self.dock(step.station, 1)  # whatever it sends first, its uploads settle before the link slows
        mine = [c for c, clip in self.history.clips.items() if clip.station_id == step.station]
        wait_until(lambda: self.cluster.verified(mine), 90, f"{step.station} uploading what it holds", interval=0.3)
        proxy.bandwidth(1 * KiB)  # an event batch's body now takes a second or more to arrive
        for _ in range(2):  # cameras without clips: what goes up is their docking events
            self.dock(step.station, 0)
        self._kill_the_replica(lambda n: self.in_flight(n, "events"), "a replica receiving an event batch")
        proxy.bandwidth(None)

    def fault_kill_replica_mid_long_poll(self, step: Step) -> None:
        # Once no station has anything to send, what a replica holds in its "other" lane is the
        # stations' long polls of the changes feed (each held up to feed_wait_s).
        wait_until(self._stations_idle, 90, "the stations idle, their long polls held", interval=0.3)
        held = wait_until(
            lambda: (
                max(self.numbers(), key=lambda n: self.in_flight(n, "other"), default=None)
                if any(self.in_flight(n, "other") for n in self.numbers())
                else None
            ),
            30,
            "a replica holding a long poll",
            interval=0.1,
        )
        time.sleep(step.value)
        self.kill_replica(held)
        for sid in STATIONS:  # new cameras: changes to every borough's feed after the kill
            self.dock(sid, 1)

    def _stations_idle(self) -> bool:
        return all(
            s["pending_clips"] == 0 and s["pending_events"] == 0
            for s in (self.cluster.station_status(sid) for sid in STATIONS)
        )

    def fault_kill_leader(self, step: Step) -> None:
        for sid in STATIONS:  # work for the projection, which only the leader runs
            self.dock(sid, 2)
        leader = wait_until(self.cluster.leader, TAKEOVER_S, "a leading replica")
        self._count_refusals_of(leader)
        self.cluster.processes.pop(self.cluster.replica_name(leader)).kill(signal.SIGKILL)
        killed_at = time.monotonic()
        wait_until(
            lambda: self.cluster.leader() not in (None, leader),
            TAKEOVER_S,
            "another replica taking the lead",
            interval=0.1,
        )
        self.laps["takeover_s"] = round(time.monotonic() - killed_at, 1)
        self.cluster.start_replica(leader)

    def fault_restart_postgres(self, step: Step) -> None:
        postgres = self.cluster.postgres
        assert postgres is not None
        proxy = self.proxies[step.station]
        proxy.bandwidth(512 * KiB)
        for sid in STATIONS:
            self.dock(sid, 2, min_size=300 * KiB, max_size=1 * MiB)
        wait_until(lambda: any(self.writing_part(n) for n in self.numbers()), 60, "an upload under way", interval=0.02)
        pids = {n: self.cluster.processes[self.cluster.replica_name(n)].popen.pid for n in self.numbers()}
        mode = self.rng.choice(["fast", "immediate"])
        postgres.stop(mode)
        stopped = time.monotonic()
        wait_until(
            lambda: self.all_answer(503),
            UNAVAILABLE_S,
            "every replica answering 503 while PostgreSQL is down",
            interval=0.2,
            check=self.cluster.check_alive,
        )
        self.laps[f"postgres_{mode}_stop_to_503_s"] = round(time.monotonic() - stopped, 1)
        time.sleep(step.value)
        postgres.start()
        restarted = time.monotonic()
        wait_until(
            lambda: self.all_answer(200),
            RECOVERY_S,
            "every replica answering again once PostgreSQL is back",
            interval=0.2,
            check=self.cluster.check_alive,
        )
        wait_until(self.cluster.leader, TAKEOVER_S, "a replica leading again", interval=0.2)
        self.laps["postgres_recovery_s"] = round(time.monotonic() - restarted, 1)
        now = {n: self.cluster.processes[self.cluster.replica_name(n)].popen.pid for n in self.numbers()}
        assert now == pids, "a replica was restarted: it must recover from PostgreSQL's restart by itself"
        proxy.bandwidth(None)

    def fault_restart_balancer(self, step: Step) -> None:
        balancer = self.cluster.balancer
        assert balancer is not None
        proxy = self.proxies[step.station]
        proxy.bandwidth(512 * KiB)  # its uploads are under way when the balancer goes
        self.dock(step.station, 3, min_size=1 * MiB, max_size=2 * MiB)
        for sid in STATIONS:
            self.dock(sid, 2)
        wait_until(lambda: any(self.writing_part(n) for n in self.numbers()), 60, "an upload under way", interval=0.02)
        balancer.stop()
        time.sleep(step.value)
        balancer.start()
        proxy.bandwidth(None)

    # -- bookkeeping ------------------------------------------------------------------------------

    def _count_refusals_of(self, number: int) -> None:
        """Add what replica ``number`` refused since it started (read before it is killed)."""
        response = self.health(number)
        if response is None or response.status_code != 200:
            return
        load = response.json().get("load") or {}
        self.refused["503"] += load.get("refused_503", 0)
        self.refused["429"] += load.get("refused_429", 0)

    def _count_refusals(self) -> None:
        for number in self.numbers():
            self._count_refusals_of(number)

    def heal(self) -> None:
        for proxy in self.proxies.values():
            proxy.clear()
        postgres, balancer = self.cluster.postgres, self.cluster.balancer
        if postgres is not None and not postgres.ready():
            postgres.start()
        for number in self.numbers():
            proc = self.cluster.processes.get(self.cluster.replica_name(number))
            if proc is None or not proc.alive():
                self.cluster.start_replica(number)
        if balancer is not None and not balancer.alive():
            balancer.start()
        for sid in STATIONS:
            if not self.cluster.processes[sid].alive():
                self.cluster.start_station(sid)


class S3ClusterRunner(ClusterRunner):
    """``ClusterRunner`` with the clips' bytes in an S3 bucket (moto's server in this process), so
    that a replica SIGKILLed mid-upload dies with its upload staged in the bucket: a tail object
    and the parts of a multipart upload (``central.uploads.s3parts``), never a local file. The
    clips of that fault are larger than a part (5 MiB), and the kill falls anywhere in the first
    six: before the first part, while it is sent, or after it."""

    UPLOAD_MIB = (6, 8)
    UPLOAD_SCALE = 6

    def fault_kill_replica_mid_upload(self, step: Step) -> None:
        # Nothing else uploading: the replica seen receiving a PATCH is receiving one of these clips.
        wait_until(self._stations_idle, 90, "the stations idle before the large clips", interval=0.3)
        super().fault_kill_replica_mid_upload(step)

    def cluster_options(self) -> dict:
        return super().cluster_options() | {"central_tables": {"limits": LIMITS, "blobs": s3_settings()}}

    def writing_part(self, number: int) -> bool:
        """Replica ``number`` is receiving a PATCH (the bytes go to the bucket: no file to see)."""
        return self.in_flight(number, "uploads") > 0

    def stored_blobs(self) -> int:
        """The bucket's objects outside the staging prefix, and no multipart upload left unfinished."""
        import boto3

        blobs = self.cluster.central_tables["blobs"]
        client = boto3.client(
            "s3",
            endpoint_url=blobs["endpoint_url"],
            region_name=blobs["region"],
            aws_access_key_id=blobs["access_key_id"],
            aws_secret_access_key=blobs["secret_access_key"],
        )
        keys = [
            o["Key"]
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=blobs["bucket"])
            for o in page.get("Contents", [])
        ]
        return sum(1 for k in keys if not k.startswith(TAILS))
