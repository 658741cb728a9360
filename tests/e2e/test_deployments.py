"""Deployments of firmware through real processes (docs/firmware.md, issue 23): central serving,
stations running, simulated cameras docking, taking the update out of the dock and reporting it.

The vendor's key is a TEST key generated for each test (never a secret); central and every
station trust it in ``[firmware] release_keys``.
"""

from __future__ import annotations

import hashlib
import json
import signal
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleet.firmware import public_key_hex
from simulation.camera import MANIFEST, UPDATE_DIR, SimCamera, UpdateFailures
from tests.central.firmware.conftest import sign
from tests.e2e.harness import Cluster, wait_until
from tests.support.databases import BACKENDS

AB2, AB3 = "Axon Body 2", "Axon Body 3"
DEADLINE = 120.0
"""How long a step may take on a busy machine before the test fails (it polls: most take a second or two)."""


def firmware_cluster(
    make_cluster, station_ids: tuple[str, ...], database: str = "sqlite", **central_tables
) -> tuple[Cluster, Ed25519PrivateKey]:
    vendor = Ed25519PrivateKey.generate()  # a TEST key, made for this test alone
    keys = {"release_keys": [public_key_hex(vendor.public_key())]}
    cluster = make_cluster(
        station_ids=station_ids,
        database=database,
        central_tables={"firmware": keys, **central_tables},
        station_tables={"firmware": keys},
    )
    return cluster, vendor


def release(cluster: Cluster, vendor: Ed25519PrivateKey, model: str, version: str, size: int = 4096) -> dict:
    """A signed release added over HTTP, as a fleet manager would."""
    data = hashlib.sha256(f"{model} {version}".encode()).digest() * (size // 32)
    params = {"model": model, "version": version, "signature": sign(vendor, data, model=model, version=version)}
    with cluster.admin() as admin:
        return admin.post("/api/v1/firmware/releases", params=params, content=data).raise_for_status().json()


def deploy(cluster: Cluster, body: dict) -> dict:
    with cluster.admin() as admin:
        response = admin.post("/api/v1/deployments", json={"reason": "e2e test", **body})
    assert response.status_code == 201, response.text
    return response.json()


def deployment(cluster: Cluster, deployment_id: int) -> dict:
    with cluster.admin() as admin:
        return admin.get(f"/api/v1/deployments/{deployment_id}").raise_for_status().json()


def phase_states(cluster: Cluster, deployment_id: int) -> tuple[str, list[str]] | None:
    """The deployment's state and its phases' (None while central does not answer)."""
    try:
        d = deployment(cluster, deployment_id)
    except httpx.TransportError:
        return None
    return d["state"], [p["state"] for p in d["phases"]]


def cameras_of(cluster: Cluster, deployment_id: int) -> dict[str, dict]:
    with cluster.admin() as admin:
        page = admin.get(f"/api/v1/deployments/{deployment_id}/cameras", params={"limit": 1000})
    return {c["serial"]: c for c in page.raise_for_status().json()["items"]}


def registered(cluster: Cluster, serials) -> bool:
    try:
        with cluster.admin() as admin:
            items = admin.get("/api/v1/devices/", params={"limit": 1000}).raise_for_status().json()["items"]
    except httpx.TransportError:
        return False
    return set(serials) <= {d["serial"] for d in items}


def fleet_json(cluster: Cluster, *args: str) -> dict:
    """``fleet central …  --json``, as a person at central's console runs it (while central serves)."""
    done = subprocess.run(
        [sys.executable, "-m", "fleet.cli", "central", *args, "--json", "--config", str(cluster.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def station_rows(cluster: Cluster, station_id: str, sql: str, params=()) -> list[tuple]:
    path = cluster.station_data(station_id) / "station.db"
    if not path.exists():
        return []
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        try:
            return db.execute(sql, params).fetchall()
        except sqlite3.OperationalError:  # not migrated yet
            return []


def offers(cluster: Cluster, station_id: str, deployment_id: int) -> dict[str, int]:
    """{serial: attempt} of the offers of this deployment the station holds."""
    rows = station_rows(
        cluster, station_id, "SELECT serial, body FROM camera_updates WHERE deployment_id = ?", (deployment_id,)
    )
    return {serial: json.loads(body)["attempt"] for serial, body in rows}


def central_rows(cluster: Cluster, sql: str, params=()) -> list[tuple]:
    """Read central's database (what no route shows: its audit trail, its feed's history)."""
    if cluster.database_url is not None:
        with psycopg.connect(cluster.database_url) as conn:
            return [tuple(r) for r in conn.execute(sql.replace("?", "%s").encode(), params).fetchall()]
    with sqlite3.connect(f"file:{cluster.central_data() / 'central.db'}?mode=ro", uri=True) as db:
        return db.execute(sql, params).fetchall()


def central_audit(cluster: Cluster, deployment_id: int) -> list[tuple[str, str, str]]:
    return central_rows(
        cluster,
        "SELECT action, actor, detail FROM audit WHERE object_type = 'deployment' AND object_id = ? ORDER BY id",
        [str(deployment_id)],
    )


@dataclass
class Dock:
    """The simulated cameras and the dock each is in: they take an update out of the dock (applied as
    they are undocked), and come straight back to report it."""

    cluster: Cluster
    cameras: dict[str, SimCamera] = field(default_factory=dict)
    where: dict[str, str] = field(default_factory=dict)
    folders: dict[str, Path] = field(default_factory=dict)
    received: dict[str, list[int]] = field(default_factory=dict)
    """Per camera, the deployments whose update it found in its dock folder."""

    def add(self, camera: SimCamera, station_id: str) -> None:
        self.cameras[camera.serial] = camera
        self.where[camera.serial] = station_id

    def dock(self, serial: str, station_id: str | None = None) -> Path:
        if station_id is not None:
            self.where[serial] = station_id
        folder = self.cameras[serial].dock(self.cluster.dock_dir(self.where[serial]), [], battery_pct=90.0)
        self.folders[serial] = folder
        return folder

    def undock(self, serial: str) -> None:
        folder = self.folders.pop(serial)
        manifest = folder / UPDATE_DIR / MANIFEST
        if manifest.is_file():
            self.received.setdefault(serial, []).append(json.loads(manifest.read_bytes())["deployment_id"])
        self.cameras[serial].undock(folder)

    def has_update(self, serial: str) -> bool:
        return serial in self.folders and (self.folders[serial] / UPDATE_DIR / MANIFEST).is_file()

    def cycle(self, serials=None) -> None:
        """Every docked camera (of ``serials``) with an update waiting: out (applied) and back in (reported)."""
        for serial in list(serials if serials is not None else self.folders):
            if self.has_update(serial):
                self.undock(serial)
                self.dock(serial)


@pytest.mark.parametrize("database", BACKENDS)
def test_a_failing_model_pauses_its_deployment_before_the_next_phase_and_another_completes(make_cluster, database):
    stations = ("camden", "barnet", "hackney")
    cluster, vendor = firmware_cluster(make_cluster, stations, database)
    cluster.start_central()
    for sid in stations:
        cluster.start_station(sid)
    failures = UpdateFailures(by_model={AB2: 1.0})  # every Axon Body 2 update fails to flash
    dock = Dock(cluster)
    for sid in stations:
        for n in (1, 2):
            dock.add(SimCamera(f"AB2-{sid}-{n}", AB2, "1.4.2", failures=failures), sid)
        dock.add(SimCamera(f"AB3-{sid}", AB3, "2.0.0", failures=failures), sid)
    for serial in dock.cameras:
        dock.dock(serial)
    wait_until(
        lambda: registered(cluster, dock.cameras), DEADLINE, "every camera registered", check=cluster.check_alive
    )

    bad = release(cluster, vendor, AB2, "1.4.3")
    good = release(cluster, vendor, AB3, "2.0.1")
    failing = deploy(
        cluster,
        {
            "release_id": bad["id"],
            "phases": [{"share_pct": 50, "max_failure_pct": 5, "min_results": 3}, {"share_pct": 100}],
        },
    )
    succeeding = fleet_json(
        cluster,
        *("deploy", "create", "--release", str(good["id"]), "--reason", "e2e: a good release"),
        *("--phase", "boroughs=Camden", "--phase", "boroughs=Barnet", "--phase", "boroughs=Hackney"),
        *("--min-results", "1"),
    )
    assert [p["figures"]["cameras"] for p in failing["phases"]] == [3, 3]
    assert [p["figures"]["cameras"] for p in succeeding["phases"]] == [1, 1, 1]
    in_phase = {serial: c["phase"] for serial, c in cameras_of(cluster, failing["id"]).items()}
    canary = {s for s, p in in_phase.items() if p == 1}
    later = {s for s, p in in_phase.items() if p == 2}

    def both_decided() -> bool:
        dock.cycle()
        a, b = phase_states(cluster, failing["id"]), phase_states(cluster, succeeding["id"])
        return a is not None and b is not None and a[0] == "paused" and b[0] == "completed"

    wait_until(both_decided, 300, "the failing deployment paused, the good one completed", check=cluster.check_alive)

    paused = deployment(cluster, failing["id"])
    assert paused["decided_by"] == "central" and paused["decision"].startswith("paused by itself: phase 1")
    assert [p["state"] for p in paused["phases"]] == ["open", "waiting"]
    assert paused["phases"][0]["figures"]["failed"] == 3 and paused["phases"][0]["figures"]["updated"] == 0
    cams = cameras_of(cluster, failing["id"])
    assert {cams[s]["state"] for s in later} == {"waiting"} and all(cams[s]["handed_attempt"] is None for s in later)
    assert all(cams[s]["error"] == "flash verify failed" for s in canary)
    trail = central_audit(cluster, failing["id"])
    assert [a for a, _, _ in trail] == ["deployment-create", "deployment-phase-open", "deployment-pause"], trail
    assert trail[-1][1] == "central" and trail[-1][2].startswith("paused by itself: phase 1"), trail
    # The pause withdrew every offer at every station; the later phase's cameras, docked all
    # along, were never offered it.
    wait_until(
        lambda: all(not offers(cluster, sid, failing["id"]) for sid in stations),
        DEADLINE,
        "offers withdrawn at the stations",
    )
    for serial in later:
        assert failing["id"] not in dock.received.get(serial, []) and not dock.has_update(serial)
        assert not any(
            station_rows(cluster, sid, "SELECT 1 FROM update_handovers WHERE serial = ?", (serial,)) for sid in stations
        )
    for serial in canary:
        assert dock.cameras[serial].firmware == "1.4.2"  # a failed update keeps the old version
        assert cams[serial]["handed_attempt"] >= 1 and cams[serial]["version"] == "1.4.2"

    done = cameras_of(cluster, succeeding["id"])
    assert {c["state"] for c in done.values()} == {"updated"} and {c["version"] for c in done.values()} == {"2.0.1"}
    assert all(dock.cameras[s].firmware == "2.0.1" for s in done)
    assert [p["state"] for p in deployment(cluster, succeeding["id"])["phases"]] == ["done", "done", "done"]

    # A person resumes: the canary is offered its next attempt at its station again (but a camera
    # that failed max_attempts times already before the pause: given up).
    resumed = fleet_json(cluster, "deploy", "resume", str(failing["id"]), "--reason", "e2e: the vendor says retry")
    assert resumed["state"] == "running"
    retried = {s: c["attempt"] for s, c in cameras_of(cluster, failing["id"]).items() if c["state"] == "failed"}
    assert retried and set(retried) <= canary and min(retried.values()) >= 2
    wait_until(
        lambda: all(offers(cluster, dock.where[s], failing["id"]).get(s) == attempt for s, attempt in retried.items()),
        DEADLINE,
        "the next attempt offered to the canary at its stations",
        check=cluster.check_alive,
    )
    # and aborts: every offer is withdrawn at the stations, the later phase cancelled, never offered.
    aborted = fleet_json(cluster, "deploy", "abort", str(failing["id"]), "--reason", "e2e: recalled")
    assert aborted["state"] == "aborted"
    wait_until(
        lambda: all(not offers(cluster, sid, failing["id"]) for sid in stations),
        DEADLINE,
        "offers withdrawn after the abort",
        check=cluster.check_alive,
    )
    # What the resumed deployment had written into the canary, still docked, is taken back: none
    # of them flashes the aborted release when it is taken out.
    wait_until(
        lambda: not any(dock.has_update(s) for s in canary), DEADLINE, "the aborted update taken back from the docks"
    )
    for serial in canary:
        dock.undock(serial)
        assert dock.cameras[serial].firmware == "1.4.2"
    cams = cameras_of(cluster, failing["id"])
    assert {cams[s]["state"] for s in later} == {"cancelled"}
    assert [a for a, _, _ in central_audit(cluster, failing["id"])][-2:] == ["deployment-resume", "deployment-abort"]
    for serial in later:
        assert failing["id"] not in dock.received.get(serial, []) and not dock.has_update(serial)


def test_a_tampered_artifact_is_refused_at_the_station(make_cluster):
    cluster, vendor = firmware_cluster(make_cluster, ("camden",))
    cluster.start_central()
    cluster.start_station("camden")
    dock = Dock(cluster)
    dock.add(SimCamera("AB2-1", AB2, "1.4.2"), "camden")
    dock.dock("AB2-1")
    wait_until(lambda: registered(cluster, ["AB2-1"]), DEADLINE, "the camera registered", check=cluster.check_alive)
    added = release(cluster, vendor, AB2, "1.4.3")
    blob = cluster.central_data() / "blobs" / "fi" / f"firmware-{added['sha256']}"
    altered = bytearray(blob.read_bytes())
    altered[100] ^= 0xFF  # one byte changed at rest, same length: only the hash can tell
    blob.write_bytes(bytes(altered))

    created = deploy(cluster, {"release_id": added["id"], "phases": [{"share_pct": 100}]})

    wait_until(
        lambda: station_rows(cluster, "camden", "SELECT 1 FROM firmware_artifacts WHERE failures >= 2"),
        DEADLINE,
        "the artifact refused, and again on retry",
        check=cluster.check_alive,
    )
    firmware = cluster.station_status("camden")["firmware"]
    [artifact] = firmware["artifacts"]
    assert artifact["state"] == "failed" and "SHA-256" in artifact["last_error"], firmware
    assert "SHA-256" in firmware["last_failure"]
    [offer] = firmware["offers"]
    assert offer["serial"] == "AB2-1" and f"the artifact of release {added['id']} failed" in offer["waiting"]
    assert not dock.has_update("AB2-1") and "AB2-1" not in dock.received
    assert not any((cluster.station_data("camden") / "firmware").glob(added["sha256"]))
    [camera] = cameras_of(cluster, created["id"]).values()
    assert camera["state"] == "offered" and camera["handed_attempt"] is None

    # Central's store repaired: the station's next retry takes the artifact and hands it over.
    blob.write_bytes(bytes(altered[:100]) + bytes([altered[100] ^ 0xFF]) + bytes(altered[101:]))
    wait_until(
        lambda: dock.has_update("AB2-1"), DEADLINE, "the repaired artifact handed over", check=cluster.check_alive
    )
    dock.cycle()
    assert dock.cameras["AB2-1"].firmware == "1.4.3"


@pytest.mark.parametrize("database", BACKENDS)
def test_a_station_offline_during_the_deployment_catches_up_and_updates_while_central_is_down(make_cluster, database):
    # Central keeps the feed's shortest history and trims it every second or so: the station away
    # for the roll-out finds its cursor expired and learns its offer from the snapshot.
    fleet_table = {"change_history": 100, "health_check_minutes": 0.02}
    cluster, vendor = firmware_cluster(make_cluster, ("barnet", "camden"), database, fleet=fleet_table)
    central = cluster.start_central()
    for sid in ("barnet", "camden"):
        cluster.start_station(sid)
    dock = Dock(cluster)
    dock.add(SimCamera("AB2-barnet", AB2, "1.4.2"), "barnet")
    dock.add(SimCamera("AB2-camden", AB2, "1.4.2"), "camden")
    for serial in dock.cameras:
        dock.dock(serial)
    wait_until(
        lambda: registered(cluster, dock.cameras), DEADLINE, "both cameras registered", check=cluster.check_alive
    )
    dock.undock("AB2-camden")  # out on patrol
    cluster.processes["camden"].kill(signal.SIGTERM)  # Camden's station is down for the whole roll-out

    added = release(cluster, vendor, AB2, "1.4.3")
    created = deploy(
        cluster, {"release_id": added["id"], "phases": [{"boroughs": ["Barnet"]}, {"boroughs": ["Camden"]}]}
    )

    def camden_phase_open() -> bool:
        dock.cycle()
        return phase_states(cluster, created["id"]) == ("running", ["done", "open"])

    wait_until(camden_phase_open, DEADLINE, "Barnet updated, Camden's phase open", check=cluster.check_alive)
    assert dock.cameras["AB2-barnet"].firmware == "1.4.3"
    # A delivery of another model to Camden: more changes than central keeps, after the offer.
    delivery = [{"serial": f"AF2-{n:03d}", "model": "Axon Flex 2", "borough": "Camden"} for n in range(120)]
    with cluster.admin() as admin:
        admin.post("/api/v1/devices/", json=delivery).raise_for_status()
    wait_until(
        lambda: len(central_rows(cluster, "SELECT 1 FROM changes WHERE kind = 'camera_update'")) == 0,
        DEADLINE,
        "the offer's change trimmed from the feed's history",
        check=cluster.check_alive,
    )

    cluster.start_station("camden")

    def caught_up() -> bool:
        verified = station_rows(
            cluster,
            "camden",
            "SELECT 1 FROM firmware_artifacts WHERE sha256 = ? AND state = 'verified'",
            (added["sha256"],),
        )
        return offers(cluster, "camden", created["id"]) == {"AB2-camden": 1} and bool(verified)

    wait_until(caught_up, DEADLINE, "Camden's offer and its artifact, verified", check=cluster.check_alive)
    assert "reloading the snapshot" in (cluster.root / "camden.log").read_text()
    central.kill()  # SIGKILL: central is gone before the camera comes back

    dock.dock("AB2-camden")
    wait_until(lambda: dock.has_update("AB2-camden"), DEADLINE, "the update in the dock with central down")
    dock.cycle()
    assert dock.cameras["AB2-camden"].firmware == "1.4.3"
    wait_until(
        lambda: (
            station_rows(cluster, "camden", "SELECT ok, version FROM update_results WHERE serial = 'AB2-camden'")
            == [(1, "1.4.3")]
        ),
        DEADLINE,
        "the camera's report kept at the station",
    )

    cluster.start_central()
    wait_until(
        lambda: phase_states(cluster, created["id"]) == ("completed", ["done", "done"]),
        DEADLINE,
        "the deployment completed once central is back",
        check=cluster.check_alive,
    )
    cams = cameras_of(cluster, created["id"])
    assert {s: (c["state"], c["version"]) for s, c in cams.items()} == {
        "AB2-barnet": ("updated", "1.4.3"),
        "AB2-camden": ("updated", "1.4.3"),
    }


def settings_history(cluster: Cluster, serial: str) -> dict:
    with cluster.admin() as admin:
        return admin.get(f"/api/v1/devices/{serial}/settings").raise_for_status().json()


HOSTILE = "<script>alert(1)</script>\u202e\x1b[2J\n" + "f" * 300
"""What a camera that lies puts in its ``device.json`` as its settings' hash."""


@dataclass
class LyingCamera(SimCamera):
    """A camera that says it applied the profile but reports settings (their hash) it was never given."""

    def profile_sha256(self) -> str | None:
        return HOSTILE


@pytest.mark.parametrize("database", BACKENDS)
def test_a_profile_deployment_delivered_at_the_dock_is_confirmed_by_the_camera_in_its_settings_history(
    make_cluster, database
):
    cluster, _ = firmware_cluster(make_cluster, ("camden",), database)
    cluster.start_central()
    cluster.start_station("camden")
    dock = Dock(cluster)
    dock.add(SimCamera("AB2-armed", AB2, "1.4.2"), "camden")
    dock.add(LyingCamera("AB2-liar", AB2, "1.4.2"), "camden")
    for serial in dock.cameras:
        dock.dock(serial)
    wait_until(lambda: registered(cluster, dock.cameras), DEADLINE, "both registered", check=cluster.check_alive)
    with cluster.admin() as admin:
        admin.put("/api/v1/profiles/borough:Camden", json={"mount": "head", "pre_record_s": 60}).raise_for_status()
    before = settings_history(cluster, "AB2-armed")
    assert before["carried"] is None and before["items"][0]["status"] == "pending"
    assert before["items"][0]["cause"] == "profile borough:Camden set"

    created = deploy(cluster, {"profiles": True, "phases": [{"share_pct": 100, "max_failure_pct": 100}]})

    def decided() -> bool:
        dock.cycle()
        return phase_states(cluster, created["id"]) == ("completed", ["done"])

    wait_until(decided, DEADLINE, "the profile applied and reported", check=cluster.check_alive)
    offered = {"pre_record_s": 60, "resolution": "1080p", "frame_rate": 30, "audio": True}
    assert dock.cameras["AB2-armed"].settings == {**offered, "recording_indicator": True, "mount": "head"}
    cams = cameras_of(cluster, created["id"])
    assert cams["AB2-armed"]["state"] == "updated"
    # The liar's report of success is contradicted by its own reading at the station: a failure.
    assert cams["AB2-liar"]["state"] in ("failed", "gave_up")
    assert "profile_sha256" in cams["AB2-liar"]["error"]

    history = settings_history(cluster, "AB2-armed")
    confirmed = history["items"][0]
    assert confirmed["status"] == "confirmed" and confirmed["deployment_id"] == created["id"]
    assert confirmed["station_id"] == "camden" and confirmed["settings"]["mount"] == "head"
    assert confirmed["source"] == "from: borough Camden, built-in"
    assert history["carried"]["id"] == confirmed["id"]
    cli = fleet_json(cluster, "profile", "history", "AB2-armed")
    assert cli["carried"]["id"] == confirmed["id"] and cli["items"][0]["status"] == "confirmed"
    liar = settings_history(cluster, "AB2-liar")
    assert liar["carried"] is None and liar["items"][0]["status"] == "pending"
    with cluster.admin() as admin:
        page = admin.get("/devices/AB2-liar").raise_for_status().text
    assert "<script>alert(1)" not in page and "\u202e" not in page


def test_a_rollback_puts_the_updated_cameras_back_on_the_version_they_came_from(make_cluster):
    cluster, vendor = firmware_cluster(make_cluster, ("camden",))
    cluster.start_central()
    cluster.start_station("camden")
    dock = Dock(cluster)
    for n in (1, 2, 3):
        dock.add(SimCamera(f"AB2-{n}", AB2, "1.4.2"), "camden")
        dock.dock(f"AB2-{n}")
    wait_until(
        lambda: registered(cluster, dock.cameras), DEADLINE, "every camera registered", check=cluster.check_alive
    )
    dock.undock("AB2-3")  # out on patrol all along: the deployment stays running
    old = release(cluster, vendor, AB2, "1.4.2")
    new = release(cluster, vendor, AB2, "1.4.3")
    first = deploy(cluster, {"release_id": new["id"], "phases": [{"share_pct": 100}]})

    def two_updated() -> bool:
        dock.cycle()
        try:
            cams = cameras_of(cluster, first["id"])
        except httpx.TransportError:
            return False
        return cams["AB2-1"]["state"] == cams["AB2-2"]["state"] == "updated"

    wait_until(two_updated, DEADLINE, "two cameras updated", check=cluster.check_alive)
    assert {dock.cameras[s].firmware for s in ("AB2-1", "AB2-2")} == {"1.4.3"}
    assert deployment(cluster, first["id"])["state"] == "running"

    fleet_json(cluster, "deploy", "abort", str(first["id"]), "--reason", "e2e: the clock drifts worse")
    back = fleet_json(cluster, "deploy", "rollback", str(first["id"]), "--reason", "e2e: back to 1.4.2")
    assert back["release"]["id"] == old["id"] and back["rollback_of"] == first["id"]
    assert set(cameras_of(cluster, back["id"])) == {"AB2-1", "AB2-2"}  # only those the first one updated

    def rolled_back() -> bool:
        dock.cycle()
        return phase_states(cluster, back["id"]) == ("completed", ["done"])

    wait_until(rolled_back, DEADLINE, "the rollback applied and reported", check=cluster.check_alive)
    assert {dock.cameras[s].firmware for s in ("AB2-1", "AB2-2")} == {"1.4.2"}
    assert dock.cameras["AB2-3"].firmware == "1.4.2" and "AB2-3" not in dock.received
    assert deployment(cluster, first["id"])["state"] == "rolled_back"
    assert {c["version"] for c in cameras_of(cluster, back["id"]).values()} == {"1.4.2"}
    assert [a for a, _, _ in central_audit(cluster, first["id"])][-2:] == ["deployment-abort", "deployment-rollback"]
    wait_until(lambda: not offers(cluster, "camden", back["id"]), DEADLINE, "the rollback's offers ended")


def test_a_camera_that_fails_max_attempts_times_gives_up_and_is_not_offered_again(make_cluster):
    cluster, vendor = firmware_cluster(make_cluster, ("camden",))
    cluster.start_central()
    cluster.start_station("camden")
    dock = Dock(cluster)
    dock.add(SimCamera("AB2-bad", AB2, "1.4.2", failures=UpdateFailures(by_model={AB2: 1.0})), "camden")
    dock.dock("AB2-bad")
    wait_until(lambda: registered(cluster, ["AB2-bad"]), DEADLINE, "registered", check=cluster.check_alive)
    added = release(cluster, vendor, AB2, "1.4.3")
    created = deploy(
        cluster,
        {
            "release_id": added["id"],
            "phases": [{"share_pct": 100, "max_failure_pct": 100}],  # the rules never pause it: it gives up
            "policy": {"max_attempts": 2},
        },
    )

    def given_up() -> bool:
        dock.cycle()
        return phase_states(cluster, created["id"]) == ("completed", ["done"])

    wait_until(given_up, DEADLINE, "two failed attempts, then given up", check=cluster.check_alive)
    [camera] = cameras_of(cluster, created["id"]).values()
    assert camera["state"] == "gave_up" and camera["failures"] == 2 and camera["error"] == "flash verify failed"
    assert dock.received["AB2-bad"] == [created["id"], created["id"]]  # attempts 1 and 2, no third
    assert dock.cameras["AB2-bad"].firmware == "1.4.2"
    figures = deployment(cluster, created["id"])["phases"][0]["figures"]
    assert figures["gave_up"] == 1 and figures["updated"] == 0
    wait_until(lambda: not offers(cluster, "camden", created["id"]), DEADLINE, "the offer withdrawn at the station")
    # Docked again (its report of attempt 2 read once more): nothing is written for it. A pass ingests
    # what docked, then hands updates over; a camera docked after this one's ingest is ingested by a
    # later pass, so once it is, the pass that could have handed this one an update is over.
    dock.undock("AB2-bad")
    folder = dock.dock("AB2-bad")
    wait_until(lambda: (folder / "INGESTED.json").is_file(), DEADLINE, "docked again", check=cluster.check_alive)
    dock.add(SimCamera("AB3-later", AB3, "2.0.0"), "camden")
    later = dock.dock("AB3-later")
    wait_until(lambda: (later / "INGESTED.json").is_file(), DEADLINE, "a later pass", check=cluster.check_alive)
    assert not dock.has_update("AB2-bad") and dock.received["AB2-bad"] == [created["id"], created["id"]]
    assert cameras_of(cluster, created["id"])["AB2-bad"]["state"] == "gave_up"
