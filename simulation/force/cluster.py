"""The simulated force's processes: a real central and a few hosts of real station nodes.

Central is ``fleet central serve`` (uvicorn) on SQLite, or (``database="postgresql"``) on a
PostgreSQL server started for the run, as ``replicas`` processes behind HAProxy, whose port
is the one the stations use (the same ``simulation.postgres`` and ``simulation.haproxy`` as
``fleet demo``). The stations are real station nodes (ingest,
queue, sync worker, outbox, feed, desk API), several to a process (``fleet station run
--config A --config B …``): 64 station processes would not fit 2 cores, and a node needs
nothing of its process but its own threads. Everything else is their public interfaces:
config files, the dock inbox, each station's desk API ``/status`` (what ``fleet station
status --json`` prints) and central's API.

Station timers run on the wall clock while the month runs at ``day_seconds`` a day, so
they are set short (a real station's defaults would be hours of simulated time): see
``station_settings``.
"""

from __future__ import annotations

import hashlib
import secrets
import shutil
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg

from fleet.errors import FleetError
from simulation.force.usage import Station
from simulation.haproxy import LocalHAProxy
from simulation.local_cluster import FleetProcess, free_port, healthy, start_central, wait_until, write_toml
from simulation.postgres import LocalPostgres
from station.keys import write_new_key

MARKER = ".fleet-simulate"
"""Written into the work folder, so a later run may clear it (and no other folder)."""


HOST_NICENESS = 5
"""Station hosts run at a lower CPU priority than central and the driver. The run puts 65 machines'
work on one; given the same priority, the stations' ingest starved central's restart after the
outage (19 s to answer, 3 s alone) and the driver's docking."""


def prepare_workdir(root: Path) -> None:
    """An empty work folder: a previous simulation's is cleared, anything else refused."""
    if root.exists() and any(root.iterdir()):
        if not (root / MARKER).exists():
            raise FleetError(f"--workdir {root} is not empty and not a previous simulation's: choose another")
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text("work folder of `fleet simulate`; cleared by the next run\n")


def station_settings(day_seconds: float) -> dict:
    """What each simulated station runs with (wall-clock seconds)."""
    return {
        "scan_interval_s": 1.0,  # docked cameras are seen within a second
        "sync_interval_s": 5.0,  # ingest wakes the sync worker at once anyway
        "events_interval_s": 2.0,
        "events_linger_s": 2.0,  # a shift's dockings go up in a few batches, not a request each
        "heartbeat_s": 15.0,
        "feed_wait_s": 20.0,
        "feed_linger_s": 2.0,  # 20,000 cameras are first seen this month, each a registry change to its borough
        "retry_initial_s": 0.5,
        "retry_max_s": 4.0,  # back within seconds of central's return, as a real station is within 5 minutes
        "chunk_bytes": 64 * 1024,  # small clips: one PATCH each
        "verified_grace_hours": day_seconds / 3600,  # local copies kept one simulated day after "verified"
        "log_level": "warning",
    }


class SimCluster:
    """Configs, processes and observations of one simulated force under ``root``."""

    def __init__(
        self,
        root: Path,
        stations: list[Station],
        hosts: int,
        day_seconds: float,
        *,
        database: str = "sqlite",
        replicas: int = 1,
    ) -> None:
        self.root = root
        self.stations = stations
        self.hosts = min(hosts, len(stations))
        self.day_seconds = day_seconds
        self.database = database
        self.port = free_port()
        """The port stations talk to: central's own, or with replicas the balancer's."""
        self.replica_ports = [self.port] if replicas == 1 else [free_port() for _ in range(replicas)]
        self.admin_token = "sim-admin-" + secrets.token_urlsafe(16)  # SIMULATION value, new every run
        self.desk_ports = [free_port() for _ in stations]
        self.replicas: list[FleetProcess | None] = [None] * replicas
        self.postgres: LocalPostgres | None = None
        self.balancer: LocalHAProxy | None = None
        self.host_processes: list[FleetProcess] = []
        self.retired_cpu = 0.0
        """CPU seconds of central processes already stopped (the outage restarts it)."""
        self._desk = httpx.Client(
            timeout=10.0, limits=httpx.Limits(max_connections=16, max_keepalive_connections=len(stations))
        )
        self._pool = ThreadPoolExecutor(4, thread_name_prefix="status")  # more only fight over the GIL

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self, station: int) -> Path:
        return self.root / "stations" / self.stations[station].station_id / "station.toml"

    def dock_dir(self, station: int) -> Path:
        return self.root / "stations" / self.stations[station].station_id / "dock"

    @property
    def central(self) -> FleetProcess | None:
        """The first replica (the only one on SQLite)."""
        return self.replicas[0]

    def replica_log(self, number: int) -> Path:
        return self.root / "logs" / ("central.log" if len(self.replicas) == 1 else f"central{number}.log")

    @property
    def central_log(self) -> Path:
        return self.replica_log(1)

    @property
    def central_db(self) -> Path | str:
        """Central's database: the SQLite file, or the PostgreSQL URL."""
        if self.postgres is not None:
            return self.postgres.url("central")
        return self.root / "central" / "data" / "central.db"

    def start_database(self) -> None:
        """PostgreSQL for ``database="postgresql"``, its data under the work folder (nothing for SQLite)."""
        if self.database != "postgresql":
            return
        self.postgres = LocalPostgres(self.root / "postgres").start()
        with psycopg.connect(self.postgres.url(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE central")

    def write_configs(self, release_keys: list[str] | None = None) -> None:
        """Fresh SIMULATION tokens every run; central keeps only their hashes. ``release_keys``: the
        vendor public keys central and every station trust for firmware (``--deploy``)."""
        firmware = {"firmware": {"release_keys": release_keys}} if release_keys else {}
        # Central judges deployments' phases every two simulated hours or so (a soak ends with the clock).
        phase_check = {"phase_check_seconds": max(1.0, self.day_seconds / 12)}
        central_firmware = {"firmware": {"release_keys": release_keys, **phase_check}} if release_keys else {}
        tokens = {s.station_id: "sim-" + secrets.token_urlsafe(12) for s in self.stations}
        job_hour = (datetime.now(UTC).hour + 12) % 24
        write_toml(
            self.root / "central" / "central.toml",
            {
                "host": "127.0.0.1",
                "port": self.port,
                "data_dir": "data",
                "log_level": "warning",
                "admin_token_sha256": hashlib.sha256(self.admin_token.encode()).hexdigest(),
                # The deletion job is not what is simulated: twelve hours away, it never runs during a run.
                "retention": {"job_hour_utc": job_hour},
                **({"database": {"url": self.postgres.url("central")}} if self.postgres is not None else {}),
                **central_firmware,
                "stations": {
                    s.station_id: {
                        "borough": s.borough,
                        "token_sha256": hashlib.sha256(tokens[s.station_id].encode()).hexdigest(),
                    }
                    for s in self.stations
                },
            },
            "SIMULATION configuration written by `fleet simulate`: tokens are new every run.",
        )
        timers = station_settings(self.day_seconds)
        for index, s in enumerate(self.stations):
            self.dock_dir(index).mkdir(parents=True, exist_ok=True)
            key = self.config(index).parent / "station.key"
            if not key.exists():
                write_new_key(key)
            write_toml(
                self.config(index),
                {
                    "station_id": s.station_id,
                    "borough": s.borough,
                    "central_url": self.url,
                    "token": tokens[s.station_id],
                    "data_dir": "data",
                    "dock_dir": "dock",
                    "api_port": self.desk_ports[index],
                    **timers,
                    "station_key": {"file": "station.key"},  # a SIMULATION key, made with its data
                    **firmware,
                },
                "SIMULATION station written by `fleet simulate`: its token is new every run.",
            )
        (self.root / "admin-token.txt").write_text(self.admin_token + "\n")
        (self.root / "logs").mkdir(exist_ok=True)

    # -- processes -------------------------------------------------------------------------

    def start_central(self) -> float:
        """Start central (every replica, and the balancer the first time); return how long it took to answer."""
        started = time.monotonic()
        with ThreadPoolExecutor(len(self.replicas), thread_name_prefix="replica") as starting:
            list(starting.map(self.start_replica, range(1, len(self.replicas) + 1)))  # at once; raises if one fails
        if len(self.replicas) > 1:
            if self.balancer is None:
                self.balancer = LocalHAProxy(self.root / "haproxy", self.replica_ports, port=self.port)
            if not self.balancer.alive():
                self.balancer.start()
            wait_until(lambda: healthy(self.url), 60, "central through the balancer", interval=0.2)
        return time.monotonic() - started

    def replica_url(self, number: int) -> str:
        return f"http://127.0.0.1:{self.replica_ports[number - 1]}"

    def start_replica(self, number: int) -> None:
        port = None if len(self.replicas) == 1 else self.replica_ports[number - 1]
        self.replicas[number - 1] = start_central(
            self.root / "central" / "central.toml",
            self.replica_log(number),
            self.replica_url(number),
            timeout=180,
            port=port,
            name="central" if port is None else f"central replica {number}",
        )

    def stop_central(self) -> None:
        """Stop central as an operator would (SIGTERM; SIGKILL if it hangs): every replica."""
        assert self.central is not None, "stop_central() before start_central()"
        for replica in self.replicas:
            if replica is not None:
                self.retired_cpu += replica.cpu_seconds()
                replica.signal()
        for replica in self.replicas:
            if replica is not None:
                replica.stop(signal.SIGTERM, timeout=30)

    def leader(self) -> int | None:
        """The number of the replica that leads the jobs that run once (None: none says it does)."""
        for number in range(1, len(self.replicas) + 1):
            try:
                if httpx.get(f"{self.replica_url(number)}/healthz", timeout=5.0).json().get("leading"):
                    return number
            except (httpx.TransportError, ValueError):
                continue
        return None

    def kill_leader(self) -> tuple[int, float]:
        """SIGKILL the leading replica and start it again; (its number, seconds until another led)."""
        number = wait_until(self.leader, 60, "a leading replica", interval=0.2)
        replica = self.replicas[number - 1]
        assert replica is not None
        self.retired_cpu += replica.cpu_seconds()
        replica.stop(signal.SIGKILL)
        killed = time.monotonic()
        wait_until(lambda: self.leader() not in (None, number), 60, "another replica leading", interval=0.1)
        takeover = time.monotonic() - killed
        self.start_replica(number)
        return number, takeover

    def central_up(self) -> bool:
        return any(r is not None and r.alive() for r in self.replicas) and healthy(self.url)

    def check_central(self) -> None:
        """FleetError if a replica that should be serving has exited."""
        for number, replica in enumerate(self.replicas, 1):
            if replica is None or not replica.alive():
                raise FleetError(f"central replica {number} exited unexpectedly; see {self.replica_log(number)}")

    def start_hosts(self) -> None:
        """Station nodes, dealt round-robin to ``hosts`` processes (each host gets every borough's share)."""
        for h in range(self.hosts):
            configs = [str(self.config(i)) for i in range(h, len(self.stations), self.hosts)]
            host = FleetProcess(
                f"station host {h + 1}",
                ["station", "run", *(arg for c in configs for arg in ("--config", c))],
                self.root / "logs" / f"host-{h + 1}.log",
                niceness=HOST_NICENESS,
            )
            host.start()
            self.host_processes.append(host)
        wait_until(self._desks_answer, 120, "every station's desk API", interval=0.5, check=self.check_hosts)

    def _desks_answer(self) -> bool:
        try:
            self.statuses()
        except (httpx.HTTPError, FleetError):
            return False
        return True

    def check_hosts(self) -> None:
        for host in self.host_processes:
            if not host.alive():
                raise FleetError(f"{host.name} exited (status {host.returncode}); see {host.log}")

    def statuses(self) -> list[dict]:
        """Every station's status from its desk API (the same document as ``fleet station status --json``)."""

        def one(index: int) -> dict:
            response = self._desk.get(f"http://127.0.0.1:{self.desk_ports[index]}/status")
            if response.status_code != 200:
                raise FleetError(f"station {self.stations[index].station_id}: /status answered {response.status_code}")
            return response.json()

        return list(self._pool.map(one, range(len(self.stations))))

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.admin_token}"}, timeout=60.0)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU used so far by central (every run of it) and by the station hosts."""
        return {
            "central": self.retired_cpu + sum(r.cpu_seconds() for r in self.replicas if r is not None),
            "station_hosts": sum(h.cpu_seconds() for h in self.host_processes),
        }

    def stop_all(self) -> None:
        for process in [*self.host_processes, *self.replicas]:
            if process is not None:
                process.signal()
        for process in [*self.host_processes, *self.replicas]:
            if process is not None:
                process.stop(timeout=60)
        if self.balancer is not None:
            self.balancer.stop()
        if self.postgres is not None:
            self.postgres.stop()
        self._pool.shutdown(wait=False)
        self._desk.close()
