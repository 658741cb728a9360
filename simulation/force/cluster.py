"""The simulated force's processes: one real central and a few hosts of real station nodes.

Central is ``fleet central serve`` (uvicorn). The stations are real station nodes (ingest,
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

from fleet.errors import FleetError
from simulation.force.usage import Station
from simulation.local_cluster import FleetProcess, free_port, healthy, start_central, wait_until, write_toml
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

    def __init__(self, root: Path, stations: list[Station], hosts: int, day_seconds: float) -> None:
        self.root = root
        self.stations = stations
        self.hosts = min(hosts, len(stations))
        self.day_seconds = day_seconds
        self.port = free_port()
        self.admin_token = "sim-admin-" + secrets.token_urlsafe(16)  # SIMULATION value, new every run
        self.desk_ports = [free_port() for _ in stations]
        self.central: FleetProcess | None = None
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
    def central_log(self) -> Path:
        return self.root / "logs" / "central.log"

    @property
    def central_db(self) -> Path:
        return self.root / "central" / "data" / "central.db"

    def write_configs(self) -> None:
        """Fresh SIMULATION tokens every run; central keeps only their hashes."""
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
                },
                "SIMULATION station written by `fleet simulate`: its token is new every run.",
            )
        (self.root / "admin-token.txt").write_text(self.admin_token + "\n")
        (self.root / "logs").mkdir(exist_ok=True)

    # -- processes -------------------------------------------------------------------------

    def start_central(self) -> float:
        """Start central; return how long it took to answer."""
        started = time.monotonic()
        self.central = start_central(self.root / "central" / "central.toml", self.central_log, self.url, timeout=180)
        return time.monotonic() - started

    def stop_central(self) -> None:
        """Stop central as an operator would (SIGTERM; SIGKILL if it hangs)."""
        assert self.central is not None, "stop_central() before start_central()"
        self.retired_cpu += self.central.cpu_seconds()
        self.central.stop(signal.SIGTERM, timeout=30)

    def central_up(self) -> bool:
        return self.central is not None and self.central.alive() and healthy(self.url)

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
            "central": self.retired_cpu + (self.central.cpu_seconds() if self.central else 0.0),
            "station_hosts": sum(h.cpu_seconds() for h in self.host_processes),
        }

    def stop_all(self) -> None:
        for process in [*self.host_processes, self.central]:
            if process is not None:
                process.signal()
        for process in [*self.host_processes, self.central]:
            if process is not None:
                process.stop(timeout=60)
        self._pool.shutdown(wait=False)
        self._desk.close()
