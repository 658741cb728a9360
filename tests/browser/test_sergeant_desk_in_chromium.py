"""A sergeant's tasks at the station desk page, in a real browser against a real station and central.

Each task's steps are counted: a change that makes a task longer fails its test, and the
number is changed deliberately. The outcome is read back where others rely on it: the desk's
JSON API, ``fleet station checkouts --json``, and central, which receives the station's
CheckedOut and CheckedIn events (its assignments and its audit trail).
"""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

from fleet.protocol import Battery
from simulation.camera import dock_camera
from simulation.local_cluster import free_port
from tests.e2e.harness import Cluster, wait_until

STATION = "camden"
FIT = Battery(level_pct=96, voltage_mv=4100, temperature_c=29.5, cycle_count=120, full_charge_mah=2900, design_mah=3000)
WORN = Battery(
    level_pct=97, voltage_mv=4100, temperature_c=30.0, cycle_count=900, full_charge_mah=2300, design_mah=3000
)
"""77% of design capacity: due for replacement, so the battery gate refuses it."""
DOCKED = ("BWV-000123", "BWV-000456", "BWV-000777")


class Desk:
    """The station under test: its desk page's address, its config, and central behind it."""

    def __init__(self, cluster: Cluster, port: int) -> None:
        self.cluster = cluster
        self.url = f"http://127.0.0.1:{port}"
        self.config = cluster.root / STATION / "station.toml"

    def api_checkouts(self) -> list[dict]:
        return httpx.get(f"{self.url}/checkouts", timeout=10).raise_for_status().json()

    def cli_checkouts(self) -> list[dict]:
        done = subprocess.run(
            [sys.executable, "-m", "fleet.cli", "station", "checkouts", "--json", "--config", str(self.config)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def central_assignments(self, serial: str) -> list[dict]:
        with self.cluster.admin() as admin:
            return admin.get("/api/v1/assignments", params={"device_serial": serial}).raise_for_status().json()

    def central_audit(self, serial: str) -> str:
        """Central's audit trail page for the camera's check-outs (the admin is also an auditor)."""
        with self.cluster.admin() as admin:
            page = admin.get("/audit", params={"action": "check-out", "object_id": serial})
        return page.raise_for_status().text


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    """Central with two Camden officers; a Camden station with its desk on, three pool cameras
    docked: two fit for a shift, one due for replacement."""
    port = free_port()
    cluster = Cluster(tmp_path_factory.mktemp("desk"), station_ids=(STATION,), station_settings={"api_port": port})
    try:
        cluster.start_central()
        with cluster.admin() as admin:
            admin.post(
                "/api/v1/officers/",
                json=[{"officer_id": officer, "borough": "Camden"} for officer in ("PC4417", "PC2210")],
            ).raise_for_status()
        cluster.start_station(STATION)
        dock_camera(cluster.dock_dir(STATION), "BWV-000123", [], battery=FIT)
        dock_camera(cluster.dock_dir(STATION), "BWV-000456", [], battery=FIT)
        dock_camera(cluster.dock_dir(STATION), "BWV-000777", [], battery=WORN)
        wait_until(
            lambda: cluster.station_status(STATION)["mirrored"].get("officers") == 2,
            60,
            "the officers mirrored at the station",
            check=cluster.check_alive,
        )
        desk = Desk(cluster, port)
        wait_until(lambda: _rack(desk) == set(DOCKED), 60, "the cameras on the desk's rack")
        yield desk
    finally:
        cluster.stop_all()


def _rack(desk: Desk) -> set[str]:
    try:
        page = httpx.get(f"{desk.url}/desk", timeout=5).text
    except httpx.TransportError:
        return set()
    return {serial for serial in DOCKED if f"<td>{serial}</td>" in page}


class Sergeant:
    """A sergeant at the desk page, counting what they do: open a page, type into a field, press a button."""

    def __init__(self, page) -> None:
        self.page = page
        self.steps = 0

    def opens(self, url: str) -> None:
        self.steps += 1
        self.page.goto(url)

    def types(self, label: str, text: str) -> None:
        self.steps += 1
        self.page.get_by_label(label, exact=True).fill(text)

    def presses(self, button: str) -> None:
        self.steps += 1
        with self.page.expect_navigation():
            self.page.get_by_role("button", name=button, exact=True).click()

    def reads(self, kind: str) -> str:
        """The page's one line of outcome (``done`` or ``failed``): reading is not a step."""
        line = self.page.locator(f"#{kind}")
        assert line.count() == 1, self.page.locator("main").inner_text()
        return line.inner_text()


def test_a_sergeant_checks_a_camera_out_and_back_in(chromium, desk):
    sergeant = Sergeant(chromium.new_page())
    sergeant.opens(f"{desk.url}/")
    assert sergeant.page.url == f"{desk.url}/desk"
    sergeant.types("Camera serial", "BWV-000123")
    sergeant.types("Officer", "PC4417")
    sergeant.presses("Check out")
    assert sergeant.reads("done").startswith("BWV-000123 checked out to PC4417 at ")
    assert [(c["device_serial"], c["officer_id"]) for c in desk.api_checkouts()] == [("BWV-000123", "PC4417")]
    assert [(c["device_serial"], c["officer_id"]) for c in desk.cli_checkouts()] == [("BWV-000123", "PC4417")]
    [central_out] = wait_until(
        lambda: [a for a in desk.central_assignments("BWV-000123") if a["ended_at"] is None],
        60,
        "central receiving CheckedOut",
        check=desk.cluster.check_alive,
    )
    assert (central_out["officer_id"], central_out["mode"], central_out["station_id"]) == ("PC4417", "pool", STATION)

    sergeant.presses("Check in BWV-000123 from PC4417")
    assert sergeant.reads("done").startswith("BWV-000123 checked in from PC4417 at ")
    assert desk.api_checkouts() == [] and desk.cli_checkouts() == []
    [ended] = wait_until(
        lambda: [a for a in desk.central_assignments("BWV-000123") if a["ended_at"] is not None],
        60,
        "central receiving CheckedIn",
        check=desk.cluster.check_alive,
    )
    assert ended["id"] == central_out["id"] and ended["end_reason"] == "manual"
    # opened the desk, typed the serial, typed the officer, pressed Check out, pressed Check in
    assert sergeant.steps == 5


def test_the_battery_gate_refuses_and_a_supervisor_hands_the_camera_out_with_a_reason(chromium, desk):
    sergeant = Sergeant(chromium.new_page())
    sergeant.opens(f"{desk.url}/desk")
    worn_row = sergeant.page.get_by_role("row").filter(has_text="BWV-000777").inner_text()
    assert "refused by the battery gate" in worn_row and "due for replacement" in worn_row
    sergeant.types("Camera serial", "BWV-000777")
    sergeant.types("Officer", "PC2210")
    sergeant.presses("Check out")
    refusal = sergeant.reads("failed")
    assert "due for replacement (77% of design capacity, below 80%)" in refusal
    assert "take another camera instead (ready now: BWV-000456" in refusal  # what to do instead
    assert desk.api_checkouts() == []
    assert sergeant.page.get_by_label("Camera serial", exact=True).input_value() == "BWV-000777"  # kept as typed
    sergeant.types("Supervisor", "PS Khan")
    sergeant.types("Reason", "officer's own camera in repair; spare battery issued")
    sergeant.presses("Check out with this reason")
    assert sergeant.reads("done").startswith("BWV-000777 checked out to PC2210 at ")
    assert [(c["device_serial"], c["out_by"]) for c in desk.cli_checkouts()] == [("BWV-000777", "PS Khan")]
    wait_until(
        lambda: (
            "handed out past the battery gate: officer&#39;s own camera in repair; spare battery issued"
            in desk.central_audit("BWV-000777")
        ),
        60,
        "central auditing the override",
        check=desk.cluster.check_alive,
    )
    # opened the desk, typed the serial, typed the officer, pressed Check out (refused),
    # typed the supervisor, typed the reason, pressed Check out with this reason
    assert sergeant.steps == 7
