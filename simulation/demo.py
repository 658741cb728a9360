"""``fleet demo``: central, several borough stations and a camera simulator, all local.

Everything runs as real processes (``fleet central serve``, ``fleet station run``) with
their state under one folder, talking real HTTP on loopback. The demo only drives them
through their public interfaces: the dock inbox, ``fleet station status --json`` and
central's API.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import secrets
import shutil
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import msgspec
import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleet.errors import FleetError
from fleet.keyfile import write_key_file
from simulation.camera import SimCamera
from simulation.haproxy import LocalHAProxy
from simulation.local_cluster import FleetProcess, all_clips, free_port, start_central, stop_on_sigterm
from simulation.postgres import LocalPostgres
from simulation.shifts import SHIFT_HOURS, Pack, clips_of_shift, demo_scenario, packs
from station.keys import write_new_key

DEMO_USER = "demo-admin"
"""The dashboard login the demo makes (a DEMO account: its password is new every run)."""
DEFAULT_STATIONS = ("camden", "barnet", "lewisham")
BOROUGHS = {
    "camden": "Camden",
    "barnet": "Barnet",
    "lewisham": "Lewisham",
    "bexley": "Bexley",
    "bromley": "Bromley",
    "brent": "Brent",
    "croydon": "Croydon",
    "ealing": "Ealing",
    "havering": "Havering",
    "hillingdon": "Hillingdon",
}


def register(groups: argparse._SubParsersAction) -> None:
    demo = groups.add_parser(
        "demo",
        help="run central, borough stations and a camera simulator locally",
        description="Start central and several borough stations as separate processes, dock simulated "
        "cameras every few seconds and show clips flowing to central. Ctrl-C stops everything.",
    )
    demo.add_argument(
        "--dir",
        default="demo-data",
        metavar="DIR",
        help="folder for all demo state: configs, databases, dock folders, logs (default: demo-data)",
    )
    demo.add_argument(
        "--stations",
        default=",".join(DEFAULT_STATIONS),
        metavar="IDS",
        help=f"comma-separated station ids, one per borough (default: {','.join(DEFAULT_STATIONS)}; "
        f"known: {', '.join(BOROUGHS)})",
    )
    demo.add_argument(
        "--port", type=int, default=8000, help="central's port; if it is taken a free one is used (default: 8000)"
    )
    demo.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help="dock cameras for this long, wait for every clip to be verified, print a final "
        "summary and exit (non-zero if any docked clip was not verified)",
    )
    demo.add_argument(
        "--interval",
        type=float,
        default=3.0,
        metavar="SECONDS",
        help="after the first shift (every camera out at once), a shift starts somewhere every this many "
        "seconds (default: 3)",
    )
    demo.add_argument(
        "--shift-seconds",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help=f"the compressed clock: a {SHIFT_HOURS}-hour shift lasts this long (default: 30; the first "
        "shift, already under way when the demo starts, ends within 2 seconds)",
    )
    demo.add_argument(
        "--offline-seconds",
        type=float,
        default=45.0,
        metavar="SECONDS",
        help="after the first shift the last station goes offline (its node stopped) for this long while its "
        "cameras still dock, then catches up (default: 45; 0: never)",
    )
    demo.add_argument(
        "--max-clip-mib", type=float, default=8.0, metavar="MIB", help="largest simulated clip in MiB (default: 8)"
    )
    demo.add_argument(
        "--drain-timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="with --duration: how long to wait for the last clips to be verified (default: 120)",
    )
    demo.add_argument("--seed", type=int, default=None, help="random seed for the camera simulator")
    demo.add_argument(
        "--database",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="central's database: SQLite in its data folder (default), or a PostgreSQL server the demo "
        "starts with its data under --dir (Debian's postgresql: `make services` installs it)",
    )
    demo.add_argument(
        "--replicas",
        type=int,
        default=1,
        metavar="N",
        help="run central as N processes behind HAProxy on --port (needs --database postgresql; default: 1)",
    )
    demo.add_argument(
        "--tls",
        action="store_true",
        help="central serves HTTPS with a certificate from a CA the demo makes (under --dir/tls), "
        "and the stations verify it and present their own certificates (mutual TLS)",
    )
    demo.set_defaults(handler=run_demo)


@dataclass
class DockedClip:
    clip_id: str
    station_id: str
    sha256: str
    size: int


@dataclass
class Demo:
    root: Path
    stations: list[str]
    port: int
    admin_token: str = field(default_factory=lambda: "demo-admin-" + secrets.token_urlsafe(16))
    dashboard_password: str = field(default_factory=lambda: "demo-" + secrets.token_urlsafe(12))
    processes: dict[str, FleetProcess] = field(default_factory=dict)
    docked: list[DockedClip] = field(default_factory=list)
    statuses: dict[str, dict] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    desk_ports: dict[str, int] = field(default_factory=dict)
    in_dock: set[str] = field(default_factory=set)
    sim_cameras: dict[str, SimCamera] = field(default_factory=dict)
    """Each camera as it is between docks (its firmware and settings, its last update's outcome)."""
    checkouts: int = 0
    refused: int = 0
    """Checkouts the desk refused (the battery gate, an officer already holding a camera)."""
    packs: dict[str, Pack] = field(default_factory=dict)
    on_shift: dict[str, tuple[str, datetime, float]] = field(default_factory=dict)
    """Cameras out now: serial -> (officer, checked out at, when the shift ends on the monotonic clock)."""
    idle: dict[str, float] = field(default_factory=dict)
    """Cameras undocked and ready at their station's desk: serial -> since when (monotonic)."""
    benched: set[str] = field(default_factory=set)
    """Cameras the desk refused for their battery: they stay in the station (the fleet manager's list)."""
    recorded_on_shift: int = 0
    shifts_done: int = 0
    hold: str | None = None
    """The hold the demo placed (a complaint about an officer's shift), as a line for the summary."""
    offline: str | None = None
    offline_until: float | None = None
    went_offline: bool = False
    database: str = "sqlite"
    replicas: int = 1
    postgres: LocalPostgres | None = None
    balancer: LocalHAProxy | None = None
    replica_ports: list[int] = field(default_factory=list)
    tls: bool = False
    """HTTPS with the demo's own CA (``make_demo_pki``), and a client certificate per station."""

    CAMERAS_PER_STATION = 6
    OFFICERS_PER_STATION = 12

    def cameras(self, station_id: str) -> list[str]:
        """Each station's own pool of cameras: the same ones dock again and again."""
        first = self.stations.index(station_id) * 1000 + 1
        return [f"BWV-{n:06d}" for n in range(first, first + self.CAMERAS_PER_STATION)]

    def camera(self, serial: str) -> SimCamera:
        return self.sim_cameras.setdefault(serial, SimCamera(serial))

    def officers(self, station_id: str) -> list[str]:
        return [f"{station_id[:2].upper()}{n:04d}" for n in range(1, self.OFFICERS_PER_STATION + 1)]

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """How the demo's own requests check central: against the demo's CA under ``--tls``."""
        return ssl.create_default_context(cafile=self.root / "tls" / "ca.pem") if self.tls else True

    def station_config(self, station_id: str) -> Path:
        return self.root / "stations" / station_id / "station.toml"

    def dock_dir(self, station_id: str) -> Path:
        return self.root / "stations" / station_id / "dock"

    def write_configs(self) -> None:
        """Fresh demo tokens every run (marked DEMO); central keeps only their hashes."""
        (self.root / "central").mkdir(parents=True, exist_ok=True)
        lines = [
            "# DEMO configuration written by `fleet demo`: demo tokens, not secrets.",
            'host = "127.0.0.1"',
            f"port = {self.port}",
            'data_dir = "data"',
            f'admin_token_sha256 = "{hashlib.sha256(self.admin_token.encode()).hexdigest()}"',
            "",
        ]
        if self.postgres is not None:  # trusted on loopback, no password: a DEMO server
            lines += ["[database]", f'url = "{self.postgres.url("central")}"', ""]
            # Replicas must share one signing key (on SQLite central makes its own): a DEMO key.
            signing_key = self.root / "central" / "disclosure-signing.key"
            if not signing_key.exists():
                write_key_file(signing_key, Ed25519PrivateKey.generate().private_bytes_raw())
            lines += ["[disclosure.signing_key]", 'file = "disclosure-signing.key"', ""]
        if self.tls:
            make_demo_pki(self.root / "tls", self.stations)
            lines += ["[tls]", 'certificate = "../tls/central.pem"', 'key = "../tls/central.key"']
            lines += ['client_ca = "../tls/stations-ca.pem"', ""]
        reference = Path(__file__).resolve().parents[1] / "config"
        if (reference / "boroughs.toml").is_file() and (reference / "rollout.toml").is_file():
            # The reference roll-out (the Met's 32 boroughs and rates) moved to the demo's present, so
            # progress against plan means something: week 1 is this week.
            shutil.copyfile(reference / "boroughs.toml", self.root / "central" / "boroughs.toml")
            scenario = demo_scenario(reference / "rollout.toml", datetime.now(UTC).date())
            (self.root / "central" / "rollout.toml").write_text(scenario)
            lines += ["[rollout]", 'boroughs = "boroughs.toml"', 'scenario = "rollout.toml"', ""]
        if (reference / "retention.toml").is_file():  # the categories the demo's clips are tagged with
            shutil.copyfile(reference / "retention.toml", self.root / "central" / "retention.toml")
            lines += ["[retention]", 'rules = "retention.toml"', ""]
        for station_id in self.stations:
            token = f"demo-{station_id}-" + secrets.token_urlsafe(12)
            lines += [
                f"[stations.{station_id}]",
                f'borough = "{BOROUGHS.get(station_id, station_id.title())}"',
                f'token_sha256 = "{hashlib.sha256(token.encode()).hexdigest()}"',
                "",
            ]
            folder = self.station_config(station_id).parent
            self.dock_dir(station_id).mkdir(parents=True, exist_ok=True)
            self.station_config(station_id).write_text(
                "\n".join(
                    [
                        "# DEMO station configuration written by `fleet demo`: demo token, not a secret.",
                        f'station_id = "{station_id}"',
                        f'borough = "{BOROUGHS.get(station_id, station_id.title())}"',
                        f'central_url = "{self.url}"',
                        f'token = "{token}"',
                        'data_dir = "data"',
                        'dock_dir = "dock"',
                        "scan_interval_s = 1.0",
                        "sync_interval_s = 5.0",
                        "retry_initial_s = 0.5",
                        "retry_max_s = 10.0",
                        "verified_grace_hours = 0.01",
                        "events_interval_s = 1.0",
                        "feed_wait_s = 10.0",
                        f"api_port = {self.desk_ports.setdefault(station_id, free_port(0))}",
                        "",
                        "# A DEMO station key, made with the demo's data: its clips are stored encrypted under it.",
                        "[station_key]",
                        'file = "station.key"',
                        "",
                        *(
                            [
                                "[tls]",
                                f'ca_bundle = "{self.root / "tls" / "ca.pem"}"',
                                f'certificate = "{self.root / "tls" / f"station-{station_id}.pem"}"',
                                f'key = "{self.root / "tls" / f"station-{station_id}.key"}"',
                                "",
                            ]
                            if self.tls
                            else []
                        ),
                    ]
                )
            )
            (folder / "data").mkdir(exist_ok=True)
            if not (folder / "station.key").exists():  # kept with the demo's data: its clips are sealed under it
                write_new_key(folder / "station.key")
        if not self.tls:  # plain HTTP on 127.0.0.1: session cookies cannot be Secure there
            lines += ["[dashboard]", "secure_cookies = false", ""]
        (self.root / "central" / "central.toml").write_text("\n".join(lines))
        (self.root / "admin-token.txt").write_text(self.admin_token + "\n")
        (self.root / "dashboard-login.txt").write_text(f"{DEMO_USER}\n{self.dashboard_password}\n")

    def add_dashboard_user(self) -> None:
        """A DEMO administrator for the dashboard, with a fresh password each run."""
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "fleet.cli",
                "central",
                "add-user",
                DEMO_USER,
                "--role",
                "admin",
                "--password-stdin",
                "--config",
                str(self.root / "central" / "central.toml"),
            ],
            input=self.dashboard_password + "\n",
            capture_output=True,
            text=True,
        )
        if done.returncode != 0 and "exists already" not in done.stderr:
            raise FleetError(f"could not add the demo's dashboard user: {done.stderr.strip()}")

    def start_database(self) -> None:
        """PostgreSQL for ``--database postgresql``, its data kept under the demo's folder between runs."""
        if self.database != "postgresql":
            return
        self.postgres = LocalPostgres(self.root / "postgres").start()
        with psycopg.connect(self.postgres.url(), autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'central'").fetchone():
                conn.execute("CREATE DATABASE central")

    def start(self) -> None:
        logs = self.root / "logs"
        logs.mkdir(exist_ok=True)
        self.add_dashboard_user()
        config = self.root / "central" / "central.toml"
        if self.replicas == 1:
            self.processes["central"] = start_central(config, logs / "central.log", self.url, verify=self.verify)
        else:
            self.replica_ports = [free_port() for _ in range(self.replicas)]
            for number, port in enumerate(self.replica_ports, 1):
                name = f"central{number}"
                self.processes[name] = start_central(
                    config, logs / f"{name}.log", f"http://127.0.0.1:{port}", port=port, name=name
                )
            self.balancer = LocalHAProxy(self.root / "haproxy", self.replica_ports, port=self.port).start()
        self.seed_officers()
        for station_id in self.stations:
            station = FleetProcess(
                station_id,
                ["station", "run", "--config", str(self.station_config(station_id))],
                logs / f"{station_id}.log",
            )
            station.start()
            self.processes[station_id] = station

    def seed_officers(self) -> None:
        """Each borough's officers, as a planner's CSV import would; stations mirror them."""
        rows = [
            {
                "officer_id": officer,
                "borough": BOROUGHS.get(s, s.title()),
                "team": "Response team 1",
                "role": "response",
            }
            for s in self.stations
            for officer in self.officers(s)
        ]
        httpx.post(
            f"{self.url}/api/v1/officers/",
            json=rows,
            timeout=30,
            headers={"Authorization": f"Bearer {self.admin_token}"},
            verify=self.verify,
        ).raise_for_status()

    def station_of(self, serial: str) -> str:
        return next(s for s in self.stations if serial in self.cameras(s))

    def first_dock(self, rng: random.Random) -> None:
        """The start of the day: every camera sits in its dock (no clips yet), reporting its pack."""
        for index, station_id in enumerate(self.stations):
            for serial, pack in zip(self.cameras(station_id), packs(index, self.CAMERAS_PER_STATION, rng), strict=True):
                self.packs[serial] = pack
                self.dock(station_id, serial, [], rng)

    def dock(self, station_id: str, serial: str, clips: list, rng: random.Random) -> None:
        self.camera(serial).dock(
            self.dock_dir(station_id),
            clips,
            battery=self.packs[serial].reading(rng),
            folder_name=f"{serial}-{time.time_ns()}",
        )
        with self.lock:
            self.in_dock.add(serial)
            for c in clips:
                self.docked.append(DockedClip(c.clip_id, station_id, hashlib.sha256(c.content()).hexdigest(), c.size))

    def undock_ingested(self) -> None:
        """Take the demo's cameras out of their docks once ingested: they wait at the desk for the
        next shift. A folder someone else docked (the README invites it) is the station's and theirs."""
        for station_id in self.stations:
            own = set(self.cameras(station_id))
            for folder in self.dock_dir(station_id).iterdir():
                serial = folder.name.rsplit("-", 1)[0]
                if serial not in own:
                    continue
                if (folder / "INGESTED.json").exists() and not any((folder / "clips").iterdir()):
                    self.camera(serial).undock(folder)
                    self.in_dock.discard(serial)
                    if serial not in self.benched:
                        self.idle[serial] = time.monotonic()

    def start_shift(self, serial: str, rng: random.Random, seconds: float) -> bool:
        """An officer without a camera checks this one out at the desk (refusals are part of the day)."""
        station_id = self.station_of(serial)
        if station_id == self.offline:
            return False
        holding = {officer for officer, _, _ in self.on_shift.values()}
        free = [o for o in self.officers(station_id) if o not in holding]
        if not free:
            return False
        officer = rng.choice(free)
        try:
            r = httpx.post(
                f"http://127.0.0.1:{self.desk_ports[station_id]}/checkouts",
                timeout=5,
                json={"device_serial": serial, "officer_id": officer, "by": "demo desk sergeant"},
            )
        except httpx.TransportError:
            return False
        if r.status_code == 201:
            self.checkouts += 1
            self.idle.pop(serial, None)
            self.on_shift[serial] = (officer, datetime.now(UTC), time.monotonic() + seconds * rng.uniform(0.8, 1.2))
            return True
        if r.status_code == 409:
            self.refused += 1
            if "should not go out" in r.text:  # its pack: the sergeant hands out another
                self.idle.pop(serial, None)
                self.benched.add(serial)
        return False  # 404: the officers have not reached the station's list yet; the next loop tries again

    def end_shifts(self, rng: random.Random, max_clip_bytes: int, *, all_now: bool = False) -> None:
        """Cameras whose shift is over dock with what their officer recorded (the dock checks them in)."""
        now = time.monotonic()
        for serial, (officer, out_at, ends) in list(self.on_shift.items()):
            if not all_now and now < ends:
                continue
            back_at = datetime.now(UTC)
            clips = clips_of_shift(rng, out_at, back_at, min_size=64 * 1024, max_size=max_clip_bytes)
            self.dock(self.station_of(serial), serial, clips, rng)
            del self.on_shift[serial]
            self.recorded_on_shift += len(clips)
            self.shifts_done += 1
            if self.hold is None:
                self.place_hold(officer, out_at - timedelta(minutes=1), back_at + timedelta(minutes=1))

    def place_hold(self, officer: str, window_from: datetime, window_to: datetime) -> None:
        """A complaint about an officer's shift: everything they recorded in it is kept (central's API)."""
        r = httpx.post(
            f"{self.url}/api/v1/holds",
            timeout=10,
            verify=self.verify,
            headers={"Authorization": f"Bearer {self.admin_token}"},
            json={
                "kind": "officer",
                "officer_id": officer,
                "window_from": window_from.isoformat(),
                "window_to": window_to.isoformat(),
                "reason": "DEMO: a complaint from a member of the public about a stop during this shift",
            },
        )
        if r.status_code == 201:
            self.hold = (
                f"hold {r.json()['id']} on officer {officer}'s shift ({window_from:%H:%M:%S}-{window_to:%H:%M:%S})"
            )

    def set_offline(self, station_id: str, seconds: float) -> None:
        """The station drops off the network (its node stopped): its cameras still dock; it catches up later."""
        self.offline, self.offline_until, self.went_offline = station_id, time.monotonic() + seconds, True
        self.processes[station_id].stop(timeout=15)

    def back_online(self) -> None:
        if self.offline is not None:
            self.processes[self.offline].start()
            self.offline = self.offline_until = None

    def refresh_statuses(self) -> None:
        def one(station_id: str) -> None:
            result = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "fleet.cli",
                    "station",
                    "status",
                    "--json",
                    "--config",
                    str(self.station_config(station_id)),
                ],
                capture_output=True,
                timeout=30,
            )
            if result.returncode == 0:
                self.statuses[station_id] = msgspec.json.decode(result.stdout)

        threads = [threading.Thread(target=one, args=(s,)) for s in self.stations]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def verified_at_central(self) -> set[str]:
        """Clip ids central reports verified with the SHA-256 the camera recorded."""
        with self.lock:
            expected = {c.clip_id: c.sha256 for c in self.docked}
        with httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.admin_token}"}, timeout=10.0, verify=self.verify
        ) as client:
            clips = all_clips(client, state="verified")
        return {c["clip_id"] for c in clips if expected.get(c["clip_id"]) == c["sha256"]}

    def check_alive(self) -> None:
        for name, proc in self.processes.items():
            if name != self.offline and not proc.alive():
                raise FleetError(f"{proc.name} exited unexpectedly (status {proc.returncode}); see {proc.log}")

    def stop(self) -> None:
        for proc in self.processes.values():
            proc.signal()
        for proc in self.processes.values():
            proc.stop(timeout=15)
        if self.balancer is not None:
            self.balancer.stop()
        if self.postgres is not None:
            self.postgres.stop()  # its data stays under the demo's folder, like SQLite's


def make_demo_pki(folder: Path, stations: list[str]) -> None:
    """A DEMO certificate authority (made once, kept under the demo's folder), central's
    certificate for 127.0.0.1 and localhost, and one client certificate per station."""
    import trustme

    folder.mkdir(parents=True, exist_ok=True)
    ca_file, key_file = folder / "ca.pem", folder / "ca.key"
    if ca_file.is_file() and key_file.is_file():
        ca = trustme.CA.from_pem(ca_file.read_bytes(), key_file.read_bytes())
    else:
        ca = trustme.CA(organization_name="DEMO body-worn video fleet")
        ca.cert_pem.write_to_path(ca_file)
        ca.private_key_pem.write_to_path(key_file)
        key_file.chmod(0o600)

    def write(name: str, cert) -> None:
        (folder / f"{name}.pem").write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
        cert.private_key_pem.write_to_path(folder / f"{name}.key")
        (folder / f"{name}.key").chmod(0o600)

    write("central", ca.issue_cert("127.0.0.1", "localhost"))
    ca.cert_pem.write_to_path(folder / "stations-ca.pem")  # the same DEMO CA signs the stations
    for station_id in stations:
        write(f"station-{station_id}", ca.issue_cert(station_id, common_name=station_id))


def summary_table(demo: Demo, at_central: set[str]):
    from rich.table import Table

    table = Table(title=f"Body-worn video fleet demo — central {demo.url}")
    for column in (
        "station",
        "docked",
        "queued",
        "uploading",
        "waiting",
        "failed",
        "verified",
        "at central",
        "bad folders",
        "cameras out",
    ):
        table.add_column(column, justify="right" if column != "station" else "left")
    with demo.lock:
        docked = list(demo.docked)
    for station_id in demo.stations:
        status = demo.statuses.get(station_id, {})
        by_state = status.get("clips_by_state", {})
        mine = [c.clip_id for c in docked if c.station_id == station_id]
        table.add_row(
            station_id,
            str(len(mine)),
            *(str(by_state.get(s, 0)) for s in ("queued", "uploading", "waiting", "failed", "verified")),
            str(sum(1 for c in mine if c in at_central)),
            str(len(status.get("failed_folders", []))),
            str(status.get("checked_out", 0)),
        )
    return table


def run_demo(args: argparse.Namespace) -> int:
    from rich.live import Live

    from fleet.console import console as make_console

    stations = [s.strip() for s in args.stations.split(",") if s.strip()]
    if not stations or len(set(stations)) != len(stations):
        raise FleetError("--stations needs one or more distinct station ids")
    if args.interval <= 0 or args.max_clip_mib <= 0.0625:
        raise FleetError("--interval must be positive and --max-clip-mib at least 0.0625")
    if args.shift_seconds <= 0 or args.offline_seconds < 0:
        raise FleetError("--shift-seconds must be positive and --offline-seconds at least 0")
    if args.replicas < 1 or (args.replicas > 1 and args.database != "postgresql"):
        raise FleetError("--replicas N share one PostgreSQL: give --database postgresql (and N >= 1)")
    if args.tls and args.replicas > 1:
        raise FleetError(
            "--tls serves one central itself; with --replicas the balancer would terminate TLS (not in the demo)"
        )
    console = make_console()
    root = Path(args.dir).resolve()
    demo = Demo(
        root=root,
        stations=stations,
        port=free_port(args.port),
        database=args.database,
        replicas=args.replicas,
        tls=args.tls,
    )
    rng = random.Random(args.seed)
    max_clip = int(args.max_clip_mib * (1 << 20))
    central = "central" if args.replicas == 1 else f"{args.replicas} central replicas behind HAProxy"
    console.print(
        f"[bold]Starting {central} on {args.database} and {len(stations)} stations[/] (state and logs in {root})"
    )
    stop_on_sigterm()
    try:
        demo.start_database()
        demo.write_configs()
        demo.start()
        desks = "  ".join(f"http://127.0.0.1:{demo.desk_ports[s]}/desk" for s in stations)
        console.print(f"""
  dashboard        {demo.url}/   (log in as {DEMO_USER}; the password is in {root / "dashboard-login.txt"})
  central API      {demo.url}/api/v1/clips   (Authorization: Bearer <token in {root / "admin-token.txt"}>)
  health           {demo.url}/healthz
  OpenAPI          {demo.url}/schema/openapi.json
  fleet            {demo.url}/api/v1/devices/  /api/v1/stations/  /api/v1/assignments?active=true
  roll-out         {demo.url}/api/v1/rollout/plan  /api/v1/rollout/progress   (or: fleet rollout plan)
  try              curl -H "Authorization: Bearer $(cat {root / "admin-token.txt"})" {demo.url}/api/v1/clips?limit=5
  station desks    {desks}   (a sergeant's page: cameras out and in)
  desk, CLI        fleet station checkouts --config {demo.station_config(stations[0])}
  station status   fleet station status --config {demo.station_config(stations[0])}
  dock a camera    drop a folder into {demo.dock_dir(stations[0])}/ (format: docs/contracts.md §3)
""")
        if demo.postgres is not None:
            console.print(
                f"  database         PostgreSQL {demo.postgres.url('central')} (data in {demo.postgres.data})"
            )
        if demo.tls:
            console.print(
                f"  TLS              the demo's CA: {root / 'tls' / 'ca.pem'} "
                f"(curl --cacert it; stations present client certificates)\n"
            )
        if demo.balancer is not None:
            ports = ", ".join(str(p) for p in demo.replica_ports)
            console.print(
                f"  replicas         {demo.replicas} on ports {ports}, HAProxy on {demo.port} (round-robin)\n"
            )
        console.print(
            f"  the day          a {SHIFT_HOURS}-hour shift passes in {args.shift_seconds:g} s: officers check "
            "cameras out at the desk, record, dock at the end (their clips are attributed to them)\n"
        )
        started = time.monotonic()
        first_shift = min(args.shift_seconds, 2.0)
        next_shift: float | None = None  # after the first shift: one starts every --interval
        at_central: set[str] = set()
        demo.first_dock(rng)

        def step(ending: bool = False) -> None:
            nonlocal next_shift, at_central
            demo.undock_ingested()
            now = time.monotonic()
            if next_shift is None:  # the first shift: every camera out as soon as the desk can
                for serial in list(demo.idle):
                    demo.start_shift(serial, rng, first_shift)
                if demo.shifts_done:
                    next_shift = now
            elif not ending and now >= next_shift and demo.idle:
                demo.start_shift(min(demo.idle, key=demo.idle.__getitem__), rng, args.shift_seconds)
                next_shift = now + args.interval
            demo.end_shifts(rng, max_clip, all_now=ending)
            if demo.shifts_done and not demo.went_offline and args.offline_seconds and len(stations) > 1:
                demo.set_offline(stations[-1], args.offline_seconds)
            if demo.offline is not None and (ending or now >= (demo.offline_until or 0)):
                demo.back_online()
            demo.refresh_statuses()
            at_central = demo.verified_at_central()
            live.update(summary_table(demo, at_central))
            demo.check_alive()

        with Live(summary_table(demo, at_central), console=console, refresh_per_second=2, transient=False) as live:
            while args.duration is None or time.monotonic() - started < args.duration:
                step()
                time.sleep(0.5)
            if args.duration is None:
                return 0
            deadline = time.monotonic() + args.drain_timeout
            while time.monotonic() < deadline:
                step(ending=True)  # the end of the day: every camera out docks, the offline station is back
                if not demo.on_shift and len(at_central) == len(demo.docked):
                    break
                time.sleep(0.5)
        missing = [c for c in demo.docked if c.clip_id not in at_central]
        total = sum(c.size for c in demo.docked)
        console.print(
            f"\n[bold]{len(demo.docked)} clips ({total / (1 << 20):.1f} MiB) docked at "
            f"{len(stations)} stations; {len(at_central)} verified at central with matching SHA-256; "
            f"{len(missing)} missing.[/]"
        )
        console.print(
            f"{demo.shifts_done} shifts: {demo.checkouts} pool checkouts at the station desks ({demo.refused} "
            f"refused), {demo.recorded_on_shift} clips recorded on shift and attributed to their officers; "
            f"{len(demo.benched)} cameras kept back for their batteries (see {demo.url}/devices); "
            f"{demo.hold or 'no hold placed'}; {stations[-1] if demo.went_offline else 'no station'} was "
            "offline for a while and caught up"
        )
        for clip in missing[:20]:
            console.print(f"  not verified: {clip.clip_id} (docked at {clip.station_id})")
        return 0 if not missing else 1
    except KeyboardInterrupt:
        console.print("\nStopping…")
        return 0
    finally:
        demo.stop()
