"""Real processes for end-to-end tests: central under uvicorn and stations, on loopback.

Every process is started exactly as an operator would start it (``fleet … --config``),
with its own config file, and killed with SIGTERM or SIGKILL at the moment a test wants.
With ``replicas`` > 1 central is several ``fleet central serve`` processes on one PostgreSQL
(``database="postgresql"``, started for the cluster) behind HAProxy, whose port is the one
stations and tests talk to (``url``); each replica also answers on its own (``replica_url``).
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from simulation import local_cluster
from simulation.haproxy import LocalHAProxy
from simulation.local_cluster import free_port
from simulation.postgres import LocalPostgres
from station.keys import write_new_key

ADMIN_TOKEN = "test-admin-token"  # test value, not a secret


def wait_until(
    predicate: Callable[[], Any],
    timeout: float = 30.0,
    message: str = "condition",
    interval: float = 0.05,
    check: Callable[[], None] | None = None,
) -> Any:
    """``simulation.local_cluster.wait_until`` with the tests' defaults (a short poll, 30 s)."""
    return local_cluster.wait_until(predicate, timeout, message, interval=interval, check=check)


@dataclass
class Process:
    name: str
    args: list[str]
    log: Path
    popen: subprocess.Popen | None = None
    launcher: tuple[str, ...] = (sys.executable, "-m", "fleet.cli")
    """How ``fleet`` is started; the fault suite uses ``tests.faults.skewed_clock`` for a wrong clock."""

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.popen = subprocess.Popen(
                [*self.launcher, *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig``; a process that ignores SIGTERM is killed and reported as a failure."""
        if not self.alive():
            return
        os.killpg(self.popen.pid, sig)
        try:
            self.popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()
            raise AssertionError(f"{self.name} did not stop within 20 s of signal {sig}") from None

    def check(self) -> None:
        if self.popen is not None and self.popen.poll() is not None and self.popen.returncode not in (0, -15):
            raise AssertionError(f"{self.name} died with {self.popen.returncode}:\n{self.log.read_text()[-3000:]}")


@dataclass
class Cluster:
    root: Path
    station_ids: tuple[str, ...] = ("camden",)
    station_settings: dict[str, Any] = field(default_factory=dict)
    central_tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Extra tables of central's config, e.g. ``{"limits": {"uploads_in_flight": 2}}``."""
    station_tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Extra tables of every station's config, e.g. ``{"firmware": {"release_keys": [...]}}``."""
    port: int = field(default_factory=free_port)
    processes: dict[str, Process] = field(default_factory=dict)
    launchers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Per process name, how to start it (see ``Process.launcher``)."""
    replicas: int = 1
    database: str = "sqlite"
    """``postgresql``: a PostgreSQL server is started for the cluster (needed for replicas > 1)."""
    postgres: LocalPostgres | None = None
    balancer: LocalHAProxy | None = None
    replica_ports: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        (self.root / "central").mkdir(parents=True, exist_ok=True)
        if self.replicas > 1 and self.database != "postgresql":
            raise ValueError("replicas share one PostgreSQL: give database='postgresql'")
        self.replica_ports = [self.port] if self.replicas == 1 else [free_port() for _ in range(self.replicas)]
        lines = [
            f"port = {self.replica_ports[0]}",
            'data_dir = "data"',
            f'admin_token = "{ADMIN_TOKEN}"',
            'log_level = "debug"',
        ]
        if self.database == "postgresql":
            self.postgres = LocalPostgres(self.root / "postgres", durable=False).start()
            with psycopg.connect(self.postgres.url(), autocommit=True) as conn:
                conn.execute("CREATE DATABASE central")
            lines += ["[database]", f'url = "{self.postgres.url("central")}"']
        for table, values in self.central_tables.items():
            lines += [f"[{table}]", *(f"{k} = {_toml(v)}" for k, v in values.items())]
        for sid in self.station_ids:
            lines += [
                f"[stations.{sid}]",
                f'borough = "{sid.title()}"',
                f'token_sha256 = "{hashlib.sha256(self.token(sid).encode()).hexdigest()}"',
            ]
        (self.root / "central" / "central.toml").write_text("\n".join(lines) + "\n")
        for sid in self.station_ids:
            self.write_station_config(sid, self.url)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def database_url(self) -> str | None:
        """Central's PostgreSQL database (None: SQLite in ``central_data()``)."""
        return self.postgres.url("central") if self.postgres is not None else None

    @property
    def config_path(self) -> Path:
        return self.root / "central" / "central.toml"

    @staticmethod
    def token(station_id: str) -> str:
        return f"test-token-{station_id}"  # test value, not a secret

    def write_station_config(self, station_id: str, central_url: str, **overrides: Any) -> Path:
        folder = self.root / station_id
        (folder / "dock").mkdir(parents=True, exist_ok=True)
        settings = {
            "station_id": station_id,
            "borough": station_id.title(),
            "central_url": central_url,
            "token": self.token(station_id),
            "data_dir": "data",
            "dock_dir": "dock",
            "scan_interval_s": 0.2,
            "sync_interval_s": 0.5,
            "retry_initial_s": 0.2,
            "retry_max_s": 1.0,
            "verified_grace_hours": 0.0,
            "chunk_bytes": 256 * 1024,
            "log_level": "debug",
            "events_interval_s": 0.3,
            "feed_wait_s": 1.0,
            **self.station_settings,
            **overrides,
        }
        text = "\n".join(f"{k} = {_toml(v)}" for k, v in settings.items()) + "\n"
        key = folder / "station.key"
        if not key.exists():
            write_new_key(key)  # a fresh TEST key for this test's station, never a secret
        text += '[station_key]\nfile = "station.key"\n'
        for table, values in self.station_tables.items():
            text += f"[{table}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in values.items())
        (folder / "station.toml").write_text(text)
        return folder / "station.toml"

    def dock_dir(self, station_id: str) -> Path:
        return self.root / station_id / "dock"

    def station_data(self, station_id: str) -> Path:
        return self.root / station_id / "data"

    def central_data(self) -> Path:
        return self.root / "central" / "data"

    # -- processes -------------------------------------------------------------------------

    def start_central(self) -> Process:
        """Every replica (and the balancer in front of them); the first replica's process."""
        first = self.start_replica(1)
        for number in range(2, self.replicas + 1):
            self.start_replica(number)
        if self.replicas > 1:
            if self.balancer is None:
                self.balancer = LocalHAProxy(self.root / "haproxy", self.replica_ports, port=self.port)
            if not self.balancer.alive():
                self.balancer.start()
            wait_until(self.central_healthy, 30, "central through the balancer")
        return first

    @staticmethod
    def replica_name(number: int) -> str:
        return "central" if number == 1 else f"central{number}"

    def replica_url(self, number: int) -> str:
        return f"http://127.0.0.1:{self.replica_ports[number - 1]}"

    def start_replica(self, number: int) -> Process:
        """``fleet central serve`` (replica ``number`` on its own port) until its /healthz answers."""
        name = self.replica_name(number)
        proc = Process(
            name,
            [
                "central",
                "serve",
                "--config",
                str(self.root / "central" / "central.toml"),
                "--port",
                str(self.replica_ports[number - 1]),
            ],
            self.root / f"{name}.log",
            **self._launcher(name),
        )
        proc.start()
        self.processes[name] = proc
        url = self.replica_url(number)
        wait_until(lambda: _healthy(url), 90, f"{name} /healthz", check=proc.check)
        return proc

    def leader(self) -> int | None:
        """The number of the replica that leads the jobs that run once (None: none answers that it does)."""
        for number in range(1, self.replicas + 1):
            try:
                if httpx.get(f"{self.replica_url(number)}/healthz", timeout=1.0).json().get("leading"):
                    return number
            except (httpx.TransportError, ValueError):
                continue
        return None

    def start_station(self, station_id: str) -> Process:
        proc = Process(
            station_id,
            ["station", "run", "--config", str(self.root / station_id / "station.toml")],
            self.root / f"{station_id}.log",
            **self._launcher(station_id),
        )
        proc.start()
        self.processes[station_id] = proc
        return proc

    def _launcher(self, name: str) -> dict:
        return {"launcher": self.launchers[name]} if name in self.launchers else {}

    def central_healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False

    def stop_processes(self) -> None:
        """Stop central's replicas and the stations cleanly (SIGTERM); the database and the balancer stay."""
        failures = []
        for proc in self.processes.values():
            try:
                proc.kill(signal.SIGTERM)
            except AssertionError as exc:
                failures.append(str(exc))
        assert not failures, failures

    def stop_all(self) -> None:
        """Stop every process cleanly (the balancer and the database last); all are stopped even if one fails to."""
        failures = []
        try:
            self.stop_processes()
        except AssertionError as exc:
            failures.append(str(exc))
        if self.balancer is not None:
            self.balancer.stop()
        if self.postgres is not None:
            self.postgres.remove()
        assert not failures, failures

    def check_alive(self) -> None:
        for proc in self.processes.values():
            proc.check()

    # -- observations ----------------------------------------------------------------------

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10.0)

    def clip(self, clip_id: str) -> dict | None:
        with self.admin() as client:
            response = client.get(f"/api/v1/clips/{clip_id}")
        return response.json() if response.status_code == 200 else None

    def central_clips(self) -> list[dict]:
        items, cursor = [], None
        with self.admin() as client:
            while True:
                params = {"limit": 1000} | ({"cursor": cursor} if cursor else {})
                page = client.get("/api/v1/clips", params=params).raise_for_status().json()
                items += page["items"]
                cursor = page.get("next_cursor")
                if not cursor:
                    return items

    def verified(self, clip_ids) -> bool:
        try:
            clips = {c["clip_id"]: c for c in self.central_clips()}
        except httpx.TransportError:
            return False
        return all(clips.get(i, {}).get("state") == "verified" for i in clip_ids)

    def station_status(self, station_id: str) -> dict:
        import json

        wait_until(lambda: (self.station_data(station_id) / "station.db").exists(), 30, "the station's database")
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "fleet.cli",
                "station",
                "status",
                "--json",
                "--config",
                str(self.root / station_id / "station.toml"),
            ],
            capture_output=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr.decode()
        return json.loads(result.stdout)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
