"""A running station: store, dock ingest, sync worker and their apscheduler jobs, wired once."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sqlite3
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from apscheduler.schedulers.background import BackgroundScheduler

from fleet.clock import utc_now
from fleet.config import StationSettings
from fleet.errors import FleetError
from fleet.firmware import trusted_keys
from fleet.lockfile import FileClaim
from fleet.logs import Repeats
from fleet.retry import RetryPolicy
from station.desk import Desk
from station.ingest import Ingestor
from station.keys import check_keys_cover, load_keyring
from station.metrics import StationCollector, StationMetrics
from station.store import StationStore
from station.sync.artifacts import ArtifactFetcher
from station.sync.changes import FeedFollower
from station.sync.clips import SyncWorker, TusUploader, purge_local_copies
from station.sync.events import EventSender
from station.sync.link import build_client, plain_http_problem
from station.sync.window import UploadWindow
from station.throttle import from_mbps
from station.updates import DockUpdates

if TYPE_CHECKING:
    from station.api import DeskServer  # imported by start(), and only when the desk API is on

log = logging.getLogger(__name__)

PURGE_INTERVAL = timedelta(minutes=5)
OUTBOX_KEEP = timedelta(days=30)
"""Acknowledged events are kept this long at the station, for its own inspection."""


class StationNode:
    """Owns every resource of a station process; ``run()`` blocks until stopped."""

    def __init__(
        self, settings: StationSettings, *, client: httpx.Client | None = None, policy: RetryPolicy | None = None
    ) -> None:
        self.settings = settings
        try:
            # Clips are stored only sealed under the station key: without it the station could
            # neither ingest nor upload, so it does not start, and says why.
            keys = load_keyring(settings.station_key)
        except FleetError as exc:
            raise FleetError(f"station {settings.station_id} not started: {exc}") from None
        self._claim, unclaimed = claim_data_dir(settings)
        try:
            # A station that cannot write its database could record neither what it ingests nor
            # what it uploads: it does not start, and its supervisor starts it again once the
            # disk is mended. Docked cameras keep their clips; `fleet station status` reads it.
            self.store = StationStore.for_writing(settings.data_dir, keys=keys)
        except FleetError as exc:
            self._claim.let_go()
            raise FleetError(
                f"station {settings.station_id} not started: {exc}; docked cameras keep their clips "
                "(`fleet station status` shows the rest)"
            ) from None
        if unclaimed is not None:  # the folder refused the lock file, yet the database opened
            self.store.close()
            raise FleetError(f"station {settings.station_id} not started: {unclaimed}")
        try:
            check_keys_cover(self.store, keys)
        except FleetError as exc:
            self.store.close()
            self._claim.let_go()
            raise FleetError(f"station {settings.station_id} not started: {exc}") from None
        if plain := self.store.queue.plain_local_copies():
            log.info("%d clips stored before encryption at rest stay plain until uploaded and purged", plain)
        self.policy = policy or RetryPolicy(initial_s=settings.retry_initial_s, max_s=settings.retry_max_s)
        self.client = client or build_client(settings, self.store.set_central_tls_problem)
        self.uploader = TusUploader(
            self.client,
            self.store,
            self.policy,
            chunk_bytes=settings.chunk_bytes,
            chunk_algorithm=settings.chunk_checksum,
            throttle=from_mbps(settings.bandwidth_limit_mbps),
            on_progress=self.store.queue.set_progress,
        )
        self.metrics = StationMetrics()
        """This node's counters and its queue, for ``/metrics`` on the desk API (``station.metrics``)."""
        self.metrics.registry.register(StationCollector(settings, self.store))
        self.sync = SyncWorker(
            self.store,
            self.uploader,
            self.policy,
            concurrency=settings.concurrent_uploads,
            window=UploadWindow.of(settings),
            metrics=self.metrics,
        )
        self.ingestor = Ingestor(
            self.store,
            settings.station_id,
            settings.dock_dir,
            on_new_clips=self.wake_sync,
            chunk_bytes=settings.chunk_bytes,
            chunk_algorithm=settings.chunk_checksum,
            reserve_bytes=settings.min_free_bytes,
        )
        self.desk = Desk(self.store, settings.station_id, settings.borough, on_event=self.wake_events)
        release_keys = trusted_keys(settings.firmware.release_keys)  # checked when the file loaded
        self.artifacts = ArtifactFetcher(
            self.client, self.store, self.policy, release_keys, reserve_bytes=settings.min_free_bytes
        )
        self.dock_updates = DockUpdates(self.store, settings.dock_dir, release_keys)
        self.uplink = EventSender(
            self.client,
            self.store,
            self.policy,
            batch_size=settings.events_batch,
            heartbeat=timedelta(seconds=settings.heartbeat_s),
            metrics=self.metrics,
        )
        # The long poll gets a client of its own, so it never holds an upload's connection.
        self.feed_client = build_client(settings, self.store.set_central_tls_problem)
        self.feed = FeedFollower(
            self.feed_client,
            self.store.mirror,
            self.policy,
            wait_s=settings.feed_wait_s,
            linger_s=settings.feed_linger_s,
        )
        self._feed_thread = threading.Thread(target=self.feed.run, name="changes-feed", daemon=True)
        self.api: DeskServer | None = None  # started by start() when api_port is set
        self.scheduler = BackgroundScheduler(
            timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
        )
        self._stopped = threading.Event()
        # Jobs reschedule the scheduler from its own threads; apscheduler's shutdown(wait=True)
        # holds the job-store lock while it waits for those threads. ``_control`` makes sure no
        # job touches the scheduler once stopping began, so the two can never deadlock.
        self._control = threading.Lock()
        self._repeats = Repeats(log)

    def recover(self) -> None:
        """Clips left 'uploading' by the last shutdown go back to the queue (a database that cannot
        be written leaves them there: the sync pass retries them once it can)."""
        try:
            recovered = self.store.queue.recover_interrupted()
        except sqlite3.Error as exc:
            self._repeats.warning(
                "start", "clips interrupted mid-upload not requeued: station database cannot be written: %s", exc
            )
            return
        if recovered:
            log.info("requeued %d clips interrupted mid-upload by the last shutdown", recovered)

    def guarded(self, name: str, job: Callable[[], object]) -> Callable[[], object]:
        """A scheduled job that meets a database it cannot use says so once a minute and runs again
        at its next turn: the process keeps going and the log does not fill with tracebacks."""

        def run() -> object:
            try:
                return job()
            except sqlite3.Error as exc:
                self._repeats.warning(name, "%s not done: station database cannot be written: %s", name, exc)
                return None

        return run

    def start(self) -> None:
        self.recover()
        s = self.settings
        now = utc_now()
        self.scheduler.add_job(self.scan_dock, "interval", seconds=s.scan_interval_s, id="scan", next_run_time=now)
        self.scheduler.add_job(
            self.guarded("firmware", self.artifacts.run_once),
            "interval",
            seconds=s.sync_interval_s,
            id="firmware",
            next_run_time=now,
        )
        self.scheduler.add_job(
            self.guarded("sync", self._sync_pass), "interval", seconds=s.sync_interval_s, id="sync", next_run_time=now
        )
        self.scheduler.add_job(
            self.guarded("purge", self.purge),
            "interval",
            seconds=PURGE_INTERVAL.total_seconds(),
            id="purge",
            next_run_time=now,
        )
        self.scheduler.add_job(
            self.guarded("events", self.uplink.run_once),
            "interval",
            seconds=s.events_interval_s,
            id="events",
            next_run_time=now,
        )
        self.scheduler.start()
        self._feed_thread.start()
        if s.api_port is not None:
            from station.api import DeskServer

            self.api = DeskServer(self, s.api_host, s.api_port)
            self.api.start()
        log.info("station %s (%s) watching %s, syncing to %s", s.station_id, s.borough, s.dock_dir, s.central_url)
        if (clear := plain_http_problem(s.central_url)) is not None:
            log.warning("%s", clear)

    def scan_dock(self) -> None:
        """Ingest what docked, then hand updates to the cameras the ingest has finished with (one
        job: the two never work on a folder at once)."""
        self.ingestor.scan()
        report = self.dock_updates.scan()
        if report.handed_over or report.results:
            self.wake_events()

    def wake_sync(self) -> None:
        self.sync.wake()
        self._run_job_at("sync", utc_now())
        self.wake_events()

    def wake_events(self) -> None:
        """New events in the outbox: send them now (or after ``events_linger_s``) rather than at the next interval."""
        self._run_job_at("events", utc_now() + timedelta(seconds=self.settings.events_linger_s), only_if_sooner=True)

    def _run_job_at(self, job_id: str, when: datetime, only_if_sooner: bool = False) -> None:
        with self._control:
            if self._stopped.is_set() or not self.scheduler.running:
                return
            job = self.scheduler.get_job(job_id)
            if job is None or (only_if_sooner and job.next_run_time and job.next_run_time <= when):
                return
            self.scheduler.modify_job(job_id, next_run_time=max(when, utc_now()))

    def purge(self) -> int:
        removed = purge_local_copies(self.store, timedelta(hours=self.settings.verified_grace_hours))
        self.store.outbox.prune(OUTBOX_KEEP)
        if removed:
            log.info("deleted %d local copies verified more than %sh ago", removed, self.settings.verified_grace_hours)
            if self.store.queue.retry_transient_folders():  # e.g. "disk full": there may be room now
                self._run_job_at("scan", utc_now())
        return removed

    def _sync_pass(self) -> None:
        if self.sync.run_once().verified:
            self.wake_events()  # tell central "verified" promptly
            self.purge()  # a zero grace period means "as soon as verified"
        upcoming = self.store.queue.next_attempt_at()
        if upcoming is not None:
            self._run_job_at("sync", upcoming, only_if_sooner=True)

    def stop(self) -> None:
        with self._control:
            if self._stopped.is_set():
                return
            self._stopped.set()
        self.sync.stopping.set()
        self.feed.stopping.set()
        self.artifacts.stopping.set()
        if self.api is not None:
            self.api.stop()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        self.client.close()
        with self.feed.applying:  # a page being applied finishes; none starts after this
            self.feed_client.close()
            self.store.close()
        self._claim.let_go()
        log.info("station %s stopped", self.settings.station_id)

    def run(self) -> None:
        """Run until SIGTERM or SIGINT, then stop cleanly."""
        run_nodes([self])


def claim_data_dir(settings: StationSettings) -> tuple[FileClaim, str | None]:
    """One station process per data folder: two would ingest the same dock into one queue and
    upload each clip twice over, each believing the other's rows were its own. Taken before the
    database is opened, so a second process never migrates the running one's database. A
    folder that refuses the lock file is answered with the claim unheld and why: the store then
    says in its own words why the folder cannot be written (the usual cause)."""
    data_dir = Path(settings.data_dir)
    claim = FileClaim(data_dir / "station.lock")
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        taken = claim.try_take(f"{socket.gethostname()}:{os.getpid()}")
    except OSError as exc:
        return claim, f"data folder {data_dir} refuses its lock file: {exc.strerror}"
    if not taken:
        raise FleetError(
            f"station {settings.station_id} not started: another station process ({claim.holder() or 'unknown'}) "
            f"is running on data folder {data_dir}; stop it first, or give this one a data_dir of its own"
        )
    return claim, None


def run_nodes(nodes: list[StationNode]) -> None:
    """Run several stations in this process until SIGTERM or SIGINT, then stop each cleanly.

    Each node keeps its own store, scheduler, clients and threads; they share only the
    process (a host serving several stations, or ``fleet simulate`` packing 64 on 2 cores).
    """
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    started: list[StationNode] = []
    try:
        for node in nodes:
            node.start()
            started.append(node)
        stop.wait()
    finally:  # in parallel: each stop waits for its own jobs to finish
        stoppers = [threading.Thread(target=node.stop, name=f"stop-{node.settings.station_id}") for node in started]
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join()
